"""Official metrics on hand-computed cases."""

import dataclasses

import numpy as np
import pytest

from unisurg.benchmarks import get_benchmark
from unisurg.benchmarks.families import Phase
from unisurg.benchmarks.triplets import TRIPLET_IVT
from unisurg.evaluation import metrics as M
from unisurg.evaluation.tasks import Truth, task_for


def test_video_phase_metrics_hand_computed():
    y = np.array([0, 0, 0, 1, 1, 2])
    p = np.array([0, 0, 1, 1, 1, 1])
    m = M.video_phase_metrics(y, p)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # class 0: tp2 fp0 fn1 -> P1 R2/3 ; class 1: tp2 fp2 fn0 -> P.5 R1 ; class 2: tp0 fn1 -> 0
    assert m["precision"] == pytest.approx((1 + 0.5 + 0) / 3)
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)
    assert m["jaccard"] == pytest.approx((2 / 3 + 2 / 4 + 0) / 3)
    assert m["f1"] == pytest.approx((0.8 + 2 / 3 + 0) / 3)


def test_video_phase_metrics_average_over_truth_and_prediction():
    """SurgMotion / scikit-learn default: a class predicted but absent from the truth joins the macro
    mean with 0 on every measure (the truth-only convention would have given precision 1)."""
    y = np.array([0, 0, 1, 1])
    p = np.array([0, 2, 1, 1])
    m = M.video_phase_metrics(y, p)
    # class 0: tp1 fp0 fn1 -> P1 R.5 J.5 F2/3 ; class 1: tp2 -> all 1 ; class 2: tp0 fp1 fn0 -> all 0
    assert m["accuracy"] == pytest.approx(3 / 4)
    assert m["precision"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["recall"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["jaccard"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["f1"] == pytest.approx((2 / 3 + 1 + 0) / 3)


def test_edit_score_and_pitvis_drop():
    assert M.segments(np.array([1, 1, 2, 2, 1])) == [1, 2, 1]
    assert M.levenshtein([1, 2, 1], [1, 1]) == 1  # collapse would give [1]; direct distance 1
    assert M.edit_score(np.array([1, 1, 2, 2]), np.array([1, 2, 2, 2])) == 1.0
    y = np.array([14, 14, 0, 0, 1, 1, 10])  # 14 background and 10 (step 11) are dropped
    p = np.array([0, 0, 0, 0, 1, 0, 3])
    r = M.video_pitvis_score(y, p, {14, 10, 12})
    # kept rows y=[0,0,1,1] p=[0,0,1,0]: F1(0)=0.8 F1(1)=2/3 ; segments [0,1] vs [0,1,0] -> edit 1-1/3
    assert r["f1"] == pytest.approx((0.8 + 2 / 3) / 2)
    assert r["edit"] == pytest.approx(2 / 3)
    assert r["pitvis_score"] == pytest.approx(((0.8 + 2 / 3) / 2 + 2 / 3) / 2)
    assert M.video_pitvis_score(np.array([14, 14]), np.array([0, 0]), {14}) is None


def test_video_ap_treats_absent_classes_as_absent_not_zero():
    y = np.array([[1, 0, 0], [0, 0, 1], [1, 0, 0]])
    s = np.array([[0.9, 0.8, 0.1], [0.2, 0.9, 0.7], [0.8, 0.1, 0.3]])
    ap = M.video_ap(y, s)
    assert ap[0] == pytest.approx(1.0) and np.isnan(ap[1]) and ap[2] == pytest.approx(1.0)
    # two videos: class 1 positive only in video B (AP 0.5); class 0 only in A
    mat = np.array([[1.0, np.nan], [np.nan, 0.5]])
    assert M.map_from_matrix(mat) == pytest.approx(0.75)  # zeros would have given (0.5 + 0.25) / 2


def test_triplet_components_pool_by_max():
    cm = M.component_matrix(list(TRIPLET_IVT), "i")
    assert cm.shape == (100, 6) and cm.sum() == 100
    scores = np.zeros((1, 100))
    scores[0, 0] = 0.3  # grasper,dissect,cystic_plate
    scores[0, 7] = 0.9  # grasper,grasp,gallbladder
    assert M.pool_component(scores, cm)[0, 0] == pytest.approx(0.9)
    assert M.component_matrix(list(TRIPLET_IVT), "v").shape[1] == 10
    assert M.component_matrix(list(TRIPLET_IVT), "t").shape[1] == 15


def test_skill_seg_depth():
    s = M.skill_metrics(np.array([10.0, 20, 30]), np.array([12.0, 15, 40]))
    assert s["spearman"] == pytest.approx(1.0) and s["mae"] == pytest.approx(17 / 3)
    gt = np.zeros((4, 4), bool)
    gt[:2, :2] = True
    pr = np.zeros((4, 4), bool)
    pr[:2, :1] = True
    m = M.seg_metrics(gt, pr)
    assert m["dice"] == pytest.approx(2 * 2 / 6) and m["iou"] == pytest.approx(0.5)
    assert M.seg_metrics(np.zeros((2, 2)), np.zeros((2, 2)))["dice"] == 1.0
    g = np.array([[10.0, 20.0], [0.0, 40.0]])  # 0 = invalid pixel
    d = M.depth_metrics(g, 2 * g)  # a pure scale error vanishes after median scaling
    assert d["abs_rel"] == pytest.approx(0) and d["delta1"] == 1.0
    d2 = M.depth_metrics(np.array([[10.0, 10.0]]), np.array([[1.0, 3.0]]))
    # median scaling x5 -> [5, 15]; abs rel = (0.5 + 0.5)/2
    assert d2["abs_rel"] == pytest.approx(0.5)
    assert M.depth_metrics(np.zeros((2, 2)), np.ones((2, 2))) is None


def test_average_precision_of_constant_scores_is_the_positive_rate():
    """The null baseline's closed form: one threshold, so AP = precision at full recall = the rate."""
    rng = np.random.default_rng(0)
    for _ in range(20):
        y = (rng.random(int(rng.integers(1, 50))) < rng.random()).astype(int)
        y[0] = 1
        assert M.average_precision(y, np.full(len(y), 0.3)) == pytest.approx(y.mean())


def test_map_of_constant_scores_is_the_mean_positive_rate():
    # hand case: video A class 0 rate 1/4, class 1 rate 2/4; video B class 0 rate 2/2, class 1 absent
    # -> class 0 (1/4 + 1) / 2 = 5/8, class 1 1/2 -> mAP (5/8 + 1/2) / 2 = 9/16
    ya = np.array([[1, 1], [0, 1], [0, 0], [0, 0]])
    yb = np.array([[1, 0], [1, 0]])
    mat = np.stack([M.video_ap(y, np.full(y.shape, 0.5)) for y in (ya, yb)])
    assert M.map_from_matrix(mat) == pytest.approx(9 / 16)
    # random videos: mean over classes of the per-video-averaged positive rates (absent: excluded)
    rng = np.random.default_rng(1)
    videos = [(rng.random((int(rng.integers(1, 30)), 12)) < 0.2).astype(int) for _ in range(6)]
    mat = np.stack([M.video_ap(y, np.full(y.shape, 0.1)) for y in videos])
    rates = np.array([[y[:, c].mean() if y[:, c].any() else np.nan for c in range(12)] for y in videos])
    seen = [c for c in range(12) if np.isfinite(rates[:, c]).any()]
    expected = np.mean([np.mean(rates[np.isfinite(rates[:, c]), c]) for c in seen])
    assert M.map_from_matrix(mat) == pytest.approx(expected)


def test_numpy_metrics_equal_the_reference_implementations():
    from scipy.stats import spearmanr
    from sklearn.metrics import average_precision_score, f1_score

    rng = np.random.default_rng(0)
    for _ in range(20):
        y = rng.integers(0, 5, 40)
        p = np.where(rng.random(40) < 0.5, y, rng.integers(0, 6, 40))
        labels = np.unique(np.concatenate([y, p]))
        for zd in (0.0, 1.0):
            ref = f1_score(y, p, labels=labels, average="macro", zero_division=zd)
            assert M.macro_f1(y, p, labels, zd) == pytest.approx(ref)
        yb = (rng.random(30) < 0.3).astype(int)
        yb[0] = 1
        s = np.round(rng.random(30), 1)  # ties on purpose
        assert M.average_precision(yb, s) == pytest.approx(average_precision_score(yb, s))
        a, b = rng.integers(0, 8, 15).astype(float), rng.random(15)
        assert M.spearman(a, b) == pytest.approx(spearmanr(a, b).statistic)


def test_relaxed_boundary_hand_computed_and_the_reference_indexing_bug():
    jumps = get_benchmark("cholec80").family.relaxed_jumps
    y = np.array([0] * 5 + [1] * 5)
    p = np.array([0, 0, 0, 1, 1, 0, 1, 1, 1, 1])  # early into phase 1, then late out of phase 0
    fixed = M.relaxed_video_phase(y, p, 7, window=2, jumps=jumps)
    # early transition (last 2 s of phase 0 predicted as 1) and late transition (first second of
    # phase 1 predicted as 0) are both forgiven: every instant counts as correct
    assert fixed["accuracy"] == 1.0
    np.testing.assert_allclose(fixed["jaccard"][:2], [1.0, 1.0])
    np.testing.assert_allclose(fixed["precision"][:2], [1.0, 1.0])  # 6/4 clipped to 1
    assert np.isnan(fixed["jaccard"][2:]).all()  # phases absent from the ground truth
    # the reference script applies the early-transition mask to the segment's first entries:
    # the two early predictions of phase 1 stay wrong
    buggy = M.relaxed_video_phase(y, p, 7, window=2, jumps=jumps, fixed=False)
    assert buggy["accuracy"] == 0.8
    np.testing.assert_allclose(buggy["jaccard"][:2], [4 / 6, 5 / 7])
    np.testing.assert_allclose(buggy["precision"][:2], [1.0, 5 / 6])
    np.testing.assert_allclose(buggy["recall"][:2], [0.8, 1.0])
    plain = M.video_phase_metrics(y, p)["accuracy"]
    assert plain == 0.7 < buggy["accuracy"] < fixed["accuracy"]


def test_relaxed_boundary_forgives_two_phase_jumps_only_where_the_protocol_allows():
    jumps = get_benchmark("cholec80").family.relaxed_jumps
    # phase 3 (dissection) may be predicted two ahead near its end, phase 5 two behind near its start
    y = np.array([3] * 4 + [5] * 4)
    p = np.array([3, 3, 5, 5, 3, 5, 5, 5])
    assert M.relaxed_video_phase(y, p, 7, window=2, jumps=jumps)["accuracy"] == 1.0
    # the same errors between phases 0 and 2 are not transitions the protocol forgives
    y2, p2 = y - 3, p - 3
    assert M.relaxed_video_phase(y2, p2, 7, window=2, jumps=jumps)["accuracy"] == 5 / 8
    # the window is tied to the label rate: outside it nothing is forgiven
    assert M.relaxed_video_phase(y, p, 7, window=1, jumps=jumps)["accuracy"] == 7 / 8


def test_relaxed_summary_averages_phases_over_videos_then_phases():
    jumps = get_benchmark("m2cai16").family.relaxed_jumps
    a = M.relaxed_video_phase(np.array([0, 0, 1, 1]), np.array([0, 0, 1, 1]), 8, 1, jumps)
    b = M.relaxed_video_phase(np.array([0, 0, 0, 0]), np.array([1, 1, 0, 0]), 8, 1, jumps)
    s = M.relaxed_phase_summary([a, b])
    assert s["relaxed_accuracy"] == (1.0 + 0.5) / 2
    # phase 0: video a 1.0, video b 2/4 -> 0.75; phase 1 only in video a: 1.0 -> mean 0.875
    assert s["relaxed_jaccard"] == 0.875


def test_challenge_summary_hand_computed():
    """Cholec80 MATLAB convention, unrelaxed: phases absent from a video's truth are NaN and excluded;
    per phase the mean over videos, then over phases."""
    a = (np.array([0, 0, 1, 1]), np.array([0, 1, 1, 1]))
    b = (np.array([0, 0, 2, 2]), np.array([0, 0, 0, 1]))
    s = M.challenge_phase_summary([a, b], num_classes=3)
    # video a: phase 0 tp1 of union {0,1} -> J 1/2, P 1/1, R 1/2, F1 2/3
    #          phase 1 tp2 of union {1,2,3} -> J 2/3, P 2/3, R 2/2, F1 4/5 ; phase 2 absent: NaN
    # video b: phase 0 tp2 of union {0,1,2} -> J 2/3, P 2/3, R 2/2, F1 4/5
    #          phase 1 absent from the truth (though predicted): NaN
    #          phase 2 never predicted: J 0/2, P 0/0 = NaN (as in the script), R 0/2, F1 0 (tp = 0)
    assert s["challenge_accuracy"] == pytest.approx((3 / 4 + 2 / 4) / 2)
    # J: phase 0 (1/2 + 2/3) / 2 = 7/12, phase 1 2/3, phase 2 0 -> (7/12 + 8/12 + 0) / 3 = 5/12
    assert s["challenge_jaccard"] == pytest.approx(5 / 12)
    # P: phase 0 (1 + 2/3) / 2 = 5/6, phase 1 2/3, phase 2 NaN only -> skipped: (5/6 + 2/3) / 2 = 3/4
    assert s["challenge_precision"] == pytest.approx(3 / 4)
    # R: phase 0 (1/2 + 1) / 2 = 3/4, phase 1 1, phase 2 0 -> 7/12
    assert s["challenge_recall"] == pytest.approx(7 / 12)
    # F1: phase 0 (2/3 + 4/5) / 2 = 11/15, phase 1 4/5, phase 2 0 -> (11/15 + 12/15) / 3 = 23/45
    assert s["challenge_f1"] == pytest.approx(23 / 45)
    # the SurgMotion convention scores video b's predicted-but-absent phase 1 as 0 instead:
    # precision (2/3 + 0 + 0) / 3 over phases {0, 1, 2}
    assert M.video_phase_metrics(*b)["precision"] == pytest.approx(2 / 9)
    assert all(np.isnan(v) for v in M.challenge_phase_summary([], 3).values())


def _challenge_by_counts(videos: list[tuple[np.ndarray, np.ndarray]], k: int) -> dict[str, float]:
    """The MATLAB convention written out from counts, independently of the relaxed-boundary code."""
    tables = {m: np.full((len(videos), k), np.nan) for m in ("jaccard", "precision", "recall", "f1")}
    for v, (y, p) in enumerate(videos):
        for c in range(k):
            if not (y == c).any():
                continue
            tp = np.sum((y == c) & (p == c))
            prec = tp / np.sum(p == c) if (p == c).any() else np.nan
            rec = tp / np.sum(y == c)
            tables["jaccard"][v, c] = tp / np.sum((y == c) | (p == c))
            tables["precision"][v, c], tables["recall"][v, c] = prec, rec
            tables["f1"][v, c] = 2 * prec * rec / (prec + rec) if tp else 0.0
    out = {"challenge_accuracy": np.mean([np.mean(y == p) for y, p in videos])}
    for m, t in tables.items():
        per_phase = [np.mean(t[np.isfinite(t[:, c]), c]) for c in range(k) if np.isfinite(t[:, c]).any()]
        out[f"challenge_{m}"] = np.mean(per_phase)
    return out


@pytest.mark.parametrize("seed", range(5))
def test_challenge_summary_matches_the_convention_written_from_counts(seed):
    rng = np.random.default_rng(seed)
    videos = []
    for _ in range(int(rng.integers(1, 6))):
        n = int(rng.integers(1, 50))
        y = np.sort(rng.integers(0, 7, n))  # phases in order, some absent
        videos.append((y, np.where(rng.random(n) < 0.6, y, rng.integers(0, 7, n))))
    assert M.challenge_phase_summary(videos, 7) == pytest.approx(_challenge_by_counts(videos, 7))


def _one_hot(pred: np.ndarray, num_classes: int) -> np.ndarray:
    return np.eye(num_classes)[pred]  # (n, C) logits whose argmax is pred


def test_phase_task_reports_the_challenge_convention_beside_the_headline():
    bench = get_benchmark("cholec80")
    y = np.array([0, 0, 1, 1, 0, 0, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 0, 0, 1])
    groups = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    m = task_for(bench).score(Truth(y, groups), _one_hot(p, bench.num_classes)).metrics
    expected = M.challenge_phase_summary([(y[:4], p[:4]), (y[4:], p[4:])], bench.num_classes)
    assert {k: m[k] for k in expected} == pytest.approx(expected)
    heads = [M.video_phase_metrics(y[:4], p[:4]), M.video_phase_metrics(y[4:], p[4:])]
    assert m["precision"] == pytest.approx(np.mean([h["precision"] for h in heads]))  # headline unmixed
    assert m["challenge_precision"] != pytest.approx(m["precision"])
    # the ignore rule applies to the challenge summary too: instants of true class 2 leave, and a
    # video left empty (the third) is skipped
    ignoring = task_for(dataclasses.replace(bench, family=Phase(ignore=frozenset({2}))))
    yi, pi, gi = np.r_[y, 2, 2], np.r_[p, 0, 0], np.r_[groups, 2, 2]
    mi = ignoring.score(Truth(yi, gi), _one_hot(pi, bench.num_classes)).metrics
    kept = [(y[:4], p[:4]), (y[4:6], p[4:6])]
    assert {k: mi[k] for k in expected} == pytest.approx(M.challenge_phase_summary(kept, bench.num_classes))
    # PitVis's official score is its own: no challenge summary there
    pitvis = get_benchmark("pitvis")
    yp = np.array([0, 0, 1, 1])
    mp = task_for(pitvis).score(Truth(yp, np.zeros(4)), _one_hot(yp, pitvis.num_classes)).metrics
    assert "pitvis_score" in mp and not any(k.startswith("challenge_") for k in mp)


def test_relaxed_jumps_name_the_same_phases_in_both_declarations():
    """Cholec80 and M2CAI16 (TrocarPlacement first) declare their jumps by id: the ids must name
    dissection/packaging and cleaning/retraction in both."""
    named = {}
    for name in ("cholec80", "m2cai16"):
        b = get_benchmark(name)
        named[name] = [[b.classes[i] for i in group] for group in b.family.relaxed_jumps]
    assert (
        named["cholec80"]
        == named["m2cai16"]
        == [
            ["GallbladderDissection", "GallbladderPackaging"],
            ["CleaningCoagulation", "GallbladderRetraction"],
        ]
    )
