"""Notebook plumbing: parameter validation, the chapters' profile settings, the provenance block.

Every notebook starts with a cell tagged ``parameters`` (``profile``, ``device``, ``seed`` and
its own knobs) and then calls :func:`start`, which

* refuses unknown values, naming the parameter and the accepted choices;
* refuses parameter names that papermill injected but the notebook does not declare
  (papermill itself accepts ``-p profil smoke`` silently; papermill issue #818);
* refuses ``device="cuda"`` on a machine without a GPU with a plain message;
* seeds Python, NumPy and torch, and picks the profile's settings from :data:`SETTINGS`.

:meth:`Run.provenance` prints the block every notebook ends with: git commit, device,
profile, parameters, package versions and wall time.
"""

from __future__ import annotations

import ast
import json
import time
from dataclasses import dataclass, field

import torch

from ..method.checks import check_int
from .config import PROFILES, resolve_device, seed_everything
from .provenance import now, record

# The knobs of the chapters that are not experiments, one value per profile in the order of
# ``PROFILES`` (smoke: CI, seconds; cpu: what the book shows; paper: the paper's scale, meant for
# a GPU). An experiment's own profile table is its configuration class's ``PROFILES``
# (text_classification.Config for chapters 05 and 07, llm_finetuning.LLMConfig for 06).
KNOBS: dict[str, dict[str, tuple]] = {
    "01_math": dict(n_starts=(64, 1000, 10000), steps=(150, 600, 1000)),
    "02_circuit": dict(n_points=(64, 400, 2000), n_aer=(16, 256, 2048)),
    "03_optimizer": dict(seeds=(2, 5, 10), steps=(60, 400, 1000)),
    "04_quantum_attention": dict(batch=(4, 32, 32), seq=(8, 32, 32)),
    "05_text_classification": {},
    "06_llm_finetuning": {},
    "07_ablations": {},
    "08_performance": dict(quick=(True, False, False)),
    "09_qpu": {},
}
# notebook -> profile -> settings
SETTINGS: dict[str, dict[str, dict]] = {
    name: {profile: {k: values[i] for k, values in knobs.items()} for i, profile in enumerate(PROFILES)}
    for name, knobs in KNOBS.items()
}


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
    started_at: str = field(default_factory=now)

    def provenance(self) -> dict:
        """Print and return the provenance block (commit, device, profile, parameters, versions, time)."""
        info = record(self.device, notebook=self.notebook, profile=self.profile, parameters=self.params,
                      settings=self.settings, started_at=self.started_at,
                      wall_time_s=round(time.perf_counter() - self.started, 1))
        print(json.dumps(info, indent=2, default=str))
        return info


def check_knob(key: str, value, default) -> None:
    """A knob takes the type of its profile value: a bool stays a bool, a count is an integer >= 1
    (0 steps or 0 seeds would print empty tables with conclusions)."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise ValueError(f"parameter {key!r} must be True or False, got {value!r}")
    elif isinstance(default, int):
        check_int(f"parameter {key!r}", value, 1)


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
    check_int("parameter 'seed'", seed, 0)
    if notebook not in SETTINGS:
        raise ValueError(f"unknown notebook {notebook!r}; known: {sorted(SETTINGS)}")
    for key, allowed in (choices or {}).items():
        if params.get(key) not in allowed:
            raise ValueError(f"parameter {key!r} must be one of {tuple(allowed)}, got {params.get(key)!r}")
    device = resolve_device(params["device"])
    settings = dict(SETTINGS[notebook][profile])
    for key, value in params.items():  # a notebook knob set to a value overrides the profile's
        if key in settings and value is not None:
            check_knob(key, value, settings[key])
            settings[key] = value
    seed_everything(seed)
    return Run(notebook, profile, device, seed, dict(params), settings)
