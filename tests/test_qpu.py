"""A device's noise and a QPU's cost (sgdq.experiments.qpu), checked against qiskit and by hand."""

import math

import numpy as np
import pytest
import torch

from sgdq.experiments import qpu
from sgdq.method.circuit.fourier import readout

pytest.importorskip("qiskit_ibm_runtime")


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(1)
    theta, phi = torch.rand(2, 4) * 2 * math.pi, torch.rand(2, 4) * 2 * math.pi
    return qpu.fake_backend(), theta.double(), phi.double()


def test_the_transpiled_circuit_without_noise_is_eq5(setup):
    """Native gates on the device's qubits, and still Eq. (5): its noiseless Σ⟨Zᵢ⟩ equals sgdq's."""
    from qiskit.quantum_info import Pauli, Statevector

    backend, theta, phi = setup
    circuit = qpu.transpiled(backend)
    assert set(circuit.count_ops()) <= set(backend.operation_names) | {"barrier"}
    layout = circuit.layout.final_index_layout()
    xs = np.array([-2.0, 0.3, 1.7])
    for x, bound in zip(xs, qpu._bound(circuit, xs, theta, phi)):
        state = Statevector(bound)
        width = bound.num_qubits
        z = sum(state.expectation_value(Pauli("".join("Z" if width - 1 - j == layout[i] else "I"
                                                      for j in range(width)))).real for i in range(4))
        assert z == pytest.approx(float(readout(torch.tensor([x]), theta, phi, "expval_z")), abs=1e-9)


def test_the_surrogate_is_exact_for_the_noisy_channel(setup):
    """A trigonometric polynomial of degree n·depth fitted at 17 scores reproduces aer's exact
    noisy expectation (density matrix, readout error applied) at scores it never saw."""
    backend, theta, phi = setup
    series = qpu.noisy_series(theta, phi, backend)
    xs = np.array([-2.9, -0.77, 0.41, 2.2, 5.0])
    np.testing.assert_allclose(series(xs), qpu.noisy_expval_z(xs, theta, phi, backend), atol=1e-10)
    clean = readout(torch.tensor(xs), theta, phi, "expval_z").numpy()
    assert np.abs(series(xs) - clean).max() > 1e-3  # the device's noise does change Φ


def test_the_surrogate_agrees_with_aers_noisy_sampling(setup):
    backend, theta, phi = setup
    xs = np.array([-1.0, 0.5, 2.0])
    shots = 20_000
    sampled = qpu.noisy_expval_z(xs, theta, phi, backend, shots=shots, seed=3)
    bound = 4 * 4 / math.sqrt(shots)  # 4 standard errors, with a single shot's spread at most n = 4
    np.testing.assert_array_less(np.abs(sampled - qpu.noisy_series(theta, phi, backend)(xs)), bound)


def test_step_cost_by_hand():
    cost = qpu.step_cost(batch=2, heads=1, seq=3, layers=1, n_qubits=2, depth=1, precision=0.5,
                         seconds_per_shot=1e-3)
    # 2·1·3²·1 = 18 scores; per score 1 + 2·2·1 + 2·(2·2·1) = 13 circuits; 2²/0.5² = 16 shots
    assert cost == dict(scores=18, circuits_per_score=13, circuits=234, shots_per_circuit=16, shots=3744,
                        device_seconds=pytest.approx(3.744))


def test_seconds_per_shot_comes_from_the_calibration(setup):
    backend, _, _ = setup
    circuit = qpu.transpiled(backend, measure=True)
    t = qpu.seconds_per_shot(backend, circuit)
    assert t > backend.default_rep_delay and t < backend.default_rep_delay + 1e-3


def test_bad_names_and_shots_are_refused(setup):
    backend, theta, phi = setup
    with pytest.raises(ValueError, match="unknown fake backend 'FakeNowhere'"):
        qpu.fake_backend("FakeNowhere")
    with pytest.raises(ValueError, match="shots must be an integer >= 1 or None"):
        qpu.noisy_expval_z([0.0], theta, phi, backend, shots=0)


# --------------------------------------------------------------------------------------
# The device's noise in training (issue 17): an affine channel on Φ, checked against aer
# --------------------------------------------------------------------------------------
def test_the_affine_channel_predicts_aers_noisy_readout_at_new_angles(setup):
    backend = setup[0]
    channel = qpu.fit_channel(backend, angle_sets=6, scores=6, seed=0)
    assert 0.5 < channel.scale < 1.0 and channel.rms_residual < 0.1
    rng = np.random.default_rng(11)  # angles and scores the fit never saw
    errors = []
    for _ in range(4):
        theta, phi = rng.uniform(0, 2 * np.pi, (2, 2, 4))
        xs = rng.uniform(-np.pi, np.pi, 5)
        exact = readout(torch.tensor(xs), torch.tensor(theta), torch.tensor(phi), "expval_z").numpy()
        errors.append(qpu.noisy_expval_z(xs, theta, phi, backend) - channel(exact))
    rms = float(np.sqrt(np.mean(np.concatenate(errors) ** 2)))
    assert rms < 2.5 * channel.rms_residual + 0.02
    # the channel is a real improvement on ignoring the noise
    no_model = [qpu.noisy_expval_z(xs, theta, phi, backend) - readout(torch.tensor(xs), torch.tensor(theta),
                                                                      torch.tensor(phi), "expval_z").numpy()]
    assert rms < float(np.sqrt(np.mean(np.concatenate(no_model) ** 2)))


def test_noisy_attention_reads_through_the_channel_and_keeps_gradients():
    from sgdq.method.attention import QuantumAttention

    torch.manual_seed(0)
    channel = qpu.AffineChannel("test", scale=0.8, offset=0.05, rms_residual=0.0, samples=0)
    exact = QuantumAttention(8, 2, readout="expval_z")
    noisy = qpu.with_device_noise(torch.nn.Sequential(QuantumAttention(8, 2, readout="expval_z")), channel)[0]
    noisy.load_state_dict(exact.state_dict())
    scores = torch.randn(3, 5)
    torch.testing.assert_close(noisy.circuit_term(scores), 0.8 * exact.circuit_term(scores) + 0.05)
    x = torch.randn(2, 4, 8)
    noisy(x).sum().backward()
    assert noisy.theta.grad is not None and noisy.theta.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="device noise needs readout='expval_z'"):
        qpu.with_device_noise(QuantumAttention(8, 2), channel)


def test_noisy_readout_arms_train_and_differ_from_the_exact_readout(tmp_path, monkeypatch):
    from sgdq.experiments import text_classification as tc

    monkeypatch.setattr(tc, "device_channel", lambda *a, **k: qpu.AffineChannel("test", 0.5, 0.3, 0.0, 0))
    cfg = qpu.training_config("smoke", seeds=1, epochs=1, workers=1)
    assert cfg.optimizers == qpu.NOISE_ARMS and cfg.readout == "expval_z"
    metrics = tc.run_experiment(cfg, tmp_path, progress=False).set_index("optimizer")
    assert metrics.loc["Adam", "train_loss"] != metrics.loc["Adam, noisy readout", "train_loss"]
    with pytest.raises(ValueError, match="needs readout='expval_z'"):
        tc.config_for("smoke", optimizers=("Adam, noisy readout",))
