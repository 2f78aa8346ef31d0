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
  version is distinguishable even at 20 (p 3e-6);
- elsewhere exactly, by inversion of the binomial CDF at a uniform from the same
  generator (:func:`_inversion_kernel`, float64, truncated where the tail is < 5e-16).

tests/test_noise.py checks the mixture against scipy's binomial (chi-square on the
counts, both regimes) and the estimates against Aer's sampling.

Cost: one seeded torch.randn over the scores and one fused pass (compiled by inductor
where a compiler is available, as the fourier kernels are) that reads the exact
readout and writes the estimate, NaN where the count must be exact; the pass also
reduces whether any is (a boolean mask as a second output kept inductor from
vectorising the loop, 7x slower), and only then are those gathered and sampled by
inversion (torch.binomial cost 0.3-0.5 us per count here; the inversion 0.04 us).
Drawing z inside the pass instead (hashed bits, an inverse normal) was slower than
torch.randn: inductor's CPU log is scalar.

The estimate has no useful derivative (it is piecewise constant in P); the gradient
passes straight through to P: d estimate / d P := 1, so training sees the exact
readout's gradient at the sampled value (the estimator is unbiased up to the
approximation above, so this is the gradient of the expected readout).
"""

from __future__ import annotations

import warnings

import torch

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
    sd = variance.sqrt()
    skew = (1 - 2 * prob) / sd.clamp_min(1e-12)  # the binomial's skewness and excess kurtosis
    kurtosis = (1 - 6 * prob * (1 - prob)) / variance.clamp_min(1e-24)
    z2 = z * z
    quantile = (z + skew / 6 * (z2 - 1) + kurtosis / 24 * z * (z2 - 3) - skew * skew / 36 * z * (2 * z2 - 5))
    counts = torch.floor(mean + sd * quantile + 0.5).clamp(min=0.0).minimum(shots)
    exact = torch.minimum(mean, shots - mean) < EXACT_BELOW
    return torch.where(exact, torch.nan, alpha * x + counts / shots), exact.any()


def _inversion_kernel(prob, u, shots):
    """K ~ Binomial(N, P) by inversion of its CDF at the uniforms u, float64, for
    min(N P, N (1 - P)) < EXACT_BELOW: the smaller tail is sampled, K = N - K' for P > 1/2.
    pmf(k + 1) = pmf(k) (N - k) / (k + 1) * q / (1 - q), from pmf(0) = (1 - q)**N."""
    flip = prob > 0.5
    q = torch.where(flip, 1 - prob, prob)
    ratio = q / (1 - q).clamp_min(1e-300)
    pmf = torch.exp(shots * torch.log1p(-q))
    cdf = pmf
    k = torch.zeros_like(q)
    for step in range(INVERSION_STEPS):
        k = k + torch.where(u > cdf, 1.0, 0.0)  # not a bool cast: that kept inductor from vectorising
        pmf = pmf * ((shots - step) / (step + 1)) * ratio
        cdf = cdf + pmf
    return torch.where(flip, shots - k, k)


_compiled: dict[str, object] = {}
COMPILE = True
_KERNELS = {"estimate": _estimate_kernel, "inversion": _inversion_kernel}


def _run(name: str, *args):
    """A kernel, compiled by inductor where a compiler is available (eager otherwise)."""
    global COMPILE
    if COMPILE:
        try:
            if name not in _compiled:
                _compiled[name] = torch.compile(_KERNELS[name], dynamic=True)
            return _compiled[name](*args)
        except Exception as err:  # noqa: BLE001 - any compiler failure: run eagerly
            warnings.warn(f"torch.compile unavailable ({type(err).__name__}); shots sample eagerly", RuntimeWarning)
            COMPILE = False
    return _KERNELS[name](*args)


def _binomial(prob: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """Exact Binomial(shots, prob) counts for small means, prob (K,) -> (K,) in prob's dtype."""
    u = torch.rand(prob.shape, generator=generator, dtype=torch.float64, device=prob.device)
    shots_t = torch.tensor(float(shots), dtype=torch.float64, device=prob.device)
    return _run("inversion", prob.to(torch.float64), u, shots_t).to(prob.dtype)


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
    if bool(any_exact):
        index = estimate.isnan().nonzero().squeeze(1)  # (K,): the marked ones, and any NaN input
        xs = x.index_select(0, index)
        prob = (v.index_select(0, index) - alpha * xs).clamp(0.0, 1.0)
        fixed = alpha * xs + _binomial(prob, shots, generator) / shots
        estimate.index_copy_(0, index, torch.where(prob.isnan(), prob, fixed))  # a NaN readout stays NaN
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
