"""Bootstrap CIs over independent units, paired model comparisons and the sign test."""

import numpy as np
import pytest

from unisurg.evaluation import stats as S


def _mean_of(values: np.ndarray) -> S.Stat:
    return lambda ix: float(np.mean(values[ix]))


def test_bootstrap_ci_brackets_the_mean():
    v = np.linspace(0, 1, 50)
    lo, hi = S.bootstrap_ci(len(v), 500, seed=0, stat=_mean_of(v))
    assert lo < v.mean() < hi and hi - lo < 0.4


def test_bootstrap_ci_keeps_the_resampling_stream():
    """A seed names the same resamples as before the move: one rng.integers(0, units, units) each."""
    v = np.random.default_rng(5).random(17)
    rng = np.random.default_rng(42)
    means = [v[rng.integers(0, 17, 17)].mean() for _ in range(200)]
    expected = (np.quantile(means, 0.025), np.quantile(means, 0.975))
    assert S.bootstrap_ci(17, 200, 42, _mean_of(v)) == pytest.approx(expected)


def test_bootstrap_ci_is_reproducible_and_drops_non_finite_resamples():
    v = np.random.default_rng(0).random(20)
    assert S.bootstrap_ci(20, 300, 7, _mean_of(v)) == S.bootstrap_ci(20, 300, 7, _mean_of(v))
    assert S.bootstrap_ci(20, 300, 7, _mean_of(v)) != S.bootstrap_ci(20, 300, 8, _mean_of(v))
    # a statistic that is NaN unless unit 0 is drawn: only those resamples count
    lo, hi = S.bootstrap_ci(20, 300, 7, lambda ix: 1.0 if 0 in ix else float("nan"))
    assert (lo, hi) == (1.0, 1.0)
    assert all(np.isnan(S.bootstrap_ci(20, 50, 0, lambda ix: float("nan"))))


@pytest.mark.parametrize("units", [0, 1, 2])
def test_fewer_than_three_units_give_no_ci(units):
    v = np.arange(units, dtype=float)
    assert S.MIN_UNITS == 3
    assert all(np.isnan(S.bootstrap_ci(units, 100, 0, _mean_of(v))))
    d = S.paired_bootstrap(units, 100, 0, _mean_of(v + 1), _mean_of(v))
    assert np.isnan(d.lo) and np.isnan(d.hi) and not d.separated and d.units == units
    if units:
        assert d.diff == pytest.approx(1.0)  # the point difference needs no CI
    assert all(np.isnan(S.bootstrap_ci(S.MIN_UNITS, 0, 0, _mean_of(np.ones(3)))))  # no resamples


def test_identical_models_differ_by_exactly_zero():
    v = np.random.default_rng(1).random(30)
    d = S.paired_bootstrap(30, 500, 0, _mean_of(v), _mean_of(v.copy()))
    assert (d.diff, d.lo, d.hi) == (0.0, 0.0, 0.0) and not d.separated


def test_a_constant_offset_is_its_own_ci():
    v = np.random.default_rng(2).random(25)
    d = S.paired_bootstrap(25, 500, 0, _mean_of(v + 0.03), _mean_of(v))
    assert d.diff == pytest.approx(0.03) and d.lo == pytest.approx(0.03) and d.hi == pytest.approx(0.03)
    assert d.separated
    worse = S.paired_bootstrap(25, 500, 0, _mean_of(v - 0.03), _mean_of(v))
    assert worse.hi == pytest.approx(-0.03) and worse.separated


def test_pairing_separates_a_small_consistent_difference_that_unpaired_cis_cannot():
    """Videos differ far more from each other than the two models do: the between-video spread sits
    in each model's CI, but cancels in the paired difference."""
    rng = np.random.default_rng(3)
    difficulty = rng.uniform(0.3, 0.95, 30)  # (videos,) shared by both models
    b = difficulty + rng.normal(0, 0.005, 30)
    a = b + 0.02 + rng.normal(0, 0.005, 30)  # A better by 0.02 on every video, give or take
    ci_a = S.bootstrap_ci(30, 1000, 42, _mean_of(a))
    ci_b = S.bootstrap_ci(30, 1000, 42, _mean_of(b))
    assert ci_a[0] < ci_b[1]  # the unpaired CIs overlap
    d = S.paired_bootstrap(30, 1000, 42, _mean_of(a), _mean_of(b))
    assert d.separated and 0 < d.lo < 0.02 < d.hi
    assert d.diff == pytest.approx(a.mean() - b.mean())
    # same seed, same resamples, same answer
    assert S.paired_bootstrap(30, 1000, 42, _mean_of(a), _mean_of(b)) == d


def test_paired_bootstrap_resamples_both_statistics_on_the_same_units():
    seen: list[tuple[str, tuple[int, ...]]] = []

    def record(name: str) -> S.Stat:
        def stat(ix: np.ndarray) -> float:
            seen.append((name, tuple(ix)))
            return 0.0

        return stat

    S.paired_bootstrap(5, 20, 0, record("a"), record("b"))
    a_ix = [ix for n, ix in seen if n == "a"]
    b_ix = [ix for n, ix in seen if n == "b"]
    assert len(a_ix) == 21 and a_ix == b_ix  # the full sample, then 20 shared resamples
    assert len(set(a_ix[1:])) > 1  # and they do vary


def test_sign_test_hand_computed():
    assert S.sign_test(0, 0) == 1.0
    assert S.sign_test(3, 3) == 1.0
    # 9 of 10: 2 * (C(10,0) + C(10,1)) / 2^10 = 22 / 1024
    assert S.sign_test(9, 1) == pytest.approx(22 / 1024)
    assert S.sign_test(1, 9) == S.sign_test(9, 1)
    assert S.sign_test(17, 0) == pytest.approx(2 / 2**17)
    with pytest.raises(ValueError, match="non-negative"):
        S.sign_test(-1, 3)


def test_sign_test_matches_scipy_binomtest():
    from scipy.stats import binomtest

    for w in range(0, 26):
        for losses in range(0, 26):
            if w + losses:
                assert S.sign_test(w, losses) == pytest.approx(binomtest(w, w + losses, 0.5).pvalue, rel=1e-9)
    for w, losses in [(120, 80), (500, 430), (3, 997)]:
        assert S.sign_test(w, losses) == pytest.approx(binomtest(w, w + losses, 0.5).pvalue, rel=1e-9)
