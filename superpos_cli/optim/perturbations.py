"""Registry of perturbation functions f for the superpositional term Q = f(theta) * g.

Each entry is a pure function ``f(theta, generator) -> Tensor`` returning a tensor
of ``theta``'s shape, dtype and device. It reads ``theta`` (the parameter value
*before* the update) and never writes it: only the optimizer writes parameters.
Randomness comes from the explicit ``generator`` argument, never the global RNG,
so an ablation is reproducible from the optimizer's seed alone.

=========  =====================================  ==========================
name       f(theta)                               randomness
=========  =====================================  ==========================
sin        sin(pi * theta)   (the paper's)        none
cos        cos(pi * theta)                        none
gaussian   eps ~ N(0, 1), independent of theta    generator
uniform    eps ~ U(-1, 1), independent of theta   generator
none       0   (plain Adam / AdamW)               none
=========  =====================================  ==========================

Random perturbations draw on ``generator.device`` (CPU for the optimizer's
generator) and move the sample to ``theta.device``, so the numbers depend only on
the seed, not on where the parameters live.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from torch import Tensor

PerturbFn = Callable[[Tensor, Optional[torch.Generator]], Tensor]
ForeachPerturbFn = Callable[[list[Tensor], Optional[torch.Generator]], list[Tensor]]


@dataclass(frozen=True)
class Perturbation:
    """A named perturbation f.

    Attributes:
        name: registry key.
        fn: ``f(theta, generator) -> Tensor``, elementwise over ``theta``.
        foreach_fn: the same map over a list of tensors, using ``torch._foreach_*``
            ops where they exist; element ``i`` of the result equals
            ``fn(thetas[i], generator)`` (random draws happen in list order).
        needs_generator: True when ``fn`` consumes random numbers. Such an ``f``
            cannot be traced into a compiled kernel; fused paths draw it first.
        is_zero: True when f is identically 0, so the optimizer can skip Q and
            match Adam bit for bit.
        kernel_fn: ``f(theta) -> Tensor`` for tracing into a compiled kernel, when
            it differs from ``fn``: the same f to float rounding, written with ops
            that are cheap once compiled (None: trace ``fn``).
        into_fn: ``f(thetas, outs) -> outs``, ``foreach_fn``'s values written into
            buffers of the thetas' shapes, for eager paths that reuse one buffer
            from step to step (a fresh multi-MB result costs its page faults every
            step); None: only ``fn``.
    """

    name: str
    fn: PerturbFn
    foreach_fn: ForeachPerturbFn
    needs_generator: bool
    is_zero: bool = False
    kernel_fn: Optional[Callable[[Tensor], Tensor]] = None
    into_fn: Optional[Callable[[list[Tensor], list[Tensor]], list[Tensor]]] = None


def _sin(theta: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """f(theta) = sin(pi * theta)."""
    return torch.sin(theta * math.pi)


def _cos(theta: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """f(theta) = cos(pi * theta)."""
    return torch.cos(theta * math.pi)


def _into(trig: Callable) -> Callable[[list[Tensor], list[Tensor]], list[Tensor]]:
    """trig(pi * theta) into ``outs``: the ops of :func:`_sin` / :func:`_cos` (so their
    bits), one multiply per tensor and one foreach call for the rest."""

    def into_fn(thetas: list[Tensor], outs: list[Tensor]) -> list[Tensor]:
        for theta, out in zip(thetas, outs):
            torch.mul(theta, math.pi, out=out)
        trig(outs)
        return outs

    return into_fn


# Odd minimax polynomial for sin(pi r) on |r| <= 1/2 (relative error 5.3e-9 in
# exact arithmetic): sin(pi r) ~ r * (S0 + S1 r^2 + S2 r^4 + S3 r^6 + S4 r^8).
_SIN_PI = (3.1415927410125732, -5.167709827423096, 2.550069808959961, -0.5982421636581421, 0.07756049931049347)


def _sin_kernel(theta: Tensor) -> Tensor:
    """sin(pi * theta) for compiled float32 kernels; other dtypes use :func:`_sin`.

    Exact range reduction, then a polynomial: n = round(theta), r = theta - n in
    [-1/2, 1/2] (exact in float32), sin(pi theta) = (-1)^n sin(pi r). The sign is
    1 - 4 * frac(n / 2), also exact. Max absolute error vs float64 is ~2e-7 for any
    theta, about the error of float32 ``sin(pi * theta)`` near 0 (and far below it
    for large |theta|, where rounding pi * theta costs ~ulp(pi * theta)). Once
    compiled it costs a few vector FMAs instead of a general-purpose sin.
    """
    if theta.dtype != torch.float32:
        return _sin(theta)
    n = torch.round(theta)
    half = n * 0.5
    r = (theta - n) * (1.0 - 4.0 * (half - torch.floor(half)))
    z = r * r
    # Literal constants (the values of _SIN_PI): torch.compile(dynamic=True) turns
    # floats read from a global into graph inputs, re-wrapped as tensors per call.
    tail = ((0.07756049931049347 * z + -0.5982421636581421) * z + 2.550069808959961) * z + -5.167709827423096
    return r * 3.1415927410125732 + (r * z) * tail


def _gaussian(theta: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """f(theta) = eps, eps_i ~ N(0, 1) i.i.d., drawn from ``generator``."""
    sample = torch.randn(
        theta.shape, generator=generator, dtype=theta.dtype, device=generator.device
    )
    return sample.to(theta.device)


def _uniform(theta: Tensor, generator: Optional[torch.Generator]) -> Tensor:
    """f(theta) = eps, eps_i ~ U(-1, 1) i.i.d., drawn from ``generator``."""
    sample = torch.rand(
        theta.shape, generator=generator, dtype=theta.dtype, device=generator.device
    )
    return sample.mul_(2.0).sub_(1.0).to(theta.device)


def _none(theta: Tensor, generator: Optional[torch.Generator] = None) -> Tensor:
    """f(theta) = 0."""
    return torch.zeros_like(theta)


def _foreach_sin(thetas: list[Tensor], generator: Optional[torch.Generator] = None) -> list[Tensor]:
    return list(torch._foreach_sin(torch._foreach_mul(thetas, math.pi)))


def _foreach_cos(thetas: list[Tensor], generator: Optional[torch.Generator] = None) -> list[Tensor]:
    return list(torch._foreach_cos(torch._foreach_mul(thetas, math.pi)))


def _elementwise(fn: PerturbFn) -> ForeachPerturbFn:
    """Lift ``fn`` to a list, calling it in list order (keeps random draws ordered)."""

    def foreach_fn(thetas: list[Tensor], generator: Optional[torch.Generator]) -> list[Tensor]:
        return [fn(theta, generator) for theta in thetas]

    return foreach_fn


PERTURBATIONS: dict[str, Perturbation] = {
    "sin": Perturbation("sin", _sin, _foreach_sin, needs_generator=False, kernel_fn=_sin_kernel,
                        into_fn=_into(torch._foreach_sin_)),
    "cos": Perturbation("cos", _cos, _foreach_cos, needs_generator=False, into_fn=_into(torch._foreach_cos_)),
    "gaussian": Perturbation("gaussian", _gaussian, _elementwise(_gaussian), needs_generator=True),
    "uniform": Perturbation("uniform", _uniform, _elementwise(_uniform), needs_generator=True),
    "none": Perturbation("none", _none, _elementwise(_none), needs_generator=False, is_zero=True),
}


PLUGIN_GROUP = "superpos.perturbations"


def get_perturbation(name: str) -> Perturbation:
    """Look up ``name`` in :data:`PERTURBATIONS`, else among the plugins' entry points
    (``superpos.perturbations``); ValueError lists the allowed names."""
    from superpos_cli.spec.registry import perturbations, plugins

    if isinstance(name, str) and name in PERTURBATIONS:
        return PERTURBATIONS[name]
    if isinstance(name, str) and name in plugins(PLUGIN_GROUP):
        return _plugin(name)
    raise ValueError(f"Invalid perturb: {name!r}; allowed: {', '.join(perturbations())}")


@functools.cache
def _plugin(name: str) -> Perturbation:
    """A plugin's perturbation: a :class:`Perturbation`, or a plain ``f(theta,
    generator)``, taken to draw random numbers unless it says
    ``needs_generator = False`` (the safe assumption: fused paths then draw it
    first rather than trace it)."""
    from superpos_cli.spec.registry import load_plugin

    loaded = load_plugin(PLUGIN_GROUP, name)
    if isinstance(loaded, Perturbation):
        return loaded
    if not callable(loaded):
        raise ValueError(f"perturbation plugin {name!r} is neither a Perturbation nor a function f(theta, generator)")
    return Perturbation(name, loaded, _elementwise(loaded), needs_generator=getattr(loaded, "needs_generator", True))
