r"""Statistical power of a paired comparison, from the seed-to-seed spread it observed.

A comparison that finds "no significant difference" says little unless it could
have found one. Given the per-seed values of a method arm and its reference arm
(epochs to target, or mean training loss), this module answers:

* the **detectable ratio**: the ratio method / reference closest to 1 (in the
  good direction: fewer epochs, lower loss) that the comparison, with its number
  of seeds, would have declared at ``target_power`` (80%);
* the **seeds needed** to declare a given ratio (the paper's claimed effect) at
  that power.

"Declared" means the tool's own tests (:mod:`superpos_cli.engine.stats`) on the
simulated seeds, at alpha 0.05:

* ``bootstrap`` (the verdict): the 95% paired percentile bootstrap CI of the ratio
  of medians (:func:`stats.paired_ratio_ci`, its 2000 resamples and its seed) lies
  wholly below 1, i.e. :func:`stats.verdict` says "faster" / "lower loss"; a CI
  inside ``1 +- equivalence`` reads "equivalent" and does not count;
* ``mann_whitney``: :func:`stats.mann_whitney`'s two-sided p <= alpha with the
  method's median below the reference's (with 3 seeds a side its exact p is never
  below 0.1, so it can detect nothing: a true, useful statement).

Method: simulation, not a formula. The tool's verdict is a percentile bootstrap of
a ratio of medians with censored runs at +inf, and its Mann-Whitney switches
between exact and asymptotic p-values; neither has a closed-form power, and
normal-theory formulas (t-test power) are wrong at 3-10 seeds for a bootstrap
whose coverage is itself poor there. So the data are simulated from a model fitted
to the observed spread and the tool's own test is applied to each simulated run:

* per seed, ``log(value)`` is normal with the reference arm's mean of logs and the
  pooled within-arm standard deviation of logs (both arms, finite values only;
  epochs and losses are positive and their spread scales with their size);
* the method arm is the same distribution times ``ratio``; the arms are drawn
  independently. Independence is deliberately conservative: the observed
  correlation of paired seeds is unmeasurable from 3-10 pairs, and when two arms
  agree seed for seed (as Adam and SGD do under the paper's rule) it is 1, which
  would make any shift "detectable" with two seeds;
* a simulated epochs-to-target above ``max_value`` (the epoch budget) is a miss
  (+inf), as the tool would record it.

Every power is the share of ``n_sims`` simulated comparisons the test declares,
all ratios and seed counts drawing on the same standard-normal numbers (common
random numbers: power is then monotone in the ratio and the searches are
stable). The searches: on log(ratio), doubling outward from half a log-SD down
to ``min_ratio``, then bisecting to 0.5% of the log ratio; on the number of
seeds, one at a time from 2 to 8, then doubling and bisecting up to
``max_seeds``. The tests run vectorised over simulated runs with
the tool's own bootstrap draw (tests/test_power.py checks them equal, run by run,
to calls of stats.py, and the powers against a brute-force Monte-Carlo of those
calls). Randomness is a seeded numpy Generator; the same inputs give the same
outputs.

Cost: one power record at 2-5 seeds takes 0.05-0.12 s on one core (it took
0.9-1.3 s before the counting below; the same records, bit for bit). Where the
time went and what replaced it: the bootstrap's bounds are counts, not sorts
(:func:`_bootstrap_declares`); resample medians are an n-step walk over small
integers (:func:`_medians`), with no BLAS call whose threads stall on a loaded
machine; the bootstrap draw's multisets are computed once per seed count
(:func:`_multisets`); seed searches step one seed at a time where probes are
cheap; and :func:`power_analysis` is memoised on its inputs, since reproduce's
steps share comparisons. The precision is unchanged: 400 simulated comparisons
per point (a power near 80% is known to +-2 points, one binomial SE) and the
tool's own 2000 resamples in each.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Sequence

import numpy as np
from scipy import stats as _sps

from superpos_cli.engine import stats

__all__ = ["TESTS", "detectable_ratio", "fit_spread", "power_analysis", "seeds_needed", "simulated_power"]

TESTS = ("bootstrap", "mann_whitney")
_CHUNK = 1 << 22  # bootstrap values held at once: (sims, resamples, seeds)
_BLOCK = 100  # simulated runs per step of a sequential decision (_power_beyond)
_STEP_UP_TO = 8  # seeds_needed steps one seed at a time up to here, then doubles


def fit_spread(method: Sequence[float | None], baseline: Sequence[float | None]) -> tuple[float, float] | None:
    """``(center, sd)`` of log values: the reference arm's mean log, and the pooled
    within-arm SD of logs over the arms' finite values (ddof 1 per arm).

    None when it cannot be estimated: no finite reference value, or no arm with two
    finite values. Censored (None / inf) and non-positive values are left out, so
    the spread of an arm with misses is that of its hits.
    """
    arms = []
    for values in (baseline, method):
        x = np.array([v for v in values if v is not None and math.isfinite(v) and v > 0], dtype=float)
        arms.append(np.log(x))  # (n_finite,)
    if arms[0].size == 0:
        return None
    df = sum(a.size - 1 for a in arms if a.size >= 2)
    if df == 0:
        return None
    ss = sum(float(np.sum((a - a.mean()) ** 2)) for a in arms if a.size >= 2)
    return float(arms[0].mean()), math.sqrt(ss / df)


class _Simulation:
    """Fixed standard-normal draws for reference and method arms, ``(n_sims, n)``,
    reused for every ratio (common random numbers)."""

    def __init__(self, n: int, center: float, sd: float, max_value: float | None, n_sims: int, seed: int):
        rng = np.random.default_rng(seed)
        self.baseline = np.exp(center + sd * rng.standard_normal((n_sims, n)))  # (S, n)
        self.method = np.exp(center + sd * rng.standard_normal((n_sims, n)))  # (S, n)
        self.max_value = max_value
        self.n_sims = n_sims

    def arms(self, ratio: float) -> tuple[np.ndarray, np.ndarray]:
        m, b = self.method * ratio, self.baseline.copy()
        if self.max_value is not None:
            m[m > self.max_value] = math.inf
            b[b > self.max_value] = math.inf
        return m, b


@functools.lru_cache(maxsize=64)
def _multisets(n: int, n_resamples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The distinct multisets of :func:`stats.bootstrap_indices`' draw: ``seed_counts
    (U, n)`` int16, how often seed i is in multiset u, and ``counts (U,)``, how many
    of the resamples drew it. Cached (read-only): every block of every probe of a
    search uses the same draw, and np.unique over 2000 resamples each time was a
    fifth of a search's time."""
    idx = stats.bootstrap_indices(n, n_resamples, seed)  # (B, n), the tool's draw
    multisets, counts = np.unique(np.sort(idx, axis=1), axis=0, return_counts=True)  # (U, n), (U,)
    seed_counts = (multisets[:, :, None] == np.arange(n)).sum(axis=1).astype(np.int16)  # (U, n)
    seed_counts.flags.writeable = counts.flags.writeable = False
    return seed_counts, counts


