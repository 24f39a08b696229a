"""Write ``requirements-lock.txt``: the exact versions, in this environment, of every package that
``sgdq[book,llm,test]`` needs (its whole dependency closure, torch aside).

    python scripts/lock.py          # refresh the lock from the current environment
    python scripts/lock.py --check  # exit 1 (listing the differences) if the environment has drifted

``scripts/install.sh`` installs with ``pip install -c requirements-lock.txt``, so a fresh
machine (and CI) gets the versions that produced the committed results. torch is left out: it
is installed first and pinned by itself (2.13.0, the CPU build here; a CUDA build elsewhere).
"""

from __future__ import annotations

import argparse
import re
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements-lock.txt"
EXTRAS = ("book", "llm", "test")
LEFT_OUT = {"torch", "sgdq"}  # torch: pinned by install.sh; sgdq: this project


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def closure() -> dict[str, str]:
    """{package: installed version} for sgdq[book,llm,test] and everything they require here."""
    seen: dict[str, str] = {}
    todo = [Requirement(r) for r in metadata.requires("sgdq") or []]
    todo = [r for r in todo if r.marker is None or any(r.marker.evaluate({"extra": e}) for e in ("", *EXTRAS))]
    while todo:
        req = todo.pop()
        name = _norm(req.name)
        if name in seen or name in LEFT_OUT:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency this environment does not have
        seen[name] = dist.version
        for sub in map(Requirement, dist.requires or []):
            if sub.marker is None or any(sub.marker.evaluate({"extra": e}) for e in ("", *req.extras)):
                todo.append(sub)
    return dict(sorted(seen.items()))


def render(pins: dict[str, str]) -> str:
    head = ("# Exact versions that produced the committed results (CPU, Python "
            f"{sys.version_info.major}.{sys.version_info.minor}); torch is pinned by scripts/install.sh.\n"
            "# Refresh: python scripts/lock.py   Check: python scripts/lock.py --check\n")
    return head + "".join(f"{k}=={v}\n" for k, v in pins.items())


def read(path: Path | None = None) -> dict[str, str]:
    pins = {}
    for line in (path or LOCK).read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, version = line.split("==")
            pins[_norm(name)] = version
    return pins


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="compare the environment with the lock; write nothing")
    args = ap.parse_args(argv)
    pins = closure()
    if args.check:
        locked = read()
        diff = sorted(f"{k}: locked {locked.get(k)}, installed {pins.get(k)}" for k in set(locked) | set(pins)
                      if locked.get(k) != pins.get(k))
        print("\n".join(diff) if diff else f"{LOCK.name}: the environment matches ({len(pins)} packages)")
        return 1 if diff else 0
    LOCK.write_text(render(pins))
    print(f"wrote {LOCK} ({len(pins)} packages)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
