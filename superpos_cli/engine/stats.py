"""Statistics shared by ``compare``, ``ablate`` and ``bench``.

Pure functions over plain Python/numpy numbers: no printing, no global RNG (every
resampling takes an explicit ``seed``), the same inputs and seed give the same
outputs (architecture.md, "What the numbers mean").

Conventions
-----------
**Censoring.** An epochs-to-target value is ``None`` when the run never crossed
the target within ``max_epochs``. It is never dropped and never averaged as
``max_epochs``: for ranking and resampling a miss is ``+inf`` (slower than any
run that got there, tied with every other miss).

**None means +inf.** Every number this module returns is either finite or ``None``,
and ``None`` always stands for ``+inf``: "not reached", "> max_epochs", or "the
bound is unbounded above". Epochs and ratios of epochs are never negative, so
``-inf`` cannot arise. The convention makes every return value valid JSON and lets
:func:`verdict` read an interval straight from a record.

**Confidence intervals** are percentile bootstrap intervals (Efron): resample
with replacement ``n_resamples`` times, compute the statistic on each resample,
and take the ``alpha/2`` and ``1 - alpha/2`` quantiles of that bootstrap
distribution, ``alpha = 1 - confidence``. Percentile rather than BCa because
(a) with the 3-10 seeds a benchmark can afford, BCa's jackknife estimate of the
acceleration is itself too noisy to improve coverage, and (b) the percentile
interval needs only the order of the bootstrap statistics, so it stays defined
when censored runs make some of them ``+inf``. One rule everywhere keeps the
intervals of different metrics comparable.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sps

__all__ = [
    "bootstrap_ci",
    "bootstrap_indices",
    "censored_ratio",
    "censored_summary",
    "describe",
    "holm",
    "mann_whitney",
    "paired_ratio_ci",
    "verdict",
]

NO_DIFFERENCE = "no significant difference"

# scipy >= 1.15 takes ``rng=``; older releases only ``random_state=``. Both accept a
# numpy Generator and use it the same way.
_RNG_KW = "rng" if "rng" in inspect.signature(_sps.bootstrap).parameters else "random_state"


# --------------------------------------------------------------------------- helpers


def _validate_common(confidence: float, n_resamples: int) -> None:
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}")
    if int(n_resamples) != n_resamples or n_resamples < 1:
        raise ValueError(f"n_resamples must be a positive integer, got {n_resamples!r}")


def _finite_array(values: Sequence[float], what: str = "values") -> np.ndarray:
    x = np.asarray(values, dtype=float).ravel()  # (n,)
    if x.size == 0:
        raise ValueError(f"{what} is empty")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"{what} must be finite numbers, got {list(values)!r}")
    return x


def _censored_array(values: Sequence[float | None], what: str = "values") -> np.ndarray:
    """Map ``None`` (a miss) to ``+inf``; reject NaN and negative numbers."""
    x = np.array([math.inf if v is None else float(v) for v in values], dtype=float)  # (n,)
    if x.size == 0:
        raise ValueError(f"{what} is empty")
    if np.any(np.isnan(x)) or np.any(x < 0):
        raise ValueError(f"{what} must be non-negative numbers or None, got {list(values)!r}")
    return x


def _none_if_inf(x: float) -> float | None:
    return None if math.isinf(x) else float(x)


def _inf_if_none(x: float | None) -> float:
    return math.inf if x is None else float(x)


def _censored_median(x: np.ndarray, axis: int = -1) -> np.ndarray:
    """Sample median with misses at +inf; no NaN because +inf+inf and +inf+h are +inf.

    With n values of which ``m`` are +inf, the median is finite iff ``m < n/2``:
    for odd n the middle order statistic is a hit; for even n both middle order
    statistics (averaged) are hits.
    """
    return np.median(x, axis=axis)


def bootstrap_indices(n: int, n_resamples: int, seed: int) -> np.ndarray:
    """The resampling draw of :func:`censored_summary` and :func:`paired_ratio_ci`
    (and of engine/power.py's simulations of them): one ``(B, n)`` block of indices
    in [0, n) from ``default_rng(seed)``, the same draw as scipy.stats.bootstrap."""
    return np.random.default_rng(seed).integers(0, n, (n_resamples, n))  # (B, n)


def _outward_quantiles(theta: np.ndarray, confidence: float) -> tuple[float, float]:
    """Percentile interval of a bootstrap distribution that may hold +inf.

    Linear interpolation between order statistics (numpy's default) turns
    ``inf - inf`` into NaN, so the low bound is the order statistic just below
    the ``alpha/2`` quantile and the high bound the one just above ``1 - alpha/2``
    (numpy ``method="lower"`` / ``"higher"``): the interval is rounded outward,
    never narrower than the interpolated one.
    """
    alpha = (1.0 - confidence) / 2.0
    low = float(np.quantile(theta, alpha, method="lower"))
    high = float(np.quantile(theta, 1.0 - alpha, method="higher"))
    return low, high


# --------------------------------------------------------------------------- intervals


def bootstrap_ci(
    values: Sequence[float],
    stat: str = "mean",
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean or median of finite values.

    Computed with ``scipy.stats.bootstrap(method="percentile")`` using
    ``numpy.random.default_rng(seed)``, so ``(low, high)`` equals scipy's
    interval for the same seed and is reproducible. ``low`` is the ``alpha/2``
    quantile of the bootstrap distribution of ``stat`` and ``high`` the
    ``1 - alpha/2`` quantile (linear interpolation), ``alpha = 1 - confidence``.

    A single value or all-equal values have a degenerate bootstrap distribution;
    the interval is then ``(v, v)`` exactly (no resampling, no warning, no NaN).

    Raises ValueError for an empty sample, a non-finite value (use
    :func:`censored_summary` for censored data), an unknown ``stat``, or a
    ``confidence`` outside (0, 1).
    """
    if stat not in ("mean", "median"):
        raise ValueError(f"stat must be 'mean' or 'median', got {stat!r}")
    _validate_common(confidence, n_resamples)
    x = _finite_array(values)
    if x.size == 1 or np.all(x == x[0]):
        return float(x[0]), float(x[0])
    fn = np.mean if stat == "mean" else np.median
    res = _sps.bootstrap(
        (x,),
        fn,
        n_resamples=int(n_resamples),
        confidence_level=confidence,
        method="percentile",
        vectorized=True,
        **{_RNG_KW: np.random.default_rng(seed)},
    )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def describe(
    values: Sequence[float],
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
) -> dict:
    """Summary of an always-finite metric (per-epoch time, final accuracy, ...).

    Returns ``{"n", "mean", "mean_ci", "median", "median_ci", "min", "max",
    "samples"}``; the intervals are :func:`bootstrap_ci` with the given seed and
    ``samples`` are the raw values, so a record carries more than summaries.
    """
    x = _finite_array(values)
    return {
        "n": int(x.size),
        "mean": float(np.mean(x)),
        "mean_ci": bootstrap_ci(x, "mean", confidence, n_resamples, seed),
        "median": float(np.median(x)),
        "median_ci": bootstrap_ci(x, "median", confidence, n_resamples, seed),
        "min": float(np.min(x)),
        "max": float(np.max(x)),
        "samples": [float(v) for v in x],
    }


def censored_summary(
    values: Sequence[float | None],
    max_epochs: float,
    seed: int = 0,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> dict:
    """Median epochs-to-target with a bootstrap CI, when some runs never got there.

    ``values[i]`` is run ``i``'s (interpolated) epochs to target, or ``None`` if it
    never crossed within ``max_epochs``. A miss is ranked as ``+inf``.

    Returns a JSON-ready dict:

    - ``median``: sample median with misses at +inf (mean of the two middle
      order statistics when n is even). It is finite iff strictly fewer than half
      the runs missed (``misses < n/2``); otherwise ``None`` = "not reached".
    - ``ci``: ``(low, high)`` percentile bootstrap interval of that median: B
      resamples of the n runs with replacement, median of each (+inf when half or
      more of the resample missed), then the order statistics just outside the
      ``alpha/2`` and ``1 - alpha/2`` quantiles (see ``_outward_quantiles``;
      interpolating would give ``inf - inf``). A bound that is +inf is ``None`` =
      "> max_epochs": the data only say it lies beyond the training budget.
      With one run or all-equal values the interval is ``(v, v)``.
    - ``mean`` / ``mean_ci``: mean of the runs and its :func:`bootstrap_ci`, only
      when every run reached the target; ``None`` otherwise, because a mean with
      censored runs is only a lower bound and would be read as an estimate.
    - ``success_rate``: fraction of runs that reached the target.
    - ``n``, ``n_reached``, ``max_epochs`` and ``per_seed`` (the input values,
      ``None`` for misses), so the record keeps the raw samples.

    Raises ValueError for an empty list, NaN or negative values, or a hit above
    ``max_epochs`` (a run cannot reach the target after its last epoch).
    """
    _validate_common(confidence, n_resamples)
    if not max_epochs > 0:
        raise ValueError(f"max_epochs must be positive, got {max_epochs!r}")
    x = _censored_array(values)
    hits = x[np.isfinite(x)]
    if np.any(hits > max_epochs):
        raise ValueError(f"epochs-to-target values must be <= max_epochs={max_epochs}, got {list(values)!r}")

    median = float(_censored_median(x))
    if x.size == 1 or np.all(x == x[0]):
        low = high = float(x[0])
    else:
        idx = bootstrap_indices(x.size, int(n_resamples), seed)  # (B, n)
        theta = _censored_median(x[idx], axis=-1)  # (B,)
        low, high = _outward_quantiles(theta, confidence)

    all_reached = hits.size == x.size
    return {
        "median": _none_if_inf(median),
        "ci": (_none_if_inf(low), _none_if_inf(high)),
        "mean": float(np.mean(x)) if all_reached else None,
        "mean_ci": bootstrap_ci(x, "mean", confidence, n_resamples, seed) if all_reached else None,
        "success_rate": float(hits.size / x.size),
        "n": int(x.size),
        "n_reached": int(hits.size),
        "max_epochs": max_epochs,
        "per_seed": [None if v is None else float(v) for v in values],
    }


def censored_ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise ``num / den`` for non-negative values that may be +inf.

    Equal values give 1 (this covers inf/inf, two censored medians at the same
    budget, and 0/0): no evidence of a difference. Otherwise IEEE division:
    h/inf = 0 (the method reached, the baseline did not), inf/h = x/0 = +inf.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.true_divide(num, den)
    return np.where(num == den, 1.0, r)


def paired_ratio_ci(
    method: Sequence[float | None],
    baseline: Sequence[float | None],
    seed: int = 0,
    *,
    confidence: float = 0.95,
    n_resamples: int = 2000,
) -> dict:
    """Ratio of medians ``median(method) / median(baseline)`` with a paired bootstrap CI.

    ``method[i]`` and ``baseline[i]`` come from the same seed (same data order and
    initialisation), so the pair is the unit of resampling: each of the B
    resamples draws n seed indices with replacement and takes the same indices
    from both arms, keeping the correlation between arms in the interval.

    Values may be ``None`` (censored, a miss = +inf). Per-pair ratios would be
    undefined for a pair where both arms missed and +inf for a pair where only
    the method missed, so the statistic is the ratio of the two arms' medians
    instead, each median taken with misses at +inf (see
    :func:`censored_summary`), and then :func:`censored_ratio`: equal medians give 1
    (both censored included), a censored method median over a finite baseline
    median gives +inf, the reverse gives 0. For epochs-to-target, ``ratio < 1``
    means the method needs fewer epochs (achieved speedup = 1/ratio); for
    per-epoch time, ``ratio - 1`` is the overhead.

    Returns ``{"ratio", "ci": (low, high), "n_pairs"}``; the interval is the
    outward percentile interval of the bootstrap ratios, and any +inf (point or
    bound) is ``None`` (module convention). One pair, or a degenerate bootstrap
    distribution, gives ``(ratio, ratio)``.
    """
    _validate_common(confidence, n_resamples)
    m = _censored_array(method, "method")
    b = _censored_array(baseline, "baseline")
    if m.size != b.size:
        raise ValueError(f"paired samples need equal lengths, got {m.size} and {b.size}")

    ratio = float(censored_ratio(_censored_median(m), _censored_median(b)))
    if m.size == 1:
        low = high = ratio
    else:
        idx = bootstrap_indices(m.size, int(n_resamples), seed)  # (B, n), shared by both arms
        theta = censored_ratio(_censored_median(m[idx], axis=-1), _censored_median(b[idx], axis=-1))  # (B,)
        low, high = _outward_quantiles(theta, confidence)
    return {
        "ratio": _none_if_inf(ratio),
        "ci": (_none_if_inf(low), _none_if_inf(high)),
        "n_pairs": int(m.size),
    }


# --------------------------------------------------------------------------- hypothesis tests


def mann_whitney(
    a: Sequence[float | None],
    b: Sequence[float | None],
    alternative: str = "two-sided",
) -> float | None:
    """Mann-Whitney U test p-value via ``scipy.stats.mannwhitneyu``.

    Censored values (``None``) become +inf before ranking, so every miss ranks
    above every hit and misses tie with each other (midranks, scipy's tie
    correction). scipy's ``method="auto"`` is used: the exact null distribution
    for small samples without ties (n <= 8), the normal approximation with
    continuity correction otherwise.

    Returns ``None`` when either side has fewer than 2 values: no such test can
    reach a conventional significance level (the smallest two-sided p for 1 vs n
    values is 2/(n+1) >= 0.5 for n <= 3), and a number would read as evidence of
    no difference. Returns ``1.0`` when all values on both sides are equal: every
    relabelling gives the same U, so the exact permutation p-value is 1 (scipy's
    normal approximation would divide by a zero variance).
    """
    if alternative not in ("two-sided", "less", "greater"):
        raise ValueError(f"alternative must be 'two-sided', 'less' or 'greater', got {alternative!r}")
    x = _censored_array(a, "a") if len(a) else np.empty(0)
    y = _censored_array(b, "b") if len(b) else np.empty(0)
    if x.size < 2 or y.size < 2:
        return None
    pooled = np.concatenate([x, y])
    if np.all(pooled == pooled[0]):
        return 1.0
    return float(_sps.mannwhitneyu(x, y, alternative=alternative).pvalue)


def holm(p_values: Sequence[float | None]) -> list[float | None]:
    """Holm-Bonferroni adjusted p-values, in the input order.

    With the m non-None p-values sorted ascending, ``p_(1) <= ... <= p_(m)``:
    ``adj_(k) = min(1, max_{j<=k} (m - j + 1) * p_(j))``. The running maximum
    keeps the adjusted values monotone in the raw ones; rejecting where
    ``adj <= alpha`` controls the family-wise error rate at alpha. ``None``
    entries (tests that could not be run) pass through and do not count in m.
    Same result as ``statsmodels.stats.multitest.multipletests(method="holm")``.
    """
    present = [(i, float(p)) for i, p in enumerate(p_values) if p is not None]
    for _, p in present:
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"p-values must be in [0, 1], got {p!r}")
    m = len(present)
    out: list[float | None] = [None] * len(p_values)
    running = 0.0
    for rank, (i, p) in enumerate(sorted(present, key=lambda t: t[1])):
        running = max(running, min(1.0, (m - rank) * p))
        out[i] = running
    return out


def verdict(
    ci_low: float | None,
    ci_high: float | None,
    *,
    null: float = 1.0,
    below: str = "faster",
    above: str = "slower",
) -> str:
    """Verdict of a comparison from its confidence interval, not its point estimate.

    ``below`` if the whole interval lies below ``null`` (``ci_high < null``),
    ``above`` if it lies wholly above (``ci_low > null``), otherwise
    ``"no significant difference"``. The defaults read a ratio method/baseline of
    epochs (or time) to target: < 1 is faster. For a difference pass ``null=0``.
    ``None`` bounds mean +inf (module convention): a low bound of ``None`` is
    wholly above any null, a high bound of ``None`` never below it.
    """
    low, high = _inf_if_none(ci_low), _inf_if_none(ci_high)
    if math.isnan(low) or math.isnan(high) or low > high:
        raise ValueError(f"not a confidence interval: ({ci_low!r}, {ci_high!r})")
    if high < null:
        return below
    if low > null:
        return above
    return NO_DIFFERENCE
