"""Noise as Qiskit objects: the Aer backend's NoiseModel and circuit, built from the
same op list and the same channel placement as the fourier backend's simulation.

Placement (:mod:`superpos_cli.quantum.noise_spec`): after every gate of
:meth:`CircuitSpec.ops`, the listed kinds in order: ``depolarizing`` P on the gate's
qubits (one- or two-qubit), ``amplitude-damping`` P on each of them; ``readout``
flips each measured bit with probability P.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from qiskit import QuantumCircuit
from qiskit.circuit import Parameter
from qiskit_aer.noise import NoiseModel, QuantumError, ReadoutError, amplitude_damping_error, depolarizing_error

from superpos_cli.quantum.backends.qiskit_backend import QiskitCircuit
from superpos_cli.quantum.circuit import CircuitSpec

ONE_QUBIT_GATES = ("h", "ry", "rz")


def gate_error(noise: tuple[tuple[str, float], ...], n_gate_qubits: int) -> QuantumError | None:
    """The composed error after a gate on ``n_gate_qubits`` qubits (None: no channel)."""
    error = None
    for kind, p in noise:
        if kind == "depolarizing":
            part = depolarizing_error(p, n_gate_qubits)
        elif kind == "amplitude-damping":
            part = amplitude_damping_error(p)
            if n_gate_qubits == 2:
                part = part.tensor(part)
        else:
            continue
        error = part if error is None else error.compose(part)  # error first, then part
    return error


def readout_matrices(spec: CircuitSpec) -> list[np.ndarray]:
    """Per qubit, matrix[measured, prepared] of its readout error (identity if none)."""
    if spec.noise_device is not None:
        from superpos_cli.quantum.backends.devices import device_program

        program = device_program(spec)
        return [program.readout[program.final[v]] for v in range(spec.n_qubits)]
    p = dict(spec.noise).get("readout", 0.0)
    return [np.array([[1 - p, p], [p, 1 - p]])] * spec.n_qubits


def kinds_noise_model(spec: CircuitSpec) -> NoiseModel | None:
    """The NoiseModel of ``spec.noise`` (None when it is empty)."""
    if not spec.noise:
        return None
    model = NoiseModel(basis_gates=["h", "ry", "rz", "cx"])
    one, two = gate_error(spec.noise, 1), gate_error(spec.noise, 2)
    if one is not None:
        model.add_all_qubit_quantum_error(one, list(ONE_QUBIT_GATES))
        model.add_all_qubit_quantum_error(two, ["cx"])
    p = dict(spec.noise).get("readout")
    if p is not None:
        model.add_all_qubit_readout_error(ReadoutError([[1 - p, p], [p, 1 - p]]))
    return model


@dataclass
class AerProgram:
    """A circuit with bound angles and parameter ``x``, its NoiseModel, and the
    (Qiskit) qubits that carry superpos' qubits 0..n-1."""

    circuit: QuantumCircuit
    x: Parameter
    noise_model: NoiseModel | None
    layout: list[int]


def aer_noise(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> AerProgram:
    """The circuit Aer runs for ``spec`` with these angles, and its noise."""
    if spec.noise_device is not None:
        return _device_aer_program(spec, theta, phi)
    adapter = QiskitCircuit(spec)
    circuit = adapter.circuit.assign_parameters(adapter.angle_binds(theta, phi))
    return AerProgram(circuit, adapter.x, kinds_noise_model(spec), list(range(spec.n_qubits)))


def _device_aer_program(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor) -> AerProgram:
    """The transpiled device program (:mod:`.devices`) on the device's physical qubits."""
    from superpos_cli.quantum.backends.devices import device_program, load_device

    program = device_program(spec)
    theta_vec, phi_vec, x = program.parameters
    values = theta.detach().double().reshape(-1).tolist() + phi.detach().double().reshape(-1).tolist()
    bound = program.local_circuit.assign_parameters(dict(zip([*theta_vec, *phi_vec], values)), strict=False)
    circuit = QuantumCircuit(load_device(spec.noise_device).num_qubits)
    circuit.compose(bound, qubits=list(program.layout), inplace=True)
    measured = [program.layout[program.final[v]] for v in range(spec.n_qubits)]
    return AerProgram(circuit, x, program.noise_model, measured)
