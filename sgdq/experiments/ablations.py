"""Ablations of experiment 1: what in Superpositional Gradient Descent makes a difference?

Five studies, each a set of variants trained with the protocol of experiment 1 (same data,
seeds, initial weights and batch order; see :mod:`sgdq.experiments.text_classification`):

* ``lambda`` — the weight λ ∈ {0, 0.1, 0.3, 0.5, 0.7, 1.0} (n_qubits = 4 per tensor);
* ``n_qubits`` — how many entries Eq. (2) touches: 0, 4, 64 per tensor, every entry, and the
  "global" reading (the first 4 of the whole model), at λ = 0.5;
* ``perturbation`` — sin(πθ)·g against cos(πθ)·g, Gaussian noise of matched scale and a
  random sign·|g|, at λ = 0.5 on *every* entry (with 4 entries per tensor no function could
  matter, so the comparison is made where it can);
* ``attention`` — quantum against classical attention, with Adam and with SGD λ = 0.5;
* ``readout`` — hardware realism: the ⟨Z⟩ readout, exact and estimated from 1000, 100 or 10
  shots per score (:func:`sgdq.method.circuit.sample_expval_z`), against the default amplitude
  readout, with Adam, so that only the circuit term changes.

The ablations have their own configuration (:func:`config_for`): experiment 1's profile with
fewer seeds and, at ``cpu``, the smaller test set of 1,000 sentences (:data:`SETTINGS`), so
that 16 trained variants stay affordable on two CPU cores. Their baseline is their own run of
the paper's four optimizers, stored under ``data/results/ablations/<profile>/main/``
(:data:`MAIN`). Each variant is stored under ``data/results/ablations/<profile>/<study>/<variant>/``.
Variants identical to a run that already exists (that main run, or another variant) are read
from there instead of being trained again; :data:`SAME_AS` records which.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from ..method.attention import QuantumAttention
from . import text_classification as tc
from .provenance import CODE, record
from .store import ResultsStore, TableSchema, results_dir, slug

MAIN = "main"  # the ablations' own run of experiment 1's four optimizers
# per profile, what the ablations change in experiment 1's configuration
SETTINGS = {"smoke": {}, "cpu": dict(seeds=5, n_test=1000), "paper": dict(seeds=10)}


def config_for(profile: str, **overrides) -> tc.Config:
    """Experiment 1's configuration for ``profile`` with the ablations' :data:`SETTINGS` and the
    paper's four optimizers, then ``overrides``."""
    return tc.config_for(profile, **{"optimizers": tc.OPTIMIZERS, **SETTINGS.get(profile, {}), **overrides})


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


def variant_dir(study: str, variant: str, profile: str) -> Path:
    return results_dir("ablations", profile) / study / slug(variant)


def main_dir(profile: str) -> Path:
    return results_dir("ablations", profile) / MAIN


def run_variant(study: str, variant: str, profile: str = "cpu", progress: bool = True, **config) -> pd.DataFrame:
    """Train (or read) one variant; rows carry ``study`` and ``variant`` columns."""
    if study not in STUDIES or variant not in STUDIES[study]:
        raise ValueError(f"unknown ablation {study!r}/{variant!r}; studies: "
                         + "; ".join(f"{s}: {list(v)}" for s, v in STUDIES.items()))
    source = SAME_AS.get((study, variant))
    overrides, optimizer = STUDIES[study][variant]
    if source == MAIN:
        metrics = tc.run_experiment(config_for(profile, **config), main_dir(profile), progress=progress)
        metrics = metrics[metrics.optimizer == optimizer]
    elif source is not None:
        metrics = run_variant(*source, profile=profile, progress=progress, **config)
    else:
        cfg = config_for(profile, optimizers=(optimizer,), **overrides, **config)
        metrics = tc.run_experiment(cfg, variant_dir(study, variant, profile), progress=progress)
    return metrics.assign(study=study, variant=variant).reset_index(drop=True)


def run_study(study: str, profile: str = "cpu", progress: bool = True, **config) -> pd.DataFrame:
    return pd.concat([run_variant(study, v, profile, progress, **config) for v in STUDIES[study]], ignore_index=True)


SHOT_COUNTS = (10, 100, 1000, 10000)


