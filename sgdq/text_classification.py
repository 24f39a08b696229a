"""Experiment 1 (Sec. IV-B, Table II): four optimizers on synthetic text classification.

One call, :func:`run_experiment`, trains the Table II classifier (quantum attention, 4 qubits,
depth 2) with each optimizer and seed, and writes

* ``metrics.csv`` — one row per (optimizer, seed, epoch): train loss, test accuracy, the
  epoch's wall time and the time spent inside ``optimizer.step``;
* ``provenance.json`` — git commit, device, versions, every parameter, start and end time;

into ``data/results/text_classification/<profile>/``. Both are written atomically after
every finished (optimizer, seed), so an interrupted run keeps what it finished; a rerun with
the same configuration skips those pairs (``force=True`` reruns everything).

Fairness: for a given seed every optimizer starts from the same initial weights and sees the
batches in the same order (and the same dropout masks).

Used in: ``notebooks/05_text_classification``.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F

from . import runtime, synthetic
from .models import TransformerClassifier
from . import optim
from .attention import check_shots
from .circuit import READOUTS
from .optim import PERTURBATIONS, SCOPES

# The four optimizers of Sec. IV-B, by the labels the book uses.
OPTIMIZERS = ("Adam", "Quantum-inspired moment", "SGD λ=0.1", "SGD λ=0.5")
COLUMNS = ["optimizer", "seed", "epoch", "train_loss", "test_accuracy", "epoch_seconds", "step_seconds"]


@dataclass
class Config:
    """Every parameter of the experiment; the defaults are Table II's."""

    profile: str = "cpu"
    seeds: int = 5
    epochs: int = 20
    n_train: int = 4000
    n_test: int = 1000
    data_seed: int = 2025
    label_noise: float = 0.05
    p_negator: float = 0.6
    p_single: float = 1.0
    min_len: int = 6
    max_len: int = 16
    batch_size: int = 32
    lr: float = 1e-3
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    n_qubits: int = 4
    depth: int = 2
    moment_weight: float = 0.5
    # ablation knobs (notebooks/07_ablations); the defaults are the paper's setting
    attention: str = "quantum"
    sgd_n_qubits: int | str = 4  # "all": every entry (n_qubits=None in the optimizer)
    sgd_scope: str = "tensor"
    sgd_perturbation: str = "sin"
    readout: str = "amplitude"  # Φ's readout (sgdq.circuit.READOUTS)
    shots: int | None = None  # finite-shot ⟨Z⟩ estimate (needs readout="expval_z"); None: exact
    optimizers: tuple = OPTIMIZERS
    device: str = "cpu"
    first_seed: int = 0

    def validate(self):
        unknown = sorted(o for o in self.optimizers if o not in OPTIMIZERS and optim.sgd_weight(o) is None)
        if unknown:
            raise ValueError(f"unknown optimizer(s) {unknown}; choose from {OPTIMIZERS} or 'SGD λ=<weight>'")
        if self.attention not in ("quantum", "classical"):
            raise ValueError(f"attention must be 'quantum' or 'classical', got {self.attention!r}")
        if self.sgd_n_qubits != "all" and (not isinstance(self.sgd_n_qubits, int) or self.sgd_n_qubits < 0):
            raise ValueError(f"sgd_n_qubits must be an integer >= 0 or 'all', got {self.sgd_n_qubits!r}")
        if self.sgd_scope not in SCOPES:
            raise ValueError(f"sgd_scope must be one of {SCOPES}, got {self.sgd_scope!r}")
        if self.readout not in READOUTS:
            raise ValueError(f"readout must be one of {READOUTS}, got {self.readout!r}")
        check_shots(self.shots, self.readout)
        if self.sgd_perturbation not in PERTURBATIONS:
            raise ValueError(f"sgd_perturbation must be one of {PERTURBATIONS}, got {self.sgd_perturbation!r}")
        for name in ("seeds", "epochs", "n_train", "n_test", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if self.profile not in runtime.PROFILES:
            raise ValueError(f"profile must be one of {runtime.PROFILES}, got {self.profile!r}")

    def key(self) -> dict:
        """What must match for stored results to be reused."""
        d = asdict(self)
        for k in ("seeds", "optimizers", "device"):
            d.pop(k)
        d["betas"] = list(d["betas"])
        return d


# Profile settings: smoke for CI (under a minute), cpu for the book, paper for a GPU.
PROFILES = {
    "smoke": dict(seeds=2, epochs=2, n_train=256, n_test=256),
    "cpu": dict(seeds=5, epochs=20),
    "paper": dict(seeds=10, epochs=30),
}


def config_for(profile: str, **overrides) -> Config:
    """The profile's configuration with ``overrides`` (``None`` keeps the profile's value)."""
    return runtime.profile_config(Config, PROFILES, profile, overrides)


def results_dir(profile: str) -> Path:
    return runtime.results_dir("text_classification", profile)


def make_data(cfg: Config):
    """The fixed train/test splits of this configuration."""
    return synthetic.make_dataset(cfg.n_train, cfg.n_test, cfg.data_seed, min_len=cfg.min_len, max_len=cfg.max_len,
                                  noise=cfg.label_noise, p_negator=cfg.p_negator, p_single=cfg.p_single)


def make_optimizer(name: str, params, cfg: Config):
    """The optimizer labelled ``name``, with this configuration's hyperparameters.

    Adam uses torch's fused kernel, as SuperpositionalAdam does by default: a like-for-like timing.
    """
    if not optim.is_optimizer_label(name):
        raise ValueError(f"unknown optimizer {name!r}; choose from {OPTIMIZERS} or 'SGD λ=<weight>'")
    return optim.build_optimizer(name, params, lr=cfg.lr, betas=cfg.betas, eps=cfg.eps, weight_decay=cfg.weight_decay,
                                 n_qubits=None if cfg.sgd_n_qubits == "all" else cfg.sgd_n_qubits,
                                 scope=cfg.sgd_scope, perturbation=cfg.sgd_perturbation,
                                 moment_weight=cfg.moment_weight, fused=True if name == "Adam" else None)


@torch.no_grad()
def accuracy(model, split: synthetic.Split, device, batch: int = 512) -> float:
    model.eval()
    correct = 0
    for i in range(0, len(split), batch):
        logits = model(split.tokens[i : i + batch].to(device))
        correct += int((logits.argmax(-1).cpu() == split.labels[i : i + batch]).sum())
    model.train()
    return correct / len(split)


def train_one(cfg: Config, optimizer: str, seed: int, data=None) -> list[dict]:
    """Train one (optimizer, seed); return one row per epoch."""
    device = runtime.resolve_device(cfg.device)
    train, test = data or make_data(cfg)
    torch.manual_seed(seed)  # same initial weights and dropout stream for every optimizer
    model = TransformerClassifier(synthetic.VOCAB_SIZE, n_classes=2, max_len=cfg.max_len, n_qubits=cfg.n_qubits,
                                  depth=cfg.depth, attention=cfg.attention, readout=cfg.readout,
                                  shots=cfg.shots).to(device)
    opt = make_optimizer(optimizer, model.parameters(), cfg)
    order = torch.Generator().manual_seed(seed)  # same batch order for every optimizer
    rows = []
    for epoch in range(1, cfg.epochs + 1):
        runtime.synchronize(device)
        t0 = time.perf_counter()
        step_time = 0.0
        total, seen = 0.0, 0
        perm = torch.randperm(len(train), generator=order)
        for i in range(0, len(train), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            x, y = train.tokens[idx].to(device), train.labels[idx].to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            runtime.synchronize(device)
            s0 = time.perf_counter()
            opt.step()
            runtime.synchronize(device)
            step_time += time.perf_counter() - s0
            total += loss.item() * len(idx)
            seen += len(idx)
        runtime.synchronize(device)
        epoch_seconds = time.perf_counter() - t0
        rows.append(dict(optimizer=optimizer, seed=seed, epoch=epoch, train_loss=total / seen,
                         test_accuracy=accuracy(model, test, device), epoch_seconds=epoch_seconds,
                         step_seconds=step_time))
    return rows


def load_metrics(out_dir: Path) -> pd.DataFrame:
    path = Path(out_dir) / "metrics.csv"
    return pd.read_csv(path) if path.exists() else pd.DataFrame(columns=COLUMNS)


def run_experiment(cfg: Config, out_dir: Path | None = None, force: bool = False, progress: bool = True) -> pd.DataFrame:
    """Train every (optimizer, seed) not already stored; return all rows of ``metrics.csv``.

    Refuses to mix results: if ``out_dir`` holds results of a different configuration, it
    stops with an error unless ``force=True`` (which starts afresh).
    """
    from tqdm import tqdm

    cfg.validate()
    out_dir = Path(out_dir) if out_dir is not None else results_dir(cfg.profile)
    prov_path = out_dir / "provenance.json"
    old = load_metrics(out_dir)
    if not force and prov_path.exists() and len(old):
        stored = json.loads(prov_path.read_text()).get("config_key")
        if stored is not None:  # knobs added after those results were written take their defaults
            stored = {**{k: v for k, v in Config().key().items() if k not in stored}, **stored}
        if stored != cfg.key():
            diff = sorted(k for k in cfg.key() if stored is None or stored.get(k) != cfg.key()[k])
            raise ValueError(f"{out_dir} holds results of another configuration (differs in {diff}); "
                             "pass force=True to replace them, or choose another out_dir")
    if force:
        old = load_metrics(Path("/nonexistent"))
    done = {(o, int(s)) for (o, s), g in old.groupby(["optimizer", "seed"]) if g.epoch.max() >= cfg.epochs} \
        if len(old) else set()
    old = old[[(o, int(s)) in done for o, s in zip(old.optimizer, old.seed)]] if len(old) else old
    seeds = range(cfg.first_seed, cfg.first_seed + cfg.seeds)
    todo = [(o, s) for s in seeds for o in cfg.optimizers if (o, s) not in done]
    device = runtime.resolve_device(cfg.device)
    started = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    prov = dict(experiment="text_classification", config=asdict(cfg), config_key=cfg.key(),
                git_commit=runtime.git_commit(), device=runtime.device_name(device), versions=runtime.versions(),
                started_at=started, finished_at=None, reused_pairs=sorted(map(list, done)))
    if prov_path.exists() and not force:
        prev = json.loads(prov_path.read_text())
        prov["earlier_runs"] = prev.get("earlier_runs", []) + [
            {k: prev.get(k) for k in ("git_commit", "device", "started_at", "finished_at")}]
    frames = [old] if len(old) else []
    data = make_data(cfg)
    bar = tqdm(todo, desc=f"experiment 1 ({cfg.profile})", disable=not progress or not todo)
    for optimizer, seed in bar:
        bar.set_postfix_str(f"{optimizer}, seed {seed}")
        frames.append(pd.DataFrame(train_one(cfg, optimizer, seed, data)))
        metrics = pd.concat(frames, ignore_index=True)[COLUMNS]
        runtime.atomic_write(out_dir / "metrics.csv", metrics.to_csv(index=False, float_format="%.6g"))
        runtime.atomic_write(prov_path, json.dumps(prov, indent=2, default=str) + "\n")
    metrics = pd.concat(frames, ignore_index=True)[COLUMNS] if frames else load_metrics(out_dir)
    order = {o: i for i, o in enumerate(OPTIMIZERS)}
    metrics = metrics.sort_values(["optimizer", "seed", "epoch"], key=lambda c: c.map(order) if c.name == "optimizer" else c)
    if todo or not prov_path.exists():
        prov["finished_at"] = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        runtime.atomic_write(out_dir / "metrics.csv", metrics.to_csv(index=False, float_format="%.6g"))
        runtime.atomic_write(prov_path, json.dumps(prov, indent=2, default=str) + "\n")
    return metrics.reset_index(drop=True)
