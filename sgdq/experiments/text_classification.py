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
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from torch.nn import functional as F

from ..method.attention import check_shots
from ..method.checks import check_choice, check_int
from ..method.circuit import READOUTS
from ..method.models import ATTENTIONS, TransformerClassifier
from ..method.optim import PERTURBATIONS, SCOPES
from . import synthetic
from .config import ExperimentConfig, synchronize
from .guards import check_finite_step
from .provenance import now, record
from .spec import OptimizerSpec
from .store import ResultsStore, TableSchema

# The four optimizers of Sec. IV-B, by the labels the book uses.
OPTIMIZERS = ("Adam", "Quantum-inspired moment", "SGD λ=0.1", "SGD λ=0.5")
COLUMNS = ["optimizer", "seed", "epoch", "train_loss", "test_accuracy", "epoch_seconds", "step_seconds"]
METRICS = TableSchema(tuple(COLUMNS), numeric=tuple(COLUMNS[1:]), keys=("optimizer", "seed", "epoch"))


@dataclass
class Config(ExperimentConfig):
    """Every parameter of the experiment; the defaults are Table II's.

    ``n_qubits`` and ``depth`` are the circuit's (Table II); ``sgd_n_qubits``, ``sgd_scope`` and
    ``sgd_perturbation`` are how the SGD arms read Eq. (2) (see :class:`OptimizerSpec`).
    """

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
    readout: str = "amplitude"  # Φ's readout (sgdq.method.circuit.READOUTS)
    shots: int | None = None  # finite-shot ⟨Z⟩ estimate (needs readout="expval_z"); None: exact
    optimizers: tuple = OPTIMIZERS

    EXPERIMENT = "text_classification"
    PROFILES = {  # smoke for CI (under a minute), cpu for the book, paper for a GPU
        "smoke": dict(seeds=2, epochs=2, n_train=256, n_test=256),
        "cpu": dict(seeds=5, epochs=20),
        "paper": dict(seeds=10, epochs=30),
    }
    NOT_IN_KEY = ("seeds", "optimizers", "device")

    def check(self):
        check_choice("attention", self.attention, ATTENTIONS)
        if self.sgd_n_qubits != "all" and (not isinstance(self.sgd_n_qubits, int) or isinstance(self.sgd_n_qubits, bool)
                                           or self.sgd_n_qubits < 0):
            raise ValueError(f"sgd_n_qubits must be an integer >= 0 or 'all', got {self.sgd_n_qubits!r}")
        check_choice("sgd_scope", self.sgd_scope, SCOPES)
        check_choice("readout", self.readout, READOUTS)
        check_shots(self.shots, self.readout)
        check_choice("sgd_perturbation", self.sgd_perturbation, PERTURBATIONS)
        for name in ("epochs", "n_train", "n_test", "batch_size"):
            check_int(name, getattr(self, name), 1)
        for label in self.optimizers:
            self.spec(label)  # names an unknown label

    def spec(self, label: str) -> OptimizerSpec:
        """The optimizer a label names, with this configuration's reading of Eq. (2). Adam uses
        torch's fused kernel, as SuperpositionalAdam does by default: a like-for-like timing."""
        return OptimizerSpec.parse(label, n_qubits=None if self.sgd_n_qubits == "all" else self.sgd_n_qubits,
                                   scope=self.sgd_scope, perturbation=self.sgd_perturbation,
                                   moment_weight=self.moment_weight, fused=True if label == "Adam" else None)

    def build_optimizer(self, label: str, params):
        return self.spec(label).build(params, lr=self.lr, betas=self.betas, eps=self.eps,
                                      weight_decay=self.weight_decay)


config_for = Config.for_profile
results_dir = Config.results_dir_for


