"""Ablations of experiment 1: what in Superpositional Gradient Descent makes a difference?

Five studies, each a set of variants trained with the protocol of experiment 1 (same data,
seeds, initial weights and batch order; see :mod:`sgdq.text_classification`):

* ``lambda`` — the weight λ ∈ {0, 0.1, 0.3, 0.5, 0.7, 1.0} (n_qubits = 4 per tensor);
* ``n_qubits`` — how many entries Eq. (2) touches: 0, 4, 64 per tensor, every entry, and the
  "global" reading (the first 4 of the whole model), at λ = 0.5;
* ``perturbation`` — sin(πθ)·g against cos(πθ)·g, Gaussian noise of matched scale and a
  random sign·|g|, at λ = 0.5 on *every* entry (with 4 entries per tensor no function could
  matter, so the comparison is made where it can);
* ``attention`` — quantum against classical attention, with Adam and with SGD λ = 0.5;
* ``readout`` — hardware realism: the ⟨Z⟩ readout, exact and estimated from 1000, 100 or 10
  shots per score (:func:`sgdq.circuit.sample_expval_z`), against the default amplitude
  readout, with Adam, so that only the circuit term changes.

Each variant is stored under ``data/results/ablations/<study>/<variant>/`` like experiment 1.
Variants identical to a run that already exists (the main experiment, or another variant)
are read from there instead of being trained again; :data:`SAME_AS` records which.

Used in: ``notebooks/07_ablations``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from . import runtime, stats
from . import text_classification as tc

MAIN = "main"  # the experiment-1 results of the same profile

# study -> variant label -> (Config overrides, optimizer label)
STUDIES: dict[str, dict[str, tuple[dict, str]]] = {
    "lambda": {f"λ={lam:g}": ({}, f"SGD λ={lam:g}") for lam in (0.0, 0.1, 0.3, 0.5, 0.7, 1.0)},
    "n_qubits": {
        "0 per tensor": ({"sgd_n_qubits": 0}, "SGD λ=0.5"),
        "4 per tensor": ({}, "SGD λ=0.5"),
        "64 per tensor": ({"sgd_n_qubits": 64}, "SGD λ=0.5"),
        "every entry": ({"sgd_n_qubits": "all"}, "SGD λ=0.5"),
        "4, global": ({"sgd_scope": "global"}, "SGD λ=0.5"),
    },
    "perturbation": {
        "sin(πθ)·g": ({"sgd_n_qubits": "all"}, "SGD λ=0.5"),
        "cos(πθ)·g": ({"sgd_n_qubits": "all", "sgd_perturbation": "cos"}, "SGD λ=0.5"),
        "Gaussian, matched": ({"sgd_n_qubits": "all", "sgd_perturbation": "gaussian"}, "SGD λ=0.5"),
        "random sign·|g|": ({"sgd_n_qubits": "all", "sgd_perturbation": "sign"}, "SGD λ=0.5"),
    },
    "attention": {
        "quantum, Adam": ({}, "Adam"),
        "quantum, SGD λ=0.5": ({}, "SGD λ=0.5"),
        "classical, Adam": ({"attention": "classical"}, "Adam"),
        "classical, SGD λ=0.5": ({"attention": "classical"}, "SGD λ=0.5"),
    },
    "readout": {
        "amplitude, exact": ({}, "Adam"),
        "⟨Z⟩, exact": ({"readout": "expval_z"}, "Adam"),
        "⟨Z⟩, 1000 shots": ({"readout": "expval_z", "shots": 1000}, "Adam"),
        "⟨Z⟩, 100 shots": ({"readout": "expval_z", "shots": 100}, "Adam"),
        "⟨Z⟩, 10 shots": ({"readout": "expval_z", "shots": 10}, "Adam"),
    },
}

# Variants that are the same computation as another run: (study, variant) -> (study, variant) or MAIN.
# With n_qubits = 0 nothing is perturbed, which is λ = 0; with λ = 0 the update is AdamW with no
# decay, i.e. Adam, but through SuperpositionalAdam's code path, so λ = 0 is trained once.
SAME_AS = {
    ("lambda", "λ=0.1"): MAIN, ("lambda", "λ=0.5"): MAIN,
    ("n_qubits", "0 per tensor"): ("lambda", "λ=0"), ("n_qubits", "4 per tensor"): MAIN,
    ("perturbation", "sin(πθ)·g"): ("n_qubits", "every entry"),
    ("attention", "quantum, Adam"): MAIN, ("attention", "quantum, SGD λ=0.5"): MAIN,
    ("readout", "amplitude, exact"): MAIN,
}


def _slug(label: str) -> str:
    label = label.replace("λ", "lambda").replace("π", "pi").replace("θ", "theta").replace("⟨Z⟩", "Z")
    return re.sub(r"[^A-Za-z0-9]+", "_", label).strip("_")


def variant_dir(study: str, variant: str, profile: str) -> Path:
    return runtime.repo_root() / "data" / "results" / "ablations" / profile / study / _slug(variant)


def run_variant(study: str, variant: str, profile: str = "cpu", progress: bool = True, **config) -> pd.DataFrame:
    """Train (or read) one variant; rows carry ``study`` and ``variant`` columns."""
    if study not in STUDIES or variant not in STUDIES[study]:
        raise ValueError(f"unknown ablation {study!r}/{variant!r}; studies: "
                         + "; ".join(f"{s}: {list(v)}" for s, v in STUDIES.items()))
    source = SAME_AS.get((study, variant))
    overrides, optimizer = STUDIES[study][variant]
    if source == MAIN:
        metrics = tc.run_experiment(tc.config_for(profile, **config), progress=progress)
        metrics = metrics[metrics.optimizer == optimizer]
    elif source is not None:
        metrics = run_variant(*source, profile=profile, progress=progress, **config)
    else:
        cfg = tc.config_for(profile, optimizers=(optimizer,), **overrides, **config)
        metrics = tc.run_experiment(cfg, variant_dir(study, variant, profile), progress=progress)
    return metrics.assign(study=study, variant=variant).reset_index(drop=True)


def run_study(study: str, profile: str = "cpu", progress: bool = True, **config) -> pd.DataFrame:
    return pd.concat([run_variant(study, v, profile, progress, **config) for v in STUDIES[study]], ignore_index=True)


def effects(metrics: pd.DataFrame, baseline: pd.DataFrame, target: float = 0.9) -> pd.DataFrame:
    """Per variant: final accuracy and its paired difference from the Adam baseline (pp, 95 % CI),
    and the censored epochs to ``target`` relative to Adam (%, 95 % CI)."""
    rows = []
    base = stats.per_run(baseline, target).set_index("seed")
    for variant, g in metrics.groupby("variant", sort=False):
        runs = stats.per_run(g.assign(optimizer=variant), target).set_index("seed")
        seeds = runs.index.intersection(base.index)
        acc = stats.mean_ci(100 * (runs.loc[seeds, "final_accuracy"] - base.loc[seeds, "final_accuracy"]))
        ep = stats.mean_ci(100 * (runs.loc[seeds, "epochs_to_target_censored"]
                                  / base.loc[seeds, "epochs_to_target_censored"] - 1))
        rows.append({"variant": variant, "final accuracy (%)": 100 * runs.final_accuracy.mean(),
                     "Δ accuracy vs Adam (pp)": acc[0], "Δ acc. CI low": acc[1], "Δ acc. CI high": acc[2],
                     "epochs to 90 % vs Adam (%)": ep[0], "epochs CI low": ep[1], "epochs CI high": ep[2],
                     "seeds": len(seeds)})
    table = pd.DataFrame(rows).set_index("variant")
    floats = table.select_dtypes("float").columns
    table[floats] = table[floats] + 0.0  # turns -0.0 (a sign of rounding, not of an effect) into 0.0
    return table


SHOT_COUNTS = (10, 100, 1000, 10000)


def shot_noise(profile: str = "cpu", seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """Shot noise in one freshly initialised ⟨Z⟩ attention layer (64 wide, 4 heads) on a seeded
    batch of 16 random sequences of 16 tokens, at :data:`SHOT_COUNTS` shots per score
    (:func:`sgdq.attention.shot_noise_in_attention`).

    Stored as ``data/results/ablations/<profile>/shot_noise/metrics.csv`` with a
    ``provenance.json`` beside it, and read from there while the settings match.
    """
    import json

    import torch

    from .attention import QuantumAttention, shot_noise_in_attention

    out = runtime.results_dir("ablations", profile) / "shot_noise"
    settings = dict(seed=seed, repeats=repeats, shots=list(SHOT_COUNTS), d_model=64, n_heads=4, batch=16, seq=16)
    prov_path = out / "provenance.json"
    if prov_path.exists() and json.loads(prov_path.read_text()).get("settings") == settings:
        return pd.read_csv(out / "metrics.csv")
    torch.manual_seed(seed)
    layer = QuantumAttention(settings["d_model"], settings["n_heads"], readout="expval_z")
    x = torch.randn(settings["batch"], settings["seq"], settings["d_model"])
    table = shot_noise_in_attention(layer, x, SHOT_COUNTS, repeats=repeats, seed=seed)
    runtime.atomic_write(out / "metrics.csv", table.to_csv(index=False, float_format="%.6g"))
    runtime.atomic_write(prov_path, json.dumps(dict(
        experiment="shot_noise", settings=settings, git_commit=runtime.git_commit(),
        device=runtime.device_name(torch.device("cpu")), versions=runtime.versions()), indent=2) + "\n")
    return table
