"""Finite shots: the ``prob`` readout estimated from N measurements.

The readout P = sum_{k<n} p_k is the probability that a shot lands on one of the
first n_qubits basis states, so N shots give a count K ~ Binomial(N, P) and the
estimate K / N. Every draw comes from two seeds taken from an explicit torch.Generator
per call: element i's random bits are splitmix64's outputs at counters fixed by i
(``shot_sampler.c``'s header), so a seed gives the same estimates on any thread count.

Sampling, for N >= :data:`MIN_APPROXIMATE_SHOTS` (below it, torch.binomial for all):

- where N min(P, 1 - P) >= :data:`EXACT_BELOW` (20), the fourth-order Cornish-Fisher
  count floor(N P + sigma q(z) + 1/2) clamped to 0..N, z ~ N(0, 1) by Box-Muller,
  sigma = sqrt(N P (1 - P)), q = z + g (z^2 - 1) / 6 + k (z^3 - 3z) / 24 - g^2 (2z^3 - 5z) / 36
  with the binomial's skewness g = (1 - 2P) / sigma and excess kurtosis
  k = (1 - 6 P (1 - P)) / sigma^2. Against scipy's binomial on a million draws
  (chi-square): indistinguishable from a mean of 20 on, at N = 100 and 1024 (p 0.06,
  0.05), clearly not at a mean of 10 (p 1e-11); the second-order (skewness-only)
  version is distinguishable even at 20 (p 3e-6). It is an approximation all the same:
  its total variation distance from the binomial is 1.3e-3 at a mean of 20 (N = 100;
  1.0e-3 at N = 1024), 0.8e-3 / 0.4e-3 at 50, so 4 million draws at one P do tell it
  apart (p 1e-8 at a mean of 20, 0.01-0.1 at 40); the fifth-order expansion is no
  closer at these means (tried);
- elsewhere by inversion of the binomial CDF at a uniform, in the readout's dtype
  (float32 sums the CDF to within 1e-6, which no feasible test tells from exact,
  float64 to 1e-15; truncated after :data:`INVERSION_STEPS`, where the tail is < 5e-16;
  pmf terms below 1e-30 (float32) / 1e-300 are dropped).

tests/test_noise.py checks both regimes against scipy's binomial (chi-square on the
counts) and the estimates against Aer's sampling, on both paths below.

Two implementations of that one algorithm:

- ``shot_sampler.c``, compiled at first use (:mod:`.native`) for CPU float32 / float64:
  one pass per block of :data:`BLOCK` scores (normals, counts, the small-mean ones
  compacted and inverted across them, vectorised by gcc with libm's vector functions),
  on torch's thread count. At profile's attention shape (524k scores, 8% of them
  small-mean) it takes 1.2-2.3 ms on 2 threads, where the inductor-compiled torch
  version it replaced took 6.9-9.4 ms (torch.randn alone 2.4-4.3 ms, numpy's
  flatnonzero compaction 1.4-1.6 ms, the inversion's gather, kernels and scatter 1.4
  ms): inductor's CPU log is scalar, torch.randn is single-threaded, and a mask
  output or a data-dependent gather each cost a pass of their own;
- :func:`_reference_estimate`, the same operations in torch: where the C cannot be
  built or run (no compiler, CUDA tensors, ``SUPERPOS_NATIVE=0``) and as the tests'
  reference. The two round differently in libm's last bits, so a count can differ
  where N P + sigma q lands within an ulp of a half-integer (none of 524k
  attention readouts differed; the tests check sizes up to 5000); the distribution is the same.

The estimate has no useful derivative (it is piecewise constant in P); the gradient
passes straight through to P: d estimate / d P := 1, so training sees the exact
readout's gradient at the sampled value (the estimator is unbiased up to the
approximation above, so this is the gradient of the expected readout).
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path

import torch

from superpos_cli import native

EXACT_BELOW = 20.0  # N min(P, 1 - P) under which counts are drawn exactly
MIN_APPROXIMATE_SHOTS = 100
# Inversion stops after this many steps: P(K > 64) < 5e-16 for a mean below 20 and
# N >= 100 (scipy: 4.8e-16 at N = 1024, P = 20/1024).
INVERSION_STEPS = 64
BLOCK = 1024  # scores per block of the normals' layout (shot_sampler.c)
_STEP_CHUNK = 8  # inversion steps between checks whether all are done
_TINY = {torch.float32: 1e-30, torch.float64: 1e-300}
_SOURCE = Path(__file__).with_name("shot_sampler.c")
_MIN_PER_THREAD = 16 * BLOCK  # below this many scores a thread costs more than it saves
GOLDEN = 0x9E3779B97F4A7C15
_MIX = (0xBF58476D1CE4E5B9, 0x94D049BB133111EB)


# --------------------------------------------------------------------------- random bits


def _int64(value: int) -> int:
    """A uint64 constant as the int64 with its bits (torch has no uint64 multiply)."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _shift_right(z: torch.Tensor, bits: int) -> torch.Tensor:
    """Logical right shift of int64 ``z`` (torch's >> is arithmetic)."""
    return (z >> bits) & ((1 << (64 - bits)) - 1)


