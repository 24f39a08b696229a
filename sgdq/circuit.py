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

Two exact evaluation paths are provided:

* :func:`statevector` applies the gates one by one to a batch of states (the reference);
* :func:`fourier_series` + :func:`evaluate_series` (the default of :func:`readout`) use the
  fact that, with angle encoding, every amplitude is a trigonometric polynomial in x whose
  frequencies are multiples of 1/2 up to (n·depth)/2 (Schuld, Sweke & Meyer 2021). The
  coefficients depend on θ and φ only: they are computed once per forward pass from 2M + 1
  simulated samples (a discrete Fourier transform, exact for a band-limited function),
  with their θ/φ-gradients from the parameter-shift rule, and then evaluated for every
  score with two trigonometric calls and a rotation recurrence.

Used in: ``notebooks/02_circuit``, :mod:`sgdq.attention`.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

READOUTS = ("amplitude", "probability", "expval_z")


def _check_sizes(n_qubits, depth):
    if not isinstance(n_qubits, int) or isinstance(n_qubits, bool) or n_qubits < 1:
        raise ValueError(f"n_qubits must be an integer >= 1, got {n_qubits!r}")
    if not isinstance(depth, int) or isinstance(depth, bool) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")


def _check_readout(kind):
    if kind not in READOUTS:
        raise ValueError(f"readout kind must be one of {READOUTS}, got {kind!r}")


def _check_angles(theta, phi):
    if theta.dim() != 2 or theta.shape != phi.shape:
        raise ValueError(
            "theta and phi must both have shape (depth, n_qubits); "
            f"got {tuple(theta.shape)} and {tuple(phi.shape)}"
        )
    return theta.shape


# --------------------------------------------------------------------------------------
# Qiskit circuit (the ground truth the tests compare against)
# --------------------------------------------------------------------------------------
def build_circuit(n_qubits: int = 4, depth: int = 2):
    """Eq. (5) as a :class:`qiskit.QuantumCircuit` with free Parameters.

    Returns a circuit whose parameters are ``x`` (the score), ``θ[l*n + i]`` and
    ``φ[l*n + i]`` (two :class:`qiskit.circuit.ParameterVector` of length depth·n, row-major
    in (layer, qubit)). Bind them with :func:`bind_circuit`.

    Used in: ``notebooks/02_circuit``, tests.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter, ParameterVector

    _check_sizes(n_qubits, depth)
    x = Parameter("x")
    theta = ParameterVector("θ", depth * n_qubits)
    phi = ParameterVector("φ", depth * n_qubits)
    qc = QuantumCircuit(n_qubits, name="C(x)")
    qc.h(range(n_qubits))
    for layer in range(depth):
        for i in range(n_qubits):
            qc.ry(theta[layer * n_qubits + i] + x, i)
            qc.rz(phi[layer * n_qubits + i], i)
        for i in range(n_qubits - 1):
            qc.cx(i, i + 1)
    return qc


def circuit_bindings(qc, x, theta, phi) -> dict:
    """Map the circuit's Parameters to numbers (``theta``/``phi``: (depth, n) arrays)."""
    params = {p.name: p for p in qc.parameters}
    values = {params["x"]: float(x)}
    flat_t = torch.as_tensor(theta).reshape(-1).tolist()
    flat_f = torch.as_tensor(phi).reshape(-1).tolist()
    for j, (t, f) in enumerate(zip(flat_t, flat_f)):
        values[params[f"θ[{j}]"]] = t
        values[params[f"φ[{j}]"]] = f
    return values


def bind_circuit(qc, x, theta, phi):
    """Return ``qc`` with every Parameter bound to a number."""
    return qc.assign_parameters(circuit_bindings(qc, x, theta, phi))


def aer_statevectors(xs, theta, phi) -> torch.Tensor:
    """Statevectors of the bound circuit for every x, from qiskit-aer in one ``run()``.

    All scores go in as parameter binds of a single circuit (one experiment each); returns a
    complex128 tensor of shape (len(xs), 2**n). Used to check :func:`statevector` against
    an independent simulator, and as the Qiskit baseline of the benchmarks.

    Used in: ``notebooks/02_circuit``, :mod:`sgdq.benchmark`.
    """
    import numpy as np
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    theta, phi = torch.as_tensor(theta), torch.as_tensor(phi)
    qc = build_circuit(theta.shape[1], theta.shape[0])
    qc.save_statevector()
    sim = AerSimulator(method="statevector")
    tqc = transpile(qc, sim)
    xs = [float(x) for x in torch.as_tensor(xs).reshape(-1)]
    one = circuit_bindings(tqc, 0.0, theta, phi)
    binds = {p: (xs if p.name == "x" else [v] * len(xs)) for p, v in one.items()}
    result = sim.run(tqc, parameter_binds=[binds]).result()
    return torch.from_numpy(np.stack([np.asarray(result.get_statevector(i)) for i in range(len(xs))]))