def _medians(x: np.ndarray, seed_counts: np.ndarray) -> np.ndarray:
    """Median of every bootstrap multiset of every row: ``x (S, n)``, ``seed_counts
    (U, n)`` how often each of the n seeds is in multiset u; returns ``(U, S)``.

    The same floats as ``np.median(x[:, idx], axis=-1)``: the two middle order
    statistics of the resample, averaged as (a + b) / 2. They are found by walking
    each row's sorted values while adding up how many of them the resample holds
    (``size``): the lower middle value sits at the number of sorted positions whose
    size is still <= (n - 1) // 2, the upper at <= n // 2. The walk is n steps over
    ``(U, S)`` slabs of small integers: no sort per resample (3-5x faster at 10-64
    seeds) and no BLAS call, whose threads slowed this 4x on a loaded 2-core
    machine; a cumulative sum along the short seed axis was 3x slower still."""
    n_sims, n = x.shape
    order = np.argsort(x, axis=1)  # (S, n)
    xs = np.take_along_axis(x, order, axis=1)  # (S, n), ascending; misses (+inf) last
    size = np.zeros((len(seed_counts), n_sims), dtype=np.int16)  # (U, S): resample size up to position k
    lower = np.zeros_like(size)  # (U, S): sorted position of the lower middle value
    upper = lower if n % 2 else np.zeros_like(size)  # (U, S); odd n: the same value
    for k in range(n):
        size += seed_counts[:, order[:, k]]  # (U, S)
        lower += size <= (n - 1) // 2
        if n % 2 == 0:
            upper += size <= n // 2
    cols = np.arange(n_sims)  # (S,)
    return (xs[cols, lower] + xs[cols, upper]) / 2.0


