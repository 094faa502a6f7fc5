"""Uncertainty of benchmark results: bootstrap CIs over independent units, paired comparisons of
two models on the same units, and the sign test for "better on N of K benchmarks".

The resampling unit is the independent one (a video, sequence or image set), never the frame of
one sequence: a statistic is given as a function of unit *indices* ``ix`` (resampled with
replacement), so each task decides how a resample of its units is scored (a per-video mean, a
video-wise mAP, a Spearman rho over trials, ...). With fewer than :data:`MIN_UNITS` units there
is no CI. SciPy is not imported here (each evaluation process would pay for it); the tests check
the sign test against ``scipy.stats.binomtest``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

MIN_UNITS = 3  # fewer independent units: no CI (a resample of 2 units has at most 3 distinct values)

Stat = Callable[[np.ndarray], float]  # unit indices (units,) -> statistic of those units


def _resampled(units: int, n: int, seed: int, stat: Stat) -> np.ndarray:
    """(n,) ``stat`` of ``n`` resamples of the unit indices 0..units-1 with replacement.

    The stream is one ``rng.integers(0, units, units)`` per resample from
    ``default_rng(seed)``: a seed names the same resamples for every statistic.
    """
    rng = np.random.default_rng(seed)
    return np.array([stat(rng.integers(0, units, units)) for _ in range(n)], np.float64)


def _percentile_ci(stats: np.ndarray, alpha: float) -> tuple[float, float]:
    """Central ``1 - alpha`` percentile interval of the finite resample statistics."""
    stats = stats[np.isfinite(stats)]  # e.g. a Spearman rho of a resample with one distinct value
    if not len(stats):
        return (float("nan"), float("nan"))
    return float(np.quantile(stats, alpha / 2)), float(np.quantile(stats, 1 - alpha / 2))


def bootstrap_ci(units: int, n: int, seed: int, stat: Stat, alpha: float = 0.05) -> tuple[float, float]:
    """Percentile CI of ``stat(ix)`` over ``n`` resamples ``ix`` of ``units`` unit indices.

    (NaN, NaN) with fewer than :data:`MIN_UNITS` units or no resamples; resamples whose statistic
    is not finite are dropped.
    """
    if n <= 0 or units < MIN_UNITS:
        return (float("nan"), float("nan"))
    return _percentile_ci(_resampled(units, n, seed, stat), alpha)


@dataclass(frozen=True)
class PairedDiff:
    """Model A minus model B on the same units: the difference on all units and its CI."""

    diff: float  # stat_a(all units) - stat_b(all units)
    lo: float  # percentile CI of the difference; NaN with fewer than MIN_UNITS units
    hi: float
    units: int

    @property
    def separated(self) -> bool:
        """The CI excludes 0 (False when there is no CI)."""
        return bool(self.lo > 0 or self.hi < 0)


def paired_bootstrap(units: int, n: int, seed: int, stat_a: Stat, stat_b: Stat, alpha: float = 0.05) -> PairedDiff:
    """Paired bootstrap of ``stat_a - stat_b``: both statistics are evaluated on the *same*
    resampled unit indices, so what the two models share (easy and hard videos) cancels.

    Two unpaired CIs can overlap while the paired CI of a small but consistent difference excludes
    0: the between-unit spread is in both models' CIs, not in their difference.
    """
    diff = float(stat_a(np.arange(units)) - stat_b(np.arange(units))) if units > 0 else float("nan")
    if n <= 0 or units < MIN_UNITS:
        return PairedDiff(diff, float("nan"), float("nan"), units)
    lo, hi = _percentile_ci(_resampled(units, n, seed, lambda ix: stat_a(ix) - stat_b(ix)), alpha)
    return PairedDiff(diff, lo, hi, units)


def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided binomial p-value of ``wins`` against ``losses`` under p = 0.5.

    Ties are excluded by the caller. With n = wins + losses and k = min(wins, losses), the
    distribution is symmetric, so p = min(1, 2 * P(X <= k)) with X ~ Binomial(n, 1/2); no
    comparisons gives 1.
    """
    if wins < 0 or losses < 0:
        raise ValueError(f"sign_test: counts must be non-negative, got wins={wins} losses={losses}")
    n, k = wins + losses, min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1))  # exact integers: no underflow for large n
    return min(1.0, 2 * tail / 2**n)
