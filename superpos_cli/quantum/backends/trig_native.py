"""The trigonometric polynomial of :mod:`.fourier` in C (``trig_kernels.c``), for CPU tensors.

Torch's eager kernels make ~12 passes over memory each way; inductor's fused ones cost a
compile of 5-20 s per process. The C pass runs each direction in one loop, compiled in
about 0.3 s at first use by :mod:`.native`. Measured on the 2-core VM, one thread, degree
4 (the paper's circuit): 56k scores (textcls) 60-110 us forward and 80-220 us backward
against 360-580 and 610-950 us eager; 524k scores (T=64) 600-1100 us forward and
600-2300 us backward against 4700-7600 and 9500-14800 us (ranges over runs of an hour
whose machine speed varied ~2x). Any degree runs (up to :data:`MAX_DEGREE`); the backward
recomputes cos and sin from x, so only x is kept.

:func:`kernels` returns None where there is no compiler or ``SUPERPOS_NATIVE=0``;
:mod:`.fourier` then runs its torch kernels, which compute the same polynomial.
"""

from __future__ import annotations

import ctypes
import functools
from pathlib import Path

import numpy as np
import torch

from superpos_cli import native
from superpos_cli.quantum.score_mask import ScoreMask

_SOURCE = Path(__file__).with_name("trig_kernels.c")
MAX_DEGREE = 64  # trig_kernels.c's MAX_DEGREE
# Below this many scores per thread a second thread costs more than it saves (the C
# side runs calls under 16384 scores on one thread regardless).
_MIN_PER_THREAD = 16384
_DTYPES = (torch.float32, torch.float64)


class TrigKernels:
    """ctypes entry points of trig_kernels.c for one dtype."""

    def __init__(self, library: ctypes.CDLL, dtype: torch.dtype):
        real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
        p, i64, i32 = ctypes.c_void_p, ctypes.c_int64, ctypes.c_int
        self._forward = library.trig_forward
        self._forward.restype = i32
        mask = [p, i64, i64, i32]  # struct mask of trig_kernels.c: key_pad, T, rows_per_batch, causal
        self._forward.argtypes = [p, p, i64, p, i32, real, real, i32, *mask, real]
        self._backward = library.trig_backward
        self._backward.restype = i32
        self._backward.argtypes = [p, p, p, p, i64, p, i32, real, real, i32, *mask]
        self._backward_angles = library.trig_backward_angles
        self._backward_angles.restype = i32
        self._backward_angles.argtypes = [p, p, p, p, i64, p, i32, real, real, i32, p, i32, p, *mask]
        self.dtype = dtype
        self.numpy_dtype = np.float32 if dtype == torch.float32 else np.float64

    @staticmethod
    def _threads(n: int) -> int:
        return max(1, min(torch.get_num_threads(), n // _MIN_PER_THREAD))

    def forward(self, x: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float,
                threads: int | None = None, mask: ScoreMask | None = None) -> torch.Tensor:
        """y = alpha x + sum_k coef[0, k] cos(k omega x) + coef[1, k] sin(k omega x), x's shape; x
        contiguous (any shape, read flat); coef (2, F+1) contiguous in x's dtype. The same bits on
        any number of ``threads``. With ``mask`` (x then (B, H, T, T) scores) the masked
        positions get its fill, as ``mask.apply`` after the call would give."""
        y = torch.empty_like(x)
        status = self._forward(x.data_ptr(), y.data_ptr(), x.numel(), coef.data_ptr(), coef.shape[1] - 1,
                               omega, alpha, threads or self._threads(x.numel()), *_mask_args(mask),
                               0.0 if mask is None else mask.fill)  # ctypes releases the GIL
        _check(status)
        return y

    def backward(self, x: torch.Tensor, grad: torch.Tensor, coef: torch.Tensor, omega: float,
                 alpha: float, threads: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(grad * dy/dx, moments (2, F+1) float64: sum grad cos(k w), sum grad sin(k w))."""
        grad_x = torch.empty_like(x)
        moments = torch.empty(2, coef.shape[1], dtype=torch.float64)
        status = self._backward(x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), moments.data_ptr(), x.numel(),
                                coef.data_ptr(), coef.shape[1] - 1, omega, alpha,
                                threads or self._threads(x.numel()), *_NO_MASK)
        _check(status)
        return grad_x, moments


    def backward_angles(self, x: torch.Tensor, grad: torch.Tensor, coef: torch.Tensor, omega: float, alpha: float,
                        jacobian, angles_shape: tuple, mask: ScoreMask | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(grad * dy/dx, the angles' gradient jacobian @ moments, shaped ``angles_shape``) in one
        call; ``jacobian`` a contiguous numpy array (n_angles, 2(F+1)) of x's precision. With the
        forward's ``mask``, ``grad`` counts as 0 where it masks (the backward of its fill)."""
        grad_x = torch.empty_like(x)
        moments = torch.empty(2, coef.shape[1], dtype=torch.float64)
        angles = torch.empty(angles_shape, dtype=x.dtype)
        status = self._backward_angles(x.data_ptr(), grad.data_ptr(), grad_x.data_ptr(), moments.data_ptr(),
                                       x.numel(), coef.data_ptr(), coef.shape[1] - 1, omega, alpha,
                                       self._threads(x.numel()), jacobian.__array_interface__["data"][0],
                                       jacobian.shape[0], angles.data_ptr(), *_mask_args(mask))
        _check(status)
        return grad_x, angles


_NO_MASK = (None, 0, 0, 0)


def _mask_args(mask: ScoreMask | None) -> tuple:
    """trig_kernels.c's struct mask: (key_pad bytes or NULL, T, rows per batch row = H T, causal)."""
    if mask is None:
        return _NO_MASK
    pad = mask.key_padding  # bool, contiguous: one byte per key, 0 or 1
    return (None if pad is None else pad.data_ptr(), mask.T, mask.heads * mask.T, int(mask.causal))


def _check(status: int) -> None:
    if status == -1:
        raise ValueError(f"trig_kernels.c takes degrees up to {MAX_DEGREE}")
    if status:
        raise MemoryError("trig_kernels.c could not allocate its block sums")


@functools.lru_cache(maxsize=None)
def _load(dtype: torch.dtype) -> TrigKernels | None:
    library = native.load(_SOURCE, ("SINGLE",) if dtype == torch.float32 else ())
    return None if library is None else TrigKernels(library, dtype)


def available(dtype: torch.dtype) -> bool:
    """Whether CPU tensors of ``dtype`` get the C kernels (built, not switched off)."""
    return dtype in _DTYPES and _load(dtype) is not None


def kernels(x: torch.Tensor, degree: int) -> TrigKernels | None:
    """The C kernels for scores ``x`` (CPU, float32/float64) of polynomial ``degree``, or None."""
    if x.device.type != "cpu" or x.dtype not in _DTYPES or degree > MAX_DEGREE:
        return None
    return _load(x.dtype)
