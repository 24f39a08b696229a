"""sgdq: a reproducible companion to *Superpositional Gradient Descent* (Pamuk et al., 2025).

Modules, one concept of the paper each:

* :mod:`sgdq.optim`     — the optimizer, Eq. (1)–(2), and the quantum-inspired moment baseline;
* :mod:`sgdq.circuit`   — the variational circuit, Eq. (5), and its readout Φ, Eq. (4);
* :mod:`sgdq.attention` — quantum attention, Eq. (3);
* :mod:`sgdq.models`    — the Table II transformer classifier.

Experiments and the book around them:

* :mod:`sgdq.synthetic`, :mod:`sgdq.text_classification` — experiment 1 (Sec. IV-B, Table II);
* :mod:`sgdq.gsm8k`, :mod:`sgdq.llm_finetuning` — experiment 2 (Sec. IV-B, Table III);
* :mod:`sgdq.ablations` — what in the method makes a difference;
* :mod:`sgdq.stats`, :mod:`sgdq.claims`, :mod:`sgdq.scorecard` — statistics, verdicts, the scorecard;
* :mod:`sgdq.toy`, :mod:`sgdq.benchmark`, :mod:`sgdq.runtime` — small problems, timing, notebook plumbing.
"""

from .attention import QuantumAttention
from .circuit import build_circuit, fourier_series, readout, statevector
from .models import TransformerClassifier
from .optim import QuantumMomentAdam, SuperpositionalAdam

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
