"""sgdq: a reproducible companion to *Superpositional Gradient Descent* (Pamuk et al., 2025).

Three layers, each importing only the ones above it:

* :mod:`sgdq.method` — the paper's method: the optimizer (Eq. 1–2), the circuit (Eq. 4–5),
  quantum attention (Eq. 3) and the Table II model. Pure torch (Qiskit only for the ground
  truth): no pandas, no files, no labels.
* :mod:`sgdq.experiments` — the experiments: one optimizer specification
  (:class:`~sgdq.experiments.spec.OptimizerSpec`), one configuration base
  (:class:`~sgdq.experiments.config.ExperimentConfig`), one results store
  (:class:`~sgdq.experiments.store.ResultsStore`), provenance, the notebooks' parameters, and
  experiment 1, experiment 2, the ablations, the toy problems and the benchmark suite.
* :mod:`sgdq.analysis` — statistics, the paper's claims and their verdicts, the scorecard, and
  every table and figure the chapters show.
"""

from .method import QuantumAttention, QuantumMomentAdam, SuperpositionalAdam, TransformerClassifier
from .method.circuit import build_circuit, fourier_series, readout, statevector

__version__ = "0.1.0"

__all__ = [
    "QuantumAttention",
    "QuantumMomentAdam",
    "SuperpositionalAdam",
    "TransformerClassifier",
    "build_circuit",
    "fourier_series",
    "readout",
    "statevector",
]