def splitmix(seed: int, counters: torch.Tensor) -> torch.Tensor:
    """splitmix64's outputs mix(seed + k GOLDEN) at int64 ``counters`` k, as int64 bits
    (products wrap mod 2^64, as the C's uint64 ones)."""
    z = counters * _int64(GOLDEN) + _int64(seed)
    z = (z ^ _shift_right(z, 30)) * _int64(_MIX[0])
    z = (z ^ _shift_right(z, 27)) * _int64(_MIX[1])
    return z ^ _shift_right(z, 31)


def _normals(seed: int, size: int, dtype: torch.dtype, device) -> torch.Tensor:
    """(size,) standard normals in shot_sampler.c's layout (its header)."""
    blocks = -(-size // BLOCK)
    pairs = torch.arange(blocks * BLOCK // 2, device=device)
    if dtype == torch.float32:
        bits = splitmix(seed, pairs)
        u1 = (_shift_right(bits, 40) + 1).to(dtype) * 2.0**-24
        u2 = (_shift_right(bits, 16) & 0xFFFFFF).to(dtype) * 2.0**-24
    else:
        u1 = (_shift_right(splitmix(seed, 2 * pairs), 11) + 1).to(dtype) * 2.0**-53
        u2 = _shift_right(splitmix(seed, 2 * pairs + 1), 11).to(dtype) * 2.0**-53
    r = torch.sqrt(-2 * torch.log(u1))
    angle = torch.tensor(2 * math.pi, dtype=dtype, device=device) * u2
    z = torch.cat([(r * torch.cos(angle)).view(blocks, -1), (r * torch.sin(angle)).view(blocks, -1)], dim=1)
    return z.view(-1)[:size]


def _uniforms(seed: int, index: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    bits = splitmix(seed, index)
    if dtype == torch.float32:
        return _shift_right(bits, 40).to(dtype) * 2.0**-24
    return _shift_right(bits, 11).to(dtype) * 2.0**-53


# --------------------------------------------------------------------------- the torch path


def _reference_estimate(v: torch.Tensor, x: torch.Tensor, alpha: float, shots: int,
                        seeds: tuple[int, int]) -> torch.Tensor:
    """shot_sampler.c's estimates in torch ops, for 1-d v, x (K,) of one float dtype."""
    dtype, device = v.dtype, v.device
    n = torch.tensor(float(shots), dtype=dtype, device=device)
    prob = (v - alpha * x).clamp(0.0, 1.0)  # NaN stays NaN
    mean = prob * n
    variance = mean * (1 - prob)
    inv_sd = 1 / torch.sqrt(variance.clamp_min(1e-24))
    skew = (1 - 2 * prob) * inv_sd  # the binomial's skewness and excess kurtosis
    kurtosis = (1 - 6 * prob * (1 - prob)) * (inv_sd * inv_sd)
    z = _normals(seeds[0], v.numel(), dtype, device)
    z2 = z * z
    quantile = (z + skew * (1 / 6) * (z2 - 1) + kurtosis * (1 / 24) * z * (z2 - 3)
                - skew * skew * (1 / 36) * z * (2 * z2 - 5))
    counts = torch.floor(mean + variance * inv_sd * quantile + 0.5).clamp(min=0.0).minimum(n)
    estimate = alpha * x + counts / n
    small = (~(torch.minimum(mean, n - mean) >= EXACT_BELOW)).nonzero().squeeze(1)  # (S,): small means, NaN
    if small.numel():
        p = prob.index_select(0, small)
        q = torch.where(p > 0.5, 1 - p, p)
        ratio = q / (1 - q)
        pmf = torch.exp(n * torch.log1p(-q))
        cdf, k = pmf, torch.zeros_like(q)
        u = _uniforms(seeds[1], small, dtype)
        steps = torch.arange(INVERSION_STEPS, dtype=dtype, device=device)
        factors = (n - steps) / (steps + 1)  # pmf(k + 1) = pmf(k) factor[k] ratio
        for step in range(INVERSION_STEPS):
            k = k + torch.where(u > cdf, 1.0, 0.0)
            pmf = pmf * factors[step] * ratio
            pmf = torch.where(pmf < _TINY[dtype], 0.0, pmf)
            cdf = cdf + pmf
            if (step + 1) % _STEP_CHUNK == 0 and not bool((u > cdf).any()):
                break  # k no longer changes: cdf only grows
        exact = alpha * x.index_select(0, small) + torch.where(p > 0.5, n - k, k) / n
        estimate.index_copy_(0, small, torch.where(p.isnan(), p, exact))
    return estimate


# --------------------------------------------------------------------------- the C path


@functools.lru_cache(maxsize=None)
def _native_kernel(dtype: torch.dtype):
    """shot_sampler.c's sample_estimate for ``dtype``, or None (no compiler, or off)."""
    library = native.load(_SOURCE, ("SINGLE",) if dtype == torch.float32 else ())
    if library is None:
        return None
    real = ctypes.c_float if dtype == torch.float32 else ctypes.c_double
    kernel = library.sample_estimate
    kernel.restype = ctypes.c_int
    kernel.argtypes = [ctypes.c_void_p] * 3 + [ctypes.c_int64, real, real, real, ctypes.c_int,
                                               ctypes.c_uint64, ctypes.c_uint64, ctypes.c_int]
    return kernel


def _native_estimate(kernel, v: torch.Tensor, x: torch.Tensor, alpha: float, shots: int,
                     seeds: tuple[int, int], threads: int | None = None) -> torch.Tensor:
    v, x = v.contiguous(), x.contiguous()
    out = torch.empty_like(v)
    if threads is None:
        threads = max(1, min(torch.get_num_threads(), v.numel() // _MIN_PER_THREAD))
    kernel(v.data_ptr(), x.data_ptr(), out.data_ptr(), v.numel(), alpha, float(shots), EXACT_BELOW,
           INVERSION_STEPS, seeds[0], seeds[1], threads)  # ctypes releases the GIL for the call
    return out


def native_available(dtype: torch.dtype = torch.float32) -> bool:
    return _native_kernel(dtype) is not None


# --------------------------------------------------------------------------- entry points


def _seeds(generator: torch.Generator) -> tuple[int, int]:
    """The call's two seeds (normals, inversion uniforms), from ``generator``."""
    drawn = torch.randint(0, 2**63 - 1, (2,), generator=generator, device=generator.device)
    return int(drawn[0]), int(drawn[1])


@torch.no_grad()
def sample_estimate(v: torch.Tensor, x: torch.Tensor, alpha: float, shots: int,
                    generator: torch.Generator, *, path: str = "auto") -> torch.Tensor:
    """alpha x + K / shots with K ~ Binomial(shots, P), P = clamp(v - alpha x, 0, 1),
    elementwise (see the module docstring); v, x of one shape and dtype, no autograd.
    ``path``: "auto" (the C where it runs), "native" or "torch" (tests)."""
    shape = v.shape
    v, x = v.reshape(-1), x.reshape(-1)
    if shots < MIN_APPROXIMATE_SHOTS:
        prob = (v - alpha * x).clamp(0.0, 1.0)
        counts = torch.binomial(torch.full_like(prob, float(shots)), prob, generator=generator)
        return (alpha * x + counts / shots).view(shape)
    seeds = _seeds(generator)
    kernel = None
    if path != "torch" and v.device.type == "cpu" and v.dtype in (torch.float32, torch.float64) and x.dtype == v.dtype:
        kernel = _native_kernel(v.dtype)
    if path == "native" and kernel is None:
        raise RuntimeError("the native shot sampler is not available here")
    if kernel is not None:
        return _native_estimate(kernel, v, x, alpha, shots, seeds).view(shape)
    return _reference_estimate(v, x, alpha, shots, seeds).view(shape)


def sample_counts(prob: torch.Tensor, shots: int, generator: torch.Generator, *, path: str = "auto") -> torch.Tensor:
    """K ~ Binomial(shots, prob) elementwise, as floats, by the sampler above."""
    return (sample_estimate(prob, torch.zeros_like(prob), 0.0, shots, generator, path=path) * shots).round()


class _StraightThrough(torch.autograd.Function):
    """value = the shot estimate of the readout in ``exact`` (= P + alpha x); d value /
    d exact := 1 (the module docstring)."""

    @staticmethod
    def forward(ctx, exact, x, alpha: float, shots: int, generator: torch.Generator):
        return sample_estimate(exact.detach(), x.detach(), alpha, shots, generator)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None, None, None


class ShotSampledCircuit:
    """A prepared circuit whose readout is estimated from ``shots`` shots per input."""

    def __init__(self, exact, shots: int, generator: torch.Generator):
        self._exact, self._shots, self._generator = exact, shots, generator

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        # The exact circuit folds alpha x into its pass; the sampler takes P back out.
        return _StraightThrough.apply(self._exact.evaluate(x, alpha), x, alpha, self._shots, self._generator)

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        return self._exact.statevector(x)
