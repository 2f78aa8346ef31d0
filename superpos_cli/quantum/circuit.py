"""The circuit of paper-spec §2, described once for every backend.

Start from |0...0>, a Hadamard on every qubit, then ``depth`` layers of: on each
qubit q, Ry(theta[l, q] + x) then Rz(phi[l, q]); then CNOT(q -> q+1) for adjacent
qubits (``ring`` adds n-1 -> 0). The readout sums the first ``n_qubits`` basis
amplitudes psi_k, k < n_qubits, with the basis index big-endian: qubit 0 is the most
significant bit.

The gate sequence is written once, in :meth:`CircuitSpec.ops`. Gate-by-gate
backends (Qiskit, Aer, the noisy density-matrix simulation) walk it; the structured
simulators (torch, the fourier coefficients) read it through :meth:`CircuitSpec.layers`,
which groups it into layers and fails loudly if the sequence stops having the shape
they fold (single-qubit Ry then Rz per qubit, then a CNOT block).

Noise (``noise``, ``noise_device``) and finite ``shots`` are part of the circuit's
description too (:mod:`.noise_spec`): they need the ``prob`` readout, since a device
measures probabilities, not amplitudes.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

from superpos_cli.errors import BadInput
from superpos_cli.quantum.noise_spec import check_device, format_noise, parse_noise, parse_shots

ENCODINGS = ("reupload", "first-layer")
ENTANGLERS = ("chain", "ring")
READOUTS = ("real", "abs", "prob")

# The torch backend holds a (2F+1, 2**n) state; 2**20 amplitudes is already past any
# attention use and keeps a typo like --qubits 40 from allocating terabytes.
MAX_QUBITS = 20


class Op(NamedTuple):
    """One gate. ``angle`` names the learned parameter (``"theta"``/``"phi"``, layer,
    qubit) or is None; ``encoded`` marks the Ry gates whose angle also gets + x."""

    gate: str  # "h" | "ry" | "rz" | "cx"
    qubits: tuple[int, ...]
    angle: tuple[str, int, int] | None = None
    encoded: bool = False


class Layer(NamedTuple):
    """One variational layer of :meth:`CircuitSpec.ops`: per qubit its single-qubit
    gates in order, whether x enters them, and the CNOT block after them."""

    local: tuple[tuple[Op, ...], ...]  # (n_qubits,) of gate sequences
    encoded: bool
    cnots: tuple[tuple[int, int], ...]


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(f"{name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class CircuitSpec:
    """Shape of the variational circuit; angles theta, phi have shape (depth, n_qubits).

    ``noise`` takes ``"KIND:P[,KIND:P...]"`` or parsed pairs and is stored parsed
    (a tuple of (kind, p)); ``noise_device`` names an IBM calibration snapshot;
    ``shots`` replaces the exact readout by an estimate from that many shots.
    """

    n_qubits: int = 4
    depth: int = 2
    encoding: str = "reupload"
    entangler: str = "chain"
    readout: str = "real"
    noise: tuple[tuple[str, float], ...] = ()
    noise_device: str | None = None
    shots: int | None = None

    def __post_init__(self) -> None:
        _check_int("n_qubits", self.n_qubits, 1, MAX_QUBITS)
        _check_int("depth", self.depth, 1, 1000)
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("entangler", self.entangler, ENTANGLERS)
        _check_choice("readout", self.readout, READOUTS)
        object.__setattr__(self, "noise", parse_noise(self.noise))
        object.__setattr__(self, "noise_device", check_device(self.noise_device))  # "none" -> None
        object.__setattr__(self, "shots", parse_shots(self.shots))  # "exact" -> None
        if self.noise and self.noise_device is not None:
            # A device snapshot brings its own channels, placed on its transpiled program;
            # both backends would otherwise drop ``noise`` without a word.
            raise BadInput(f"noise and noise_device exclude each other (a device snapshot has its own noise), "
                           f"got noise {format_noise(self.noise)!r} with noise_device {self.noise_device!r}")
        if self.readout != "prob" and (self.noise or self.noise_device is not None or self.shots is not None):
            used = "noise" if self.noise else "noise_device" if self.noise_device is not None else "shots"
            raise BadInput(f"{used} needs readout 'prob' (a device measures probabilities, not amplitudes), "
                           f"got readout {self.readout!r}")

    @property
    def dim(self) -> int:
        """Number of basis states, 2**n_qubits."""
        return 2**self.n_qubits

    @property
    def noisy(self) -> bool:
        """Whether any channel acts (a density matrix, not a state vector, describes it)."""
        return bool(self.noise) or self.noise_device is not None

    @property
    def noiseless(self) -> "CircuitSpec":
        """The same circuit without noise and with exact readout."""
        return CircuitSpec(self.n_qubits, self.depth, self.encoding, self.entangler, self.readout)

    def ops(self) -> tuple[Op, ...]:
        """The gate list in circuit order: the one place the sequence is written."""
        return _ops(self)

    def layers(self) -> tuple[Layer, ...]:
        """:meth:`ops` grouped for the structured simulators (see the module docstring)."""
        return _layers(self.n_qubits, self.ops())

    def encodes(self, layer: int) -> bool:
        """Whether x enters the Ry angles of ``layer`` (all qubits of it, or none)."""
        return self.layers()[layer].encoded

    @property
    def n_encodings(self) -> int:
        """L, the number of Ry gates that carry x: each amplitude is a trigonometric
        polynomial in x/2 of degree L (frequencies -L, -L+2, ..., L in x/2)."""
        return sum(op.encoded for op in self.ops())

    def cnots(self) -> tuple[tuple[int, int], ...]:
        """(control, target) pairs of one entangling block, in circuit order (the same
        in every layer)."""
        return self.layers()[0].cnots


@lru_cache(maxsize=None)
def _ops(spec: CircuitSpec) -> tuple[Op, ...]:
    n = spec.n_qubits
    ops = [Op("h", (q,)) for q in range(n)]
    for layer in range(spec.depth):
        encoded = spec.encoding == "reupload" or layer == 0
        for q in range(n):
            ops.append(Op("ry", (q,), ("theta", layer, q), encoded))
            ops.append(Op("rz", (q,), ("phi", layer, q)))
        # A single qubit has no neighbour, so ``ring`` adds nothing there; with two
        # qubits ``ring`` adds CNOT(1 -> 0) after CNOT(0 -> 1), as written.
        ops.extend(Op("cx", (q, q + 1)) for q in range(n - 1))
        if spec.entangler == "ring" and n > 1:
            ops.append(Op("cx", (n - 1, 0)))
    return tuple(ops)


@lru_cache(maxsize=None)
def _layers(n: int, ops: tuple[Op, ...]) -> tuple[Layer, ...]:
    if [op.gate for op in ops[:n]] != ["h"] * n:
        raise ValueError("structured simulators need a Hadamard on every qubit first")
    # Rotations carry their layer in ``angle``; a CNOT belongs to the layer before it.
    local: list[list[list[Op]]] = []
    cnots: list[list[tuple[int, int]]] = []
    for op in ops[n:]:
        if op.gate == "cx":
            cnots[-1].append(op.qubits)
            continue
        if op.angle is None or op.angle[1] not in (len(local) - 1, len(local)):
            raise ValueError(f"structured simulators need layers in order, got {op}")
        if op.angle[1] == len(local):
            local.append([[] for _ in range(n)])
            cnots.append([])
        local[-1][op.qubits[0]].append(op)
    layers: list[Layer] = []
    for per_qubit, block in zip(local, cnots):
        for gates in per_qubit:
            if [op.gate for op in gates] != ["ry", "rz"] or gates[1].encoded:
                raise ValueError(f"structured simulators fold Ry(+x) then Rz per qubit, got {gates}")
        encoded = {gates[0].encoded for gates in per_qubit}
        if len(encoded) != 1:
            raise ValueError("structured simulators need x on every qubit of a layer or on none")
        layers.append(Layer(tuple(map(tuple, per_qubit)), encoded.pop(), tuple(block)))
    if len({layer.cnots for layer in layers}) > 1:
        raise ValueError("structured simulators need the same CNOT block in every layer")
    return tuple(layers)
