"""Test-only hook: make a named part of superpos do proportionally more work.

``SUPERPOS_TEST_SLOWDOWN="optimizer=2,attention=1.5"`` asks the optimizer step to
do 2x its work and attention 1.5x, without changing any result, so a CI gate can
check that it catches a regression of known size. Unset or empty means 1.0 for
every part. The variable is read once per process (``slowdown_factor.cache_clear()``
re-reads it).
"""

from __future__ import annotations

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
