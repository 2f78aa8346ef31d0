"""The regression gate of ``superpos bench``: current samples against a baseline's.

Every gated metric is either a *timing ratio* (method / reference timed alongside
in the same process, repeats interleaved, so machine speed cancels) or a
*deterministic* figure (epochs to target, final accuracy of a seeded run). The
decision for one metric, with ``ratio = median(current) / median(baseline)``:

* timing ratios (noisy): the metric **regresses** when the ratio crosses the
  threshold (``ratio > 1 + threshold`` for smaller-is-better,
  ``ratio < 1 - threshold`` for larger-is-better) **and** a one-sided
  Mann-Whitney U test on the two sample sets agrees (``p < alpha``,
  ``alternative="greater"`` resp. ``"less"``). It **improved** in the mirror case.
  Either condition alone is not enough: the threshold ignores changes too small to
  matter (a statistically clear 3% shift), the test ignores a median pushed over
  the threshold by one unlucky sample.
* deterministic metrics (``noisy=False``): the same seeds give the same numbers,
  so there is no noise to test against; the threshold alone decides. A censored
  value (``None``: the run never reached the target) counts as +inf.

Why ``alpha = 0.05`` and not asv's 0.002: asv compares many samples per side; with
the 5 repeats a CI bench can afford, the smallest one-sided exact Mann-Whitney
p-value is ``1 / C(10, 5) = 1/252 = 0.004`` (complete separation), so 0.002 could
never fire. 0.05 still needs near-complete separation of the two sample sets (at
most ``U = 4`` of 25 pairs out of order with 5 vs 5). With fewer samples the test
cannot reach ``alpha`` at all (3 vs 3: smallest p is 1/20 = 0.05); then the
decision falls back to the threshold alone and the result says so
(``test="threshold only"``), rather than silently never flagging anything.
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from dataclasses import dataclass
from typing import Any, Sequence

from scipy import stats as _sps

from superpos_cli.errors import BadInput

DEFAULT_ALPHA = 0.05
SMALLER, LARGER = "smaller", "larger"
REGRESSED, IMPROVED, UNCHANGED = "regressed", "improved", "unchanged"
# A timing ratio against a baseline from another machine: shown, never gated.
NOT_COMPARED = "not compared"


def parse_threshold(text: str | float) -> float:
    """``"10%"``, ``"0.1"`` or ``0.1`` -> 0.1; must lie in (0, 10]."""
    raw = str(text).strip()
    try:
        value = float(raw[:-1]) / 100 if raw.endswith("%") else float(raw)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and 0 < value <= 10):
        raise BadInput(f"threshold {raw!r} is not a fraction in (0, 10] such as 0.1 or 10%")
    return value


def _inf(values: Sequence[float | None]) -> list[float]:
    return [math.inf if v is None else float(v) for v in values]


def median(values: Sequence[float | None]) -> float:
    """Median with ``None`` (censored) as +inf."""
    return float(statistics.median(_inf(values)))


def min_one_sided_p(n: int, m: int) -> float:
    """Smallest p-value an exact one-sided Mann-Whitney test can give for n vs m samples."""
    return 1.0 / math.comb(n + m, n)


def _mann_whitney(a: list[float], b: list[float], alternative: str) -> float:
    pooled = a + b
    if all(v == pooled[0] for v in pooled):
        return 1.0
    return float(_sps.mannwhitneyu(a, b, alternative=alternative).pvalue)


def _ratio(current: float, baseline: float) -> float:
    if current == baseline:
        return 1.0  # includes inf / inf: both censored at the same budget
    if baseline == 0:
        return math.inf
    return current / baseline


@dataclass(frozen=True)
class Decision:
    name: str
    status: str  # regressed | improved | unchanged | not compared
    ratio: float  # median(current) / median(baseline); inf when only the current run is censored
    threshold: float
    direction: str
    p_value: float | None  # one-sided Mann-Whitney p in the direction of the change; None if not tested
    test: str  # "mann-whitney" | "threshold only" (deterministic, or too few samples)
    current_median: float
    baseline_median: float
    n_current: int
    n_baseline: int

    @property
    def regressed(self) -> bool:
        return self.status == REGRESSED

    def to_dict(self) -> dict[str, Any]:
        def finite(x):
            return None if x is None or (isinstance(x, float) and math.isinf(x)) else x

        return {
            "name": self.name,
            "status": self.status,
            "ratio": finite(self.ratio),
            "threshold": self.threshold,
            "direction": self.direction,
            "p_value": self.p_value,
            "test": self.test,
            "current_median": finite(self.current_median),
            "baseline_median": finite(self.baseline_median),
            "n_current": self.n_current,
            "n_baseline": self.n_baseline,
        }


def decide(
    name: str,
    current: Sequence[float | None],
    baseline: Sequence[float | None],
    threshold: float,
    *,
    direction: str = SMALLER,
    noisy: bool = True,
    alpha: float = DEFAULT_ALPHA,
) -> Decision:
    """Regressed, improved or unchanged (module docstring for the rule)."""
    if direction not in (SMALLER, LARGER):
        raise ValueError(f"direction must be {SMALLER!r} or {LARGER!r}, got {direction!r}")
    if not current or not baseline:
        raise ValueError(f"{name}: need samples on both sides, got {len(current)} and {len(baseline)}")
    if threshold <= 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    cur, base = _inf(current), _inf(baseline)
    cur_med, base_med = float(statistics.median(cur)), float(statistics.median(base))
    ratio = _ratio(cur_med, base_med)
    worse = ratio > 1 + threshold if direction == SMALLER else ratio < 1 - threshold
    better = ratio < 1 - threshold if direction == SMALLER else ratio > 1 + threshold
    testable = noisy and min_one_sided_p(len(cur), len(base)) < alpha
    p_value = None
    if testable and (worse or better):
        # "greater": current stochastically larger than baseline.
        larger_is_worse = direction == SMALLER
        alternative = "greater" if worse == larger_is_worse else "less"
        p_value = _mann_whitney(cur, base, alternative)
        agrees = p_value < alpha
        worse, better = worse and agrees, better and agrees
    status = REGRESSED if worse else IMPROVED if better else UNCHANGED
    return Decision(name, status, ratio, threshold, direction, p_value,
                    "mann-whitney" if testable else "threshold only", cur_med, base_med, len(cur), len(base))


def compare_records(
    current: dict[str, Any],
    baseline: dict[str, Any],
    fail_on: float,
    thresholds: dict[str, float] | None = None,
    alpha: float = DEFAULT_ALPHA,
    compare_timing: bool = True,
) -> list[Decision]:
    """One decision per metric present in both bench records (``record["metrics"]``).

    A metric's threshold is ``thresholds[name]``, else that of its suite metric
    (``convergence`` for ``convergence.sgd.final_accuracy``), else ``fail_on``.
    Metrics only one side has are skipped (a new metric has no baseline yet).
    ``compare_timing=False`` (the baseline ran on another machine): timing ratios
    are reported as :data:`NOT_COMPARED`, deterministic figures decided as usual.
    """
    thresholds = thresholds or {}
    decisions = []
    for name, metric in current["metrics"].items():
        if name not in baseline.get("metrics", {}):
            continue
        threshold = thresholds.get(name, thresholds.get(name.split(".")[0], fail_on))
        decision = decide(
            name, metric["samples"], baseline["metrics"][name]["samples"], threshold,
            direction=metric.get("direction", SMALLER), noisy=metric.get("noisy", True), alpha=alpha,
        )
        if not compare_timing and metric.get("noisy", True):
            decision = dataclasses.replace(decision, status=NOT_COMPARED, p_value=None)
        decisions.append(decision)
    return decisions
