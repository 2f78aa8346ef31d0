"""Real-device calibrations: IBM snapshots from qiskit-ibm-runtime's offline fake provider.

Optional extra ``devices`` (``pip install 'superpos_cli[devices]'``); importing the
provider takes about 5 s, so this module is loaded only for a spec with
``noise_device``.

The program (:func:`device_program`, cached per spec):

- layout: a fixed chain of n physical qubits, from qubit 0, each next qubit the
  lowest-numbered unused neighbour of the last one in the device's coupling map
  (:func:`chain_layout`); superpos qubit v starts on chain position v;
- the circuit of :meth:`CircuitSpec.ops`, with theta, phi and x kept symbolic,
  transpiled to the device's basis gates on that chain (coupling map restricted to
  it, ``optimization_level=0``, ``seed_transpiler=0``); ``ring`` routes its closing
  CNOT with SWAPs, and the final layout says where each qubit ends up;
- noise: the snapshot's gate errors with thermal relaxation (qiskit-aer's
  ``basic_device_gate_errors`` on the backend's target, exactly what
  ``NoiseModel.from_backend`` adds for gates) after every gate, and its readout
  errors on the measured qubits.

Every rotation angle of the transpiled program is an affine function of (theta,
phi, x), read off its ParameterExpression, so the fourier backend runs it as a folded
Pauli transfer program (:func:`device_instructions`, :mod:`.ptm`: the fixed gates with
their relaxation and gate errors fold into a few dense maps once), and the Aer
backend runs the same program under the same NoiseModel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from superpos_cli.errors import BadInput
from superpos_cli.quantum.circuit import CircuitSpec

_SKIPPED = ("barrier", "delay", "measure")


@lru_cache(maxsize=None)
def load_device(name: str):
    """The fake backend (BackendV2) named ``name``."""
    try:
        from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2
    except ImportError:
        raise BadInput("noise_device needs qiskit-ibm-runtime: pip install 'superpos_cli[devices]'") from None
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "not intended to represent typical error values"
        return FakeProviderForBackendV2().backend(name)


def chain_layout(backend, n: int) -> list[int]:
    """n physical qubits forming a path from qubit 0, greedily by lowest index."""
    edges = backend.coupling_map.get_edges() if backend.coupling_map is not None else []
    neighbours: dict[int, set[int]] = {}
    for a, b in edges:
        neighbours.setdefault(a, set()).add(b)
        neighbours.setdefault(b, set()).add(a)
    chain = [0]
    while len(chain) < n:
        free = sorted(neighbours.get(chain[-1], set()) - set(chain))
        if not free:
            raise BadInput(f"noise_device {backend.name!r}: no chain of {n} qubits from qubit 0 "
                           f"(it has {backend.num_qubits}); use fewer qubits")
        chain.append(free[0])
    return chain


@dataclass(frozen=True)
class Step:
    """One instruction of the local program: a fixed matrix or an Rz with an affine
    angle, on local qubits (Qiskit order), then its error as Kraus operators."""

    qubits: tuple[int, ...]
    matrix: np.ndarray | None  # (2**k, 2**k), little-endian in ``qubits``; None for rz
    angle: tuple[float, np.ndarray, float] | None  # (const, coefficients on (theta, phi) flat, coefficient of x)
    kraus: tuple[np.ndarray, ...]  # () when noiseless


@dataclass(frozen=True)
class DeviceProgram:
    n: int
    layout: tuple[int, ...]  # local qubit -> physical qubit
    final: tuple[int, ...]  # superpos qubit v -> local qubit at the end
    steps: tuple[Step, ...]
    readout: tuple[np.ndarray, ...]  # per local qubit, matrix[measured, prepared]
    local_circuit: object  # the transpiled QuantumCircuit on n local qubits, symbolic
    parameters: tuple  # (theta vector, phi vector, x)
    noise_model: object


def _affine(expr, theta, phi, x) -> tuple[float, np.ndarray, float]:
    params = list(theta) + list(phi)
    zero = {p: 0.0 for p in expr.parameters}
    const = float(expr.bind(zero)) if zero else float(expr)
    coefficients = np.zeros(len(params))
    slope_x = 0.0
    for p in expr.parameters:
        slope = float(expr.gradient(p))
        if p == x:
            slope_x = slope
        else:
            coefficients[params.index(p)] = slope
    return const, coefficients, slope_x


@lru_cache(maxsize=None)
def device_program(spec: CircuitSpec) -> DeviceProgram:
    from qiskit import transpile
    from qiskit.quantum_info import Kraus, Operator
    from qiskit.transpiler import CouplingMap
    from qiskit_aer.noise import NoiseModel
    from qiskit_aer.noise.device.models import basic_device_gate_errors, basic_device_readout_errors

    from superpos_cli.quantum.backends.qiskit_backend import QiskitCircuit

    backend = load_device(spec.noise_device)
    n = spec.n_qubits
    layout = chain_layout(backend, n)
    local_edges = [(i, j) for i in range(n) for j in range(n) if (layout[i], layout[j]) in set(backend.coupling_map.get_edges())]
    basis = [name for name in backend.operation_names if name not in ("if_else", "for_loop", "switch_case", "while_loop")]
    adapter = QiskitCircuit(spec)
    local = transpile(adapter.circuit, basis_gates=basis, coupling_map=CouplingMap(local_edges) if n > 1 else None,
                      initial_layout=list(range(n)), optimization_level=0, seed_transpiler=0)
    final = tuple(local.layout.final_index_layout()) if local.layout is not None else tuple(range(n))
    errors = {(name, tuple(qubits)): error for name, qubits, error in
              basic_device_gate_errors(None, target=backend.target, gate_error=True, thermal_relaxation=True,
                                       temperature=0)}
    model = NoiseModel(basis_gates=basis)
    for (name, qubits), error in errors.items():
        model.add_quantum_error(error, name, qubits)
    readout_errors = dict((tuple(q), e) for q, e in basic_device_readout_errors(None, target=backend.target))
    for qubits, error in readout_errors.items():
        model.add_readout_error(error, qubits)
    steps = []
    for inst in local.data:
        name = inst.operation.name
        if name in _SKIPPED:
            continue
        qubits = tuple(local.find_bit(q).index for q in inst.qubits)
        physical = tuple(layout[q] for q in qubits)
        error = errors.get((name, physical))
        kraus = tuple(np.asarray(k) for k in Kraus(error.to_quantumchannel()).data) if error is not None else ()
        if name == "rz":
            param = inst.operation.params[0]
            angle = (_affine(param, adapter.theta, adapter.phi, adapter.x) if hasattr(param, "parameters")
                     else (float(param), np.zeros(2 * spec.depth * n), 0.0))
            steps.append(Step(qubits, None, angle, kraus))
        elif inst.operation.params and any(hasattr(p, "parameters") for p in inst.operation.params):
            raise BadInput(f"noise_device: unexpected parametrised gate {name!r} after transpilation")
        else:
            steps.append(Step(qubits, Operator(inst.operation).data, None, kraus))
    readout = []
    for q in range(n):
        error = readout_errors.get((layout[q],))
        readout.append(np.eye(2) if error is None else np.asarray(error.probabilities).T)
    return DeviceProgram(n, tuple(layout), final, tuple(steps), tuple(readout), local,
                         (adapter.theta, adapter.phi, adapter.x), model)


def device_instructions(spec: CircuitSpec):
    """The program as :mod:`.ptm` instructions on local qubits, and its readout functional.

    A step's matrix and Kraus operators are little-endian in ``step.qubits`` (Qiskit's
    order), i.e. big-endian in the reversed tuple. An rz whose angle depends on no
    learned angle and not on x is a fixed map like any other gate.
    """
    from superpos_cli.quantum.backends import ptm

    program = device_program(spec)
    out = []
    for step in program.steps:
        qubits = tuple(reversed(step.qubits))
        error = ptm.ptm_of_kraus(step.kraus) if step.kraus else None
        if step.angle is not None and (step.angle[1].any() or step.angle[2]):
            const, coefficients, slope_x = step.angle
            out.append(ptm.Rotation(qubits[0], ptm.rotation_parts("rz"), const, coefficients, slope_x))
            if error is not None:
                out.append(ptm.Fixed(qubits, error))
            continue
        matrix = ptm.rotation_ptm("rz", step.angle[0]) if step.angle is not None else ptm.unitary_ptm(step.matrix)
        out.append(ptm.Fixed(qubits, matrix if error is None else error @ matrix))
    return out, ptm.readout_functional(spec.n_qubits, program.readout, program.final)
