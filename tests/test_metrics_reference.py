"""Our metrics against independent reference implementations on random inputs with edge cases."""

import numpy as np
import pytest
from sklearn.metrics import (
    accuracy_score,
    f1_score,
    jaccard_score,
    precision_recall_fscore_support,
    precision_score,
    recall_score,
)

from unisurg.benchmarks.triplets import TRIPLET_IVT
from unisurg.evaluation import metrics as M


def _videos(rng, sizes=(40, 1, 25)):
    """Random multi-label videos: sparse positives, so many classes are absent from some videos."""
    out = []
    for n in sizes:
        y = (rng.random((n, 100)) < 0.03).astype(int)
        y[:, rng.choice(100, 60, replace=False)] = 0  # 60 classes absent from this video
        s = np.clip(y * 0.4 + rng.random((n, 100)) * 0.7, 0, 1)
        out.append((y, s))
    return out


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_triplet_map_matches_ivtmetrics_with_absent_classes_excluded(seed, monkeypatch):
    ivt = pytest.importorskip("ivtmetrics")
    import ivtmetrics.recognition as rec
    from sklearn.metrics import average_precision_score as sk_ap

    def ap_absent_is_nan(y_true, y_score, average=None):
        # ivtmetrics relied on scikit-learn < 1.6 returning NaN (printed as -0.0) for a class without
        # positives; newer scikit-learn returns 0, silently lowering mAP. Reproduce the original rule.
        ap = np.atleast_1d(sk_ap(y_true, y_score, average=average)).astype(float)
        ap[np.asarray(y_true).sum(axis=0) == 0] = np.nan
        return ap

    monkeypatch.setattr(rec, "average_precision_score", ap_absent_is_nan)
    rng = np.random.default_rng(seed)
    videos = _videos(rng)
    r = ivt.Recognition(num_class=100)
    for y, s in videos:
        r.update(y, s)
        r.video_end()
    y_all = np.concatenate([y for y, _ in videos])
    s_all = np.concatenate([s for _, s in videos])
    groups = np.concatenate([np.full(len(y), k) for k, (y, _) in enumerate(videos)])
    ours = M.triplet_ap_matrices(y_all, s_all, groups, list(TRIPLET_IVT))
    for comp in ("ivt", "i", "v", "t", "iv", "it"):
        ref = r.compute_video_AP(comp)["mAP"]
        assert M.map_from_matrix(ours[comp]) == pytest.approx(ref, rel=1e-9, abs=1e-12), comp


@pytest.mark.parametrize("seed", range(5))
def test_phase_metrics_match_sklearn_per_video(seed):
    """SurgMotion's eval.py calls: scikit-learn's defaults (no ``labels=``: truth ∪ prediction)."""
    rng = np.random.default_rng(seed)
    for _ in range(40):
        n = int(rng.integers(1, 60))  # includes single-frame videos
        y = rng.integers(0, 7, n)
        y[y == 3] = 4  # class 3 never in the ground truth, yet predicted below: it must count
        p = np.where(rng.random(n) < 0.6, y, rng.integers(0, 7, n))
        ours = M.video_phase_metrics(y, p)
        kw = {"average": "macro", "zero_division": 0}
        assert ours["accuracy"] == pytest.approx(accuracy_score(y, p))
        assert ours["precision"] == pytest.approx(precision_score(y, p, **kw))
        assert ours["recall"] == pytest.approx(recall_score(y, p, **kw))
        assert ours["jaccard"] == pytest.approx(jaccard_score(y, p, **kw))
        assert ours["f1"] == pytest.approx(f1_score(y, p, **kw))


def test_phase_metrics_differ_from_the_truth_only_convention_when_absent_classes_are_predicted():
    """The case that separates the conventions is exercised: sklearn with ``labels=`` truth only
    disagrees with the default, and we follow the default."""
    y, p = np.array([0, 0, 1, 1, 1]), np.array([0, 3, 1, 1, 5])
    truth_only = precision_recall_fscore_support(y, p, labels=np.unique(y), average="macro", zero_division=0)
    ours = M.video_phase_metrics(y, p)
    assert ours["precision"] == pytest.approx(precision_score(y, p, average="macro", zero_division=0))
    assert ours["precision"] != pytest.approx(truth_only[0])


def test_pitvis_edge_cases():
    bg = 14
    assert M.video_pitvis_score(np.full(10, bg), np.zeros(10, int), {bg, 10, 12}) is None  # all background
    y = np.array([bg, 0, 0, 1, 1, bg])
    r = M.video_pitvis_score(y, y.copy(), {bg, 10, 12})
    assert r == {"f1": 1.0, "edit": 1.0, "pitvis_score": 1.0}
    per = M.per_group(
        lambda a, b: M.video_pitvis_score(a, b, {bg}),
        np.r_[np.full(4, bg), y],
        np.r_[np.zeros(4, int), y],
        np.r_[np.zeros(4), np.ones(6)],
    )
    assert list(per) == ["1.0"]  # the all-background video is left out of the mean, not scored 0
