"""Official metrics of the 17 benchmarks, computed per video (group) and then averaged.

Each function returns per-group values (so confidence intervals can bootstrap over videos,
:mod:`.stats`) and the aggregate. Conventions, where the community's implementations differ, are
stated in the docstrings; for phases the headline is SurgMotion's (scikit-learn's macro over truth ∪
prediction, :func:`video_phase_metrics`), the Cholec80 challenge's a labelled secondary
(:func:`challenge_phase_summary`).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence

import numpy as np

# The reference implementations (scikit-learn's f1_score / average_precision_score, SciPy's
# spearmanr) are re-implemented in NumPy: importing sklearn + scipy costs ~1.5 s in each of the
# 17 evaluation processes. tests/test_metrics.py checks equality with the references.


def macro_f1(y: np.ndarray, p: np.ndarray, labels: np.ndarray, zero_division: float = 0.0) -> float:
    """sklearn ``f1_score(y, p, labels=labels, average="macro", zero_division=...)``."""
    tp, fp, fn = _per_class_counts(y, p, labels)
    den = 2 * tp + fp + fn
    f1 = np.where(den > 0, 2 * tp / np.maximum(den, 1), zero_division)
    return float(f1.mean()) if len(labels) else float(zero_division)


def average_precision(y: np.ndarray, s: np.ndarray) -> float:
    """sklearn ``average_precision_score`` for one binary class: sum_k (R_k - R_{k-1}) P_k over
    the distinct score thresholds, highest first."""
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order].astype(np.float64)
    last = np.r_[np.nonzero(np.diff(s))[0], len(s) - 1]  # last index of each distinct score
    tps = np.cumsum(y)[last]
    fps = (last + 1) - tps
    precision = tps / (tps + fps)
    recall = tps / tps[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def _rank(x: np.ndarray) -> np.ndarray:
    """Ranks with ties averaged (scipy.stats.rankdata 'average')."""
    order = np.argsort(x, kind="mergesort")
    ranks = np.empty(len(x), np.float64)
    ranks[order] = np.arange(1, len(x) + 1)
    xs = x[order]
    start = 0
    for i in range(1, len(x) + 1):
        if i == len(x) or xs[i] != xs[start]:
            ranks[order[start:i]] = (start + 1 + i) / 2
            start = i
    return ranks


def spearman(y: np.ndarray, p: np.ndarray) -> float:
    ry, rp = _rank(np.asarray(y, np.float64)), _rank(np.asarray(p, np.float64))
    ry, rp = ry - ry.mean(), rp - rp.mean()
    den = np.sqrt((ry**2).sum() * (rp**2).sum())
    return float((ry * rp).sum() / den) if den > 0 else 0.0


# --------------------------------------------------------------------------- classification


def _per_class_counts(y: np.ndarray, p: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    tp = np.array([np.sum((y == c) & (p == c)) for c in labels], np.float64)
    fp = np.array([np.sum((y != c) & (p == c)) for c in labels], np.float64)
    fn = np.array([np.sum((y == c) & (p != c)) for c in labels], np.float64)
    return tp, fp, fn


def video_phase_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Accuracy and macro precision/recall/Jaccard/F1 of one video, the SurgMotion convention.

    As the authors' eval.py calls scikit-learn: ``accuracy_score`` and ``*_score(average="macro",
    zero_division=0)`` with no ``labels=``, i.e. the macro mean runs over the classes present in the
    video's truth *or* its prediction. A phase predicted but absent from the truth scores 0 on every
    measure and pulls the mean down; a phase in the truth never predicted has precision 0. The
    Cholec80 challenge convention (absent phases excluded) is :func:`challenge_phase_summary`.
    """
    labels = np.unique(np.concatenate([y, p]))  # (K,) sklearn's unique_labels(y, p)
    tp, fp, fn = _per_class_counts(y, p, labels)
    # every class of truth ∪ prediction has tp + fp + fn > 0, so only P and R can be 0 / 0
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        rec = np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        jac = tp / (tp + fp + fn)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return {
        "accuracy": float(np.mean(y == p)),
        "precision": float(prec.mean()),
        "recall": float(rec.mean()),
        "jaccard": float(jac.mean()),
        "f1": float(f1.mean()),
    }


