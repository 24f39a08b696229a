"""Notebook plumbing: parameter validation, profiles, seeds and the provenance block.

Every notebook starts with a cell tagged ``parameters`` (``profile``, ``device``, ``seed`` and
its own knobs) and then calls :func:`start`, which

* refuses unknown values, naming the parameter and the accepted choices;
* refuses parameter names that papermill injected but the notebook does not declare
  (papermill itself accepts ``-p profil smoke`` silently; papermill issue #818);
* refuses ``device="cuda"`` on a machine without a GPU with a plain message;
* seeds Python, NumPy and torch, and picks the profile's settings from :data:`SETTINGS`.

:meth:`Run.provenance` prints the block every notebook ends with: git commit, device,
profile, parameters, package versions and wall time.

Used in: every notebook.
"""

from __future__ import annotations

import ast
import datetime as _dt
import importlib.metadata
import json
import os
import platform
import random
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

PROFILES = ("smoke", "cpu", "paper")
DEVICES = ("auto", "cpu", "cuda")
ROOT = Path(__file__).resolve().parents[1]
VERSIONED = ("sgdq", "torch", "numpy", "qiskit", "qiskit-aer", "transformers", "papermill", "matplotlib",
             "seaborn", "pandas")

# Profile-dependent settings per notebook: smoke (CI, seconds), cpu (what the book shows),
# paper (the paper's scale, meant for a GPU).
SETTINGS: dict[str, dict[str, dict]] = {
    "01_math": {
        "smoke": dict(n_starts=64, steps=150),
        "cpu": dict(n_starts=1000, steps=600),
        "paper": dict(n_starts=10000, steps=1000),
    },
    "02_circuit": {
        "smoke": dict(n_points=64, n_aer=16),
        "cpu": dict(n_points=400, n_aer=256),
        "paper": dict(n_points=2000, n_aer=2048),
    },
    "03_optimizer": {
        "smoke": dict(seeds=2, steps=60, timing_repeats=5, llm_sized=False),
        "cpu": dict(seeds=5, steps=400, timing_repeats=20, llm_sized=True),
        "paper": dict(seeds=10, steps=1000, timing_repeats=50, llm_sized=True),
    },
    "05_text_classification": {"smoke": {}, "cpu": {}, "paper": {}},  # see sgdq.text_classification.PROFILES
    "06_llm_finetuning": {"smoke": {}, "cpu": {}, "paper": {}},  # see sgdq.llm_finetuning.PROFILES
    "07_ablations": {"smoke": {}, "cpu": {}, "paper": {}},  # see sgdq.text_classification.PROFILES
    "08_performance": {"smoke": dict(quick=True), "cpu": dict(quick=False), "paper": dict(quick=False)},
    "04_quantum_attention": {
        "smoke": dict(batch=4, seq=8, timing_repeats=5),
        "cpu": dict(batch=32, seq=32, timing_repeats=30),
        "paper": dict(batch=32, seq=32, timing_repeats=100),
    },
}


def repo_root() -> Path:
    """The checkout this sgdq comes from (notebooks read and write data relative to it)."""
    return ROOT


