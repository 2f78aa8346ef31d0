"""Readouts: the sum over the first n_qubits basis amplitudes psi_k, k < n_qubits.

``real`` sums Re psi_k (default), ``abs`` sums |psi_k|, ``prob`` sums |psi_k|^2.
"""

from __future__ import annotations

import torch


def readout(amplitudes: torch.Tensor, kind: str) -> torch.Tensor:
    """(..., n_qubits) complex amplitudes -> (...) real readout."""
    if kind == "real":
        return amplitudes.real.sum(-1)
    if kind == "abs":
        return amplitudes.abs().sum(-1)
    return (amplitudes.real.square() + amplitudes.imag.square()).sum(-1)  # prob
