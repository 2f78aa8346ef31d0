"""Finite shots: the ``prob`` readout estimated from N measurements.

The readout P = sum_{k<n} p_k is the probability that a shot lands on one of the
first n_qubits basis states, so N shots give a count K ~ Binomial(N, P) and the
estimate K / N, drawn from an explicit torch.Generator.

Sampling, for N >= :data:`MIN_APPROXIMATE_SHOTS` (below it, torch.binomial for all):

- where N min(P, 1 - P) >= :data:`EXACT_BELOW` (20), the fourth-order Cornish-Fisher
  count floor(N P + sigma q(z) + 1/2) clamped to 0..N, z ~ N(0, 1), sigma =
  sqrt(N P (1 - P)), q = z + g (z^2 - 1) / 6 + k (z^3 - 3z) / 24 - g^2 (2z^3 - 5z) / 36
  with the binomial's skewness g = (1 - 2P) / sigma and excess kurtosis
  k = (1 - 6 P (1 - P)) / sigma^2. Against scipy's binomial on a million draws
  (chi-square): indistinguishable from a mean of 20 on, at N = 100 and 1024 (p 0.06,
  0.05), clearly not at a mean of 10 (p 1e-11); the second-order (skewness-only)
  version is distinguishable even at 20 (p 3e-6). It is an approximation all the same:
  its total variation distance from the binomial is 1.3e-3 at a mean of 20 (N = 100;
  1.0e-3 at N = 1024), 0.8e-3 / 0.4e-3 at 50, so 4 million draws at one P do tell it
  apart (p 1e-8 at a mean of 20, 0.01-0.1 at 40); the fifth-order expansion is no
  closer at these means (tried);
- elsewhere by inversion of the binomial CDF at a uniform from the same generator
  (:func:`_inversion_start`, in the readout's dtype: float32 sums the CDF to within
  1e-6, which no feasible test tells from exact, float64 to 1e-15; truncated where
  the tail is < 5e-16).

tests/test_noise.py checks the mixture against scipy's binomial (chi-square on the
counts, both regimes) and the estimates against Aer's sampling.

Cost: one seeded torch.randn over the scores and one fused pass (compiled by inductor
where a compiler is available, as the fourier kernels are) that reads the exact
readout and writes the estimate, NaN where the count must be exact; the pass also
reduces whether any is (a boolean mask as a second output kept inductor from
vectorising the loop, 7x slower), and only then are those gathered (numpy's
flatnonzero) and sampled by inversion in two passes (:data:`FIRST_STEPS`).
At profile's attention shape (524k scores, 8% of them small-mean) that is, per
call, about 2.2 ms for the normals, 1.1 ms for the pass and 2.5 ms for the
inversion's gather, kernels and scatter, on a 20 ms forward + backward.
Measured and rejected: drawing z inside the pass (hashed bits, an inverse normal:
slower than torch.randn, inductor's CPU log is scalar); numpy's generators (3x
slower than torch.randn here; SFC64's raw bits are cheap, 0.6 ms, but Box-Muller on
them in a compiled pass costs 1.8 ms, a 65536-entry inverse-normal table's gather 1.7 ms,
a counter hash with a rational inverse normal 8 ms, against torch.randn's 2.3 ms);
sampling inside the fourier forward kernel (no faster: the Clenshaw pass is
compute-bound and the sampler's arithmetic remains); inverting at Phi(z), the normal
the score already drew, instead of a second uniform (erfc cost what torch.rand saved).

The estimate has no useful derivative (it is piecewise constant in P); the gradient
passes straight through to P: d estimate / d P := 1, so training sees the exact
readout's gradient at the sampled value (the estimator is unbiased up to the
approximation above, so this is the gradient of the expected readout).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from superpos_cli.quantum.backends.direct import DirectKernels

EXACT_BELOW = 20.0  # N min(P, 1 - P) under which counts are drawn exactly
MIN_APPROXIMATE_SHOTS = 100
# Inversion stops after this many steps: P(K > 64) < 5e-16 for a mean below 20 and
# N >= 100 (scipy: 4.8e-16 at N = 1024, P = 20/1024).
INVERSION_STEPS = 64


def _estimate_kernel(v, x, z, alpha, shots):
    """(alpha x + K / N, whether any element needs the exact binomial), with P =
    clamp(v - alpha x, 0, 1) and K the Cornish-Fisher count of the module docstring;
    elements that need the exact binomial are NaN. alpha, shots are 0-dim tensors
    (one compiled graph for every value)."""
    prob = (v - alpha * x).clamp(0.0, 1.0)
    mean = prob * shots
    variance = mean * (1 - prob)
    inv_sd = variance.clamp_min(1e-24).rsqrt()  # one root, no division: the kernel's costliest ops
    skew = (1 - 2 * prob) * inv_sd  # the binomial's skewness and excess kurtosis
    kurtosis = (1 - 6 * prob * (1 - prob)) * (inv_sd * inv_sd)
    z2 = z * z
    quantile = (z + skew * (1 / 6) * (z2 - 1) + kurtosis * (1 / 24) * z * (z2 - 3)
                - skew * skew * (1 / 36) * z * (2 * z2 - 5))
    counts = torch.floor(mean + variance * inv_sd * quantile + 0.5).clamp(min=0.0).minimum(shots)
    exact = torch.minimum(mean, shots - mean) < EXACT_BELOW
    return torch.where(exact, torch.nan, alpha * x + counts / shots), exact.any()


# The inversion runs in two passes: FIRST_STEPS for every small-mean count, then the
# rest of the INVERSION_STEPS for the few still below u (1.6% of them at profile's
# attention readouts), picked up where the first pass stopped: the same float
# operations in the same order as one pass, so the same counts, at under half the cost.
FIRST_STEPS = 24


def _inversion_start(v, x, u, alpha, shots):
    """The first FIRST_STEPS steps of the inversion of Binomial(N, P)'s CDF at the
    uniforms u, P = clamp(v - alpha x, 0, 1) with min(N P, N (1 - P)) < EXACT_BELOW:
    (alpha x + K / N, k, pmf, cdf, ratio), the estimate where the count is below
    FIRST_STEPS (NaN where P is) and the state :func:`_inversion_rest` continues from.
    The smaller tail q = min(P, 1 - P) is sampled, K = N - k for P > 1/2;
    pmf(k + 1) = pmf(k) (N - k) / (k + 1) * q / (1 - q), from pmf(0) = (1 - q)**N."""
    prob = (v - alpha * x).clamp(0.0, 1.0)
    q = torch.where(prob > 0.5, 1 - prob, prob)
    ratio = q / (1 - q)  # q <= 1/2
    pmf = torch.exp(shots * torch.log1p(-q))
    cdf = pmf
    k = torch.zeros_like(q)
    for step in range(FIRST_STEPS):
        k = k + torch.where(u > cdf, 1.0, 0.0)  # not a bool cast: that kept inductor from vectorising
        pmf = pmf * ((shots - step) / (step + 1)) * ratio
        cdf = cdf + pmf
    estimate = alpha * x + torch.where(prob > 0.5, shots - k, k) / shots
    return torch.where(prob.isnan(), prob, estimate), k, pmf, cdf, ratio


def _inversion_rest(k, pmf, cdf, ratio, u, v, x, alpha, shots):
    """Steps FIRST_STEPS..INVERSION_STEPS - 1 of :func:`_inversion_start`'s loop: the estimate."""
    for step in range(FIRST_STEPS, INVERSION_STEPS):
        k = k + torch.where(u > cdf, 1.0, 0.0)
        pmf = pmf * ((shots - step) / (step + 1)) * ratio
        cdf = cdf + pmf
    return alpha * x + torch.where(v - alpha * x > 0.5, shots - k, k) / shots


