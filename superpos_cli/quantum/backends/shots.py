"""Finite shots: the ``prob`` readout estimated from N measurements.

The readout P = sum_{k<n} p_k is the probability that a shot lands on one of the
first n_qubits basis states, so N shots give a count K ~ Binomial(N, P) and the
estimate K / N, drawn from an explicit torch.Generator. Sampling: where
N min(P, 1 - P) >= :data:`EXACT_BELOW` the count is the normal approximation
round(N P + sigma (z + g (z^2 - 1) / 6)) with sigma = sqrt(N P (1 - P)) and the
binomial's skewness g = (1 - 2P) / sigma (Cornish-Fisher), clamped to 0..N (torch.binomial costs about 20x a
normal draw, and an attention layer needs 2**19 counts a step); elsewhere, and for
every count when N < 100, exact torch.binomial. tests/test_noise.py checks the
mixture against scipy's binomial at N >= 100 (chi-square on the counts) and against
Aer's sampling.

The estimate has no useful derivative (it is piecewise constant in P); the gradient
passes straight through to P: d estimate / d P := 1, so training sees the exact
readout's gradient at the sampled value (the estimator is unbiased, so this is the
gradient of the expected readout).
"""

from __future__ import annotations

import torch

EXACT_BELOW = 10.0  # N min(P, 1 - P) under which counts are drawn exactly
MIN_APPROXIMATE_SHOTS = 100


def sample_counts(prob: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """K ~ Binomial(shots, prob) elementwise (see the module docstring), as floats."""
    if shots < MIN_APPROXIMATE_SHOTS:
        return torch.binomial(torch.full_like(prob, float(shots)), prob, generator=generator)
    mean = prob * shots
    sd = (mean * (1 - prob)).sqrt()
    z = torch.randn(prob.shape, generator=generator, dtype=prob.dtype, device=prob.device)
    # Cornish-Fisher: z + skew (z^2 - 1) / 6 matches the binomial's skewness (1 - 2P) / sd.
    skewed = z + (1 - 2 * prob) / (6 * sd.clamp_min(1e-12)) * (z * z - 1)
    counts = torch.addcmul(mean, sd, skewed).round_().clamp_(0, shots)
    exact = torch.minimum(mean, shots - mean) < EXACT_BELOW
    if bool(exact.any()):
        chosen = prob[exact]
        counts[exact] = torch.binomial(torch.full_like(chosen, float(shots)), chosen, generator=generator)
    return counts


def sample_estimate(p: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """K / shots with K ~ Binomial(shots, p) per element, gradient straight through to p."""
    prob = p.detach().clamp(0.0, 1.0)  # float rounding can leave P a hair outside [0, 1]
    draws = sample_counts(prob, shots, generator) / shots
    return p + (draws - p.detach())


class ShotSampledCircuit:
    """A prepared circuit whose readout is estimated from ``shots`` shots per input."""

    def __init__(self, exact, shots: int, generator: torch.Generator):
        self._exact, self._shots, self._generator = exact, shots, generator

    def evaluate(self, x: torch.Tensor, alpha: float = 0.0) -> torch.Tensor:
        estimate = sample_estimate(self._exact.evaluate(x), self._shots, self._generator)
        return torch.add(estimate, x, alpha=alpha) if alpha else estimate

    def statevector(self, x: torch.Tensor) -> torch.Tensor:
        return self._exact.statevector(x)
