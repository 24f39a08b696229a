"""Provenance: which code, machine and versions produced a result.

:func:`record` is the one builder of provenance blocks; every results file and every executed
chapter carries one.
"""

from __future__ import annotations

import datetime as dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
VERSIONED = ("sgdq", "torch", "numpy", "qiskit", "qiskit-aer", "transformers", "papermill", "matplotlib",
             "seaborn", "pandas")
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


def device_name(device) -> str:
    """The device in words: the GPU's name, or the CPU's architecture and torch's thread count."""
    device = torch.device(device)
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


def record(device, **fields) -> dict:
    """A provenance block: ``fields`` (experiment, config, …) plus commit, device and versions."""
    return dict(fields, git_commit=git_commit(), device=device_name(device), versions=versions())
