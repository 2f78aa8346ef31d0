"""Finite shots: the ``prob`` readout estimated from N measurements.

The readout P = sum_{k<n} p_k is the probability that a shot lands on one of the
first n_qubits basis states, so N shots give a count K ~ Binomial(N, P) and the
estimate K / N (exact sampling, torch.binomial, from an explicit generator). The
estimate has no useful derivative (it is piecewise constant in P); the gradient
passes straight through to P: d estimate / d P := 1, so training sees the exact
readout's gradient and the sampled value (a device's estimator is unbiased, so the
straight-through gradient is the gradient of the expected loss to first order).
"""

from __future__ import annotations

import torch


def sample_estimate(p: torch.Tensor, shots: int, generator: torch.Generator) -> torch.Tensor:
    """K / shots with K ~ Binomial(shots, p) per element, gradient straight through to p."""
    prob = p.detach().clamp(0.0, 1.0)  # float rounding can leave P a hair outside [0, 1]
    count = torch.full_like(prob, float(shots))
    draws = torch.binomial(count, prob, generator=generator) / shots
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
