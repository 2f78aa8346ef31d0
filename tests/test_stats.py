"""Tests for superpos_cli.engine.stats: each checks a number against scipy or a hand value."""

from __future__ import annotations

import inspect
import json
import math
import warnings

import numpy as np
import pytest
from scipy import stats as sps

from superpos_cli.engine import stats as S

RNG_KW = "rng" if "rng" in inspect.signature(sps.bootstrap).parameters else "random_state"

SAMPLE = [4.6, 5.1, 4.2, 6.3, 4.9, 5.5, 4.4]


# ----------------------------------------------------------------- bootstrap_ci


@pytest.mark.parametrize("stat, fn", [("mean", np.mean), ("median", np.median)])
def test_bootstrap_ci_matches_scipy_and_contains_estimate(stat, fn):
    low, high = S.bootstrap_ci(SAMPLE, stat=stat, confidence=0.95, n_resamples=2000, seed=7)
    ref = sps.bootstrap(
        (np.asarray(SAMPLE),),
        fn,
        n_resamples=2000,
        confidence_level=0.95,
        method="percentile",
        vectorized=True,
        **{RNG_KW: np.random.default_rng(7)},
    ).confidence_interval
    assert (low, high) == pytest.approx((ref.low, ref.high), rel=0, abs=1e-12)
    assert low < fn(SAMPLE) < high


def test_bootstrap_ci_reproducible_and_seed_dependent():
    a = S.bootstrap_ci(SAMPLE, seed=3)
    assert S.bootstrap_ci(SAMPLE, seed=3) == a
    assert S.bootstrap_ci(SAMPLE, seed=4) != a


def test_bootstrap_ci_wider_at_higher_confidence():
    l90, h90 = S.bootstrap_ci(SAMPLE, confidence=0.90)
    l99, h99 = S.bootstrap_ci(SAMPLE, confidence=0.99)
    assert l99 <= l90 and h90 <= h99 and (h99 - l99) > (h90 - l90)


@pytest.mark.parametrize("values", [[3.5], [2.0, 2.0, 2.0]])
def test_bootstrap_ci_degenerate_is_point_without_warnings(values):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.bootstrap_ci(values, "mean") == (values[0], values[0])
        assert S.bootstrap_ci(values, "median") == (values[0], values[0])


@pytest.mark.parametrize("bad", [[], [1.0, float("nan")], [1.0, float("inf")]])
def test_bootstrap_ci_rejects_empty_and_non_finite(bad):
    with pytest.raises(ValueError):
        S.bootstrap_ci(bad)


def test_bootstrap_ci_rejects_unknown_stat_and_confidence():
    with pytest.raises(ValueError, match="stat"):
        S.bootstrap_ci(SAMPLE, stat="mode")
    with pytest.raises(ValueError, match="confidence"):
        S.bootstrap_ci(SAMPLE, confidence=95)


def test_describe_carries_raw_samples_and_intervals():
    d = S.describe(SAMPLE, seed=1)
    assert d["n"] == len(SAMPLE) and d["samples"] == SAMPLE
    assert d["mean"] == pytest.approx(np.mean(SAMPLE))
    assert d["median_ci"] == S.bootstrap_ci(SAMPLE, "median", seed=1)
    json.dumps(d)


# ----------------------------------------------------------------- censoring


def test_censored_summary_success_rate_and_median():
    s = S.censored_summary([4.0, 5.0, None, 6.0, None], max_epochs=10, seed=0)
    assert s["success_rate"] == pytest.approx(0.6)
    assert (s["n"], s["n_reached"]) == (5, 3)
    # sorted with misses at +inf: 4, 5, 6, inf, inf -> median 6
    assert s["median"] == 6.0
    assert s["per_seed"] == [4.0, 5.0, None, 6.0, None]
    assert s["mean"] is None and s["mean_ci"] is None  # never averaged with misses
    json.dumps(s)