COMPILE = True
_KERNELS = {"estimate": _estimate_kernel, "inversion_start": _inversion_start, "inversion_rest": _inversion_rest}
# Called straight after their first call (:mod:`.direct`): dynamo's guards cost ~150 us
# a call, three calls a sampled forward.
_DIRECT = DirectKernels(
    _KERNELS,
    {"estimate": ("v", "x", "z", "alpha", "shots"), "inversion_start": ("v", "x", "u", "alpha", "shots"),
     "inversion_rest": ("k", "pmf", "cdf", "ratio", "u", "v", "x", "alpha", "shots")},
    {"estimate": 2, "inversion_start": 5, "inversion_rest": 1})


def _run(name: str, *args):
    """A kernel, compiled by inductor where a compiler is available (eager otherwise)."""
    global COMPILE
    if COMPILE:
        try:
            return _DIRECT.run(name, args)
        except Exception as err:  # noqa: BLE001 - any compiler failure: run eagerly
            warnings.warn(f"torch.compile unavailable ({type(err).__name__}); shots sample eagerly", RuntimeWarning)
            COMPILE = False
    return _KERNELS[name](*args)


def _nan_index(values: torch.Tensor) -> torch.Tensor:
    """Positions of the NaNs in 1-d ``values`` (K,), int64: numpy's flatnonzero on the CPU
    (0.9 ms at 524k values here, against torch's isnan + nonzero 1.4 ms), torch's elsewhere."""
    if values.device.type == "cpu" and values.dtype in (torch.float32, torch.float64):
        return torch.from_numpy(np.flatnonzero(np.isnan(values.numpy())))
    return values.isnan().nonzero().squeeze(1)


