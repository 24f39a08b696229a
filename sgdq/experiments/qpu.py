"""Eq. (5) on a real device's terms: the circuit transpiled for an IBM device, its readout under
that device's noise, a fast exact surrogate for training, and what a QPU would cost.

Offline throughout: ``qiskit-ibm-runtime``'s fake backends carry calibration snapshots of real
IBM devices (gate and readout errors, T1/T2, durations, coupling map) and need no account.

* :func:`transpiled` — Eq. (5) (with the score ``x`` as a free parameter) in the device's native
  gates on its coupling map, transpiled once and bound per score afterwards.
* :func:`noisy_expval_z` — Φ(x) = Σᵢ⟨Zᵢ⟩ as the device would return it: qiskit-aer with the
  device's noise model, either sampled from ``shots`` or, with ``shots=None``, the exact noisy
  expectation (density matrix; the readout error applied as the affine map it is on ⟨Zᵢ⟩).
* :class:`NoisySeries` (:func:`noisy_series`) — the surrogate. For a fixed noise channel the
  noisy ⟨Zᵢ⟩ is still a trigonometric polynomial in x of degree at most n·depth (x enters through
  n·depth rotations; the noise does not depend on x), so 2·n·depth + 1 exact noisy evaluations
  fix it, and it is then evaluated for any number of scores at the cost of a polynomial.
* :class:`AffineChannel` (:func:`fit_channel`) and :func:`with_device_noise` — the device's noise
  *in training*, where θ and φ change every step so no fixed series applies: the noisy readout
  modelled as Φ_noisy ≈ a·Φ_exact + b (the readout error is exactly such a map per qubit, and
  depolarising gate noise shrinks each ⟨Zᵢ⟩ by a factor), with one (a, b) per device fitted by
  least squares to aer's exact noisy expectation over random scores and angles; the fit's
  residual is measured and reported beside the shot noise. The model's quantum attention layers
  then compute a·Φ + b from the exact ⟨Z⟩ readout.
* :func:`step_cost` — circuits, shots and device time for one training step of a model with
  quantum attention, set beside the simulator.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

from ..method.attention import QuantumAttention
from ..method.circuit import readout
from ..method.circuit.qiskit_circuit import build_circuit, circuit_bindings

DEVICE = "FakeManilaV2"  # a 5-qubit IBM Falcon device: Eq. (5)'s CNOT chain fits its line of qubits
# The attention shape of meta-llama/Llama-3.2-1B-Instruct (its config.json: num_hidden_layers 16,
# num_attention_heads 32), for the cost of quantum attention at the paper's LLM setting.
LLAMA_3_2_1B = dict(layers=16, heads=32)


def fake_backend(name: str = DEVICE):
    """A fake IBM backend by class name (``qiskit_ibm_runtime.fake_provider``), offline."""
    from qiskit_ibm_runtime import fake_provider

    cls = getattr(fake_provider, name, None)
    if cls is None:
        known = sorted(n for n in dir(fake_provider) if n.startswith("Fake") and n.endswith("V2"))
        raise ValueError(f"unknown fake backend {name!r}; qiskit-ibm-runtime has e.g. {known[:8]}")
    return cls()


def transpiled(backend, n_qubits: int = 4, depth: int = 2, measure: bool = False, seed: int = 0):
    """Eq. (5) with free parameters, transpiled for ``backend`` (optimization level 1, a fixed
    seed): native gates, the device's coupling map, an initial layout the transpiler picks."""
    from qiskit import transpile

    qc = build_circuit(n_qubits, depth)
    if measure:
        qc.measure_all()
    return transpile(qc, backend, optimization_level=1, seed_transpiler=seed)


def _bound(circuit, xs, theta, phi) -> list:
    return [circuit.assign_parameters(circuit_bindings(circuit, x, theta, phi)) for x in np.asarray(xs, float)]


def readout_errors(backend, circuit) -> np.ndarray:
    """Per virtual qubit i of ``circuit``: (P(read 1 | 0), P(read 0 | 1)) of the physical qubit it
    sits on, from the device's noise model."""
    from qiskit_aer.noise import NoiseModel

    model = NoiseModel.from_backend(backend).to_dict()
    by_physical = {}
    for err in model.get("errors", []):
        if err.get("type") == "roerror":
            (p0, p1) = err["probabilities"]
            for qubits in err["gate_qubits"]:
                by_physical[qubits[0]] = (p0[1], p1[0])
    layout = circuit.layout.final_index_layout() if circuit.layout is not None else list(range(circuit.num_qubits))
    return np.array([by_physical.get(physical, (0.0, 0.0)) for physical in layout])


