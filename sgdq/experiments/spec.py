"""One optimizer specification: what every experiment, benchmark and chapter builds optimizers from.

An :class:`OptimizerSpec` says which optimizer (``kind``) and how it reads the paper where the
paper is vague; :meth:`OptimizerSpec.build` makes it for a set of parameters with the
experiment's hyperparameters, and :attr:`OptimizerSpec.label` names it as the paper's tables do
("Adam", "SGD λ=0.5", …). Labels are read in one place only, :meth:`OptimizerSpec.parse`, for
names that come from a user (notebook parameters, the command line) or from stored results.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..method.checks import check_choice, check_number
from ..method.optim import PERTURBATIONS, SCOPES, QuantumMomentAdam, SuperpositionalAdam

KINDS = ("Adam", "AdamW", "moment", "SGD")
MOMENT_LABEL = "Quantum-inspired moment"
LABELS = ("Adam", "AdamW", MOMENT_LABEL, "SGD λ=<weight>")


@dataclass(frozen=True)
class OptimizerSpec:
    """An optimizer the book compares.

    * ``"Adam"``, ``"AdamW"``: torch's;
    * ``"moment"``: :class:`~sgdq.method.optim.QuantumMomentAdam` with ``moment_weight``;
    * ``"SGD"``: Superpositional Gradient Descent, :class:`~sgdq.method.optim.SuperpositionalAdam`
      with λ = ``quantum_weight`` and Eq. (1)–(2) read through ``n_qubits``, ``scope``,
      ``perturbation``, ``normalize_q`` and ``q_times_lr`` (the readings of issue 15).

    ``foreach``/``fused`` choose torch's implementation path (None: the class's default).
    """

    kind: str
    quantum_weight: float = 0.5
    n_qubits: int | None = 4
    scope: str = "tensor"
    perturbation: str = "sin"
    moment_weight: float = 0.5
    normalize_q: bool = False
    q_times_lr: bool = True
    foreach: bool | None = None
    fused: bool | None = None

    def __post_init__(self):
        check_choice("optimizer kind", self.kind, KINDS)
        check_number("quantum_weight (λ)", self.quantum_weight)
        check_choice("scope", self.scope, SCOPES)
        check_choice("perturbation", self.perturbation, PERTURBATIONS)

    @property
    def label(self) -> str:
        """The name in the paper's tables: "Adam", "AdamW", "Quantum-inspired moment" or "SGD λ=<w>"."""
        if self.kind == "SGD":
            return f"SGD λ={self.quantum_weight:g}"
        return MOMENT_LABEL if self.kind == "moment" else self.kind

    @classmethod
    def parse(cls, label: str, **settings) -> OptimizerSpec:
        """The spec a label names, with ``settings`` (the fields a label does not carry)."""
        if label in ("Adam", "AdamW"):
            return cls(label, **settings)
        if label == MOMENT_LABEL:
            return cls("moment", **settings)
        if isinstance(label, str) and label.startswith("SGD λ="):
            try:
                weight = float(label[len("SGD λ="):])
            except ValueError:
                weight = math.nan
            if math.isfinite(weight) and weight >= 0:
                return cls("SGD", quantum_weight=weight, **settings)
        raise ValueError(f"unknown optimizer {label!r}; choose from {LABELS} (weight a number >= 0)")

    def build(self, params, *, lr: float = 1e-3, betas=(0.9, 0.999), eps: float = 1e-8,
              weight_decay: float = 0.0) -> torch.optim.Optimizer:
        """The optimizer over ``params`` with these hyperparameters."""
        common = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay)
        paths = dict(foreach=self.foreach, fused=self.fused)
        if self.kind == "Adam":
            return torch.optim.Adam(params, **paths, **common)
        if self.kind == "AdamW":
            return torch.optim.AdamW(params, **paths, **common)
        if self.kind == "moment":
            return QuantumMomentAdam(params, moment_weight=self.moment_weight, **common)
        return SuperpositionalAdam(params, quantum_weight=self.quantum_weight, n_qubits=self.n_qubits,
                                   scope=self.scope, perturbation=self.perturbation, normalize_q=self.normalize_q,
                                   q_times_lr=self.q_times_lr, **paths, **common)
