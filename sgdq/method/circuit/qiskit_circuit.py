"""Eq. (5) as a Qiskit circuit, and qiskit-aer's statevectors: the ground truth the torch paths
are checked against (tests, ``notebooks/02_circuit``) and the baseline of the benchmarks."""

from __future__ import annotations

import math

import torch

from .statevector import check_circuit_size


def build_circuit(n_qubits: int = 4, depth: int = 2):
    """Eq. (5) as a :class:`qiskit.QuantumCircuit` with free Parameters.

    Returns a circuit whose parameters are ``x`` (the score), ``θ[l*n + i]`` and
    ``φ[l*n + i]`` (two :class:`qiskit.circuit.ParameterVector` of length depth·n, row-major
    in (layer, qubit)). Bind them with :func:`bind_circuit`.
    """
    from qiskit import QuantumCircuit
    from qiskit.circuit import Parameter, ParameterVector

    check_circuit_size(n_qubits, depth)
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
    """
    import numpy as np
    from qiskit import transpile
    from qiskit_aer import AerSimulator

    theta, phi = torch.as_tensor(theta), torch.as_tensor(phi)
    check_circuit_size(theta.shape[1], theta.shape[0])
    xs = [float(x) for x in torch.as_tensor(xs).reshape(-1)]
    if not xs:  # qiskit-aer crashes the process on a run with zero parameter binds
        return torch.zeros(0, 2 ** theta.shape[1], dtype=torch.complex128)
    if not all(math.isfinite(x) for x in xs):
        raise ValueError("aer_statevectors: every score must be finite")
    qc = build_circuit(theta.shape[1], theta.shape[0])
    qc.save_statevector()
    sim = AerSimulator(method="statevector")
    tqc = transpile(qc, sim)
    one = circuit_bindings(tqc, 0.0, theta, phi)
    binds = {p: (xs if p.name == "x" else [v] * len(xs)) for p, v in one.items()}
    result = sim.run(tqc, parameter_binds=[binds]).result()
    return torch.from_numpy(np.stack([np.asarray(result.get_statevector(i)) for i in range(len(xs))]))