@pytest.mark.parametrize(
    "values, median",
    [
        ([3.0, None, None], None),  # more than half missed
        ([3.0, 4.0, None, None], None),  # exactly half: the middle pair holds a miss
        ([3.0, 4.0, 5.0, None], 4.5),  # fewer than half: finite
    ],
)
def test_censored_median_is_none_unless_fewer_than_half_missed(values, median):
    assert S.censored_summary(values, max_epochs=10)["median"] == median


def test_censored_ci_matches_manual_bootstrap_with_inf():
    values = [4.0, 5.0, None, 6.0, 4.5, 7.0]
    x = np.array([math.inf if v is None else v for v in values])
    idx = np.random.default_rng(11).integers(0, x.size, (500, x.size))
    theta = np.median(x[idx], axis=-1)
    expected = (np.quantile(theta, 0.025, method="lower"), np.quantile(theta, 0.975, method="higher"))
    s = S.censored_summary(values, max_epochs=10, seed=11, n_resamples=500)
    expected = tuple(None if math.isinf(e) else e for e in expected)
    assert s["ci"] == expected
    assert s["ci"][0] <= s["median"]


def test_censored_ci_upper_bound_is_none_when_beyond_budget():
    s = S.censored_summary([3.0, 4.0, None, None, 5.0], max_epochs=10, seed=0)
    assert s["ci"][0] in (3.0, 4.0)
    assert s["ci"][1] is None  # "> max_epochs"
    all_missed = S.censored_summary([None, None, None], max_epochs=10)
    assert all_missed["median"] is None and all_missed["ci"] == (None, None)
    assert all_missed["success_rate"] == 0.0


def test_censored_summary_all_reached_has_mean():
    s = S.censored_summary([4.0, 5.0, 6.0], max_epochs=10, seed=2)
    assert s["mean"] == 5.0 and s["mean_ci"] == S.bootstrap_ci([4.0, 5.0, 6.0], "mean", seed=2)
    assert s["success_rate"] == 1.0