def make_data(cfg: Config):
    """The fixed train/test splits of this configuration."""
    return synthetic.make_dataset(cfg.n_train, cfg.n_test, cfg.data_seed, min_len=cfg.min_len, max_len=cfg.max_len,
                                  noise=cfg.label_noise, p_negator=cfg.p_negator, p_single=cfg.p_single)


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
    device = cfg.torch_device()
    train, test = data or make_data(cfg)
    torch.manual_seed(seed)  # same initial weights and dropout stream for every optimizer
    model = TransformerClassifier(synthetic.VOCAB_SIZE, n_classes=2, max_len=cfg.max_len, n_qubits=cfg.n_qubits,
                                  depth=cfg.depth, attention=cfg.attention, readout=cfg.readout,
                                  shots=cfg.shots).to(device)
    opt = cfg.build_optimizer(optimizer, model.parameters())
    order = torch.Generator().manual_seed(seed)  # same batch order for every optimizer
    rows = []
    params = list(model.parameters())
    step = 0
    for epoch in range(1, cfg.epochs + 1):
        synchronize(device)
        t0 = time.perf_counter()
        step_time = 0.0
        total, seen = 0.0, 0
        perm = torch.randperm(len(train), generator=order)
        for i in range(0, len(train), cfg.batch_size):
            idx = perm[i : i + cfg.batch_size]
            x, y = train.tokens[idx].to(device), train.labels[idx].to(device)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x), y)
            step += 1
            check_finite_step(loss, None, optimizer=optimizer, seed=seed, step=step, stage="loss")
            loss.backward()
            check_finite_step(None, params, optimizer=optimizer, seed=seed, step=step, stage="gradients")
            synchronize(device)
            s0 = time.perf_counter()
            opt.step()
            synchronize(device)
            step_time += time.perf_counter() - s0
            total += loss.item() * len(idx)
            seen += len(idx)
        check_finite_step(None, params, optimizer=optimizer, seed=seed, step=step, stage="parameters")
        synchronize(device)
        epoch_seconds = time.perf_counter() - t0
        rows.append(dict(optimizer=optimizer, seed=seed, epoch=epoch, train_loss=total / seen,
                         test_accuracy=accuracy(model, test, device), epoch_seconds=epoch_seconds,
                         step_seconds=step_time))
    return rows


def load_metrics(out_dir: Path) -> pd.DataFrame:
    return ResultsStore(out_dir).load("metrics", schema=METRICS)


def _sorted(metrics: pd.DataFrame) -> pd.DataFrame:
    order = {o: i for i, o in enumerate(OPTIMIZERS)}
    return metrics.sort_values(["optimizer", "seed", "epoch"],
                               key=lambda c: c.map(order) if c.name == "optimizer" else c).reset_index(drop=True)


def run_experiment(cfg: Config, out_dir: Path | None = None, force: bool = False,
                   progress: bool = True) -> pd.DataFrame:
    """Train every (optimizer, seed) not already stored; return all rows of ``metrics.csv``.

    Refuses to mix results: if ``out_dir`` holds results of a different configuration, it
    stops with an error unless ``force=True`` (which starts afresh).
    """
    from tqdm import tqdm

    cfg.validate()
    store = ResultsStore(out_dir if out_dir is not None else cfg.results_dir())
    old = store.load("metrics", schema=METRICS) if not force else pd.DataFrame(columns=COLUMNS)
    if len(old):
        store.check(cfg.key(), defaults=Config().key())
    done = {(o, int(s)) for (o, s), g in old.groupby(["optimizer", "seed"]) if g.epoch.max() >= cfg.epochs} \
        if len(old) else set()
    old = old[[(o, int(s)) in done for o, s in zip(old.optimizer, old.seed)]] if len(old) else old
    todo = [(o, s) for s in cfg.seed_list() for o in cfg.optimizers if (o, s) not in done]
    if not todo and store.provenance() is not None:
        return _sorted(old)
    prov = record(cfg.torch_device(), experiment=cfg.EXPERIMENT, config=asdict(cfg), config_key=cfg.key(),
                  started_at=now(), finished_at=None, reused_pairs=sorted(map(list, done)))
    if not force:
        prov["earlier_runs"] = store.history()
    frames = [old] if len(old) else []
    data = make_data(cfg)
    with store.lock():
        bar = tqdm(todo, desc=f"experiment 1 ({cfg.profile})", disable=not progress or not todo)
        for optimizer, seed in bar:
            bar.set_postfix_str(f"{optimizer}, seed {seed}")
            frames.append(pd.DataFrame(train_one(cfg, optimizer, seed, data)))
            store.write({"metrics": pd.concat(frames, ignore_index=True)[COLUMNS]}, prov, {"metrics": METRICS})
        metrics = _sorted(pd.concat(frames, ignore_index=True)[COLUMNS] if frames else old)
        prov["finished_at"] = now()
        store.write({"metrics": metrics}, prov, {"metrics": METRICS})
    return metrics
