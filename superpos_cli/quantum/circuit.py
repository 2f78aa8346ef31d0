"""The circuit of paper-spec §2, described once for every backend.

Start from |0...0>, a Hadamard on every qubit, then ``depth`` layers of: on each
qubit q, Ry(theta[l, q] + x) then Rz(phi[l, q]); then CNOT(q -> q+1) for adjacent
qubits (``ring`` adds n-1 -> 0). The readout sums the first ``n_qubits`` basis
amplitudes psi_k, k < n_qubits, with the basis index big-endian: qubit 0 is the most
significant bit. Backends read the structure from :class:`CircuitSpec` (``ops`` for
gate-by-gate adapters, ``encodes``/``cnots`` for the structured torch simulator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

from superpos_cli.errors import BadInput

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


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise BadInput(f"{name} must be an integer in {low}..{high}, got {value!r}")


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise BadInput(f"{name} {value!r} is not one of {', '.join(allowed)}")


@dataclass(frozen=True)
class CircuitSpec:
    """Shape of the variational circuit; angles theta, phi have shape (depth, n_qubits)."""

    n_qubits: int = 4
    depth: int = 2
    encoding: str = "reupload"
    entangler: str = "chain"
    readout: str = "real"

    def __post_init__(self) -> None:
        _check_int("n_qubits", self.n_qubits, 1, MAX_QUBITS)
        _check_int("depth", self.depth, 1, 1000)
        _check_choice("encoding", self.encoding, ENCODINGS)
        _check_choice("entangler", self.entangler, ENTANGLERS)
        _check_choice("readout", self.readout, READOUTS)

    @property
    def dim(self) -> int:
        """Number of basis states, 2**n_qubits."""
        return 2**self.n_qubits

    def encodes(self, layer: int) -> bool:
        """Whether x enters the Ry angles of ``layer`` (all qubits of it, or none)."""
        return self.encoding == "reupload" or layer == 0

    @property
    def n_encodings(self) -> int:
        """L, the number of Ry gates that carry x: each amplitude is a trigonometric
        polynomial in x/2 of degree L (frequencies -L, -L+2, ..., L in x/2)."""
        return self.n_qubits * sum(self.encodes(layer) for layer in range(self.depth))

    def cnots(self) -> tuple[tuple[int, int], ...]:
        """(control, target) pairs of one entangling block, in circuit order.

        A single qubit has no neighbour, so ``ring`` adds nothing there; with two
        qubits ``ring`` adds CNOT(1 -> 0) after CNOT(0 -> 1), as written.
        """
        n = self.n_qubits
        pairs = [(q, q + 1) for q in range(n - 1)]
        if self.entangler == "ring" and n > 1:
            pairs.append((n - 1, 0))
        return tuple(pairs)

    def ops(self) -> tuple[Op, ...]:
        """The gate list in circuit order (for gate-by-gate adapters such as Qiskit)."""
        ops = [Op("h", (q,)) for q in range(self.n_qubits)]
        for layer in range(self.depth):
            for q in range(self.n_qubits):
                ops.append(Op("ry", (q,), ("theta", layer, q), self.encodes(layer)))
                ops.append(Op("rz", (q,), ("phi", layer, q)))
            ops.extend(Op("cx", pair) for pair in self.cnots())
        return tuple(ops)