def shot_noise_in_attention(layer: QuantumAttention, x: torch.Tensor, shots_list, repeats: int = 5,
                            key_padding_mask=None, seed: int = 0) -> pd.DataFrame:
    """How far finite shots move the attention weights of ``layer`` on input ``x``.

    For each number of shots: the mean total-variation distance between the exact weights
    (``"expval_z"`` readout, infinitely many shots) and the finite-shot ones, over query rows
    and ``repeats`` draws, and the root-mean-square error of Φ itself.
    """
    if layer.readout_kind != "expval_z":
        raise ValueError(f"shot noise is defined for readout='expval_z', the layer has {layer.readout_kind!r}")
    saved = layer.shots
    rows = []
    try:
        with torch.no_grad():
            torch.manual_seed(seed)
            layer.shots = None
            exact = layer.attention_weights(x, key_padding_mask)
            q, k, _ = layer._heads(x)
            scores = layer._circuit_input(q @ k.transpose(-2, -1))
            phi_exact = layer.circuit_term(scores)
            for shots in shots_list:
                layer.shots = int(shots)
                for r in range(repeats):
                    noisy = layer.attention_weights(x, key_padding_mask)
                    tv = 0.5 * (noisy - exact).abs().sum(-1)
                    phi_noise = layer.circuit_term(scores) - phi_exact
                    rows.append(dict(shots=int(shots), repeat=r, tv_distance=float(tv.mean()),
                                     phi_rmse=float(phi_noise.pow(2).mean().sqrt())))
    finally:
        layer.shots = saved
    return pd.DataFrame(rows)


SHOT_NOISE = TableSchema(("shots", "repeat", "tv_distance", "phi_rmse"),
                         numeric=("shots", "repeat", "tv_distance", "phi_rmse"), keys=("shots", "repeat"))


def shot_noise(profile: str = "cpu", seed: int = 0, repeats: int = 3) -> pd.DataFrame:
    """Shot noise in one freshly initialised ⟨Z⟩ attention layer (64 wide, 4 heads) on a seeded
    batch of 16 random sequences of 16 tokens, at :data:`SHOT_COUNTS` shots per score
    (:func:`shot_noise_in_attention`).

    Stored as ``data/results/ablations/<profile>/shot_noise/metrics.csv`` with a
    ``provenance.json`` beside it, and read from there while the settings match.
    """
    store = ResultsStore(results_dir("ablations", profile) / "shot_noise")
    settings = dict(seed=seed, repeats=repeats, shots=list(SHOT_COUNTS), d_model=64, n_heads=4, batch=16, seq=16)
    if (store.provenance() or {}).get("settings") == settings:
        return store.load("metrics", schema=SHOT_NOISE)
    torch.manual_seed(seed)
    layer = QuantumAttention(settings["d_model"], settings["n_heads"], readout="expval_z")
    x = torch.randn(settings["batch"], settings["seq"], settings["d_model"])
    table = shot_noise_in_attention(layer, x, SHOT_COUNTS, repeats=repeats, seed=seed)
    with store.lock():
        store.write({"metrics": table},
                    record("cpu", code=CODE["ablations"], experiment="shot_noise", settings=settings),
                    {"metrics": SHOT_NOISE})
    return table


def regenerate(profile: str = "cpu", studies=None, progress: bool = True) -> list[str]:
    """Retrain the ablations' own baseline run and every trained variant (not those in :data:`SAME_AS`)
    of ``studies`` (default: all) from scratch, so that all of them come from the current commit.
    Returns the folders written."""
    written = []
    tc.run_experiment(config_for(profile), main_dir(profile), force=True, progress=progress)
    written.append(str(main_dir(profile)))
    for study in studies or STUDIES:
        for variant, (overrides, optimizer) in STUDIES[study].items():
            if (study, variant) in SAME_AS:
                continue
            cfg = config_for(profile, optimizers=(optimizer,), **overrides)
            tc.run_experiment(cfg, variant_dir(study, variant, profile), force=True, progress=progress)
            written.append(str(variant_dir(study, variant, profile)))
    return written


if __name__ == "__main__":
    import argparse

    ap = argparse.ArgumentParser(description="Retrain every ablation at one commit (baseline and trained variants).")
    ap.add_argument("--profile", default="cpu", choices=("smoke", "cpu", "paper"))
    ap.add_argument("--study", action="append", choices=list(STUDIES), help="only these studies (repeatable)")
    args = ap.parse_args()
    for folder in regenerate(args.profile, args.study):
        print("wrote", folder)
