"""How each task family is trained and scored: one class per family (vjepa2's ``evals/<task>/``).

A benchmark declares its family (:mod:`unisurg.benchmarks.families`) with the family's facts;
:func:`task_for` pairs it with the :class:`Task` below that knows the head's output size, the
loss, the labels and the official scorer. The harness only talks to a :class:`Task`: it never
branches on a benchmark's name or a task string.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..benchmarks import Benchmark
from ..benchmarks.families import ClipClassification, Depth, Family, Phase, Segmentation, Skill, Triplets
from . import metrics as M
from .samples import Sample

# --------------------------------------------------------------------------- losses
# Each maps outputs (*L, B, ...) of heads with leading dims L (none for one head) and their targets
# (*L, B, ...) to (*L) losses, each averaged over its own batch.

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def class_loss(out: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy: out (*L, B, C) logits, y (*L, B) class ids; with class weights (C,) the
    weighted mean of torch's ``CrossEntropyLoss(weight=...)`` (divided by the batch's total weight)."""
    weight = None if weight is None else weight.to(out.device)
    ce = F.cross_entropy(out.flatten(0, -2), y.flatten().long(), weight=weight, reduction="none").view(y.shape)
    if weight is None:
        return ce.mean(-1)
    return ce.sum(-1) / weight[y.long()].sum(-1)


def balanced_class_weights(y: torch.Tensor, num_classes: int) -> torch.Tensor:
    """scikit-learn's "balanced" weights n / (C_present * count_c) of the training labels y (n,),
    normalised so the smallest is 1 (SurgMotion's eval.py); classes absent from y weigh 1 (they are
    never a target)."""
    counts = torch.bincount(y.long().flatten(), minlength=num_classes).double()
    present = counts > 0
    w = torch.ones(num_classes, dtype=torch.float64)
    balanced = counts.sum() / (present.sum() * counts[present])
    w[present] = balanced / balanced.min()
    return w.float()


def multilabel_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy per class: out (*L, B, C) logits, y (*L, B, C) multi-hot."""
    return F.binary_cross_entropy_with_logits(out, y.float(), reduction="none").mean((-2, -1))


def regression_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Squared error: out (*L, B, 1), y (*L, B) standardised scores."""
    return (out.squeeze(-1) - y.float()).square().mean(-1)


def segmentation_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """BCE + soft Dice (the usual polyp-segmentation loss): out (*L, B, 1, H, W) logits, y (*L, B, H, W).
    With a few percent foreground, BCE alone is minimised by predicting background everywhere, i.e. Dice 0."""
    logit, y = out.squeeze(-3), y.float()  # (*L, B, H, W)
    bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none").mean((-3, -2, -1))
    prob = torch.sigmoid(logit)
    inter = (prob * y).sum((-2, -1))
    dice = 1 - (2 * inter + 1) / (prob.sum((-2, -1)) + y.sum((-2, -1)) + 1)  # (*L, B)
    return bce + dice.mean(-1)


def depth_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Scale-invariant log loss over the valid pixels (y > 0) of the batch (metrics are median-scaled):
    out (*L, B, 1, H, W) log-depth, y (*L, B, H, W) depth in mm."""
    valid = (y > 0).float()
    d = (out.squeeze(-3) - torch.log(y.clamp_min(1e-3))) * valid  # (*L, B, H, W)
    n = valid.sum((-3, -2, -1)).clamp_min(1)  # a batch without valid pixels: loss 0
    return d.square().sum((-3, -2, -1)) / n - 0.85 * (d.sum((-3, -2, -1)) / n) ** 2


# --------------------------------------------------------------------------- nulls
# The best a head can do without looking at its input, in each family's output space.


def prior_logits(y: torch.Tensor, num_classes: int) -> list[tuple[str, np.ndarray]]:
    """Class ids y (n,) -> log training frequencies as logits: argmax is the majority class,
    the softmax is the training prior."""
    freq = torch.bincount(y.long().flatten(), minlength=num_classes).double() / max(y.numel(), 1)
    return [("training prior", torch.log(freq.clamp_min(1e-9)).float().numpy())]


def positive_rate_logits(y: torch.Tensor) -> list[tuple[str, np.ndarray]]:
    """Multi-hot y (n, C) -> logits whose sigmoid is each class's training positive rate."""
    rate = y.double().mean(0).clamp(1e-6, 1 - 1e-6)
    return [("training positive rates", torch.log(rate / (1 - rate)).float().numpy())]


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Truth:
    """What the outputs of one split (validation, or the pooled test rounds) are scored against."""

    y: np.ndarray  # (n, ...) labels of its samples
    groups: np.ndarray  # (n,) video of each sample: metrics are per video, then averaged
    targets: list[np.ndarray] | None = None  # dense tasks: each sample's target at full resolution
    label_fps: float = 1.0
    scale: tuple[float, float] = (0.0, 1.0)  # skill: (mean, std) that undo the score standardisation
    rounds: np.ndarray | None = None  # (n,) round (CV fold) each pooled test sample was predicted in