def _bootstrap_declares(m: np.ndarray, b: np.ndarray, *, confidence: float, n_resamples: int, seed: int,
                        equivalence: float | None) -> np.ndarray:
    """Per simulated run: does :func:`stats.paired_ratio_ci`'s CI lie wholly below 1
    (and outside the equivalence band)? The same index draw, medians, ratio rule and
    outward quantiles (numpy's "lower" / "higher") as that function, vectorised over
    runs. A resample's medians depend only on the multiset of indices it drew, so
    each distinct multiset is computed once and weighted by how often it was drawn
    (10 multisets instead of 2000 resamples at 3 seeds).

    The bounds are never formed: the k-th smallest (0-based) of the B ratios is
    below c exactly when at least k + 1 of them are, so ``high < 1`` is a weighted
    count of resamples with ratio < 1 (and likewise the equivalence band's two
    bounds), a matrix-vector product instead of a sort per run."""
    n_sims, n = m.shape
    seed_counts, counts = _multisets(n, n_resamples, seed)
    weights = counts.astype(float)  # (U,)
    alpha = (1.0 - confidence) / 2.0
    lo_rank = math.floor((n_resamples - 1) * alpha)  # numpy's "lower" virtual index
    hi_rank = math.ceil((n_resamples - 1) * (1.0 - alpha))  # and "higher"
    declared = np.empty(n_sims, dtype=bool)
    chunk = max(1, _CHUNK // (len(seed_counts) * n))
    for start in range(0, n_sims, chunk):
        sl = slice(start, start + chunk)
        theta = stats.censored_ratio(_medians(m[sl], seed_counts), _medians(b[sl], seed_counts))  # (U, s)
        high_below_1 = weights @ (theta < 1.0) >= hi_rank + 1  # (s,)
        if equivalence is not None:
            low_inside = weights @ (theta < 1.0 - equivalence) <= lo_rank  # low >= 1 - equivalence
            high_inside = weights @ (theta <= 1.0 + equivalence) >= hi_rank + 1  # high <= 1 + equivalence
            high_below_1 &= ~(low_inside & high_inside)
        declared[sl] = high_below_1
    return declared


def _mann_whitney_declares(m: np.ndarray, b: np.ndarray, *, alpha: float) -> np.ndarray:
    """Per simulated run: :func:`stats.mann_whitney` p <= alpha and the method's
    median lower. Continuous draws tie only at +inf, so a run ties when two or more
    of its values missed. scipy's "auto" picks exact or asymptotic for a whole
    batch (asymptotic if any run ties), so runs without ties go in one batch (the
    method a single call would pick) and runs with ties in another, asymptotic, as
    a single call with ties is; runs whose values are all equal get 1.0, as
    stats.mann_whitney gives them."""
    p = np.ones(m.shape[0])
    misses = (~np.isfinite(m)).sum(axis=1) + (~np.isfinite(b)).sum(axis=1)  # (S,)
    clean = np.flatnonzero(misses < 2)
    if clean.size:
        p[clean] = _sps.mannwhitneyu(m[clean], b[clean], axis=-1).pvalue
    ties = np.flatnonzero((misses >= 2) & (misses < m.shape[1] + b.shape[1]))  # all misses: all equal, p = 1
    if ties.size:
        p[ties] = _sps.mannwhitneyu(m[ties], b[ties], axis=-1, method="asymptotic").pvalue
    lower = np.median(m, axis=1) < np.median(b, axis=1)
    return (p <= alpha) & lower


def _declared(arms: tuple[np.ndarray, np.ndarray], test: str, rows: slice, *, confidence: float,
              n_resamples: int, boot_seed: int, equivalence: float | None) -> int:
    """How many of the simulated runs ``rows`` of ``arms`` (method, reference) the
    test declares better."""
    m, b = arms[0][rows], arms[1][rows]
    if test == "bootstrap":
        declared = _bootstrap_declares(m, b, confidence=confidence, n_resamples=n_resamples, seed=boot_seed,
                                       equivalence=equivalence)
    else:
        declared = _mann_whitney_declares(m, b, alpha=1.0 - confidence)
    return int(np.sum(declared))


def _power(sim: _Simulation, ratio: float, test: str, **kw) -> float:
    return _declared(sim.arms(ratio), test, slice(None), **kw) / sim.n_sims


def _power_beyond(sim: _Simulation, ratio: float, test: str, level: float, above: bool, **kw) -> bool:
    """``_power(...) >= level`` (``above``) or ``<= level`` (not ``above``), the same
    answer, but decided block by block: it stops once the runs left cannot change
    it (most searches' probes are far from the level, so this halves their cost)."""
    n_sims, hits = sim.n_sims, 0
    arms = sim.arms(ratio)
    for start in range(0, n_sims, _BLOCK):
        stop = min(start + _BLOCK, n_sims)
        hits += _declared(arms, test, slice(start, stop), **kw)
        low, high = hits / n_sims, (hits + n_sims - stop) / n_sims  # bounds of the final power
        if above and (low >= level or high < level):
            return low >= level
        if not above and (high <= level or low > level):
            return high <= level
    raise AssertionError("unreachable: the last block decides")


def _check(test: str, n: int) -> None:
    if test not in TESTS:
        raise ValueError(f"test must be one of {', '.join(TESTS)}, got {test!r}")
    if n < 2:
        raise ValueError(f"power needs at least 2 seeds, got {n}")


def simulated_power(ratio: float, n: int, center: float, sd: float, *, test: str = "bootstrap",
                    max_value: float | None = None, n_sims: int = 400, seed: int = 0, confidence: float = 0.95,
                    n_resamples: int = 2000, boot_seed: int = 0, equivalence: float | None = None) -> float:
    """Share of ``n_sims`` simulated ``n``-seed comparisons (module model) in which
    ``test`` declares the method better, when its true ratio is ``ratio``."""
    _check(test, n)
    sim = _Simulation(n, center, sd, max_value, n_sims, seed)
    return _power(sim, ratio, test, confidence=confidence, n_resamples=n_resamples, boot_seed=boot_seed,
                  equivalence=equivalence)


def detectable_ratio(n: int, center: float, sd: float, *, test: str = "bootstrap", target_power: float = 0.8,
                     min_ratio: float = 0.05, max_value: float | None = None, n_sims: int = 400, seed: int = 0,
                     confidence: float = 0.95, n_resamples: int = 2000, boot_seed: int = 0,
                     equivalence: float | None = None) -> float | None:
    """The ratio closest to 1 declared with power >= ``target_power`` at ``n`` seeds;
    None when even ``min_ratio`` is not (the test cannot get there with n seeds)."""
    _check(test, n)
    sim = _Simulation(n, center, sd, max_value, n_sims, seed)
    kw = dict(confidence=confidence, n_resamples=n_resamples, boot_seed=boot_seed, equivalence=equivalence)
    floor = math.log(min_ratio)
    # Bracket outward from half a log-SD (no test sees much less), doubling; then
    # bisect until the bracket is 0.5% of the log ratio (or 1e-6 wide).
    weak, strong = 0.0, max(floor, -0.5 * sd) if sd > 0 else max(floor, -1e-3)
    while not _power_beyond(sim, math.exp(strong), test, target_power, True, **kw):
        if strong == floor:
            return None
        weak, strong = strong, max(floor, 2.0 * strong)
    while weak - strong > max(5e-3 * -strong, 1e-6):
        mid = (strong + weak) / 2.0
        if _power_beyond(sim, math.exp(mid), test, target_power, True, **kw):
            strong = mid
        else:
            weak = mid
    return math.exp(strong)


def seeds_needed(ratio: float, center: float, sd: float, *, test: str = "bootstrap", target_power: float = 0.8,
                 max_false_positive: float | None = 0.05, max_seeds: int = 32, max_value: float | None = None,
                 n_sims: int = 400, seed: int = 0, confidence: float = 0.95, n_resamples: int = 2000,
                 boot_seed: int = 0, equivalence: float | None = None) -> int | None:
    """Fewest seeds per arm (>= 2) at which ``test`` declares ``ratio`` with power >=
    ``target_power`` while declaring ratio 1 (no effect) in at most
    ``max_false_positive`` of the runs; None when ``max_seeds`` do not.

    The second condition matters for the percentile bootstrap: at 2-4 seeds its
    intervals are too narrow and it declares a null effect in 23%, 11%, 7% of runs
    (one-sided, nominally 2.5%), so it "detects" large effects with 2 seeds. The
    default 0.05 (twice the nominal one-sided rate, above the simulation noise of
    a test that holds its level) asks for a seed count at which the verdict means
    what it says. ``None`` drops the condition.

    Search: one seed at a time from 2 to 8 (probes there are cheap: at most 1,440
    distinct resamples), then doubling and bisection up to ``max_seeds``, assuming
    the condition, once met, stays met with more seeds (power rises and the
    false-positive rate falls).
    """
    _check(test, 2)
    kw = dict(confidence=confidence, n_resamples=n_resamples, boot_seed=boot_seed, equivalence=equivalence)

    def enough(n: int) -> bool:
        sim = _Simulation(n, center, sd, max_value, n_sims, seed)
        if not _power_beyond(sim, ratio, test, target_power, True, **kw):
            return False
        return max_false_positive is None or _power_beyond(sim, 1.0, test, max_false_positive, False, **kw)

    low, high = 1, 2  # enough(low) is False by convention (no test with one seed)
    while not enough(high):
        if high >= max_seeds:
            return None
        low, high = high, min(high + 1 if high < _STEP_UP_TO else 2 * high, max_seeds)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if enough(mid) else (mid, high)
    return high


def power_analysis(method: Sequence[float | None], baseline: Sequence[float | None], *, paper_ratio: float,
                   max_value: float | None = None, target_power: float = 0.8, confidence: float = 0.95,
                   equivalence: float | None = None, n_sims: int = 400, seed: int = 0,
                   max_seeds: int = 32) -> dict:
    """The power record of one arm against its reference (JSON-ready).

    ``method`` / ``baseline`` are per-seed values (None: a miss or a diverged run);
    ``paper_ratio`` is the effect to size seeds for (e.g. 4.6 / 7.4 epochs).
    Returns ``{"method", "test", "target_power", "alpha", "n_seeds", "max_seeds", "log_center",
    "log_sd", "paper_ratio", "detectable_ratio", "power_at_paper_ratio",
    "seeds_for_paper_ratio", "false_positive_rate", "valid_level", "mann_whitney":
    {the same six for that test}, "note"}``. ``false_positive_rate`` is the share
    of simulated runs declared better at ratio 1: the test's real one-sided size,
    nominally 2.5%; the percentile bootstrap's runs far above it at few seeds (about
    23%, 11%, 7% at 2, 3, 4 seeds), so a small run's detectable ratio is partly
    bought with false positives. ``seeds_for_paper_ratio`` counts only seed numbers
    whose false-positive rate is at most alpha (:func:`seeds_needed`), and
    ``valid_level`` says whether this run's own seed count is one of them: when it
    is False, ``detectable_ratio`` may lie beyond the paper's ratio while
    ``seeds_for_paper_ratio`` exceeds ``n_seeds`` (both true: the small run would
    flag the effect, but flags no effect just as often). The numbers are None (with
    a ``note`` saying why) when the spread cannot be estimated or there are fewer
    than 2 seeds. ``detectable_ratio`` None: not detectable at any ratio down to
    0.05; ``seeds_for_paper_ratio`` None: more than ``max_seeds``.
    """
    # Memoised on its inputs (a pure, seeded function): steps of one reproduction
    # share comparisons (the table's sgd arms are the lambda sweep's cells), and a
    # copy goes out so that no caller can edit the cached record.
    def key(values: Sequence[float | None]) -> tuple[float | None, ...]:
        return tuple(None if v is None else float(v) for v in values)

    return copy.deepcopy(_power_analysis(key(method), key(baseline), paper_ratio, max_value, target_power, confidence,
                                         equivalence, n_sims, seed, max_seeds))


@functools.lru_cache(maxsize=256)
def _power_analysis(method: tuple[float | None, ...], baseline: tuple[float | None, ...], paper_ratio: float,
                    max_value: float | None, target_power: float, confidence: float, equivalence: float | None,
                    n_sims: int, seed: int, max_seeds: int) -> dict:
    n = len(baseline)
    out: dict = {
        "method": f"simulation: lognormal seeds with the observed spread, {n_sims} runs per point",
        "test": "paired bootstrap CI of the ratio of medians wholly below 1 (the verdict)",
        "target_power": target_power, "alpha": round(1.0 - confidence, 10), "n_seeds": n, "max_seeds": max_seeds,
        "log_center": None, "log_sd": None, "paper_ratio": paper_ratio,
        "detectable_ratio": None, "power_at_paper_ratio": None, "seeds_for_paper_ratio": None,
        "false_positive_rate": None, "valid_level": None,
        "mann_whitney": {"detectable_ratio": None, "power_at_paper_ratio": None, "seeds_for_paper_ratio": None,
                         "false_positive_rate": None, "valid_level": None},
        "note": None,
    }
    fit = fit_spread(method, baseline)
    if fit is None:
        out["note"] = _no_spread(method, baseline)
        return out
    center, sd = fit
    out.update(log_center=center, log_sd=sd)
    common = dict(max_value=max_value, n_sims=n_sims, seed=seed, confidence=confidence)
    for test, into in (("bootstrap", out), ("mann_whitney", out["mann_whitney"])):
        eq = equivalence if test == "bootstrap" else None
        into["seeds_for_paper_ratio"] = seeds_needed(paper_ratio, center, sd, test=test, target_power=target_power,
                                                     max_false_positive=1.0 - confidence, max_seeds=max_seeds,
                                                     equivalence=eq, **common)
        if n >= 2:
            into["detectable_ratio"] = detectable_ratio(n, center, sd, test=test, target_power=target_power,
                                                        equivalence=eq, **common)
            into["power_at_paper_ratio"] = simulated_power(paper_ratio, n, center, sd, test=test, equivalence=eq,
                                                           **common)
            into["false_positive_rate"] = simulated_power(1.0, n, center, sd, test=test, equivalence=eq, **common)
            # The condition seeds_for_paper_ratio puts on a seed count, at this run's
            # own count (the same simulated runs, so the same answer seeds_needed gets).
            into["valid_level"] = into["false_positive_rate"] <= 1.0 - confidence
    if n < 2:
        out["note"] = "one seed: no test, so no power at this run's size"
    return out


def _no_spread(method: Sequence[float | None], baseline: Sequence[float | None]) -> str:
    """Why :func:`fit_spread` found no spread, in words for the table."""
    def valued(values: Sequence[float | None]) -> int:
        return sum(v is not None and math.isfinite(v) and v > 0 for v in values)

    if valued(baseline) == 0:
        return ("not estimable: no reference seed has a value (every one missed the target or diverged); "
                "a larger epoch budget or a lower target gives one")
    return "not estimable: no arm has two seeds with a value, so no seed-to-seed spread to simulate from"