def segments(seq: np.ndarray) -> list[int]:
    """Run-length collapse: [1,1,2,2,1] -> [1,2,1]."""
    return [int(v) for i, v in enumerate(seq) if i == 0 or v != seq[i - 1]]


def levenshtein(a: list[int], b: list[int]) -> int:
    prev = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        cur = [i]
        for j, y in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (x != y)))
        prev = cur
    return prev[-1]


def edit_score(y: np.ndarray, p: np.ndarray) -> float:
    """1 - levenshtein(segments(y), segments(p)) / max(len), in [0, 1]."""
    sy, sp = segments(y), segments(p)
    n = max(len(sy), len(sp))
    return 1.0 - levenshtein(sy, sp) / n if n else 1.0


def video_pitvis_score(y: np.ndarray, p: np.ndarray, drop: set[int]) -> dict[str, float] | None:
    """PitVis-2023 step score of one video: rows whose true class is in ``drop`` (background, steps
    11 and 13) are removed; macro F1 with zero_division=1 over the labels present; plus edit score."""
    keep = ~np.isin(y, list(drop))
    y, p = y[keep], p[keep]
    if not len(y):
        return None
    labels = np.unique(np.concatenate([y, p]))
    f1 = macro_f1(y, p, labels, zero_division=1.0)
    ed = edit_score(y, p)
    return {"f1": f1, "edit": ed, "pitvis_score": (f1 + ed) / 2}


# Relaxed-boundary phase evaluation (Cholec80 / M2CAI16 challenge scripts). The phases that may
# legitimately jump two ahead/behind are a fact of each benchmark: `Phase.relaxed_jumps`.


def relaxed_video_phase(
    y: np.ndarray,
    p: np.ndarray,
    num_classes: int,
    window: int,
    jumps: tuple[tuple[int, ...], tuple[int, ...]],
    fixed: bool = True,
) -> dict[str, np.ndarray | float]:
    """Relaxed-boundary scores of one video, as the public challenge evaluation computes them.

    Within the first ``window`` labelled instants of every ground-truth segment a prediction
    of the previous phase (late transition) is forgiven, within its last ``window`` instants a
    prediction of the next phase (early transition); phases in ``jumps`` forgive two phases.
    ``window`` is 10 s at the label rate (10 at 1 fps, 250 at 25 fps).

    ``fixed=False`` reproduces the reference script's indexing bug: the early-transition mask,
    computed on the segment's last ``window`` entries, is applied to its *first* ``window``
    entries (a MATLAB logical index shorter than the array). The headline uses ``fixed=True``.

    Returns ``accuracy`` and per-phase ``jaccard``/``precision``/``recall`` arrays of length
    ``num_classes`` (NaN for a phase absent from the ground truth; ratios above 1 clipped to 1).
    """
    y = np.asarray(y, np.int64)
    p = np.asarray(p, np.int64)
    diff = p - y
    updated = diff.copy()
    run_starts = np.r_[0, np.nonzero(np.diff(y))[0] + 1]
    run_ends = np.r_[run_starts[1:], len(y)]
    for s, e in zip(run_starts, run_ends, strict=True):
        c = int(y[s])
        cur = diff[s:e].copy()
        t = min(window, len(cur))
        late = (-1, -2) if c in jumps[1] else (-1,)
        early = (1, 2) if c in jumps[0] or c in jumps[1] else (1,)
        head = np.isin(cur[:t], late)
        cur[:t][head] = 0
        tail = np.isin(cur[len(cur) - t :], early)
        if fixed:
            cur[len(cur) - t :][tail] = 0
        else:
            cur[:t][tail] = 0
        updated[s:e] = cur
    jac, prec, rec = (np.full(num_classes, np.nan) for _ in range(3))
    with np.errstate(divide="ignore", invalid="ignore"):
        for c in range(num_classes):
            gt, pr = y == c, p == c
            if not gt.any():
                continue
            union = gt | pr
            tp = float(np.sum(updated[union] == 0))
            jac[c] = tp / union.sum()
            prec[c] = tp / pr.sum() if pr.any() else (np.inf if tp > 0 else np.nan)
            rec[c] = tp / gt.sum()
    clip = lambda a: np.where(np.isnan(a), np.nan, np.minimum(a, 1.0))  # noqa: E731
    acc = float(np.mean(updated == 0)) if len(y) else float("nan")
    return {"accuracy": acc, "jaccard": clip(jac), "precision": clip(prec), "recall": clip(rec)}


