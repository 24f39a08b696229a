"""sgdq.method.circuit against Qiskit's own simulation, finite differences and the DFT."""

import math

import numpy as np
import pytest
import torch
from qiskit.quantum_info import Operator, SparsePauliOp, Statevector

from sgdq.method.circuit import (
    READOUTS,
    bind_circuit,
    build_circuit,
    fourier_series,
    readout,
    readout_from_state,
    spectrum,
    statevector,
)

SIZES = [(1, 1), (2, 1), (2, 3), (3, 2), (4, 2), (5, 1)]


def random_angles(depth, n, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(depth, n, generator=g, dtype=dtype) * 4 * math.pi - 2 * math.pi,
            torch.rand(depth, n, generator=g, dtype=dtype) * 4 * math.pi - 2 * math.pi)


def qiskit_states(n, depth, xs, theta, phi):
    qc = build_circuit(n, depth)
    return np.stack([Statevector(bind_circuit(qc, float(x), theta, phi)).data for x in xs])


def qiskit_readout(state: np.ndarray, kind: str, n: int) -> float:
    """Φ computed from a Qiskit Statevector with Qiskit's own operators (independent of sgdq)."""
    sv = Statevector(state)
    if kind == "amplitude":
        return float(np.sum(sv.data[:n].real))
    if kind == "probability":
        return float(np.sum(sv.probabilities()[:n]))
    zs = SparsePauliOp.from_sparse_list([("Z", [q], 1.0) for q in range(n)], num_qubits=n)
    return float(sv.expectation_value(zs).real)


def test_circuit_structure_matches_eq5():
    qc = build_circuit(3, 2)
    names = [inst.operation.name for inst in qc.data]
    layer = ["ry", "rz"] * 3 + ["cx", "cx"]
    assert names == ["h"] * 3 + layer * 2
    # the CNOTs go i -> i+1 and each R_y carries the score x
    cx = [tuple(qc.find_bit(q).index for q in inst.qubits) for inst in qc.data if inst.operation.name == "cx"]
    assert cx == [(0, 1), (1, 2)] * 2
    for inst in qc.data:
        if inst.operation.name == "ry":
            assert {p.name for p in inst.operation.params[0].parameters} & {"x"}
    assert len(qc.parameters) == 1 + 2 * 2 * 3


@pytest.mark.parametrize("n,depth", SIZES)
def test_statevector_matches_qiskit(n, depth):
    theta, phi = random_angles(depth, n, seed=n * 10 + depth)
    xs = torch.empty(9, dtype=torch.float64).uniform_(-20, 20, generator=torch.Generator().manual_seed(1))
    ref = qiskit_states(n, depth, xs, theta, phi)
    ours = statevector(xs, theta, phi).numpy()
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    # float32 inputs stay within the tolerance too
    ours32 = statevector(xs.float(), theta.float(), phi.float()).numpy()
    np.testing.assert_allclose(ours32, ref, atol=1e-5)


def test_statevector_is_qiskit_unitary_applied_to_zero():
    """A second, independent route: Qiskit's Operator of the bound circuit, first column."""
    theta, phi = random_angles(2, 4, seed=3)
    qc = build_circuit(4, 2)
    U = Operator(bind_circuit(qc, 1.7, theta, phi)).data
    np.testing.assert_allclose(statevector(torch.tensor(1.7, dtype=torch.float64), theta, phi).numpy(),
                               U[:, 0], atol=1e-12)


@pytest.mark.parametrize("kind", READOUTS)
@pytest.mark.parametrize("n,depth", SIZES)
def test_readouts_match_qiskit(kind, n, depth):
    theta, phi = random_angles(depth, n, seed=7 * n + depth)
    xs = torch.empty(7, dtype=torch.float64).uniform_(-20, 20, generator=torch.Generator().manual_seed(2))
    states = qiskit_states(n, depth, xs, theta, phi)
    ref = np.array([qiskit_readout(s, kind, n) for s in states])
    for method in ("fourier", "statevector"):
        got = readout(xs, theta, phi, kind, method=method).numpy()
        np.testing.assert_allclose(got, ref, atol=1e-5, err_msg=method)
        got32 = readout(xs.float(), theta.float(), phi.float(), kind, method=method).numpy()
        np.testing.assert_allclose(got32, ref, atol=1e-5, err_msg=f"{method} float32")