def noisy_expval_z(xs, theta, phi, backend, shots: int | None = None, seed: int = 0, n_qubits: int | None = None,
                   depth: int | None = None) -> np.ndarray:
    """Φ(x) = Σᵢ⟨Zᵢ⟩ of Eq. (5) at every score in ``xs``, as ``backend`` would return it.

    ``shots``: counts sampled by qiskit-aer with the device's noise model (gate errors, thermal
    relaxation, readout error), Σᵢ (P(bit i = 0) − P(bit i = 1)) per score. ``shots=None``: the
    exact noisy expectation: the density matrix under gate noise, then each qubit's readout error
    as the affine map ⟨Z⟩ ↦ (1 − p₀₁ − p₁₀)⟨Z⟩ + (p₁₀ − p₀₁).
    """
    from qiskit_aer import AerSimulator
    from qiskit_aer.noise import NoiseModel

    theta, phi = np.asarray(theta, float), np.asarray(phi, float)
    depth, n_qubits = depth or theta.shape[0], n_qubits or theta.shape[1]
    noise = NoiseModel.from_backend(backend)
    if shots is not None:
        if not isinstance(shots, int) or shots < 1:
            raise ValueError(f"shots must be an integer >= 1 or None (exact), got {shots!r}")
        circuit = transpiled(backend, n_qubits, depth, measure=True)
        sim = AerSimulator(noise_model=noise, seed_simulator=seed)
        result = sim.run(_bound(circuit, xs, theta, phi), shots=shots).result()
        out = []
        for k in range(len(xs)):
            counts = result.get_counts(k)
            total = sum(counts.values())
            z = 0.0
            for bits, c in counts.items():  # bits: clbit n-1 … clbit 0; clbit i measured virtual qubit i
                z += c * sum(1 - 2 * int(b) for b in bits.replace(" ", "")[::-1][:n_qubits])
            out.append(z / total)
        return np.array(out)
    from qiskit.quantum_info import Pauli

    circuit = transpiled(backend, n_qubits, depth)
    layout = circuit.layout.final_index_layout()
    width = circuit.num_qubits
    for i in range(n_qubits):
        label = ["I"] * width
        label[width - 1 - layout[i]] = "Z"
        circuit.save_expectation_value(Pauli("".join(label)), list(range(width)), label=f"z{i}")
    sim = AerSimulator(method="density_matrix", noise_model=noise)
    result = sim.run(_bound(circuit, xs, theta, phi)).result()
    errors = readout_errors(backend, circuit)
    out = []
    for k in range(len(xs)):
        data = result.data(k)
        z = np.array([data[f"z{i}"] for i in range(n_qubits)])
        out.append(float(np.sum((1 - errors[:, 0] - errors[:, 1]) * z + (errors[:, 1] - errors[:, 0]))))
    return np.array(out)


@dataclass(frozen=True)
class NoisySeries:
    """Φ(x) = a₀ + Σₖ (aₖ cos kx + bₖ sin kx), k = 1 … K: the device's noisy readout as a
    trigonometric polynomial (see the module docstring)."""

    a: np.ndarray  # a₀ … a_K
    b: np.ndarray  # b₀ (= 0) … b_K

    def __call__(self, x) -> np.ndarray:
        x = np.asarray(x, float)
        k = np.arange(len(self.a))
        return np.cos(np.multiply.outer(x, k)) @ self.a + np.sin(np.multiply.outer(x, k)) @ self.b


def noisy_series(theta, phi, backend) -> NoisySeries:
    """The exact surrogate of :func:`noisy_expval_z` (``shots=None``) for these angles: its
    values at 2K + 1 equally spaced scores (K = n·depth) and the discrete Fourier transform."""
    theta = np.asarray(theta, float)
    K = theta.shape[0] * theta.shape[1]
    m = 2 * K + 1
    xs = 2 * math.pi * np.arange(m) / m
    values = noisy_expval_z(xs, theta, phi, backend)
    c = np.fft.rfft(values) / m
    a = np.concatenate([[c[0].real], 2 * c[1:K + 1].real])
    b = np.concatenate([[0.0], -2 * c[1:K + 1].imag])
    return NoisySeries(a, b)


@dataclass(frozen=True)
class AffineChannel:
    """Φ ↦ scale·Φ + offset: a device's noise on Φ = Σᵢ⟨Zᵢ⟩, as fitted by :func:`fit_channel`."""

    backend: str
    scale: float
    offset: float
    rms_residual: float  # of the fit against aer's exact noisy Φ, over its samples
    samples: int

    def __call__(self, phi):
        return phi * self.scale + self.offset


def fit_channel(backend, n_qubits: int = 4, depth: int = 2, angle_sets: int = 8, scores: int = 6,
                seed: int = 0) -> AffineChannel:
    """Least-squares (a, b) in Φ_noisy ≈ a·Φ_exact + b over ``angle_sets`` random (θ, φ) in
    [0, 2π) and ``scores`` random scores in [−π, π) each, the noisy values being aer's exact
    noisy expectation (:func:`noisy_expval_z`, no shots)."""
    rng = np.random.default_rng(seed)
    exact, noisy = [], []
    for _ in range(angle_sets):
        theta, phi = rng.uniform(0, 2 * math.pi, (2, depth, n_qubits))
        xs = rng.uniform(-math.pi, math.pi, scores)
        noisy.append(noisy_expval_z(xs, theta, phi, backend))
        exact.append(readout(torch.tensor(xs), torch.tensor(theta), torch.tensor(phi), "expval_z").numpy())
    exact, noisy = np.concatenate(exact), np.concatenate(noisy)
    (scale, offset), *_ = np.linalg.lstsq(np.stack([exact, np.ones_like(exact)], 1), noisy, rcond=None)
    residual = noisy - (scale * exact + offset)
    return AffineChannel(backend.name, float(scale), float(offset), float(np.sqrt(np.mean(residual**2))),
                         len(exact))


