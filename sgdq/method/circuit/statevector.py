"""The reference path: Eq. (5) applied gate by gate to a batch of statevectors, and the readouts
Φ of Eq. (4) as weights on the final amplitudes."""

from __future__ import annotations

import math

import torch

from ..checks import check_int

READOUTS = ("amplitude", "probability", "expval_z")


MAX_QUBITS, MAX_DEPTH, MAX_GATES = 8, 16, 32  # n·depth = 32 at n = 8: an exact series plan of about 3 GB


def check_circuit_size(n_qubits, depth) -> None:
    """Refuse a circuit this package cannot hold in memory (or that is empty), naming the limit.

    The exact series of Φ (:mod:`.fourier`) has 2·n·depth + 1 frequencies and a plan of
    2**n-sized matrices per frequency: n = 8, depth = 4 needs about 3 GB; n = 10, depth = 2
    about 6 GB. The same limits hold for every path, so all of them accept the same circuits.
    """
    check_int("n_qubits", n_qubits, 1, MAX_QUBITS)
    check_int("depth", depth, 1, MAX_DEPTH)
    if n_qubits * depth > MAX_GATES:
        raise ValueError(f"n_qubits·depth must be <= {MAX_GATES} (memory of the exact series), "
                         f"got {n_qubits}·{depth} = {n_qubits * depth}")


def check_readout(kind):
    if kind not in READOUTS:
        raise ValueError(f"readout kind must be one of {READOUTS}, got {kind!r}")


def check_angles(theta, phi):
    if theta.dim() != 2 or theta.shape != phi.shape:
        raise ValueError(
            "theta and phi must both have shape (depth, n_qubits); "
            f"got {tuple(theta.shape)} and {tuple(phi.shape)}"
        )
    check_circuit_size(theta.shape[1], theta.shape[0])
    return theta.shape


def _bits(n_qubits, device):
    """(n, 2**n) tensor: bit q of basis index k (Qiskit little-endian: qubit 0 is the LSB)."""
    k = torch.arange(2**n_qubits, device=device)
    return torch.stack([(k >> q) & 1 for q in range(n_qubits)])


def _cnot_permutation(control, target, n_qubits, device):
    k = torch.arange(2**n_qubits, device=device)
    return torch.where((k >> control) & 1 == 1, k ^ (1 << target), k)


def _complex_dtype(dtype):
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def statevector(x: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor) -> torch.Tensor:
    """Amplitudes ψ(x) of Eq. (5), applying the gates one by one (the reference path).

    ``x`` may have any shape; ``theta`` and ``phi`` have shape (depth, n_qubits). Returns a
    complex tensor of shape ``(*x.shape, 2**n)`` in Qiskit's little-endian order,
    differentiable in x, θ and φ, on x's device.
    """
    depth, n = check_angles(theta, phi)
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.to(torch.get_default_dtype())
    theta, phi = theta.to(x), phi.to(x)
    cdtype = _complex_dtype(x.dtype)
    bits = _bits(n, x.device)
    sign = (2 * bits - 1).to(x.dtype)  # -1 where bit q is 0, +1 where it is 1
    dim = 2**n
    state = torch.zeros(*x.shape, dim, dtype=cdtype, device=x.device)
    state[..., 0] = 1.0
    xs = x.unsqueeze(-1)
    inv_sqrt2 = 1.0 / math.sqrt(2.0)
    partners = [torch.arange(dim, device=x.device) ^ (1 << q) for q in range(n)]
    for q in range(n):  # H on every qubit: new = (−sign·s + s[partner]) / √2
        state = (-sign[q] * state + state[..., partners[q]]) * inv_sqrt2
    for layer in range(depth):
        for q in range(n):
            half = (theta[layer, q] + xs) / 2  # R_y(θ + x): new = cos·s + sign·sin·s[partner]
            state = torch.cos(half) * state + sign[q] * torch.sin(half) * state[..., partners[q]]
            phase = torch.polar(torch.ones_like(sign[q]), sign[q] * phi[layer, q] / 2)
            state = state * phase  # R_z(φ): e^{∓iφ/2} on |0⟩ / |1⟩
        for q in range(n - 1):
            state = state[..., _cnot_permutation(q, q + 1, n, x.device)]
    return state


def readout_weights(kind: str, n_qubits: int, device=None, dtype=torch.float32):
    """Weights w_k such that Φ = Σ_k w_k·(Re ψ_k or |ψ_k|²) for the chosen readout."""
    check_readout(kind)
    k = torch.arange(2**n_qubits, device=device)
    if kind == "expval_z":  # Σ_i ⟨Z_i⟩: eigenvalue of basis state k is n − 2·popcount(k)
        return (n_qubits - 2 * _bits(n_qubits, device).sum(0)).to(dtype)
    return (k < n_qubits).to(dtype)  # the first n_qubits amplitudes, as in Eq. (4)


def readout_from_state(state: torch.Tensor, kind: str = "amplitude") -> torch.Tensor:
    """Φ from amplitudes of shape (..., 2**n)."""
    n = int(round(math.log2(state.shape[-1])))
    w = readout_weights(kind, n, state.device, state.real.dtype)
    values = state.real if kind == "amplitude" else state.real**2 + state.imag**2
    return values @ w