# --------------------------------------------------------------------------------------
# Reference path: apply the gates to a batch of statevectors
# --------------------------------------------------------------------------------------
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

    Used in: ``notebooks/02_circuit``, tests, benchmarks.
    """
    depth, n = _check_angles(theta, phi)
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
    _check_readout(kind)
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


# --------------------------------------------------------------------------------------
# Fast path: the exact Fourier series of Φ(x)
# --------------------------------------------------------------------------------------
@dataclass
class FourierSeries:
    """Φ(x) = Σ_{m=0}^{M} a_m cos(m·ω·x) + b_m sin(m·ω·x), with base frequency ω = ``base``."""

    base: float
    a: torch.Tensor  # (M + 1,)
    b: torch.Tensor  # (M + 1,), b_0 = 0

    @property
    def freqs(self) -> torch.Tensor:
        return self.base * torch.arange(len(self.a), dtype=self.a.dtype, device=self.a.device)

    def __call__(self, x):
        return evaluate_series(x, self)


def spectrum(kind: str, n_qubits: int, depth: int) -> tuple[float, int]:
    """(base ω, highest harmonic M) of Φ's Fourier series for this readout and circuit.

    With L = n_qubits·depth encoding gates, each amplitude holds the frequencies
    −L/2, −L/2 + 1, …, L/2 (Schuld, Sweke & Meyer 2021). The amplitude readout inherits
    them (multiples of 1/2 when L is odd); |ψ_k|² holds their differences, 0 … L.
    """
    _check_readout(kind)
    L = n_qubits * depth
    if kind == "amplitude":
        return (1.0, L // 2) if L % 2 == 0 else (0.5, L)
    return 1.0, L


@functools.lru_cache(maxsize=64)
def _series_plan(n: int, depth: int, kind: str, device: torch.device) -> dict:
    """Everything :class:`_SeriesCoefficients` needs that does not depend on θ, φ."""
    base, M = spectrum(kind, n, depth)
    P = 2 * depth * n  # number of angles: θ then φ
    K = 2 * M + 1  # samples per period
    f64 = dict(dtype=torch.float64, device=device)
    shift, factor = (math.pi, 0.25) if kind == "amplitude" else (math.pi / 2, 0.5)
    offsets = torch.zeros(2 * P + 1, P, **f64)  # row 0 unshifted, then +shift, then −shift
    idx = torch.arange(P, device=device)
    offsets[1 + idx, idx] = shift
    offsets[1 + P + idx, idx] = -shift
    t = torch.arange(K, **f64) * (2 * math.pi / K)  # base·x at the sample points
    ang = torch.arange(M + 1, **f64)[:, None] * t[None, :]
    dft = torch.stack([torch.cos(ang), torch.sin(ang)], 1).reshape(2 * (M + 1), K) * (2.0 / K)
    dft[0] /= 2  # coef = samples @ dft.T gives a_0, b_0, a_1, b_1, …
    chain = torch.arange(2**n, device=device)
    for q in range(n - 1):  # the CNOT ladder as one permutation
        chain = chain[_cnot_permutation(q, q + 1, n, device)]
    return dict(
        base=base, M=M, P=P, factor=factor, chain=chain, dft_t=dft.T.contiguous(),
        offsets=offsets.repeat_interleave(K, 0), xs=(t / base).repeat(2 * P + 1),
        sign=(2 * _bits(n, device) - 1).to(torch.float64),
        weights=readout_weights(kind, n, device, torch.float64),
    )


def _layered_statevector(x, theta, phi, sign, chain):
    """:func:`statevector` for a batch of (x, θ, φ) at once, all of them per gate.

    ``x`` has shape (B,), ``theta`` and ``phi`` shape (B, depth, n); ``sign`` and ``chain``
    come from :func:`_series_plan`. Only used for the handful of sample points (and
    shifted angles) of :func:`fourier_series`.
    """
    B, depth, n = theta.shape
    dim = 2**n
    state = torch.full((B, dim), dim**-0.5, dtype=_complex_dtype(x.dtype), device=x.device)
    for layer in range(depth):
        half = (theta[:, layer] + x[:, None]) / 2  # (B, n)
        c, s = torch.cos(half), torch.sin(half)
        ry = torch.stack([c, -s, s, c], -1).view(B, n, 2, 2).to(state.dtype)
        for q in range(n):  # R_y on qubit q: a (2×2) matmul on that tensor axis
            state = (ry[:, q, None] @ state.view(B, dim >> (q + 1), 2, 1 << q)).view(B, dim)
        phase = torch.polar(torch.ones_like(state.real), phi[:, layer] @ sign / 2)
        state = (state * phase)[:, chain]
    return state


class _SeriesCoefficients(torch.autograd.Function):
    """Fourier coefficients of Φ and their exact Jacobian in (θ, φ), by parameter shifts.

    Every angle enters one gate as e^{±i·angle/2}, so a readout f is a trigonometric
    polynomial of degree 1/2 (amplitude) or 1 (|ψ|²) in it, and
    f′ = [f(+s) − f(−s)]·c with (s, c) = (π, 1/4) or (π/2, 1/2). All shifted circuits are
    simulated in one batch, so the backward pass is a single matrix product.
    """

    @staticmethod
    def forward(ctx, theta, phi, kind):
        depth, n = theta.shape
        plan = _series_plan(n, depth, kind, theta.device)
        P = plan["P"]
        angles = torch.cat([theta.reshape(-1), phi.reshape(-1)]).double() + plan["offsets"]
        state = _layered_statevector(plan["xs"], angles[:, : P // 2].view(-1, depth, n),
                                     angles[:, P // 2 :].view(-1, depth, n), plan["sign"], plan["chain"])
        values = state.real if kind == "amplitude" else state.real**2 + state.imag**2
        coefs = (values @ plan["weights"]).view(2 * P + 1, -1) @ plan["dft_t"]  # (2P+1, 2(M+1))
        jac = (coefs[1 : P + 1] - coefs[P + 1 :]) * plan["factor"]  # (P, 2(M+1))
        ctx.save_for_backward(jac.to(theta.dtype))
        ctx.depth_n = (depth, n)
        return coefs[0].to(theta.dtype)

    @staticmethod
    def backward(ctx, g):
        (jac,) = ctx.saved_tensors
        grad = jac @ g
        half = grad.numel() // 2
        return grad[:half].view(ctx.depth_n), grad[half:].view(ctx.depth_n), None


def fourier_series(theta: torch.Tensor, phi: torch.Tensor, kind: str = "amplitude") -> FourierSeries:
    """The exact Fourier series of Φ(x) for the readout ``kind`` (differentiable in θ, φ).

    Φ is a trigonometric polynomial with the spectrum of :func:`spectrum`, so 2M + 1
    equispaced samples over one period determine it exactly (a discrete Fourier
    transform). The samples are simulated in float64, whatever θ's dtype; gradients in θ
    and φ are exact too (parameter-shift rule, see :class:`_SeriesCoefficients`).

    Used in: :func:`readout`, ``notebooks/02_circuit`` (the spectrum plot).
    """
    depth, n = _check_angles(theta, phi)
    _check_readout(kind)
    coef = _SeriesCoefficients.apply(theta, phi, kind)
    return FourierSeries(spectrum(kind, n, depth)[0], coef[0::2], coef[1::2])


def _harmonics(u: torch.Tensor, M: int) -> torch.Tensor:
    """Rows cos(m·u), sin(m·u) for m = 0 … M, as a (2(M+1), N) table (rotation recurrence)."""
    table = torch.empty(2 * (M + 1), u.numel(), dtype=u.dtype, device=u.device)
    table[0] = 1.0
    table[1] = 0.0
    if M >= 1:
        c1, s1 = torch.cos(u.reshape(-1), out=table[2]), torch.sin(u.reshape(-1), out=table[3])
        for m in range(2, M + 1):
            cm, sm = table[2 * m - 2], table[2 * m - 1]
            torch.mul(c1, cm, out=table[2 * m]).addcmul_(s1, sm, value=-1)
            torch.mul(s1, cm, out=table[2 * m + 1]).addcmul_(c1, sm)
    return table


class _SeriesEval(torch.autograd.Function):
    """Φ(x) = coef · [cos(m ω x); sin(m ω x)]_m with a hand-written backward."""

    @staticmethod
    def forward(ctx, x, coef, base):
        M = coef.numel() // 2 - 1
        table = _harmonics(x if base == 1.0 else x * base, M)
        ctx.save_for_backward(table, coef)
        ctx.base = base
        return (coef @ table).reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        table, coef = ctx.saved_tensors
        grad_x = grad_coef = None
        if ctx.needs_input_grad[0]:
            # d/dx [a cos(mωx) + b sin(mωx)] = mω·(b cos(mωx) − a sin(mωx))
            m = torch.arange(coef.numel() // 2, dtype=coef.dtype, device=coef.device) * ctx.base
            a, b = coef[0::2], coef[1::2]
            deriv = torch.stack([m * b, -m * a], -1).reshape(-1)
            grad_x = (deriv @ table).reshape(g.shape) * g
        if ctx.needs_input_grad[1]:
            grad_coef = table @ g.contiguous().reshape(-1)
        return grad_x, grad_coef, None


def evaluate_series(x: torch.Tensor, series: FourierSeries) -> torch.Tensor:
    """Evaluate a :class:`FourierSeries` at every element of ``x`` (same shape out)."""
    coef = torch.stack([series.a, series.b], -1).reshape(-1).to(x.dtype)
    return _SeriesEval.apply(x, coef, series.base)


METHODS = ("fourier", "statevector")


def readout(
    x: torch.Tensor,
    theta: torch.Tensor,
    phi: torch.Tensor,
    kind: str = "amplitude",
    method: str = "fourier",
) -> torch.Tensor:
    """Φ(x) of Eq. (4) for every element of ``x`` (output has x's shape).

    ``method="fourier"`` (default) evaluates the exact Fourier series; ``"statevector"``
    simulates each score's circuit (the reference; O(2**n) memory per score).

    Used in: :class:`sgdq.attention.QuantumAttention`, ``notebooks/02_circuit``.
    """
    _check_readout(kind)
    if method == "statevector":
        return readout_from_state(statevector(x, theta, phi), kind)
    if method != "fourier":
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return evaluate_series(x, fourier_series(theta, phi, kind))
