"""The paper's method, and nothing else: no pandas, no files, no labels.

* :mod:`.optim` — Superpositional Gradient Descent, Eq. (1)–(2), and the "quantum-inspired
  moment" baseline;
* :mod:`.circuit` — the variational circuit, Eq. (5), and its readout Φ, Eq. (4);
* :mod:`.attention` — quantum attention, Eq. (3);
* :mod:`.models` — the Table II transformer classifier.
"""

from .attention import QuantumAttention
from .models import TransformerClassifier
from .optim import QuantumMomentAdam, SuperpositionalAdam

__all__ = ["QuantumAttention", "QuantumMomentAdam", "SuperpositionalAdam", "TransformerClassifier"]