@lru_cache(maxsize=8)
def device_channel(name: str, n_qubits: int = 4, depth: int = 2) -> AffineChannel:
    """:func:`fit_channel` for the fake backend ``name``, computed once per process."""
    return fit_channel(fake_backend(name), n_qubits, depth)


class NoisyQuantumAttention(QuantumAttention):
    """:class:`~sgdq.method.attention.QuantumAttention` whose circuit term is a device's noisy
    readout, ``channel(Φ)`` with Φ the exact ⟨Z⟩ readout (gradients flow through the affine map)."""

    channel: AffineChannel

    def circuit_term(self, scores: torch.Tensor) -> torch.Tensor:
        return self.channel(super().circuit_term(scores))


def with_device_noise(model: torch.nn.Module, channel: AffineChannel) -> torch.nn.Module:
    """Turn every quantum attention layer of ``model`` into a :class:`NoisyQuantumAttention`
    reading through ``channel`` (in place; parameters and state are kept). Only the ``"expval_z"``
    readout is what a device measures, so any other readout is refused."""
    for module in model.modules():
        if isinstance(module, QuantumAttention) and module.quantum:
            if module.readout_kind != "expval_z":
                raise ValueError(f"device noise needs readout='expval_z' (what a device measures), got "
                                 f"readout={module.readout_kind!r}")
            module.__class__ = NoisyQuantumAttention
            module.channel = channel
    return model


NOISE_ARMS = ("Adam", "SGD λ=0.5", "Adam, noisy readout", "SGD λ=0.5, noisy readout")


def training_config(profile: str, **overrides):
    """Experiment 1's configuration for ``profile`` with the ⟨Z⟩ readout and the arms of the
    noisy-readout comparison (issue 17): Adam and SGD λ = 0.5, each with the exact readout and
    with :data:`DEVICE`'s noisy one, on the profile's seeds. Results go to
    ``data/results/qpu/<profile>/`` (:func:`training_dir`)."""
    from . import text_classification as tc

    return tc.config_for(profile, **{"readout": "expval_z", "optimizers": NOISE_ARMS, **overrides})


def training_dir(profile: str):
    from .store import results_dir

    return results_dir("qpu", profile)


def step_cost(batch: int, heads: int, seq: int, layers: int, n_qubits: int, depth: int, precision: float,
              seconds_per_shot: float) -> dict:
    """What one training step of a model with quantum attention asks of a QPU.

    * circuits: one per attention score, batch·heads·seq²·layers, for the forward pass;
    * gradients by the parameter-shift rule: the score x enters n·depth rotations, so ∂Φ/∂x needs
      2·n·depth shifted circuits, and each of the 2·n·depth angles θ, φ needs 2; per score
      1 + 2·n·depth + 2·(2·n·depth) circuits in all;
    * shots for a standard error ``precision`` on Φ = Σᵢ⟨Zᵢ⟩: a single shot's value lies in
      [−n, n], so its variance is at most n² and n²/precision² shots always suffice;
    * device time: circuits × shots × ``seconds_per_shot`` (a lower bound: no queueing, no
      compilation, no data transfer).
    """
    scores = batch * heads * seq * seq * layers
    per_score = 1 + 2 * n_qubits * depth + 2 * (2 * n_qubits * depth)
    shots = math.ceil(n_qubits**2 / precision**2)
    circuits = scores * per_score
    return dict(scores=scores, circuits_per_score=per_score, circuits=circuits, shots_per_circuit=shots,
                shots=circuits * shots, device_seconds=circuits * shots * seconds_per_shot)


def seconds_per_shot(backend, circuit) -> float:
    """One shot's time on ``backend``, from its calibration snapshot: the transpiled circuit's
    scheduled duration (gate and measurement durations along its critical path) plus the
    device's default repetition delay between shots. A lower bound on the wall time."""
    from qiskit.transpiler import InstructionDurations

    durations = InstructionDurations.from_backend(backend)
    total = 0.0
    per_qubit = [0.0] * circuit.num_qubits
    for inst in circuit.data:
        qubits = [circuit.find_bit(q).index for q in inst.qubits]
        try:
            d = durations.get(inst.operation.name, qubits, unit="s")
        except Exception:  # noqa: BLE001 - barriers, virtual rz and other zero-length instructions
            d = 0.0
        start = max(per_qubit[q] for q in qubits) if qubits else 0.0
        for q in qubits:
            per_qubit[q] = start + (d or 0.0)
        total = max(total, start + (d or 0.0))
    rep_delay = getattr(backend, "default_rep_delay", None)
    if rep_delay is None:
        raise ValueError(f"backend {backend.name} gives no default repetition delay")
    return total + rep_delay
