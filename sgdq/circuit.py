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
  coefficients depend on θ and φ only. They are computed once per forward pass in closed
  form: R_y is diagonal in the eigenbasis of Y, so a layer of R_y(θ + x) shifts each
  rotated basis state by a known frequency, and the state is carried as a small table over
  frequencies (see :func:`_series_plan`). Their θ/φ-gradients come from the parameter-shift
  rule, all shifted circuits in one batch. The series is then evaluated for every score
  with two trigonometric calls and a rotation recurrence.

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
    """Φ(x) = Σ_{m=0}^{M} a_m cos(m·ω·x) + b_m sin(m·ω·x), with base frequency ω = ``base``.

    ``coef`` holds a_0, b_0, a_1, b_1, … interleaved (b_0 = 0), the layout the evaluation uses.
    """

    base: float
    coef: torch.Tensor  # (2(M + 1),)

    @property
    def a(self) -> torch.Tensor:
        return self.coef[0::2]

    @property
    def b(self) -> torch.Tensor:
        return self.coef[1::2]

    @property
    def freqs(self) -> torch.Tensor:
        return self.base * torch.arange(len(self.a), dtype=self.coef.dtype, device=self.coef.device)

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
    """Everything :func:`_frequency_amplitudes` and :class:`_SeriesCoefficients` need that
    does not depend on θ, φ (constants in float64 / complex128, cached per circuit shape).

    The key fact: R_y(α) = W·diag(e^{iα/2}, e^{−iα/2})·W†, with W's columns the
    eigenvectors (1, ∓i)/√2 of the generator. A layer of R_y(θ_q + x) on all n qubits is
    therefore V·D(θ)·E(x)·V† with V = W^{⊗n}: basis state j of the rotated frame picks up
    the phase e^{i·(θ·s_j)/2} and the frequency ν_j = (n − 2·popcount j)/2 in x, where
    s_j = ±1 per qubit. Tracking the state as a table over frequencies (one row per
    frequency) gives Φ's Fourier coefficients exactly, without sampling.
    """
    base, M = spectrum(kind, n, depth)
    P = 2 * depth * n  # number of angles: θ then φ
    A = 2 * P + 1  # the unshifted angles, then each angle shifted by +s, then by −s
    dim = 2**n
    shift, factor = (math.pi, 0.25) if kind == "amplitude" else (math.pi / 2, 0.5)
    f64 = dict(dtype=torch.float64, device=device)
    offsets = torch.zeros(A, P, **f64)
    idx = torch.arange(P, device=device)
    offsets[1 + idx, idx] = shift
    offsets[1 + P + idx, idx] = -shift
    bits = _bits(n, device)
    sign = (2 * bits - 1).to(torch.float64)  # (n, dim): −1 where bit q is 0
    w = torch.tensor([[1, 1], [-1j, 1j]], dtype=torch.complex128, device=device) / math.sqrt(2)
    V = torch.ones(1, 1, dtype=torch.complex128, device=device)
    for _ in range(n):  # W ⊗ … ⊗ W; qubit 0 is the low bit
        V = torch.kron(w, V)
    chain = torch.arange(dim, device=device)
    for q in range(n - 1):  # the CNOT ladder as one permutation: new[k] = old[chain[k]]
        chain = chain[_cnot_permutation(q, q + 1, n, device)]
    v_dag = V.conj()  # row vectors: (V† ψ)ᵀ = ψᵀ·conj(V)
    v_dag_after_ladder = torch.empty_like(v_dag)
    v_dag_after_ladder[chain] = v_dag  # ψ[chain] @ conj(V) == ψ @ this
    shifts = (n - bits.sum(0)).tolist()  # frequency index gained by rotated-frame state j: 0 … n
    c128 = dict(dtype=torch.complex128, device=device)
    # Per layer l, with the state a row of F_l·dim numbers (F_l = l·n + 1 frequencies):
    #   ψ ← ψ @ kron(I, V† after the previous CNOT ladder)    constant (layer 0: V†·H^n|0⟩)
    #   ψ ← ψ ⊙ e^{i θ_l·s_j / 2}                             phases, tiled over the rows
    #   ψ ← ψ @ spread_l                                     constant: state j moves up by its
    #                                                        frequency shift, then back through V
    #   ψ ← ψ ⊙ e^{i φ_l·sign_k / 2}                          R_z phases, tiled over the rows
    # Every phase angle is linear in the P angles: one product with ``project`` gives them all.
    # (The phases act on every frequency row alike; they are broadcast over the rows.)
    spreads, rotates = [], []
    project = torch.zeros(P, 2 * depth * dim, **f64)  # columns: per layer, dim R_y then dim R_z phases
    for layer in range(depth):
        f_in, f_out = layer * n + 1, (layer + 1) * n + 1
        project[layer * n : (layer + 1) * n, 2 * layer * dim : (2 * layer + 1) * dim] = -sign / 2
        project[P // 2 + layer * n : P // 2 + (layer + 1) * n, (2 * layer + 1) * dim : (2 * layer + 2) * dim] = sign / 2
        spread = torch.zeros(f_in * dim, f_out * dim, **c128)
        for k in range(f_in):
            for jj in range(dim):
                lo = (k + shifts[jj]) * dim
                spread[k * dim + jj, lo : lo + dim] = V[:, jj]
        spreads.append(spread)
        rotates.append(torch.kron(torch.eye(f_in, **c128), v_dag_after_ladder) if layer else None)
    weights = readout_weights(kind, n, device, torch.float64)
    last_weights = torch.empty_like(weights)
    last_weights[chain] = weights  # the last CNOT ladder, folded into the readout
    F = depth * n + 1  # frequencies (k − nD/2 for k = 0 … nD) of the final amplitudes
    # Map the real and imaginary parts of the complex coefficients to the real series
    # a_0, b_0, a_1, b_1, … with Φ(x) = Σ_m a_m cos(m·base·x) + b_m sin(m·base·x).
    freqs = torch.arange(F, **f64) - depth * n / 2
    if kind == "amplitude":  # Φ = Re Σ_f c_f e^{ifx}: c_f = ψ_f · w
        fx = freqs
    else:  # Φ = Σ_{f,g} G[f,g] e^{i(f−g)x}, G[f,g] = Σ_k w_k ψ_{f,k} conj(ψ_{g,k})
        fx = (freqs[:, None] - freqs[None, :]).reshape(-1)
    to_real = torch.zeros(2 * len(fx), 2 * (M + 1), **f64)
    for r, f in enumerate(fx.tolist()):
        m = int(round(abs(f) / base))
        to_real[2 * r, 2 * m] = 1.0  # Re c · cos
        if f != 0:
            to_real[2 * r + 1, 2 * m + 1] = -1.0 if f > 0 else 1.0  # −Im c · sin(f x)
    if kind == "amplitude":  # c_f = Σ_j w_j ψ_{f,j} with real w: fold w into the same matrix
        to_real = (last_weights[None, :, None, None] * to_real.view(F, 1, 2, -1)).reshape(F * dim * 2, -1)
    plus = torch.full((dim,), dim**-0.5, **c128)
    return dict(
        base=base, M=M, P=P, A=A, F=F, factor=factor, n=n, dim=dim, chain=chain,
        project=project, phase_offsets=offsets @ project, spreads=spreads, rotates=rotates, plus_rotated=plus @ v_dag,
        last_weights=last_weights.to(torch.complex128), to_real=to_real,
    )


def _frequency_amplitudes(theta, phi, plan, shifted: bool = True):
    """The final amplitudes as a table over frequencies, for every shifted angle set.

    Returns ψ of shape (A, F·2**n) complex128 with ψ(x) = Σ_k ψ[:, k·2**n : (k+1)·2**n]·
    e^{i(k − nD/2)x} (the last CNOT ladder left out; ``plan["last_weights"]`` accounts for
    it). ``theta`` and ``phi`` are float64 (depth, n). Four small operations per layer.
    ``shifted=False`` computes only the unshifted angles (A = 1), when no gradient is wanted.
    """
    A, dim = (plan["A"], plan["dim"]) if shifted else (1, plan["dim"])
    angles = torch.add(plan["phase_offsets"][:A], torch.cat([theta.reshape(-1), phi.reshape(-1)]) @ plan["project"])
    phases = torch.complex(torch.cos(angles), torch.sin(angles)).view(A, -1, 1, dim)  # (A, 2·depth, 1, dim)
    psi = plan["plus_rotated"].view(1, 1, dim)
    for layer, (spread, rotate) in enumerate(zip(plan["spreads"], plan["rotates"])):
        if rotate is not None:
            psi = (psi.reshape(A, -1) @ rotate).view(A, -1, dim)
        psi = ((psi * phases[:, 2 * layer]).reshape(A, -1) @ spread).view(A, -1, dim)
        psi = psi.mul_(phases[:, 2 * layer + 1])
    return psi.reshape(A, -1)


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
        psi = _frequency_amplitudes(theta.detach().double(), phi.detach().double(), plan)
        if kind == "amplitude":  # the readout weights are folded into to_real
            c = psi
        else:
            psi = psi.view(plan["A"], plan["F"], -1)
            c = (psi * plan["last_weights"]) @ psi.conj().transpose(1, 2)  # (A, F, F)
        coefs = torch.view_as_real(c).reshape(plan["A"], -1) @ plan["to_real"]  # (2P+1, 2(M+1))
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
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

    Φ is a trigonometric polynomial with the spectrum of :func:`spectrum`; its
    coefficients are computed exactly, in float64 whatever θ's dtype, by carrying the state
    as a table over frequencies (:func:`_frequency_amplitudes`). Gradients in θ and φ are
    exact too (parameter-shift rule, see :class:`_SeriesCoefficients`).

    Used in: :func:`readout`, ``notebooks/02_circuit`` (the spectrum plot).
    """
    depth, n = _check_angles(theta, phi)
    _check_readout(kind)
    coef = _SeriesCoefficients.apply(theta, phi, kind)
    return FourierSeries(spectrum(kind, n, depth)[0], coef)


def _harmonics(u: torch.Tensor, M: int) -> torch.Tensor:
    """Rows cos(m·u), sin(m·u) for m = 1 … M, as a (2M, N) table.

    Two trigonometric calls, then a rotation by u per row (one multiply and one fused
    multiply-add each): cos(m·u) = cos u·cos((m−1)u) − sin u·sin((m−1)u), and likewise for sin.
    """
    u = u.reshape(-1)
    table = torch.empty(2 * M, u.numel(), dtype=u.dtype, device=u.device)
    if M == 0:
        return table
    c1, s1 = torch.cos(u, out=table[0]), torch.sin(u, out=table[1])
    for m in range(2, M + 1):
        cp, sp = table[2 * m - 4], table[2 * m - 3]
        torch.mul(c1, cp, out=table[2 * m - 2]).addcmul_(s1, sp, value=-1)
        torch.mul(s1, cp, out=table[2 * m - 1]).addcmul_(c1, sp)
    return table


def _harmonics_at(x: torch.Tensor, base: float, M: int) -> torch.Tensor:
    """:func:`_harmonics` of base·x (flattened)."""
    return _harmonics(x if base == 1.0 else x * base, M)


def _series_values(x: torch.Tensor, coef: torch.Tensor, base: float) -> torch.Tensor:
    """Σ_m a_m cos(m·base·x) + b_m sin(m·base·x) at every element of x (flattened), no autograd.

    ``coef`` is one interleaved series (2(M+1),) or a stack of them (S, 2(M+1)); the result
    is (N,) or (S, N).
    """
    table = _harmonics_at(x, base, coef.shape[-1] // 2 - 1)
    return (coef[..., 2:] @ table).add_(coef[..., :1])


def _derivative_coefficients(coef: torch.Tensor, base: float) -> torch.Tensor:
    """Coefficients of Φ′ in the same basis: d/dx [a cos(mωx) + b sin(mωx)] = mω·(b cos − a sin)."""
    m = torch.arange(coef.numel() // 2, dtype=coef.dtype, device=coef.device) * base
    a, b = coef[0::2], coef[1::2]
    return torch.stack([m * b, -m * a], -1).reshape(-1)


class _SeriesEval(torch.autograd.Function):
    """Φ(x) = a_0 + coef[2:] · [cos(m ω x); sin(m ω x)]_{m≥1} with a hand-written backward.

    When x needs a gradient, Φ′(x) comes out of the same matrix product as Φ(x) (one
    more row of coefficients), so the backward pass only multiplies it by the incoming
    gradient; the harmonics table is kept only if the coefficients need a gradient.
    """

    @staticmethod
    def forward(ctx, x, coef, base):
        table = _harmonics_at(x, base, coef.numel() // 2 - 1)
        need_x, need_coef = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        if need_x:
            rows = torch.stack([coef, _derivative_coefficients(coef, base)])  # (2, 2(M+1))
            both = rows[:, 2:] @ table
            out, slope = both[0].add_(coef[0]), both[1]  # Φ′ has no constant term
        else:
            out, slope = (coef[2:] @ table).add_(coef[:1]), None
        ctx.save_for_backward(table if need_coef else None, slope)
        return out.reshape(x.shape)

    @staticmethod
    def backward(ctx, g):
        table, slope = ctx.saved_tensors
        grad_x = grad_coef = None
        if ctx.needs_input_grad[0]:
            grad_x = slope.view(g.shape) * g
        if ctx.needs_input_grad[1]:
            flat = g.contiguous().reshape(-1)  # an expanded (stride-0) g makes mv very slow
            grad_coef = torch.cat([flat.sum().view(1), flat.new_zeros(1), table @ flat])
        return grad_x, grad_coef, None


def evaluate_series(x: torch.Tensor, series: FourierSeries) -> torch.Tensor:
    """Evaluate a :class:`FourierSeries` at every element of ``x`` (same shape out)."""
    coef = series.coef.to(x.dtype)
    if not (torch.is_grad_enabled() and (x.requires_grad or coef.requires_grad)):
        return _series_values(x, coef, series.base).reshape(x.shape)
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


# --------------------------------------------------------------------------------------
# Finite shots: what a device would report for the ⟨Z⟩ readout
# --------------------------------------------------------------------------------------
def eigenvalue_classes(n_qubits: int) -> torch.Tensor:
    """The values Σ_i Z_i can take on one shot: n, n − 2, …, −n (class c has popcount c)."""
    return torch.arange(n_qubits, -n_qubits - 1, -2, dtype=torch.float64)


def class_probability_series(theta: torch.Tensor, phi: torch.Tensor) -> FourierSeries:
    """Fourier series of P_c(x), the probability that a shot finds c qubits in |1⟩ (c = 0 … n).

    Each P_c is a sum of |ψ_k(x)|², so it has the spectrum of the probability readout; its
    coefficients come from the same frequency table as :func:`fourier_series`, in float64
    and without gradients. ``coef`` has shape (n + 1, 2(M + 1)).

    Used in: :func:`sample_expval_z`.
    """
    depth, n = _check_angles(theta, phi)
    plan = _series_plan(n, depth, "probability", theta.device)
    with torch.no_grad():
        psi = _frequency_amplitudes(theta.detach().double(), phi.detach().double(), plan, shifted=False)
        psi = psi.view(plan["F"], -1)
        classes = (_bits(n, theta.device).sum(0)[None, :] == torch.arange(n + 1, device=theta.device)[:, None])
        weights = torch.empty(n + 1, 2**n, dtype=psi.dtype, device=psi.device)
        weights[:, plan["chain"]] = classes.to(psi.dtype)  # the last CNOT ladder, as in the plan's weights
        gram = torch.einsum("fj,cj,gj->cfg", psi, weights, psi.conj())  # (n+1, F, F)
        coef = torch.view_as_real(gram).reshape(n + 1, -1) @ plan["to_real"]
    return FourierSeries(spectrum("probability", n, depth)[0], coef)


def sample_expval_z(x: torch.Tensor, theta: torch.Tensor, phi: torch.Tensor, shots: int,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """Σ_i ⟨Z_i⟩ at every score, estimated from ``shots`` measurements as a device would.

    Each shot measures every qubit in the Z basis and scores n − 2·(number of 1s); the
    estimate is the mean over the shots. The counts per class are drawn exactly, from the
    multinomial distribution with the circuit's class probabilities P_c(x)
    (:func:`class_probability_series`), by successive binomial draws; no gradient flows
    through the draw. ``generator`` (default: torch's global one) makes it repeatable.

    Used in: :class:`sgdq.attention.QuantumAttention` (``shots=``), ``notebooks/07_ablations``.
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