def relaxed_phase_summary(per_video: list[dict[str, np.ndarray | float]], prefix: str = "relaxed_") -> dict[str, float]:
    """Aggregate as the reference script: per phase the NaN-mean over videos, then the mean over
    phases (phases absent from every video skipped); accuracy is the mean over videos.

    Summarises ``jaccard``, ``precision``, ``recall`` and, where the videos carry it, ``f1``; the
    keys are named ``prefix + measure``. No videos: NaN for every key.
    """
    measures = ["jaccard", "precision", "recall"] + (["f1"] if per_video and "f1" in per_video[0] else [])
    if not per_video:
        return {f"{prefix}{k}": float("nan") for k in ["accuracy", *measures]}
    out = {f"{prefix}accuracy": float(np.mean([v["accuracy"] for v in per_video]))}
    for k in measures:
        m = np.stack([v[k] for v in per_video])  # (videos, phases)
        with np.errstate(invalid="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN phase columns
            per_phase = np.nanmean(m, axis=0)
        out[f"{prefix}{k}"] = float(np.nanmean(per_phase)) if np.isfinite(per_phase).any() else float("nan")
    return out


def phase_f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    """Per-phase F1 = 2PR / (P + R) from the challenge's per-phase arrays of one video.

    NaN where the phase is absent from the truth (recall NaN). A phase of the truth that is never
    predicted has precision 0 / 0 = NaN in the script but no true positive, so its F1 is 0, as is
    the F1 of P = R = 0.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    f1 = np.where(np.isnan(precision), 0.0, f1)  # never predicted: tp = 0
    return np.where(np.isnan(recall), np.nan, f1)


def challenge_phase_summary(
    per_video_y_p: Sequence[tuple[np.ndarray, np.ndarray]], num_classes: int
) -> dict[str, float]:
    """The Cholec80 challenge (MATLAB) convention without boundary relaxation, a labelled secondary.

    Per video and phase (``num_classes`` phases): Jaccard, precision and recall, NaN for a phase
    absent from the video's truth (so it is excluded, not scored 0); a phase of the truth that is
    never predicted has NaN precision (0 / 0), as in the script. Each measure is NaN-meaned per
    phase over videos, then meaned over phases; accuracy is the mean over videos. This is
    :func:`relaxed_video_phase` with a window of 0, summarised by :func:`relaxed_phase_summary`.

    The challenge script reports accuracy and P/R/Jaccard only; ``challenge_f1`` is derived here
    per video and phase as 2PR / (P + R) (:func:`phase_f1`) and averaged the same way.
    """
    per_video = []
    for y, p in per_video_y_p:
        v = relaxed_video_phase(y, p, num_classes, window=0, jumps=((), ()))  # window 0: nothing forgiven
        v["f1"] = phase_f1(v["precision"], v["recall"])
        per_video.append(v)
    return relaxed_phase_summary(per_video, prefix="challenge_")


def per_group(
    fn: Callable[[np.ndarray, np.ndarray], dict[str, float] | None], y: np.ndarray, p: np.ndarray, groups: np.ndarray
) -> dict[str, dict[str, float]]:
    out = {}
    for g in np.unique(groups):
        m = groups == g
        r = fn(y[m], p[m])
        if r is not None:
            out[str(g)] = r
    return out


def clip_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Clip-level classification over all clips: accuracy and macro F1 (one value, not per video)."""
    return {"accuracy": float(np.mean(y == p)), "f1": macro_f1(y, p, np.unique(np.concatenate([y, p])))}


# --------------------------------------------------------------------------- CholecT50


def video_ap(y: np.ndarray, s: np.ndarray) -> np.ndarray:
    """AP per class for one video: y (n, C) {0,1}, s (n, C) scores -> (C,), NaN where the class
    has no positive in this video (absent, not zero: the ivtmetrics convention under sklearn < 1.6)."""
    out = np.full(y.shape[1], np.nan)
    for c in range(y.shape[1]):
        if y[:, c].any():
            out[c] = average_precision(y[:, c], s[:, c])
    return out


def component_matrix(ivt: list[tuple[int, int, int]], component: str) -> np.ndarray:
    """(100, K) 0/1 matrix mapping triplets to a component's classes (i, v, t, iv, it)."""
    keys = {
        "i": lambda t: (t[0],),
        "v": lambda t: (t[1],),
        "t": lambda t: (t[2],),
        "iv": lambda t: (t[0], t[1]),
        "it": lambda t: (t[0], t[2]),
    }[component]
    classes = sorted({keys(t) for t in ivt})
    m = np.zeros((len(ivt), len(classes)), np.float64)
    for k, t in enumerate(ivt):
        m[k, classes.index(keys(t))] = 1
    return m


def pool_component(x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Max-pool triplet scores/labels (n, 100) into a component's classes (n, K)."""
    return np.stack([x[:, m[:, k] > 0].max(axis=1) for k in range(m.shape[1])], axis=1)


def triplet_ap_matrices(
    y: np.ndarray, s: np.ndarray, groups: np.ndarray, ivt: list[tuple[int, int, int]]
) -> dict[str, np.ndarray]:
    """Per-video AP matrices (V, C) for ivt and each component."""
    out = {}
    vids = np.unique(groups)
    for comp in ("ivt", "i", "v", "t", "iv", "it"):
        rows = []
        for g in vids:
            m = groups == g
            yy, ss = y[m], s[m]
            if comp != "ivt":
                cm = component_matrix(ivt, comp)
                yy, ss = pool_component(yy, cm), pool_component(ss, cm)
            rows.append(video_ap(yy, ss))
        out[comp] = np.stack(rows)
    return out


def map_from_matrix(ap: np.ndarray) -> float:
    """Mean over videos per class (ignoring absent), then mean over classes seen in any video."""
    seen = np.isfinite(ap)
    counts = seen.sum(axis=0)
    per_class = np.where(seen, ap, 0.0).sum(axis=0) / np.maximum(counts, 1)
    return float(per_class[counts > 0].mean()) if (counts > 0).any() else float("nan")


# --------------------------------------------------------------------------- skill


def skill_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    rho = spearman(y, p) if len(y) > 1 else 0.0
    return {"spearman": rho, "mae": float(np.mean(np.abs(y - p)))}


# --------------------------------------------------------------------------- dense


def seg_metrics(gt: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Dice and IoU of one image's binary masks; both empty counts as a perfect 1."""
    g, p = gt.astype(bool), pred.astype(bool)
    inter, tot, union = np.sum(g & p), g.sum() + p.sum(), np.sum(g | p)
    return {"dice": float(2 * inter / tot) if tot else 1.0, "iou": float(inter / union) if union else 1.0}


def depth_metrics(
    gt: np.ndarray, pred: np.ndarray, min_depth: float = 1e-3, max_depth: float = 150.0
) -> dict[str, float] | None:
    """Monocular depth metrics of one image with per-image median scaling (Monodepth/AF-SfMLearner).

    Pixels with min_depth < gt < max_depth count; pred is scaled by median(gt)/median(pred) and
    clamped to [min_depth, max_depth].
    """
    m = (gt > min_depth) & (gt < max_depth)
    if not m.any():
        return None
    g, p = gt[m].astype(np.float64), pred[m].astype(np.float64)
    p = p * (np.median(g) / max(np.median(p), 1e-12))
    p = np.clip(p, min_depth, max_depth)
    thresh = np.maximum(g / p, p / g)
    return {
        "abs_rel": float(np.mean(np.abs(g - p) / g)),
        "sq_rel": float(np.mean((g - p) ** 2 / g)),
        "rmse": float(np.sqrt(np.mean((g - p) ** 2))),
        "rmse_log": float(np.sqrt(np.mean((np.log(g) - np.log(p)) ** 2))),
        "delta1": float(np.mean(thresh < 1.25)),
        "delta2": float(np.mean(thresh < 1.25**2)),
        "delta3": float(np.mean(thresh < 1.25**3)),
    }


# --------------------------------------------------------------------------- aggregation


def mean_over(per: dict[str, dict[str, float]]) -> dict[str, float]:
    keys = sorted({k for v in per.values() for k in v})
    return {k: float(np.mean([v[k] for v in per.values() if k in v])) for k in keys}
