"""Small problems for looking at the optimizer's behaviour in isolation.

* :func:`shallow_minima_loss` — a 2-D loss with many shallow local minima around one global
  minimum, for the paper's claim that the sine term "helps escape shallow local minima"
  (Sec. III-A); :func:`run_starts` runs many starts of one optimizer on it at once.
* :func:`teacher_student` / :func:`train_regression` — a small MLP regression used to show
  how λ, n_qubits and the scope change training.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .spec import OptimizerSpec


# --------------------------------------------------------------------------------------
# A loss with shallow local minima
# --------------------------------------------------------------------------------------
def shallow_minima_loss(x: torch.Tensor, curvature: float = 0.1, ripple: float = 0.25) -> torch.Tensor:
    """f(x) = Σ_i curvature·x_i² + ripple·(1 − cos 2πx_i), summed over the last axis.

    The global minimum is f(0) = 0; near every other integer point lies a shallow local
    minimum, separated from its neighbours by barriers of height about 2·ripple.
    """
    return (curvature * x**2 + ripple * (1 - torch.cos(2 * math.pi * x))).sum(-1)


@dataclass
class StartsResult:
    """Where each start ended, its final loss, and a few recorded trajectories."""

    final: np.ndarray  # (n_starts, dim)
    loss: np.ndarray  # (n_starts,)
    paths: np.ndarray  # (steps + 1, n_paths, dim)

    @property
    def global_fraction(self) -> float:
        """Share of starts that ended in the global minimum's basin (every |x_i| < 1/2)."""
        return float((np.abs(self.final) < 0.5).all(-1).mean())


def run_starts(spec: OptimizerSpec, starts: torch.Tensor, steps: int, lr: float = 0.05,
               n_paths: int = 8) -> StartsResult:
    """Optimise :func:`shallow_minima_loss` from every row of ``starts`` at once.

    The starts are independent problems stacked in one tensor; Adam acts element-wise, so
    stacking changes nothing. The toy has 2 parameters, fewer than n_qubits = 4, so Eq. (2)
    perturbs all of them; with the starts stacked we therefore pass ``n_qubits=None``
    (every element) to keep that meaning for each start, whatever ``spec`` says.
    """
    x = starts.clone().double().requires_grad_()
    opt = dataclasses.replace(spec, n_qubits=None).build([x], lr=lr)
    paths = [x.detach()[:n_paths].clone()]
    for _ in range(steps):
        opt.zero_grad()
        shallow_minima_loss(x).sum().backward()
        opt.step()
        paths.append(x.detach()[:n_paths].clone())
    with torch.no_grad():
        loss = shallow_minima_loss(x)
    return StartsResult(x.detach().numpy(), loss.numpy(), torch.stack(paths).numpy())


# --------------------------------------------------------------------------------------
# Teacher-student regression
# --------------------------------------------------------------------------------------
def mlp(d_in: int, hidden: int, d_out: int) -> nn.Module:
    return nn.Sequential(nn.Linear(d_in, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh(),
                         nn.Linear(hidden, d_out))


def teacher_student(n: int = 512, d_in: int = 8, hidden: int = 32, seed: int = 0):
    """Inputs and targets from a random teacher MLP (plus a little noise)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d_in, generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(seed + 10_000)
        teacher = mlp(d_in, hidden, 1)
        with torch.no_grad():
            y = teacher(x) * 3 + 0.05 * torch.randn(n, 1, generator=g)
    return x, y


def train_regression(spec: OptimizerSpec, steps: int, seed: int, lr: float = 3e-3) -> np.ndarray:
    """Full-batch training of a student MLP; returns the loss after every step.

    The data and the student's initial weights depend on ``seed`` only, so every optimizer
    starts from the same point.
    """
    x, y = teacher_student(seed=seed)
    torch.manual_seed(seed)
    student = mlp(x.shape[1], 32, 1)
    opt = spec.build(student.parameters(), lr=lr)
    losses = np.empty(steps)
    for t in range(steps):
        opt.zero_grad()
        loss = nn.functional.mse_loss(student(x), y)
        loss.backward()
        opt.step()
        losses[t] = loss.item()
    return losses


def max_difference_from_adamw(steps: int = 20, seed: int = 0, weight_decay: float = 0.01) -> float:
    """Largest |Δθ| between SuperpositionalAdam at λ = 0 and torch's AdamW on the regression.

    """
    x, y = teacher_student(seed=seed)
    finals = []
    for spec in (OptimizerSpec("AdamW"), OptimizerSpec("SGD", quantum_weight=0.0)):
        torch.manual_seed(seed)
        student = mlp(x.shape[1], 32, 1)
        opt = spec.build(student.parameters(), lr=1e-2, weight_decay=weight_decay)
        for _ in range(steps):
            opt.zero_grad()
            nn.functional.mse_loss(student(x), y).backward()
            opt.step()
        finals.append(torch.cat([p.detach().flatten() for p in student.parameters()]))
    return float((finals[0] - finals[1]).abs().max())


def sweep_regression(configs: dict[str, OptimizerSpec], seeds, steps: int, lr: float = 3e-3,
                     every: int = 1) -> list[dict]:
    """Train the regression once per (config, seed); return long-format loss records.

    ``configs`` maps a label to an :class:`OptimizerSpec`. Records are
    ``{"config", "seed", "step", "loss"}``, every ``every``-th step plus the last.
    """
    from tqdm import tqdm

    records = []
    jobs = [(label, seed) for label in configs for seed in seeds]
    for label, seed in tqdm(jobs, desc="training runs", disable=None):
        losses = train_regression(configs[label], steps, seed, lr=lr)
        keep = sorted(set(range(0, steps, every)) | {steps - 1})
        records += [dict(config=label, seed=seed, step=t + 1, loss=float(losses[t])) for t in keep]
    return records
