"""Superpositional Adam's fused step in C (``adam_kernels.c``), for CPU tensors.

One call updates a list of tensors in one pass each (theta, g, m, v read once; theta, m, v
written once), f(theta) * g on each tensor's leading ``k`` coordinates, split over threads in
one parallel loop. It replaces, on CPU, the kernels ``torch.compile`` generates for the fused
path (5-10 s of compile per process and cache) and the separate f and addcmul passes of
partly covered tensors. Built by :mod:`superpos_cli.native` at first use (about 0.3 s).

:func:`kernels` returns None where there is no compiler or ``SUPERPOS_NATIVE=0``; the fused
path then runs as before (compiled kernels, torch's fused Adam and foreach passes).
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

from superpos_cli import native

_SOURCE = Path(__file__).with_name("adam_kernels.c")
_DTYPES = (torch.float32, torch.float64)
# f kinds of adam_kernels.c: the deterministic f's it computes itself; any other f is
# evaluated before the call and passed in (GIVEN).
NONE, SIN, COS, GIVEN = 0, 1, 2, 3
KINDS = {"sin": SIN, "cos": COS}


class AdamKernels:
    """The ctypes entry point of adam_kernels.c for one dtype."""

    def __init__(self, library: ctypes.CDLL, dtype: torch.dtype):
        p = ctypes.c_void_p
        self._step = library.adam_step
        self._step.restype = ctypes.c_int
        self._step.argtypes = [ctypes.c_int, p, p, p, p, p, p, p, ctypes.c_int, p, ctypes.c_int]
        self._add_one = library.add_one_to_steps
        self._add_one.restype = ctypes.c_int
        self._add_one.argtypes = [ctypes.c_int, p, p]
        self.dtype = dtype

    def add_one_to_steps(self, steps: Sequence[Tensor]) -> Optional[list[float]]:
        """Each step counter += 1 in place, as ``torch._foreach_add_(steps, 1)``, and the new
        counts, as ``[t.item() for t in steps]``; None (nothing done) unless every counter is
        a one-element float32 CPU tensor."""
        if not all(t.dtype is torch.float32 and t.is_cpu and t.numel() == 1 for t in steps):
            return None
        n = len(steps)
        pointers = (ctypes.c_void_p * n)(*[t.data_ptr() for t in steps])
        values = (ctypes.c_double * n)()
        self._add_one(n, ctypes.addressof(pointers), ctypes.addressof(values))
        return list(values)

    def step(self, params: Sequence[Tensor], grads: Sequence[Tensor], exp_avgs: Sequence[Tensor],
             exp_avg_sqs: Sequence[Tensor], perturbed: Sequence[int], kind: int,
             f_values: Optional[Sequence[Optional[Tensor]]], hp: Sequence[float]) -> None:
        """One step of every tensor in place; all contiguous CPU tensors of this dtype, of
        matching sizes. ``perturbed[i]``: tensor i's leading coordinates that get f;
        ``f_values[i]`` (kind GIVEN) their values, contiguous; ``hp`` the 10 hyperparameters
        of functional._hyperparameter_values for the step these tensors share."""
        n = len(params)
        pointers = (ctypes.c_void_p * (5 * n))()
        for j, tensors in enumerate((params, grads, exp_avgs, exp_avg_sqs)):
            pointers[j * n:(j + 1) * n] = [t.data_ptr() for t in tensors]
        if kind == GIVEN:
            pointers[4 * n:] = [0 if t is None else t.data_ptr() for t in f_values]
        sizes = (ctypes.c_int64 * (2 * n))(*[t.numel() for t in params], *perturbed)
        values = (ctypes.c_double * 10)(*hp)
        address = ctypes.addressof(pointers)
        width = ctypes.sizeof(ctypes.c_void_p) * n
        status = self._step(n, address, address + width, address + 2 * width, address + 3 * width,
                            address + 4 * width, ctypes.addressof(sizes), ctypes.addressof(sizes) + 8 * n,
                            kind, values, torch.get_num_threads())  # ctypes releases the GIL
        if status:
            raise MemoryError("adam_kernels.c could not allocate its block table")


@functools.lru_cache(maxsize=None)
def _load(dtype: torch.dtype) -> AdamKernels | None:
    library = native.load(_SOURCE, ("SINGLE",) if dtype == torch.float32 else ())
    return None if library is None else AdamKernels(library, dtype)


def kernels(params: Sequence[Tensor], *others: Sequence[Tensor]) -> AdamKernels | None:
    """The C kernels for these tensors, or None: all on the CPU, of one float dtype
    (float32/float64), contiguous (``others``: grads, moments, f values alike)."""
    if not params:
        return None
    dtype = params[0].dtype
    if dtype not in _DTYPES:
        return None
    for tensors in (params, *others):
        if not all(t.is_cpu and t.dtype is dtype and t.is_contiguous() for t in tensors):
            return None
    return _load(dtype)
