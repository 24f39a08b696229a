"""Finite shots: Σ_i ⟨Z_i⟩ estimated from a number of measurements, as a device would report it
(beyond the paper; used by ``QuantumAttention(shots=...)`` and the readout ablation)."""

from __future__ import annotations

import torch

from .fourier import FourierSeries, _frequency_amplitudes, _series_values, series_plan, spectrum
from .statevector import _bits, check_angles


def eigenvalue_classes(n_qubits: int) -> torch.Tensor:
    """The values Σ_i Z_i can take on one shot: n, n − 2, …, −n (class c has popcount c)."""
    return torch.arange(n_qubits, -n_qubits - 1, -2, dtype=torch.float64)


def class_probability_series(theta: torch.Tensor, phi: torch.Tensor) -> FourierSeries:
    """Fourier series of P_c(x), the probability that a shot finds c qubits in |1⟩ (c = 0 … n).

    Each P_c is a sum of |ψ_k(x)|², so it has the spectrum of the probability readout; its
    coefficients come from the same frequency table as :func:`fourier_series`, in float64
    and without gradients. ``coef`` has shape (n + 1, 2(M + 1)).
    """
    depth, n = check_angles(theta, phi)
    plan = series_plan(n, depth, "probability", theta.device)
    with torch.no_grad():
        psi = _frequency_amplitudes(theta.detach().double(), phi.detach().double(), plan, shifted=False)
        psi = psi.view(plan.F, -1)
        classes = (_bits(n, theta.device).sum(0)[None, :] == torch.arange(n + 1, device=theta.device)[:, None])
        weights = torch.empty(n + 1, 2**n, dtype=psi.dtype, device=psi.device)
        weights[:, plan.chain] = classes.to(psi.dtype)  # the last CNOT ladder, as in the plan's weights
        gram = torch.einsum("fj,cj,gj->cfg", psi, weights, psi.conj())  # (n+1, F, F)
        coef = torch.view_as_real(gram).reshape(n + 1, -1) @ plan.to_real
    return FourierSeries(spectrum("probability", n, depth)[0], coef)


def sample_expval_z(x: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor, shots: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Σ_i ⟨Z_i⟩ at every score, estimated from ``shots`` measurements as a device would.

    Each shot measures every qubit in the Z basis and scores n − 2·(number of 1s); the
    estimate is the mean over the shots. The counts per class are drawn exactly, from the
    multinomial distribution with the circuit's class probabilities P_c(x)
    (:func:`class_probability_series`), by successive binomial draws; no gradient flows
    through the draw. ``generator`` (default: torch's global one) makes it repeatable.
    """
    if not isinstance(shots, int) or isinstance(shots, bool) or shots < 1:
        raise ValueError(f"shots must be an integer >= 1, got {shots!r}")
    series = class_probability_series(theta, phi)
    n = theta.shape[1]
    with torch.no_grad():
        flat = x.detach().reshape(-1).to(torch.float32 if x.dtype != torch.float64 else torch.float64)
        probs = _series_values(flat, series.coef.to(flat.dtype), series.base).clamp_(min=0.0)  # (n + 1, N)
        remaining = torch.full_like(flat, float(shots))
        mass = probs.sum(0)
        total = torch.zeros_like(flat)
        values = eigenvalue_classes(n).tolist()
        for c in range(n):
            p = (probs[c] / mass.clamp(min=1e-30)).clamp_(0.0, 1.0)
            counts = torch.binomial(remaining, p, generator=generator)
            total.add_(counts, alpha=values[c])
            remaining.sub_(counts)
            mass.sub_(probs[c])
        total.add_(remaining, alpha=values[n])
    return (total / shots).reshape(x.shape).to(x.dtype)
