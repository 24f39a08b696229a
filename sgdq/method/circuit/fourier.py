"""The fast path: Φ(x) of Eq. (4) as an exact Fourier series in the score x.

With angle encoding (x added to every R_y angle of Eq. (5)), every amplitude is a trigonometric
polynomial in x whose frequencies are multiples of 1/2 up to (n·depth)/2 (Schuld, Sweke & Meyer
2021), with coefficients that depend on θ and φ only. :func:`fourier_series` computes them once
per forward pass in closed form: R_y is diagonal in the eigenbasis of Y, so a layer of R_y(θ + x)
shifts each rotated basis state by a known frequency, and the state is carried as a small table
over frequencies (see :class:`SeriesPlan`). Their θ/φ-gradients come from the parameter-shift
rule, all shifted circuits in one batch. :func:`evaluate_series` then evaluates the series for
every score with two trigonometric calls and a rotation recurrence; :func:`readout` is the entry
point and can also take the gate-by-gate reference path.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import torch

from .statevector import (
    _bits,
    _cnot_permutation,
    check_angles,
    check_readout,
    readout_from_state,
    readout_weights,
    statevector,
)


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


def spectrum(kind: str, n_qubits: int, depth: int) -> tuple[float, int]:
    """(base ω, highest harmonic M) of Φ's Fourier series for this readout and circuit.

    With L = n_qubits·depth encoding gates, each amplitude holds the frequencies
    −L/2, −L/2 + 1, …, L/2 (Schuld, Sweke & Meyer 2021). The amplitude readout inherits
    them (multiples of 1/2 when L is odd); |ψ_k|² holds their differences, 0 … L.
    """
    check_readout(kind)
    L = n_qubits * depth
    if kind == "amplitude":
        return (1.0, L // 2) if L % 2 == 0 else (0.5, L)
    return 1.0, L


@dataclass(frozen=True)
class SeriesPlan:
    """Everything :func:`_frequency_amplitudes` and :class:`_SeriesCoefficients` need that does
    not depend on θ, φ: constants in float64 / complex128, built once per circuit shape by
    :func:`series_plan`.

    The key fact: R_y(α) = W·diag(e^{iα/2}, e^{−iα/2})·W†, with W's columns the eigenvectors
    (1, ∓i)/√2 of the generator. A layer of R_y(θ_q + x) on all n qubits is therefore
    V·D(θ)·E(x)·V† with V = W^{⊗n}: basis state j of the rotated frame picks up the phase
    e^{i·(θ·s_j)/2} and the frequency ν_j = (n − 2·popcount j)/2 in x, where s_j = ±1 per
    qubit. Tracking the state as a table over frequencies (one row per frequency) gives Φ's
    Fourier coefficients exactly, without sampling. Per layer l, with the state a row of
    F_l·2**n numbers (F_l = l·n + 1 frequencies):

    * ψ ← ψ @ ``rotates[l]``: back through V† after the previous CNOT ladder (layer 0 starts
      from ``plus_rotated`` = V†·H^{⊗n}|0⟩ instead);
    * ψ ← ψ ⊙ e^{i θ_l·s_j / 2}: the R_y phases;
    * ψ ← ψ @ ``spreads[l]``: rotated-frame state j moves up by its frequency shift, then back
      through V;
    * ψ ← ψ ⊙ e^{i φ_l·sign_k / 2}: the R_z phases.

    Every phase angle is linear in the P = 2·depth·n angles, so one product with ``project``
    gives them all; ``phase_offsets`` adds the parameter shifts (A = 2P + 1 angle sets).
    """

    base: float  # the series' base frequency ω
    M: int  # highest harmonic
    P: int  # angles: θ then φ
    A: int  # angle sets: unshifted, each angle +shift, each angle −shift
    F: int  # frequencies of the final amplitudes, k − n·depth/2 for k = 0 … n·depth
    factor: float  # parameter-shift factor c in f′ = [f(+s) − f(−s)]·c
    dim: int  # 2**n
    chain: torch.Tensor  # the CNOT ladder as a permutation: new[k] = old[chain[k]]
    project: torch.Tensor  # (P, 2·depth·dim): angles → phase angles
    phase_offsets: torch.Tensor  # (A, 2·depth·dim): the parameter shifts' phase angles
    spreads: tuple  # per layer, (F_l·dim, F_{l+1}·dim)
    rotates: tuple  # per layer, None for layer 0
    plus_rotated: torch.Tensor  # (dim,)
    last_weights: torch.Tensor  # readout weights with the last CNOT ladder folded in
    to_real: torch.Tensor  # complex coefficients (as real pairs) → a_0, b_0, a_1, b_1, …


def _rotated_frame(n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """V = W^{⊗n} (qubit 0 the low bit) and the CNOT ladder as one permutation."""
    w = torch.tensor([[1, 1], [-1j, 1j]], dtype=torch.complex128, device=device) / math.sqrt(2)
    V = torch.ones(1, 1, dtype=torch.complex128, device=device)
    for _ in range(n):
        V = torch.kron(w, V)
    chain = torch.arange(2**n, device=device)
    for q in range(n - 1):
        chain = chain[_cnot_permutation(q, q + 1, n, device)]
    return V, chain


def _shift_offsets(P: int, shift: float, device) -> torch.Tensor:
    """(2P + 1, P): no shift, then each angle shifted by +shift, then by −shift."""
    offsets = torch.zeros(2 * P + 1, P, dtype=torch.float64, device=device)
    idx = torch.arange(P, device=device)
    offsets[1 + idx, idx] = shift
    offsets[1 + P + idx, idx] = -shift
    return offsets


def _layer_matrices(n: int, depth: int, V: torch.Tensor, chain: torch.Tensor):
    """``project`` and, per layer, the constant ``spread`` and ``rotate`` matrices (see SeriesPlan)."""
    dim, P = 2**n, 2 * depth * n
    bits = _bits(n, V.device)
    sign = (2 * bits - 1).to(torch.float64)  # (n, dim): −1 where bit q is 0
    shifts = (n - bits.sum(0)).tolist()  # frequency index gained by rotated-frame state j: 0 … n
    v_dag_after_ladder = torch.empty_like(V)
    v_dag_after_ladder[chain] = V.conj()  # ψ[chain] @ conj(V) == ψ @ this
    c128 = dict(dtype=torch.complex128, device=V.device)
    project = torch.zeros(P, 2 * depth * dim, dtype=torch.float64, device=V.device)
    spreads, rotates = [], []
    for layer in range(depth):
        f_in, f_out = layer * n + 1, (layer + 1) * n + 1
        project[layer * n : (layer + 1) * n, 2 * layer * dim : (2 * layer + 1) * dim] = -sign / 2
        project[P // 2 + layer * n : P // 2 + (layer + 1) * n, (2 * layer + 1) * dim : (2 * layer + 2) * dim] = (
            sign / 2
        )
        spread = torch.zeros(f_in * dim, f_out * dim, **c128)
        for k in range(f_in):
            for jj in range(dim):
                lo = (k + shifts[jj]) * dim
                spread[k * dim + jj, lo : lo + dim] = V[:, jj]
        spreads.append(spread)
        rotates.append(torch.kron(torch.eye(f_in, **c128), v_dag_after_ladder) if layer else None)
    return project, tuple(spreads), tuple(rotates)


def _to_real(kind: str, n: int, depth: int, base: float, M: int, last_weights: torch.Tensor) -> torch.Tensor:
    """The map from the complex coefficients (as real pairs) to a_0, b_0, a_1, b_1, … with
    Φ(x) = Σ_m a_m cos(m·base·x) + b_m sin(m·base·x)."""
    F, dim = depth * n + 1, 2**n
    freqs = torch.arange(F, dtype=torch.float64, device=last_weights.device) - depth * n / 2
    if kind == "amplitude":  # Φ = Re Σ_f c_f e^{ifx}: c_f = ψ_f · w
        fx = freqs
    else:  # Φ = Σ_{f,g} G[f,g] e^{i(f−g)x}, G[f,g] = Σ_k w_k ψ_{f,k} conj(ψ_{g,k})
        fx = (freqs[:, None] - freqs[None, :]).reshape(-1)
    to_real = torch.zeros(2 * len(fx), 2 * (M + 1), dtype=torch.float64, device=last_weights.device)
    for r, f in enumerate(fx.tolist()):
        m = int(round(abs(f) / base))
        to_real[2 * r, 2 * m] = 1.0  # Re c · cos
        if f != 0:
            to_real[2 * r + 1, 2 * m + 1] = -1.0 if f > 0 else 1.0  # −Im c · sin(f x)
    if kind == "amplitude":  # c_f = Σ_j w_j ψ_{f,j} with real w: fold w into the same matrix
        to_real = (last_weights[None, :, None, None] * to_real.view(F, 1, 2, -1)).reshape(F * dim * 2, -1)
    return to_real


@functools.lru_cache(maxsize=64)
def series_plan(n: int, depth: int, kind: str, device: torch.device) -> SeriesPlan:
    """The :class:`SeriesPlan` of a circuit shape and readout (cached)."""
    base, M = spectrum(kind, n, depth)
    P = 2 * depth * n
    shift, factor = (math.pi, 0.25) if kind == "amplitude" else (math.pi / 2, 0.5)
    V, chain = _rotated_frame(n, device)
    project, spreads, rotates = _layer_matrices(n, depth, V, chain)
    weights = readout_weights(kind, n, device, torch.float64)
    last_weights = torch.empty_like(weights)
    last_weights[chain] = weights  # the last CNOT ladder, folded into the readout
    dim = 2**n
    plus = torch.full((dim,), dim**-0.5, dtype=torch.complex128, device=device)
    return SeriesPlan(
        base=base, M=M, P=P, A=2 * P + 1, F=depth * n + 1, factor=factor, dim=dim, chain=chain,
        project=project, phase_offsets=_shift_offsets(P, shift, device) @ project, spreads=spreads,
        rotates=rotates, plus_rotated=plus @ V.conj(), last_weights=last_weights.to(torch.complex128),
        to_real=_to_real(kind, n, depth, base, M, last_weights),
    )


def _frequency_amplitudes(theta, phi, plan, shifted: bool = True):
    """The final amplitudes as a table over frequencies, for every shifted angle set.

    Returns ψ of shape (A, F·2**n) complex128 with ψ(x) = Σ_k ψ[:, k·2**n : (k+1)·2**n]·
    e^{i(k − nD/2)x} (the last CNOT ladder left out; ``plan.last_weights`` accounts for
    it). ``theta`` and ``phi`` are float64 (depth, n). Four small operations per layer.
    ``shifted=False`` computes only the unshifted angles (A = 1), when no gradient is wanted.
    """
    A, dim = (plan.A, plan.dim) if shifted else (1, plan.dim)
    angles = torch.add(plan.phase_offsets[:A], torch.cat([theta.reshape(-1), phi.reshape(-1)]) @ plan.project)
    phases = torch.complex(torch.cos(angles), torch.sin(angles)).view(A, -1, 1, dim)  # (A, 2·depth, 1, dim)
    psi = plan.plus_rotated.view(1, 1, dim)
    for layer, (spread, rotate) in enumerate(zip(plan.spreads, plan.rotates)):
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
        plan = series_plan(n, depth, kind, theta.device)
        P = plan.P
        psi = _frequency_amplitudes(theta.detach().double(), phi.detach().double(), plan)
        if kind == "amplitude":  # the readout weights are folded into to_real
            c = psi
        else:
            psi = psi.view(plan.A, plan.F, -1)
            c = (psi * plan.last_weights) @ psi.conj().transpose(1, 2)  # (A, F, F)
        coefs = torch.view_as_real(c).reshape(plan.A, -1) @ plan.to_real  # (2P+1, 2(M+1))
        if ctx.needs_input_grad[0] or ctx.needs_input_grad[1]:
            jac = (coefs[1 : P + 1] - coefs[P + 1 :]) * plan.factor  # (P, 2(M+1))
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
    """
    depth, n = check_angles(theta, phi)
    check_readout(kind)
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
    """
    check_readout(kind)  # the angles are checked by statevector() and fourier_series() themselves
    if method == "statevector":
        return readout_from_state(statevector(x, theta, phi), kind)
    if method != "fourier":
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    return evaluate_series(x, fourier_series(theta, phi, kind))