@dataclass
class Scored:
    metrics: dict[str, float]  # aggregate metrics
    select: float  # the validation selection score (higher is better)
    stat: Callable[[np.ndarray], float]  # primary metric on a resample (with repeats) of unit indices
    units: int  # number of independent bootstrap units (videos, sequences, trials, clips)


class Task:
    """A task family under the frozen protocol; subclasses fill in the family's parts."""

    dense = False  # heads decode patch tokens into maps (DenseHead) instead of attending (AttentiveProbe)
    unit = "video"  # the independent unit CIs and paired differences resample
    loss: Loss

    def __init__(self, bench: Benchmark) -> None:
        self.bench, self.family = bench, bench.family

    def out_dim(self) -> int:
        return self.bench.num_classes

    def loss_for(self, y_train: torch.Tensor, class_weighted: bool) -> Loss:
        """The training loss given the training labels: cross-entropy tasks may weight classes
        (the ``surgmotion`` protocol: balanced weights); every other loss is unweighted."""
        if class_weighted and self.loss is class_loss:
            w = balanced_class_weights(y_train, self.bench.num_classes)
            return lambda out, y: class_loss(out, y, w)
        return self.loss

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        """Named constant outputs (one sample's output shape) that use no input, only the training
        labels; the harness scores the best on validation as the benchmark's null row."""
        raise NotImplementedError

    def labels(self, samples: list[Sample]) -> np.ndarray:
        """(S, ...) every sample's label: class id, multi-hot vector or score."""
        return np.stack([np.asarray(s.label) for s in samples])

    def standardise(self, y: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
        """Training targets as the heads learn them, and the (mean, std) that undo it."""
        return y, (0.0, 1.0)

    def unstandardise(self, out: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        return out

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        """Official metrics of raw head outputs ``out`` (n, ...) against ``truth``."""
        raise NotImplementedError


class PhaseTask(Task):
    """Per-instant classes scored per video: accuracy and macro P/R/Jaccard/F1 over the classes of
    truth ∪ prediction (SurgMotion's scikit-learn convention, the headline); PitVis: F1 + edit.
    Secondaries, never mixed into the headline keys: ``challenge_*`` (Cholec80 MATLAB convention,
    phases absent from the truth excluded) and, where declared, ``relaxed_*`` boundaries."""

    family: Phase
    loss = staticmethod(class_loss)

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        return prior_logits(y_train, self.bench.num_classes)

    def kept(self, y: np.ndarray, p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One video's instants without those whose *true* class is ignored (a prediction of an
        ignored class on a kept instant stays an error)."""
        if not self.family.ignore:
            return y, p
        keep = ~np.isin(y, list(self.family.ignore))
        return y[keep], p[keep]

    def video_metrics(self, y: np.ndarray, p: np.ndarray) -> dict[str, float] | None:
        if self.family.edit_score:
            return M.video_pitvis_score(y, p, set(self.family.ignore))
        y, p = self.kept(y, p)
        # the segmental edit score, as the authors' eval.py reports for every phase benchmark
        return {**M.video_phase_metrics(y, p), "edit": M.edit_score(y, p)} if len(y) else None

    def challenge(self, truth: Truth, pred: np.ndarray) -> dict[str, float]:
        """The Cholec80 challenge convention (phases absent from a video's truth excluded, per phase
        over videos, then over phases) on the same kept instants as the headline; videos left empty
        by the ignore rule are skipped."""
        g_of = truth.groups
        videos = [self.kept(truth.y[g_of == g], pred[g_of == g]) for g in np.unique(g_of)]
        return M.challenge_phase_summary([v for v in videos if len(v[0])], self.bench.num_classes)

    def relaxed(self, truth: Truth, pred: np.ndarray) -> dict[str, float]:
        """Relaxed-boundary variant with the reference script's indexing bug fixed; the 10 s window
        is expressed in labelled instants (samples are one per 1/label_fps seconds, in time order)."""
        window = max(int(round(10 * truth.label_fps)), 1)
        g_of = truth.groups
        per_video = [
            M.relaxed_video_phase(
                truth.y[g_of == g], pred[g_of == g], self.bench.num_classes, window, self.family.relaxed_jumps
            )
            for g in np.unique(g_of)
        ]
        return M.relaxed_phase_summary(per_video)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        pred = out.argmax(1)
        per = M.per_group(self.video_metrics, truth.y, pred, truth.groups)
        vals = np.array([v[self.bench.metric] for v in per.values()])
        sel = float(np.mean([v["f1"] for v in per.values()])) if per else 0.0
        metrics = M.mean_over(per)
        if not self.family.edit_score:  # secondary, labelled "challenge_*"; PitVis has its own official score
            metrics.update(self.challenge(truth, pred))
        if self.family.relaxed_jumps is not None:  # secondary, labelled "relaxed_*" in results
            metrics.update(self.relaxed(truth, pred))
        return Scored(metrics, sel, lambda ix: float(np.mean(vals[ix])), len(vals))


class TripletTask(Task):
    """Multi-label triplets: video-wise AP for IVT and its components (absent classes excluded)."""

    family: Triplets
    loss = staticmethod(multilabel_loss)

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        return positive_rate_logits(y_train)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        probs = 0.5 * (1 + np.tanh(0.5 * out))  # sigmoid without exp overflow on large logits
        mats = M.triplet_ap_matrices(truth.y, probs, truth.groups, list(self.family.ivt))
        metrics = {f"map_{k}": M.map_from_matrix(v) for k, v in mats.items()}
        ivt = mats["ivt"]
        return Scored(metrics, metrics["map_ivt"], lambda ix: M.map_from_matrix(ivt[ix]), len(ivt))


class ClipTask(Task):
    """One class per clip: accuracy and macro F1 over all clips."""

    loss = staticmethod(class_loss)
    unit = "clip"

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        return prior_logits(y_train, self.bench.num_classes)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        pred, y, primary = out.argmax(1), truth.y, self.bench.metric
        metrics = M.clip_metrics(y, pred)
        return Scored(metrics, metrics["f1"], lambda ix: M.clip_metrics(y[ix], pred[ix])[primary], len(y))


class SkillTask(Task):
    """A score per trial, learnt standardised; Spearman rho and MAE.

    Cross-validated (``truth.rounds`` given, e.g. JIGSAWS leave-one-supertrial-out): the headline
    ``spearman`` is rho computed *within* each fold on its held-out trials, averaged over the folds
    through Fisher's z (arctanh of rho clipped to +-0.9999, mean, tanh), the JIGSAWS protocol
    (:mod:`unisurg.benchmarks.clips`). A fold whose prediction (or truth) is constant has an undefined
    rho, counted as 0: a training-mean head scores 0. ``spearman_pooled`` is one rho over the pooled
    test trials of all folds, for reference only: across leave-one-user-out folds it is biased
    negative (the training mean falls as the held-out user's scores rise). ``mae`` is over all trials.
    A fixed split (``rounds`` None; also the validation trials of one round, i.e. one fold) scores
    one rho over its trials."""

    loss = staticmethod(regression_loss)
    unit = "trial"
    RHO_CLIP = 0.9999  # |rho| = 1 has an infinite Fisher z
    MIN_FOLD_TRIALS = 3  # bootstrap: a fold's rho needs at least this many distinct resampled trials

    def out_dim(self) -> int:
        return 1

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        """The training-mean score (raw units, as test outputs are scored); y_train (n,) scores."""
        return [("training mean", np.array([float(y_train.double().mean())], np.float32))]

    def standardise(self, y: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
        scale = (float(y.mean()), float(y.std()) or 1.0)
        return (y - scale[0]) / scale[1], scale

    def unstandardise(self, out: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        return out * scale[1] + scale[0]

    @classmethod
    def fisher_mean(cls, rhos: list[float]) -> float:
        """tanh(mean(arctanh(rho))) with rho clipped to +-RHO_CLIP; NaN for no rho."""
        if not rhos:
            return float("nan")
        z = np.arctanh(np.clip(np.asarray(rhos, np.float64), -cls.RHO_CLIP, cls.RHO_CLIP))
        return float(np.tanh(z.mean()))

    @classmethod
    def within_fold_spearman(
        cls, y: np.ndarray, pred: np.ndarray, folds: np.ndarray, ix: np.ndarray | None = None
    ) -> float:
        """Fisher-z mean over folds of the Spearman rho of each fold's trials (a constant fold: 0).

        ``ix`` (a bootstrap resample of trial indices, with repeats): each fold's rho is computed on
        its resampled trials, and folds with fewer than MIN_FOLD_TRIALS distinct trials are skipped."""
        if ix is None:
            return cls.fisher_mean([M.spearman(y[folds == f], pred[folds == f]) for f in np.unique(folds)])
        rhos = []
        for f in np.unique(folds[ix]):
            sel = ix[folds[ix] == f]
            if len(np.unique(sel)) >= cls.MIN_FOLD_TRIALS:
                rhos.append(M.spearman(y[sel], pred[sel]))
        return cls.fisher_mean(rhos)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        mu, sd = truth.scale
        pred, y, primary = out[:, 0] * sd + mu, np.asarray(truth.y, np.float64).reshape(-1), self.bench.metric
        pooled = M.skill_metrics(y, pred)
        if truth.rounds is None:
            return Scored(pooled, pooled["spearman"], lambda ix: M.skill_metrics(y[ix], pred[ix])[primary], len(y))
        folds = np.asarray(truth.rounds)
        metrics = {
            "spearman": self.within_fold_spearman(y, pred, folds),
            "mae": pooled["mae"],
            "spearman_pooled": pooled["spearman"],  # reference only (class docstring)
        }

        def stat(ix: np.ndarray) -> float:
            if primary == "spearman":
                return self.within_fold_spearman(y, pred, folds, ix)
            return M.skill_metrics(y[ix], pred[ix])[primary]

        return Scored(metrics, metrics["spearman"], stat, len(y))


class DenseTask(Task):
    """Per-pixel maps from patch tokens, scored per image at each target's own resolution.

    The headline is the mean over images (the benchmarks' convention); the independent unit is the
    image's sequence (``Record.group``; a standalone image is its own): frames of one sequence are
    not independent samples, so CIs resample sequences (a cluster bootstrap)."""

    dense = True
    unit = "sequence"

    def out_dim(self) -> int:
        return 1

    def labels(self, samples: list[Sample]) -> np.ndarray:
        return np.zeros(len(samples))  # the targets are files, read by `read_targets`

    def read_targets(self, paths: list[str]) -> list[np.ndarray]:
        """Target files -> maps (H, W) at their own resolution, decoded by the benchmark's reader."""
        if self.bench.read_target is None:
            raise ValueError(f"{self.bench.name}: a dense benchmark must declare read_target")
        return [self.bench.read_target(p) for p in paths]

    def image_metrics(self, target: np.ndarray, out: np.ndarray) -> dict[str, float] | None:
        raise NotImplementedError

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        primary, per_img, group = self.bench.metric, [], []
        for k, tgt in enumerate(truth.targets or []):
            o = cv2.resize(out[k, 0], (tgt.shape[1], tgt.shape[0]), interpolation=cv2.INTER_LINEAR)
            r = self.image_metrics(tgt, o)
            if r is not None:
                per_img.append(r)
                group.append(truth.groups[k])
        vals = np.array([r[primary] for r in per_img])
        metrics = (
            {k: float(np.mean([r[k] for r in per_img])) for k in per_img[0]} if per_img else {primary: float("nan")}
        )
        sel = metrics[primary] if self.bench.higher_is_better else -metrics[primary]
        # per sequence: the sum and count of its images' values; a resample of sequences (with
        # repeats) gives the image mean over the images of the sequences drawn
        names, unit = np.unique(np.asarray(group, dtype=str), return_inverse=True)
        sums = np.bincount(unit, weights=vals, minlength=len(names))
        counts = np.bincount(unit, minlength=len(names)).astype(np.float64)
        return Scored(metrics, sel, lambda ix: float(sums[ix].sum() / counts[ix].sum()), len(names))


class SegmentationTask(DenseTask):
    """Mask logits: Dice and IoU per image."""

    loss = staticmethod(segmentation_loss)

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        """Mask logits of every pixel foreground, or every pixel background; y_train (n, H, W)."""
        shape = (1, *y_train.shape[-2:])
        fg, bg = np.full(shape, 10.0, np.float32), np.full(shape, -10.0, np.float32)
        return [("all foreground", fg), ("all background", bg)]

    def image_metrics(self, target: np.ndarray, out: np.ndarray) -> dict[str, float] | None:
        return M.seg_metrics(target, out > 0)


class DepthTask(DenseTask):
    """Log-depth: median-scaled depth metrics per image within the dataset's depth range."""

    family: Depth
    loss = staticmethod(depth_loss)

    def null_candidates(self, y_train: torch.Tensor) -> list[tuple[str, np.ndarray]]:
        """A constant log-depth map; y_train (n, H, W). Median scaling makes every constant the
        same: the per-image median depth everywhere."""
        return [("constant depth", np.zeros((1, *y_train.shape[-2:]), np.float32))]

    def image_metrics(self, target: np.ndarray, out: np.ndarray) -> dict[str, float] | None:
        return M.depth_metrics(target, np.exp(out), max_depth=self.family.max_depth)


TASKS: dict[type[Family], type[Task]] = {
    Phase: PhaseTask,
    Triplets: TripletTask,
    ClipClassification: ClipTask,
    Skill: SkillTask,
    Segmentation: SegmentationTask,
    Depth: DepthTask,
}


def task_for(bench: Benchmark) -> Task:
    """The evaluation of ``bench``'s task family."""
    try:
        return TASKS[type(bench.family)](bench)
    except KeyError:
        raise TypeError(f"{bench.name}: no evaluation for task family {type(bench.family).__name__}") from None
