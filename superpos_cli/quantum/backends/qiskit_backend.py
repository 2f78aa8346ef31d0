"""Qiskit adapter (the one place that knows Qiskit is little-endian) and the
``qiskit`` backend: ``qiskit.quantum_info.Statevector``, one input at a time.

Qubit q of :class:`CircuitSpec` is Qiskit qubit q, so drawings read naturally; only
basis indices differ: Qiskit puts qubit 0 in the least significant bit, superpos in
the most significant one. :func:`to_big_endian` and :func:`count_index` convert.
"""

from __future__ import annotations

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter, ParameterVector
from qiskit.quantum_info import Statevector

from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.readout import readout


class QiskitCircuit:
    """The spec as a parametrised ``QuantumCircuit`` with parameters theta, phi (flat,
    index layer * n_qubits + qubit) and x."""

    def __init__(self, spec: CircuitSpec):
        self.spec = spec
        size = spec.depth * spec.n_qubits
        self.theta = ParameterVector("theta", size)
        self.phi = ParameterVector("phi", size)
        self.x = Parameter("x")
        self.circuit = QuantumCircuit(spec.n_qubits, name="superpos")
        for op in spec.ops():
            if op.gate == "h":
                self.circuit.h(op.qubits[0])
            elif op.gate == "cx":
                self.circuit.cx(*op.qubits)
            else:
                name, layer, qubit = op.angle
                angle = getattr(self, name)[layer * spec.n_qubits + qubit]
                if op.gate == "ry":
                    self.circuit.ry(angle + self.x if op.encoded else angle, qubit)
                else:
                    self.circuit.rz(angle, qubit)

    def angle_binds(self, theta: torch.Tensor, phi: torch.Tensor) -> dict:
        """Parameter -> value for the learned angles, theta/phi of shape (depth, n_qubits)."""
        values = theta.detach().double().reshape(-1).tolist() + phi.detach().double().reshape(-1).tolist()
        return dict(zip([*self.theta, *self.phi], values))


def to_big_endian(data: np.ndarray, n_qubits: int) -> np.ndarray:
    """Reorder Qiskit amplitudes/probabilities (..., 2**n) to superpos' basis index."""
    lead = data.shape[:-1]
    tensor = data.reshape(*lead, *([2] * n_qubits))  # axes (..., q_{n-1}, ..., q_0)
    qubit_axes = tuple(range(len(lead), len(lead) + n_qubits))
    return tensor.transpose(*range(len(lead)), *qubit_axes[::-1]).reshape(*lead, 2**n_qubits)


def count_index(bitstring: str) -> int:
    """A Qiskit counts key (qubit 0 rightmost) -> superpos' basis index (qubit 0 MSB)."""
    return int(bitstring.replace(" ", "")[::-1], 2)


class QiskitStatevectorCircuit:
    """Fixed (theta, phi); each input x is bound and simulated on its own (float64)."""

    def __init__(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor):
        self.spec = spec
        adapter = QiskitCircuit(spec)
        self.x = adapter.x
        self.circuit = adapter.circuit.assign_parameters(adapter.angle_binds(theta, phi))

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        """x (...) -> psi(x) (..., 2**n), complex128, no autograd."""
        values = x.detach().double().reshape(-1).tolist()
        states = [Statevector(self.circuit.assign_parameters({self.x: v})).data for v in values]
        data = np.stack(states) if states else np.zeros((0, self.spec.dim), complex)  # (B, 2**n)
        data = to_big_endian(data, self.spec.n_qubits)
        return torch.from_numpy(data).reshape(*x.shape, self.spec.dim)

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        value = readout(self.statevector(x)[..., : self.spec.n_qubits], self.spec.readout)
        return torch.add(value, x.to(value.dtype), alpha=alpha) if alpha else value


class QiskitBackend:
    """Reference simulator: slow (one Statevector per input), independent of torch."""

    name = "qiskit"
    differentiable = False
    options = frozenset()

    def supports(self, spec: CircuitSpec) -> str | None:
        if spec.noisy or spec.shots is not None:
            return "backend 'qiskit' is an exact state-vector reference: no noise or shots; use backend 'aer'"
        return None

    def fallback_reason(self, spec: CircuitSpec) -> str | None:
        return None

    def prepare(self, spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> QiskitStatevectorCircuit:
        return QiskitStatevectorCircuit(spec, theta, phi)

    def prepare_many(self, spec: CircuitSpec, angles) -> list[QiskitStatevectorCircuit]:
        return [self.prepare(spec, theta, phi) for theta, phi in angles]
