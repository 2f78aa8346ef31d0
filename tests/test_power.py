"""Power of the tool's paired tests, checked against a brute-force Monte-Carlo that
calls the tool's own statistics (stats.paired_ratio_ci + stats.verdict,
stats.mann_whitney) once per simulated comparison, with its own random numbers."""

import math

import numpy as np
import pytest

from superpos_cli.engine import power, stats

N_SIMS = 400  # the module's default; the brute force uses as many


def _as_record(values: np.ndarray) -> list[float | None]:
    return [None if math.isinf(v) else float(v) for v in values]


def _tool_declares(m, b, test: str, equivalence: float | None = None) -> bool:
    """What compare would say about one simulated comparison."""
    if test == "mann_whitney":
        p = stats.mann_whitney(_as_record(m), _as_record(b))
        return p is not None and p <= 0.05 and np.median(m) < np.median(b)
    low, high = stats.paired_ratio_ci(_as_record(m), _as_record(b))["ci"]
    if equivalence is not None and None not in (low, high) and 1 - equivalence <= low <= high <= 1 + equivalence:
        return False
    return stats.verdict(low, high) == "faster"


def _brute_power(ratio, n, center, sd, test="bootstrap", max_value=None, equivalence=None, seed=12345):
    """Independent draw of the module's model: lognormal seeds, method scaled by ratio,
    censored above max_value."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(N_SIMS):
        b = np.exp(rng.normal(center, sd, n))
        m = ratio * np.exp(rng.normal(center, sd, n))
        if max_value is not None:
            b[b > max_value], m[m > max_value] = math.inf, math.inf
        hits += _tool_declares(m, b, test, equivalence)
    return hits / N_SIMS


def _tolerance(p: float) -> float:
    # Two independent binomial estimates of p, 4 standard errors of their difference.
    return 4 * math.sqrt(max(p * (1 - p), 0.02) * 2 / N_SIMS)


@pytest.mark.parametrize("n, censor, equivalence", [(3, None, None), (4, 6.0, None), (7, 5.5, 0.2), (5, None, 0.005),
                                                    (12, 6.0, None), (3, 4.6, None)])
@pytest.mark.parametrize("test", power.TESTS)
def test_vectorised_tests_equal_the_tools_per_call(n, censor, equivalence, test):
    sim = power._Simulation(n, math.log(5.0), 0.25, censor, 150, seed=1)
    m, b = sim.arms(0.85)
    if censor is not None:
        # The case exercises misses: runs with one (no tie), with several (ties:
        # scipy's asymptotic p), and at 4.6 epochs runs where every value missed.
        misses = np.isinf(m).sum(axis=1) + np.isinf(b).sum(axis=1)
        assert (misses == 1).any() and (misses >= 2).any()
        assert censor > 4.6 or (misses == 2 * n).any()
    if test == "bootstrap":
        got = power._bootstrap_declares(m, b, confidence=0.95, n_resamples=2000, seed=0, equivalence=equivalence)
    else:
        got = power._mann_whitney_declares(m, b, alpha=0.05)
        equivalence = None
    expected = [_tool_declares(mi, bi, test, equivalence) for mi, bi in zip(m, b)]
    assert got.tolist() == expected


@pytest.mark.parametrize("ratio, n, sd, test, max_value, equivalence", [
    (0.8, 3, 0.2, "bootstrap", None, None),
    (0.9, 5, 0.1, "bootstrap", 5.5, None),  # censoring: some reference seeds miss a 5.5-epoch budget
    (1.0, 3, 0.1, "bootstrap", None, None),  # the false-positive rate (about 11%, not 2.5%)
    (0.97, 4, 0.02, "bootstrap", None, 0.005),  # a loss, with the equivalence band
    (0.6, 5, 0.3, "mann_whitney", None, None),
])
def test_simulated_power_agrees_with_brute_force(ratio, n, sd, test, max_value, equivalence):
    center = math.log(5.0)
    got = power.simulated_power(ratio, n, center, sd, test=test, max_value=max_value, equivalence=equivalence)
    expected = _brute_power(ratio, n, center, sd, test, max_value, equivalence)
    assert abs(got - expected) <= _tolerance(expected), (got, expected)


@pytest.mark.parametrize("n, sd", [(3, 0.15), (5, 0.05)])
def test_detectable_ratio_sits_where_brute_force_power_crosses_80_percent(n, sd):
    center = math.log(7.4)
    r = power.detectable_ratio(n, center, sd)
    assert r is not None and 0.3 < r < 1.0
    assert abs(_brute_power(r, n, center, sd) - 0.8) <= _tolerance(0.8)
    # A clearly weaker effect (a third of the log ratio closer to 1) is clearly under-powered.
    assert _brute_power(r ** (2 / 3), n, center, sd) < 0.8 - _tolerance(0.8) / 2


def test_seeds_needed_is_the_first_seed_count_with_80_percent_at_a_valid_level():
    center, sd, ratio = math.log(7.4), 0.2, 0.7
    n = power.seeds_needed(ratio, center, sd)
    assert n is not None and n > 2
    fp_tol = _tolerance(0.05)
    assert _brute_power(ratio, n, center, sd) >= 0.8 - _tolerance(0.8)
    assert _brute_power(1.0, n, center, sd) <= 0.05 + fp_tol
    short = n - 1  # fails one of the two conditions
    assert (_brute_power(ratio, short, center, sd) <= 0.8 + _tolerance(0.8)
            or _brute_power(1.0, short, center, sd) >= 0.05 - fp_tol)
    # Without the level condition, the too-narrow 2-seed bootstrap "detects" it.
    assert power.seeds_needed(ratio, center, sd, max_false_positive=None) == 2
    assert _brute_power(ratio, 2, center, sd) >= 0.8 - _tolerance(0.8)


def test_mann_whitney_cannot_detect_anything_with_three_seeds():
    # Exact two-sided p of 3 vs 3 is at least 2 / C(6, 3) = 0.1 > 0.05.
    assert power.detectable_ratio(3, 0.0, 0.1, test="mann_whitney") is None
    assert power.simulated_power(0.1, 3, 0.0, 0.1, test="mann_whitney") == 0.0


def test_fit_spread_pools_log_variances_of_finite_values():
    method, baseline = [4.0, 5.0, None, 6.0], [7.0, 8.0, 7.5, None]
    center, sd = power.fit_spread(method, baseline)
    lm, lb = np.log([4.0, 5.0, 6.0]), np.log([7.0, 8.0, 7.5])
    assert center == pytest.approx(lb.mean())
    pooled = (np.var(lm, ddof=1) * 2 + np.var(lb, ddof=1) * 2) / 4
    assert sd == pytest.approx(math.sqrt(pooled))
    assert power.fit_spread([1.0, 2.0], [None, None]) is None  # no reference value to centre on
    assert power.fit_spread([1.0], [2.0]) is None  # no arm with two values


def test_power_analysis_record():
    out = power.power_analysis([5.1, 4.8, 5.5], [5.0, 5.2, 4.7], paper_ratio=4.6 / 7.4, max_value=12)
    assert out["n_seeds"] == 3 and out["note"] is None
    assert 0.5 < out["detectable_ratio"] < 1.0
    assert out["power_at_paper_ratio"] >= 0.8
    assert out["false_positive_rate"] > 0.05  # 3 seeds: the bootstrap is too narrow ...
    assert out["seeds_for_paper_ratio"] >= 4  # ... so the seed count asks for more
    assert out["mann_whitney"]["detectable_ratio"] is None  # 3 seeds
    assert out["mann_whitney"]["seeds_for_paper_ratio"] >= 4
    one = power.power_analysis([5.0], [5.2], paper_ratio=0.6)
    assert one["detectable_ratio"] is None and one["note"]


def test_power_analysis_is_memoised_and_hands_out_copies():
    args = ([5.1, 4.8, 5.5], [5.0, 5.2, 4.7])
    first = power.power_analysis(*args, paper_ratio=0.6, max_value=12)
    first["mann_whitney"]["detectable_ratio"] = "edited"  # a caller's edit stays its own
    again = power.power_analysis(*args, paper_ratio=0.6, max_value=12)
    assert again["mann_whitney"]["detectable_ratio"] is None and again["detectable_ratio"] == first["detectable_ratio"]
    assert again["valid_level"] is (again["false_positive_rate"] <= 0.05)
    hits = power._power_analysis.cache_info().hits
    power.power_analysis(*args, paper_ratio=0.6, max_value=12, seed=1)  # another seed is another key
    assert power._power_analysis.cache_info().hits == hits