def atomic_write(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename: readers (and a run
    that is interrupted) see the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
    os.replace(tmp, path)


def results_dir(experiment: str, profile: str) -> Path:
    """``data/results/<experiment>/<profile>`` in this checkout."""
    return ROOT / "data" / "results" / experiment / profile


def profile_config(cls, profiles: dict, profile: str, overrides: dict):
    """``cls(profile=..., **profiles[profile], **overrides)``, validated; ``None`` overrides
    keep the profile's value (so unset notebook parameters pass through)."""
    if profile not in profiles:
        raise ValueError(f"profile must be one of {tuple(profiles)}, got {profile!r}")
    cfg = cls(profile=profile, **{**profiles[profile], **{k: v for k, v in overrides.items() if v is not None}})
    cfg.validate()
    return cfg


def _injected_names(history) -> set[str]:
    """Names assigned in papermill's injected cell (it starts with '# Parameters')."""
    names = set()
    for source in history or []:
        if not isinstance(source, str) or not source.lstrip().startswith("# Parameters"):
            continue
        for node in ast.parse(source).body:
            if isinstance(node, ast.Assign):
                names |= {t.id for t in node.targets if isinstance(t, ast.Name)}
    return names


def resolve_device(device: str) -> torch.device:
    """``"auto"`` → cuda if available else cpu; ``"cuda"`` without a GPU is refused plainly."""
    if device not in DEVICES:
        raise ValueError(f"parameter 'device' must be one of {DEVICES}, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("parameter device='cuda' was asked for, but torch sees no CUDA GPU on this "
                           "machine; use device='cpu' or device='auto'")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(device)


def synchronize(device) -> None:
    """Wait for a CUDA device's queued work (timings cover the kernels); nothing on the CPU."""
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# What "+dirty" refers to: the code and inputs that produce results, not the results, executed
# chapters and generated pages that a run itself writes (those would mark every run dirty).
SOURCE_PATHS = ("sgdq", "notebooks/*.md", "scripts", "benchmarks", "pyproject.toml", "environment.yml",
                "data/claims.yaml", "_config.yml", "_toc.yml")


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
    out = {"python": platform.python_version()}
    for name in VERSIONED:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            pass
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({platform.machine()}, {torch.get_num_threads()} threads)"


@dataclass
class Run:
    """What :func:`start` hands the notebook: validated parameters and profile settings."""

    notebook: str
    profile: str
    device: torch.device
    seed: int
    params: dict
    settings: dict
    started: float = field(default_factory=time.perf_counter)
    started_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"))

    def provenance(self) -> dict:
        """Print and return the provenance block (commit, device, profile, parameters, versions, time)."""
        info = {
            "notebook": self.notebook,
            "git_commit": git_commit(),
            "device": device_name(self.device),
            "profile": self.profile,
            "parameters": self.params,
            "settings": self.settings,
            "versions": versions(),
            "started_at": self.started_at,
            "wall_time_s": round(time.perf_counter() - self.started, 1),
        }
        print(json.dumps(info, indent=2, default=str))
        return info


def start(notebook: str, history=None, choices: dict | None = None, **params) -> Run:
    """Validate a notebook's parameters and return a :class:`Run`.

    ``params`` are every parameter the notebook declares (at least ``profile``, ``device``
    and ``seed``). ``history`` is IPython's ``In`` list: papermill's injected cell is found
    there, and any name it sets that is not declared is refused by name. ``choices`` maps
    a notebook's own parameters to their accepted values.
    """
    unknown = sorted(_injected_names(history) - set(params))
    if unknown:
        raise ValueError(f"unknown parameter(s) {unknown} for notebook {notebook!r}; "
                         f"it declares {sorted(params)}")
    for required in ("profile", "device", "seed"):
        if required not in params:
            raise ValueError(f"notebook {notebook!r} must declare the parameter {required!r}")
    profile, seed = params["profile"], params["seed"]
    if profile not in PROFILES:
        raise ValueError(f"parameter 'profile' must be one of {PROFILES}, got {profile!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"parameter 'seed' must be an integer >= 0, got {seed!r}")
    if notebook not in SETTINGS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {sorted(SETTINGS)}")
    for key, allowed in (choices or {}).items():
        if params.get(key) not in allowed:
            raise ValueError(f"parameter {key!r} must be one of {tuple(allowed)}, got {params.get(key)!r}")
    device = resolve_device(params["device"])
    settings = dict(SETTINGS[notebook][profile])
    for key, value in params.items():  # a notebook knob set to a value overrides the profile's
        if key in settings and value is not None:
            settings[key] = value
    seed_everything(seed)
    return Run(notebook, profile, device, seed, dict(params), settings)
