"""Gate matrices as pure functions of angle tensors, and how to apply them.

States are complex tensors of shape (M, 2**n) with a big-endian basis index (qubit
0 is the most significant bit); M is any leading batch (for the torch backend it is
the frequency axis). Conventions are Qiskit's, so no global phase separates them:
Ry(a) = [[cos a/2, -sin a/2], [sin a/2, cos a/2]], Rz(b) = diag(e^{-ib/2}, e^{ib/2}).
"""

from __future__ import annotations

import math
from functools import lru_cache

import torch


def ry_matrix(angle: torch.Tensor) -> torch.Tensor:
    """Ry for a tensor of angles: (...) -> (..., 2, 2), real."""
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)  # (..., 2, 2)


def rz_phases(angle: torch.Tensor) -> torch.Tensor:
    """Diagonal of Rz for a tensor of angles: (...) -> (..., 2), complex."""
    half = torch.stack([-angle, angle], -1) / 2  # (..., 2)
    return torch.polar(torch.ones_like(half), half)  # (..., 2)


@lru_cache(maxsize=None)
def y_eigenbasis(dtype: torch.dtype) -> torch.Tensor:
    """V with columns the eigenvectors of Pauli Y for eigenvalues +1, -1.

    Ry(x) = exp(-i x Y / 2) = V diag(e^{-ix/2}, e^{ix/2}) V^dagger, so in this basis the
    data rotation is a pure phase: bit 0 shifts the frequency in x/2 by -1, bit 1 by +1.
    """
    r = 1 / math.sqrt(2)
    return torch.tensor([[r, r], [1j * r, -1j * r]], dtype=dtype)  # (2, 2)


def apply_each_qubit(state: torch.Tensor, mats: torch.Tensor) -> torch.Tensor:
    """Apply mats[q] to qubit q for every q: (M, 2**n), (n, 2, 2) -> (M, 2**n)."""
    m, dim = state.shape
    n = mats.shape[0]
    for q in range(n):
        view = state.reshape(m * 2**q, 2, dim >> (q + 1))  # (M * 2**q, 2, rest)
        state = torch.matmul(mats[q], view)  # (M * 2**q, 2, rest)
    return state.reshape(m, dim)  # (M, 2**n)


def bit(index: torch.Tensor, qubit: int, n_qubits: int) -> torch.Tensor:
    """The bit of ``qubit`` in big-endian basis indices."""
    return (index >> (n_qubits - 1 - qubit)) & 1


@lru_cache(maxsize=None)
def cnot_permutation(n_qubits: int, pairs: tuple[tuple[int, int], ...]) -> torch.Tensor:
    """Index map of a CNOT sequence: new_state = state[..., perm].

    One CNOT(c -> t) sends basis |b> to |b xor (b_c at t)>, an involution, so after it
    psi'[b] = psi[g(b)]; gates applied in order g1, g2, ... give psi[g1(g2(...(b)))],
    hence the maps are composed starting from the last gate.
    """
    index = torch.arange(2**n_qubits)
    for control, target in reversed(pairs):
        index = index ^ (bit(index, control, n_qubits) << (n_qubits - 1 - target))
    return index  # (2**n,)


@lru_cache(maxsize=None)
def hamming_weight(n_qubits: int) -> torch.Tensor:
    """Number of set bits of every basis index: (2**n,)."""
    index = torch.arange(2**n_qubits)
    return sum(bit(index, q, n_qubits) for q in range(n_qubits))  # (2**n,)
