"""Test-only slowdowns, from outside: wrappers that repeat an object's work.

``SUPERPOS_TEST_SLOWDOWN="optimizer=2,attention=1.5"`` asks the bench to time an
optimizer that does 2x its work and an attention module that does 1.5x, without
changing any result, so a CI gate can check that it catches a regression of known
size. Nothing in the optimizer step or the attention forward knows about it: the
bench wraps the objects it builds (:func:`slowed_optimizer`, :func:`slowed_module`).
Unset or empty means 1.0 for every part. The variable is read once per process
(``slowdown_factor.cache_clear()`` re-reads it).
"""

from __future__ import annotations

import copy
import functools
import math
import os
import re

from superpos_cli.errors import BadInput

ENV_VAR = "SUPERPOS_TEST_SLOWDOWN"
_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_.-]*")


@functools.cache
def _factors() -> dict[str, float]:
    """Parse ``part=factor`` pairs, comma separated; factor a finite number >= 1."""
    text = os.environ.get(ENV_VAR, "").strip()
    factors: dict[str, float] = {}
    if not text:
        return factors
    for item in text.split(","):
        part, sep, value = (s.strip() for s in item.partition("="))
        if not sep or not _PART.fullmatch(part):
            raise BadInput(f"{ENV_VAR}: bad entry {item.strip()!r}; expected part=factor, e.g. optimizer=2")
        try:
            factor = float(value)
        except ValueError:
            factor = math.nan
        if not (math.isfinite(factor) and factor >= 1):
            raise BadInput(f"{ENV_VAR}: bad factor {value!r} for {part!r}; expected a number >= 1")
        factors[part] = factor
    return factors


def slowdown_factor(part: str) -> float:
    """How many times its normal work ``part`` should do (1.0 unless the variable says)."""
    return _factors().get(part, 1.0)


slowdown_factor.cache_clear = _factors.cache_clear  # type: ignore[attr-defined]


class SlowedOptimizer:
    """An optimizer whose ``step`` also steps ``extra`` scratch copies of it.

    The copies (deep copies: their own parameters, state and generator) read the
    real parameters' gradients, so each does the real step's work; the real
    parameters, state and generator see exactly one step. A fractional ``extra``
    (factor 2.5) makes the last copy cover a leading share of the parameters by size.
    """

    def __init__(self, optimizer, factor: float):
        self.optimizer = optimizer
        self._copies = []  # (copy, [(real param, its copy)])
        extra = factor - 1.0
        while extra > 1e-12:
            share = min(extra, 1.0)
            self._copies.append(_scratch_copy(optimizer, share))
            extra -= share

    def step(self, closure=None):
        loss = self.optimizer.step(closure)
        for scratch, pairs in self._copies:
            for real, twin in pairs:
                twin.grad = real.grad
            scratch.step()
        return loss

    def __getattr__(self, name):
        return getattr(self.optimizer, name)


def _scratch_copy(optimizer, share: float):
    """A deep copy of ``optimizer`` over a leading ``share`` of its parameters by size."""
    scratch = copy.deepcopy(optimizer)
    params = [p for group in optimizer.param_groups for p in group["params"]]
    total, covered, keep = sum(p.numel() for p in params), 0, set()
    for p in params:
        if covered >= share * total:
            break
        keep.add(id(p))
        covered += p.numel()
    pairs = []
    for group, twin_group in zip(optimizer.param_groups, scratch.param_groups):
        kept = [(p, twin) for p, twin in zip(group["params"], twin_group["params"]) if id(p) in keep]
        twin_group["params"] = [twin for _, twin in kept]
        pairs += kept
    return scratch, pairs


def slowed_optimizer(optimizer, part: str = "optimizer"):
    """``optimizer``, or a :class:`SlowedOptimizer` if the variable slows ``part``."""
    factor = slowdown_factor(part)
    return optimizer if factor == 1.0 else SlowedOptimizer(optimizer, factor)


def slowed_module(module, part: str = "attention"):
    """``module``, or a wrapper that runs its forward ceil(factor) times (the extra
    passes added times zero under a restored RNG state, so outputs, gradients and
    dropout draws are unchanged; backward repeats too)."""
    factor = slowdown_factor(part)
    if factor == 1.0:
        return module
    import torch

    from superpos_cli.models.dropout import fork_streams

    class Slowed(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = module

        def forward(self, *args, **kwargs):
            with torch.random.fork_rng(devices=[]), fork_streams(self.inner):
                extras = [self.inner(*args, **kwargs) for _ in range(math.ceil(factor) - 1)]
            out = self.inner(*args, **kwargs)
            for extra in extras:
                out = out + 0.0 * extra
            return out

    return Slowed()
