"""The variational circuit of Eq. (5) and its readout Φ of Eq. (4).

Pamuk et al. (2025), Sec. III-B, write the circuit as

    C(x) = U_entangle · Π_i R_z(φ_i) R_y(θ_i) H_i |0…0⟩            (Eq. 5)

with a depth of 2 (Table II). Two things are left open, and this module fixes them:

* **How the score x enters.** Eq. (4) feeds an attention score into C, but Eq. (5) has no
  slot for it. We use angle encoding: x is added to every R_y angle, R_y(θ[l, i] + x), in
  every layer l. This is our reading; it is the standard "data re-uploading" encoding.
* **What "depth 2" repeats.** H is applied once; each of the ``depth`` layers then applies
  R_y(θ[l, i] + x) R_z(φ[l, i]) on every qubit i followed by CNOT(i → i+1), i = 0 … n−2.

Three readouts Φ(x) are offered (``kind``):

* ``"amplitude"``: Σ_{k<n} Re ψ_k, the literal Eq. (4) (amplitudes are complex; we take
  the real part, the paper does not say);
* ``"probability"``: Σ_{k<n} |ψ_k|²;
* ``"expval_z"``: Σ_i ⟨Z_i⟩, the only one of the three real hardware can estimate.

One concern a module:

* :mod:`.qiskit_circuit` — Eq. (5) as a Qiskit circuit and qiskit-aer's statevectors (the
  ground truth);
* :mod:`.statevector` — the reference torch path, gate by gate, and the readout weights;
* :mod:`.fourier` — the fast exact path: Φ as a Fourier series in x (the default of
  :func:`readout`);
* :mod:`.shots` — the ⟨Z⟩ readout estimated from finite shots, as a device would.
"""

from .fourier import (
    METHODS,
    FourierSeries,
    SeriesPlan,
    evaluate_series,
    fourier_series,
    readout,
    series_plan,
    spectrum,
)
from .qiskit_circuit import aer_statevectors, bind_circuit, build_circuit, circuit_bindings
from .shots import class_probability_series, eigenvalue_classes, sample_expval_z
from .statevector import (
    MAX_DEPTH,
    MAX_GATES,
    MAX_QUBITS,
    READOUTS,
    check_circuit_size,
    readout_from_state,
    readout_weights,
    statevector,
)

__all__ = [
    "FourierSeries", "MAX_DEPTH", "MAX_GATES", "MAX_QUBITS", "METHODS", "READOUTS", "SeriesPlan",
    "aer_statevectors", "bind_circuit", "build_circuit", "check_circuit_size", "circuit_bindings",
    "class_probability_series", "eigenvalue_classes", "evaluate_series", "fourier_series", "readout",
    "readout_from_state", "readout_weights", "sample_expval_z", "series_plan", "spectrum", "statevector",
]