def _exact_estimates(v: torch.Tensor, x: torch.Tensor, scalars: list[torch.Tensor],
                     generator: torch.Generator) -> torch.Tensor:
    """alpha x + K / N by inversion for the small-mean elements v, x (K,), in their
    dtype (float32: the CDF summed to within 1e-6, indistinguishable from exact in any
    feasible test; float64: 1e-15); a NaN readout stays NaN."""
    u = torch.rand(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    estimate, *state = _run("inversion_start", v, x, u, *scalars)
    more = (u > state[2]).nonzero().squeeze(1)  # (L,): counts of FIRST_STEPS or more (u above the cdf so far)
    if more.numel():
        rest = [t.index_select(0, more) for t in (*state, u, v, x)]
        estimate.index_copy_(0, more, _run("inversion_rest", *rest, *scalars))
    return estimate


@torch.no_grad()
def sample_estimate(v: torch.Tensor, x: torch.Tensor, alpha: float, shots: int,
                    generator: torch.Generator) -> torch.Tensor:
    """alpha x + K / shots with K ~ Binomial(shots, P), P = clamp(v - alpha x, 0, 1),
    elementwise (see the module docstring); v, x of one shape and dtype, no autograd."""
    shape = v.shape
    v, x = v.reshape(-1), x.reshape(-1)
    if shots < MIN_APPROXIMATE_SHOTS:
        prob = (v - alpha * x).clamp(0.0, 1.0)
        counts = torch.binomial(torch.full_like(prob, float(shots)), prob, generator=generator)
        return (alpha * x + counts / shots).view(shape)
    z = torch.randn(v.shape, generator=generator, dtype=v.dtype, device=v.device)
    scalars = [torch.tensor(value, dtype=v.dtype, device=v.device) for value in (alpha, float(shots))]
    estimate, any_exact = _run("estimate", v, x, z, *scalars)
    if bool(any_exact):  # (a NaN readout came out NaN already)
        index = _nan_index(estimate)  # (K,): the marked ones, and any NaN input
        fixed = _exact_estimates(v.index_select(0, index), x.index_select(0, index), scalars, generator)
        estimate.index_copy_(0, index, fixed)
    return estimate.view(shape)


def sample_counts(prob: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """K ~ Binomial(shots, prob) elementwise, as floats, by the sampler above."""
    return (sample_estimate(prob, torch.zeros_like(prob), 0.0, shots, generator) * shots).round()


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