def test_censored_summary_reproducible_no_warnings():
    values = [4.0, None, 6.0, 4.5, None, 5.0, 8.0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.censored_summary(values, 10, seed=5) == S.censored_summary(values, 10, seed=5)


def test_censored_summary_rejects_hit_beyond_budget():
    with pytest.raises(ValueError, match="max_epochs"):
        S.censored_summary([4.0, 12.0], max_epochs=10)


# ----------------------------------------------------------------- paired ratio


def test_paired_ratio_clear_speedup_is_faster():
    method = [4.6, 4.4, 5.0, 4.9, 4.7, 4.5]
    baseline = [7.4, 7.0, 8.1, 7.7, 7.2, 7.5]
    r = S.paired_ratio_ci(method, baseline, seed=0)
    assert r["ratio"] == pytest.approx(np.median(method) / np.median(baseline))
    low, high = r["ci"]
    assert low <= r["ratio"] <= high < 1
    assert S.verdict(low, high) == "faster"
    assert S.paired_ratio_ci(method, baseline, seed=0) == r


def test_paired_ratio_resamples_pairs_together():
    # Identical arms: every paired resample has ratio exactly 1.
    x = [3.0, 5.0, 9.0, 4.0]
    assert S.paired_ratio_ci(x, x, seed=1) == {"ratio": 1.0, "ci": (1.0, 1.0), "n_pairs": 4}


def test_paired_ratio_censoring():
    # The method always reaches, the baseline never: ratio 0 (faster), never NaN.
    r = S.paired_ratio_ci([4.0, 5.0, 4.5], [None, None, None])
    assert r["ratio"] == 0.0 and r["ci"] == (0.0, 0.0)
    assert S.verdict(*r["ci"]) == "faster"
    # The reverse: ratio +inf -> None; the verdict reads None as +inf.
    r = S.paired_ratio_ci([None, None, None], [4.0, 5.0, 4.5])
    assert r["ratio"] is None and r["ci"] == (None, None)
    assert S.verdict(*r["ci"]) == "slower"
    # Both censored: no evidence either way.
    r = S.paired_ratio_ci([None, None], [None, None])
    assert r["ratio"] == 1.0 and S.verdict(*r["ci"]) == S.NO_DIFFERENCE


def test_paired_ratio_rejects_unequal_lengths():
    with pytest.raises(ValueError, match="equal lengths"):
        S.paired_ratio_ci([1.0, 2.0], [1.0])


# ----------------------------------------------------------------- Mann-Whitney


def test_mann_whitney_hand_case_exact():
    # 1 of C(6,3)=20 labellings puts a entirely below b; two-sided doubles it.
    assert S.mann_whitney([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    assert S.mann_whitney([1, 2, 3], [4, 5, 6], alternative="less") == pytest.approx(0.05)


def test_mann_whitney_matches_scipy_on_plain_data():
    rng = np.random.default_rng(0)
    a, b = rng.normal(5, 1, 12), rng.normal(6, 1, 15)
    for alt in ("two-sided", "less", "greater"):
        assert S.mann_whitney(list(a), list(b), alt) == pytest.approx(sps.mannwhitneyu(a, b, alternative=alt).pvalue)


def test_mann_whitney_censored_rank_above_hits():
    a = [4.0, 5.0, 4.5, None]
    b = [9.0, None, None, 8.0, None]
    inf = math.inf
    expected = sps.mannwhitneyu([4.0, 5.0, 4.5, inf], [9.0, inf, inf, 8.0, inf]).pvalue
    assert S.mann_whitney(a, b) == pytest.approx(expected)
    # A miss is slower than the slowest hit: all of b's misses rank above every hit of a.
    assert S.mann_whitney([1.0, 2.0, 3.0], [None, None, None], "less") == pytest.approx(
        sps.mannwhitneyu([1.0, 2.0, 3.0], [inf, inf, inf], alternative="less").pvalue
    )
    assert S.mann_whitney([1.0, 2.0, 3.0], [None, None, None], "less") < S.mann_whitney(
        [1.0, 2.0, 3.0], [None, None, None], "greater"
    )


def test_mann_whitney_degenerate_cases():
    assert S.mann_whitney([1.0], [2.0, 3.0]) is None
    assert S.mann_whitney([], [2.0, 3.0]) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert S.mann_whitney([2.0, 2.0], [2.0, 2.0, 2.0]) == 1.0
        assert S.mann_whitney([None, None], [None, None]) == 1.0


# ----------------------------------------------------------------- Holm


def test_holm_hand_case():
    # sorted 0.005, 0.01, 0.03, 0.04 -> x4, x3, x2, x1 = 0.02, 0.03, 0.06, 0.04 -> monotone 0.06
    assert S.holm([0.01, 0.04, 0.03, 0.005]) == pytest.approx([0.03, 0.06, 0.06, 0.02])


def test_holm_caps_at_one_and_passes_none_through():
    out = S.holm([0.5, None, 0.2, 0.9])
    # m = 3: 0.2*3 = 0.6, 0.5*2 = 1.0, 0.9*1 = 0.9 -> monotone 1.0
    assert out == pytest.approx([1.0, None, 0.6, 1.0]) and out[1] is None
    assert S.holm([]) == []
    assert S.holm([None]) == [None]
    assert S.holm([0.04]) == [0.04]


def test_holm_rejects_out_of_range():
    with pytest.raises(ValueError):
        S.holm([0.1, 1.5])


# ----------------------------------------------------------------- verdict


@pytest.mark.parametrize(
    "low, high, expected",
    [
        (0.55, 0.7, "faster"),
        (1.2, 1.6, "slower"),
        (0.8, 1.1, "no significant difference"),
        (0.8, 1.0, "no significant difference"),  # touching the null is not significant
        (0.5, None, "no significant difference"),  # unbounded above
        (None, None, "slower"),  # both bounds beyond the budget
    ],
)
def test_verdict_follows_interval(low, high, expected):
    assert S.verdict(low, high) == expected


def test_verdict_for_differences_and_labels():
    assert S.verdict(-0.3, -0.1, null=0.0, below="lower", above="higher") == "lower"
    assert S.verdict(0.1, 0.3, null=0.0, below="lower", above="higher") == "higher"
    with pytest.raises(ValueError):
        S.verdict(2.0, 1.0)
