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


def class_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Cross-entropy: out (*L, B, C) logits, y (*L, B) class ids."""
    ce = F.cross_entropy(out.flatten(0, -2), y.flatten().long(), reduction="none")
    return ce.view(y.shape).mean(-1)


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


# --------------------------------------------------------------------------- scoring


@dataclass(frozen=True)
class Truth:
    """What the outputs of one split (validation, or the pooled test rounds) are scored against."""

    y: np.ndarray  # (n, ...) labels of its samples
    groups: np.ndarray  # (n,) video of each sample: metrics are per video, then averaged
    targets: list[np.ndarray] | None = None  # dense tasks: each sample's target at full resolution
    label_fps: float = 1.0
    scale: tuple[float, float] = (0.0, 1.0)  # skill: (mean, std) that undo the score standardisation


@dataclass
class Scored:
    metrics: dict[str, float]  # aggregate metrics
    select: float  # the validation selection score (higher is better)
    stat: Callable[[np.ndarray], float]  # primary metric on a resample of unit indices
    units: int  # number of bootstrap units (videos, clips or images)


class Task:
    """A task family under the frozen protocol; subclasses fill in the family's parts."""

    dense = False  # heads decode patch tokens into maps (DenseHead) instead of attending (AttentiveProbe)
    loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def __init__(self, bench: Benchmark) -> None:
        self.bench, self.family = bench, bench.family

    def out_dim(self) -> int:
        return self.bench.num_classes

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
    """Per-instant classes scored per video (accuracy, macro P/R/Jaccard/F1; PitVis: F1 + edit)."""

    family: Phase
    loss = staticmethod(class_loss)

    def video_metrics(self, y: np.ndarray, p: np.ndarray) -> dict[str, float] | None:
        if self.family.edit_score:
            return M.video_pitvis_score(y, p, set(self.family.ignore))
        if self.family.ignore:
            keep = ~np.isin(y, list(self.family.ignore))
            y, p = y[keep], p[keep]
            if not len(y):
                return None
        return M.video_phase_metrics(y, p)

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
        if self.family.relaxed_jumps is not None:  # secondary, labelled "relaxed_*" in results
            metrics.update(self.relaxed(truth, pred))
        return Scored(metrics, sel, lambda ix: float(np.mean(vals[ix])), len(vals))


class TripletTask(Task):
    """Multi-label triplets: video-wise AP for IVT and its components (absent classes excluded)."""

    family: Triplets
    loss = staticmethod(multilabel_loss)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        probs = 0.5 * (1 + np.tanh(0.5 * out))  # sigmoid without exp overflow on large logits
        mats = M.triplet_ap_matrices(truth.y, probs, truth.groups, list(self.family.ivt))
        metrics = {f"map_{k}": M.map_from_matrix(v) for k, v in mats.items()}
        ivt = mats["ivt"]
        return Scored(metrics, metrics["map_ivt"], lambda ix: M.map_from_matrix(ivt[ix]), len(ivt))


class ClipTask(Task):
    """One class per clip: accuracy and macro F1 over all clips."""

    loss = staticmethod(class_loss)

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        pred, y, primary = out.argmax(1), truth.y, self.bench.metric
        metrics = M.clip_metrics(y, pred)
        return Scored(metrics, metrics["f1"], lambda ix: M.clip_metrics(y[ix], pred[ix])[primary], len(y))


class SkillTask(Task):
    """A score per trial, learnt standardised: Spearman rho and MAE over all trials."""

    loss = staticmethod(regression_loss)

    def out_dim(self) -> int:
        return 1

    def standardise(self, y: torch.Tensor) -> tuple[torch.Tensor, tuple[float, float]]:
        scale = (float(y.mean()), float(y.std()) or 1.0)
        return (y - scale[0]) / scale[1], scale

    def unstandardise(self, out: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
        return out * scale[1] + scale[0]

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        mu, sd = truth.scale
        pred, y, primary = out[:, 0] * sd + mu, truth.y, self.bench.metric
        metrics = M.skill_metrics(y, pred)
        return Scored(metrics, metrics["spearman"], lambda ix: M.skill_metrics(y[ix], pred[ix])[primary], len(y))


class DenseTask(Task):
    """Per-pixel maps from patch tokens, scored per image at each target's own resolution."""

    dense = True

    def out_dim(self) -> int:
        return 1

    def labels(self, samples: list[Sample]) -> np.ndarray:
        return np.zeros(len(samples))  # the targets are files, read by `read_targets`

    def read_targets(self, paths: list[str]) -> list[np.ndarray]:
        """Target files -> maps (H, W) at their own resolution, decoded by the benchmark's reader."""
        assert self.bench.read_target is not None, f"{self.bench.name} declares no read_target"
        return [self.bench.read_target(p) for p in paths]

    def image_metrics(self, target: np.ndarray, out: np.ndarray) -> dict[str, float] | None:
        raise NotImplementedError

    def score(self, truth: Truth, out: np.ndarray) -> Scored:
        primary, per_img = self.bench.metric, []
        for k, tgt in enumerate(truth.targets or []):
            o = cv2.resize(out[k, 0], (tgt.shape[1], tgt.shape[0]), interpolation=cv2.INTER_LINEAR)
            r = self.image_metrics(tgt, o)
            if r is not None:
                per_img.append(r)
        vals = np.array([r[primary] for r in per_img])
        metrics = (
            {k: float(np.mean([r[k] for r in per_img])) for k in per_img[0]} if per_img else {primary: float("nan")}
        )
        sel = metrics[primary] if self.bench.higher_is_better else -metrics[primary]
        return Scored(metrics, sel, lambda ix: float(np.mean(vals[ix])), len(vals))


class SegmentationTask(DenseTask):
    """Mask logits: Dice and IoU per image."""

    loss = staticmethod(segmentation_loss)

    def image_metrics(self, target: np.ndarray, out: np.ndarray) -> dict[str, float] | None:
        return M.seg_metrics(target, out > 0)


class DepthTask(DenseTask):
    """Log-depth: median-scaled depth metrics per image within the dataset's depth range."""

    family: Depth
    loss = staticmethod(depth_loss)

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
