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
phi, x), read off its ParameterExpression, so the fourier backend simulates it in
torch with autograd (:func:`device_probabilities`), and the Aer backend runs the same
program under the same NoiseModel.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

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


def _apply(rho: torch.Tensor, matrix: torch.Tensor, qubits: tuple[int, ...], n: int) -> torch.Tensor:
    """matrix (B or 1, 2**k, 2**k), little-endian in ``qubits`` (Qiskit's order), on
    rho's row index (big-endian, qubit 0 first): (B, D, D) -> (B, D, D)."""
    B, D, _ = rho.shape
    k = len(qubits)
    axes = [1 + q for q in reversed(qubits)]  # the gate's most significant bit first
    view = rho.reshape(B, *[2] * n, D).movedim(axes, list(range(1, 1 + k)))
    shape = view.shape
    out = (matrix @ view.reshape(B, 2**k, -1)).reshape(shape)
    return out.movedim(list(range(1, 1 + k)), axes).reshape(B, D, D)


def _conjugate(rho: torch.Tensor, matrix: torch.Tensor, qubits, n: int) -> torch.Tensor:
    return _apply(_apply(rho, matrix, qubits, n).mH, matrix, qubits, n)  # U rho U^dagger, rho Hermitian


def device_probabilities(spec: CircuitSpec, theta: torch.Tensor, phi: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Measured probabilities of superpos' qubits (readout errors included), big-endian:
    theta, phi (G, depth, n), x (M,) -> (G, M, 2**n) float64, autograd in theta, phi."""
    program = device_program(spec)
    n = spec.n_qubits
    G, M = theta.shape[0], x.shape[0]
    angles = torch.cat([theta.reshape(G, -1), phi.reshape(G, -1)], 1).to(torch.float64)  # (G, 2 D n)
    x = x.to(torch.float64)
    rho = torch.zeros(G * M, 2**n, 2**n, dtype=torch.complex128)
    rho[:, 0, 0] = 1.0
    for step in program.steps:
        if step.angle is None:
            matrix = torch.from_numpy(step.matrix).to(torch.complex128)[None]
        else:
            const, coefficients, slope_x = step.angle
            value = (const + angles @ torch.from_numpy(coefficients))[:, None] + slope_x * x  # (G, M)
            half = value.reshape(-1) / 2
            half = torch.stack([-half, half], -1)  # (G M, 2)
            phases = torch.polar(torch.ones_like(half), half)
            matrix = torch.diag_embed(phases)
        rho = _conjugate(rho, matrix, step.qubits, n)
        if step.kraus:
            rho = sum(_conjugate(rho, torch.from_numpy(k).to(torch.complex128)[None], step.qubits, n)
                      for k in step.kraus)
    probs = rho.diagonal(dim1=1, dim2=2).real  # (G M, D): local qubits, big-endian
    for q, matrix in enumerate(program.readout):
        view = probs.reshape(len(probs), 2**q, 2, -1)
        probs = torch.einsum("mp,iapb->iamb", torch.from_numpy(matrix), view).reshape(probs.shape)
    # Local qubit final[v] holds superpos qubit v: reorder the bits.
    view = probs.reshape(len(probs), *[2] * n).permute(0, *[1 + program.final[v] for v in range(n)])
    return view.reshape(G, M, 2**n)
