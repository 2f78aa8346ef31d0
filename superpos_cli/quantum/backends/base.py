"""The one interface every backend implements, and the one attention calls.

A backend turns a :class:`~superpos_cli.quantum.circuit.CircuitSpec` and fixed angles
into a prepared circuit; the prepared circuit evaluates any batch of inputs. Nothing
outside a backend reads its prepared circuits' fields: what a caller may ask is all
here. Options are keyword arguments of ``prepare``; a backend lists the ones it takes
in ``options`` (``generator``: a ``torch.Generator`` for shot sampling).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import torch

    from superpos_cli.quantum.circuit import CircuitSpec


@runtime_checkable
class PreparedCircuit(Protocol):
    """A circuit with fixed (theta, phi)."""

    def evaluate(self, x: "torch.Tensor", alpha: float = 0.0) -> "torch.Tensor":
        """x (...) -> readout(C(x)) + alpha * x (...), real."""

    def statevector(self, x: "torch.Tensor") -> "torch.Tensor":
        """x (...) -> psi(x) (..., 2**n_qubits), big-endian basis index; noiseless
        circuits only (BadInput otherwise)."""


@runtime_checkable
class Backend(Protocol):
    name: str
    differentiable: bool  # autograd through theta, phi and x
    options: frozenset[str]  # keyword options ``prepare`` accepts

    def supports(self, spec: "CircuitSpec") -> str | None:
        """None if this backend can run ``spec`` (readout, noise, shots), else why not, one line."""

    def fallback_reason(self, spec: "CircuitSpec") -> str | None:
        """Why ``spec`` runs on another backend's (slower) path here, or None."""

    def prepare(self, spec: "CircuitSpec", theta: "torch.Tensor", phi: "torch.Tensor", **options) -> PreparedCircuit:
        """theta, phi (depth, n_qubits), already of one real dtype."""

    def prepare_many(self, spec: "CircuitSpec", angles: Sequence[tuple["torch.Tensor", "torch.Tensor"]],
                     **options) -> list[PreparedCircuit]:
        """``prepare`` for several angle sets of one spec (batched where the backend can)."""