def test_batched_over_any_shape():
    theta, phi = random_angles(2, 4, seed=0)
    x = torch.randn(3, 2, 5, dtype=torch.float64) * 6
    sv = statevector(x, theta, phi)
    assert sv.shape == (3, 2, 5, 16)
    np.testing.assert_allclose(sv[1, 0, 3].numpy(), statevector(x[1, 0, 3:4], theta, phi)[0].numpy())
    for kind in READOUTS:
        r = readout(x, theta, phi, kind)
        assert r.shape == x.shape
        np.testing.assert_allclose(r.numpy(), readout(x.reshape(-1), theta, phi, kind).reshape(x.shape).numpy())


@pytest.mark.parametrize("kind", READOUTS)
@pytest.mark.parametrize("method", ["fourier", "statevector"])
@pytest.mark.parametrize("depth,n", [(2, 3), (1, 3)])  # n·depth even and odd (base 1 and 1/2)
def test_gradients_match_finite_differences(kind, method, depth, n):
    theta, phi = random_angles(depth, n, seed=11)
    x = torch.tensor([-13.0, -0.4, 0.0, 2.5, 17.9], dtype=torch.float64)
    w = torch.tensor([0.3, -1.2, 0.7, 2.0, -0.5], dtype=torch.float64)  # a generic linear functional

    def f(x_, t_, p_):
        return (readout(x_, t_, p_, kind, method=method) * w).sum()

    args = [x.clone().requires_grad_(), theta.clone().requires_grad_(), phi.clone().requires_grad_()]
    grads = torch.autograd.grad(f(*args), args)
    h = 1e-6
    for which, g in enumerate(grads):
        base = [a.detach().clone() for a in args]
        fd = torch.zeros_like(base[which])
        for i in range(fd.numel()):
            plus = [b.clone() for b in base]
            minus = [b.clone() for b in base]
            plus[which].view(-1)[i] += h
            minus[which].view(-1)[i] -= h
            fd.view(-1)[i] = (f(*plus) - f(*minus)) / (2 * h)
        np.testing.assert_allclose(g.numpy(), fd.numpy(), atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("kind", READOUTS)
def test_fourier_path_equals_reference_path_float32(kind):
    theta, phi = random_angles(2, 4, seed=5, dtype=torch.float32)
    x = torch.randn(4, 4, 8, 8) * 5
    args_f = [x.clone().requires_grad_(), theta.clone().requires_grad_(), phi.clone().requires_grad_()]
    args_s = [x.clone().requires_grad_(), theta.clone().requires_grad_(), phi.clone().requires_grad_()]
    yf = readout(*args_f, kind)
    ys = readout(*args_s, kind, method="statevector")
    torch.testing.assert_close(yf, ys, atol=1e-5, rtol=1e-5)
    g = torch.randn_like(yf)
    (yf * g).sum().backward()
    (ys * g).sum().backward()
    for a, b in zip(args_f, args_s):
        torch.testing.assert_close(a.grad, b.grad, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("kind", READOUTS)
def test_partial_gradients_equal_full_gradients(kind):
    """The fast path keeps different things for backward depending on which inputs need a
    gradient (x only, angles only, both, none); every combination gives the same numbers."""
    theta, phi = random_angles(2, 4, seed=3)
    x = torch.randn(3, 7, dtype=torch.float64) * 4
    g = torch.randn(3, 7, dtype=torch.float64)
    full = [x.clone().requires_grad_(), theta.clone().requires_grad_(), phi.clone().requires_grad_()]
    y_full = readout(*full, kind)
    grads_full = torch.autograd.grad((y_full * g).sum(), full)
    for need in [(True, False, False), (False, True, True), (False, True, False)]:
        args = [a.clone().requires_grad_(r) for a, r in zip((x, theta, phi), need)]
        y = readout(*args, kind)
        torch.testing.assert_close(y, y_full.detach(), atol=1e-13, rtol=0)  # mv vs mm rounding
        wanted = [a for a in args if a.requires_grad]
        got = torch.autograd.grad((y * g).sum(), wanted)
        expected = [gf for gf, r in zip(grads_full, need) if r]
        for a, b in zip(got, expected):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
    with torch.no_grad():
        torch.testing.assert_close(readout(x, theta, phi, kind), y_full.detach(), atol=1e-13, rtol=0)


@pytest.mark.parametrize("kind", READOUTS)
@pytest.mark.parametrize("n,depth", [(4, 2), (3, 1), (3, 3)])
def test_spectrum_is_bounded_as_claimed(kind, n, depth):
    """Dense sampling + numpy's FFT: no frequency above the bound of spectrum()."""
    theta, phi = random_angles(depth, n, seed=depth)
    base, M = spectrum(kind, n, depth)
    N = 256
    period = 2 * math.pi / base
    xs = torch.arange(N, dtype=torch.float64) * period / N
    vals = readout(xs, theta, phi, kind, method="statevector").numpy()
    amp = np.abs(np.fft.rfft(vals)) / N
    assert amp[M + 1 :].max() < 1e-12
    series = fourier_series(theta, phi, kind)
    # the series' coefficients are numpy's FFT bins
    np.testing.assert_allclose(series.a.numpy()[1:], 2 * np.fft.rfft(vals).real[1 : M + 1] / N, atol=1e-12)
    np.testing.assert_allclose(series.b.numpy()[1:], -2 * np.fft.rfft(vals).imag[1 : M + 1] / N, atol=1e-12)


def test_readout_from_state_weights():
    state = torch.zeros(16, dtype=torch.complex128)
    state[3] = 0.6
    state[5] = 0.8j  # |0101>: popcount 2
    assert readout_from_state(state, "amplitude").item() == pytest.approx(0.6)
    assert readout_from_state(state, "probability").item() == pytest.approx(0.36)
    # <Z_sum>: |0011> has eigenvalue 4 - 2*2 = 0, |0101> too
    assert readout_from_state(state, "expval_z").item() == pytest.approx(0.0)
    state = torch.zeros(16, dtype=torch.complex128)
    state[0] = 1
    assert readout_from_state(state, "expval_z").item() == pytest.approx(4.0)


def test_bad_arguments_are_refused_by_name():
    theta, phi = random_angles(2, 4, seed=0)
    with pytest.raises(ValueError, match="readout kind.*amplitude"):
        readout(torch.zeros(3), theta, phi, "amplitudes")
    with pytest.raises(ValueError, match="method.*fourier"):
        readout(torch.zeros(3), theta, phi, method="exact")
    with pytest.raises(ValueError, match="theta and phi"):
        readout(torch.zeros(3), theta, phi[:, :3])
    with pytest.raises(ValueError, match="n_qubits"):
        build_circuit(0, 2)
    with pytest.raises(ValueError, match="depth"):
        build_circuit(4, 1.5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_runs_on_cuda():
    theta, phi = random_angles(2, 4, seed=0, dtype=torch.float32)
    x = torch.randn(2, 4, 8, 8) * 4
    ref = readout(x, theta, phi)
    for method in ("fourier", "statevector"):
        out = readout(x.cuda(), theta.cuda().requires_grad_(), phi.cuda(), method=method)
        assert out.is_cuda
        out.sum().backward()
        torch.testing.assert_close(out.cpu(), ref, atol=1e-5, rtol=1e-5)


# --------------------------------------------------------------------------------------
# Finite shots
# --------------------------------------------------------------------------------------
def _class_probabilities_from_qiskit(x, theta, phi, n):
    probs = Statevector(bind_circuit(build_circuit(n, theta.shape[0]), x, theta, phi)).probabilities()
    out = np.zeros(n + 1)
    for k, p in enumerate(probs):
        out[bin(k).count("1")] += p
    return out


@pytest.mark.parametrize("n,depth", [(4, 2), (3, 1), (2, 3)])
def test_class_probabilities_match_qiskit(n, depth):
    from sgdq.method.circuit import FourierSeries, class_probability_series, evaluate_series

    theta, phi = random_angles(depth, n, seed=n + depth)
    series = class_probability_series(theta, phi)
    xs = [-7.1, -0.3, 0.0, 2.2, 11.5]
    for x in xs:
        got = [float(evaluate_series(torch.tensor([x], dtype=torch.float64), FourierSeries(series.base, c)))
               for c in series.coef]
        np.testing.assert_allclose(got, _class_probabilities_from_qiskit(x, theta, phi, n), atol=1e-12)


def test_aer_shots_follow_the_class_probabilities():
    """qiskit-aer's own measurement sampling agrees with the distribution we sample from
    (a chi-square test per score; the seed makes it deterministic)."""
    from qiskit import transpile
    from qiskit_aer import AerSimulator
    from scipy import stats as sps

    theta, phi = random_angles(2, 4, seed=8)
    sim = AerSimulator(seed_simulator=11)
    shots = 4000
    for x in (-1.3, 0.4, 5.0):
        qc = bind_circuit(build_circuit(4, 2), x, theta, phi)
        qc.measure_all()
        counts = sim.run(transpile(qc, sim), shots=shots).result().get_counts()
        observed = np.zeros(5)
        for bits, c in counts.items():
            observed[bits.count("1")] += c
        expected = _class_probabilities_from_qiskit(x, theta, phi, 4) * shots
        keep = expected > 5
        stat = ((observed[keep] - expected[keep]) ** 2 / expected[keep]).sum()
        assert sps.chi2.sf(stat, keep.sum() - 1) > 1e-3, (x, observed, expected)


def test_shot_estimates_have_the_right_mean_and_variance():
    from sgdq.method.circuit import eigenvalue_classes, sample_expval_z

    theta, phi = random_angles(2, 4, seed=2)
    x = torch.tensor([-2.0, 0.5, 3.3], dtype=torch.float64)
    reps, shots = 20000, 40
    est = sample_expval_z(x.repeat(reps), theta, phi, shots, generator=torch.Generator().manual_seed(0))
    est = est.view(reps, 3)
    exact = readout(x, theta, phi, "expval_z")
    p = torch.tensor(np.stack([_class_probabilities_from_qiskit(float(v), theta, phi, 4) for v in x], 1))
    e = eigenvalue_classes(4)[:, None]
    var = (p * e**2).sum(0) - (p * e).sum(0) ** 2  # one shot's variance
    z = (est.mean(0) - exact) / (var / shots / reps).sqrt()
    assert z.abs().max() < 4.5
    torch.testing.assert_close(est.var(0) / (var / shots), torch.ones(3, dtype=torch.float64), atol=0.05, rtol=0)
    # an estimate is a mean of per-shot values n − 2·popcount (all even for n = 4), within [−n, n]
    total = est * shots
    assert torch.allclose(total, total.round()) and (total.round() % 2 == 0).all()
    assert est.abs().max() <= 4


def test_shots_must_be_a_positive_integer():
    from sgdq.method.circuit import sample_expval_z

    theta, phi = random_angles(2, 4, seed=0)
    for bad in (0, -3, 2.5, True, None):
        with pytest.raises(ValueError, match="shots must be an integer >= 1"):
            sample_expval_z(torch.zeros(3), theta, phi, bad)


def test_aer_with_no_scores_returns_empty_instead_of_crashing():
    """qiskit-aer kills the process on a run with zero parameter binds; we return an empty batch."""
    from sgdq.method.circuit import aer_statevectors

    out = aer_statevectors(torch.zeros(0), torch.rand(2, 4), torch.rand(2, 4))
    assert out.shape == (0, 16) and out.dtype == torch.complex128
    with pytest.raises(ValueError, match="finite"):
        aer_statevectors(torch.tensor([0.1, float("nan")]), torch.rand(2, 4), torch.rand(2, 4))
