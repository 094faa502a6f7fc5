"""Learning diagnostics: is the encoder learning anything at all?

Logged in ``log.csv`` beside the loss, at step 0 and every ``diagnostics.every`` steps:

- ``probe_online`` / ``probe_ema``: a cheap probe on a label colour alone cannot give (surgical phase).
  Ridge regression from mean-pooled features is fitted on clips of a labelled benchmark's *training*
  split and scored (balanced accuracy) on its *validation* split, never on its test split, for the
  online (context) encoder and the EMA target encoder.
- ``pooled_rank`` / ``pooled_var``: RankMe effective rank and mean per-channel variance of the EMA
  encoder's pooled features *across* the probe clips. They fall when different clips collapse onto
  one another, which is JEPA's actual failure; the token-level ``eff_rank`` cannot see it.
- ``drift_online`` / ``drift_ema``: ||θ − θ₀|| / ||θ₀|| of each encoder, how far training has moved
  it from its initial weights.

At every logged step, beside the prediction loss ``pred``: ``copy_mean`` and ``copy_nearest``, the
same (motion-weighted) L1 for two predictors that only copy: the clip's mean teacher token, and the
teacher token at the nearest visible (context) position of the token grid. A predictor that does not
beat them has learned nothing beyond copying.

Nothing here touches a random number generator or the weights: a run with diagnostics trains the
same weights as one without.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..benchmarks import Benchmark
from ..benchmarks.records import FramesSource, VideoSource
from ..errors import UsageError
from ..media.clips import normalize_batch, to_uint8_tensor
from ..media.video import clip_indices, open_video
from .losses import gather_tokens, latent_l1
from .telemetry import effective_rank, ridge_scores

log = logging.getLogger(__name__)

PROBE_BATCH = 16  # clips per encoder forward of the probe


# --------------------------------------------------------------------------- the labelled probe set


@dataclass(frozen=True)
class ProbeSet:
    """Labelled clips at the pretraining clip shape: ``clips`` uint8 (n, 3, T, S, S), ``labels`` (n,)
    class ids, ``fit`` (n,) True for the training split's clips (fitted on), False for validation's."""

    clips: torch.Tensor
    labels: np.ndarray
    fit: np.ndarray
    name: str  # "Cholec80 phase (train 160 / val 40 clips)"

    @property
    def usable(self) -> bool:
        """Two classes among the fitted clips, and clips to score."""
        return len(np.unique(self.labels[self.fit])) >= 2 and bool((~self.fit).any())


def probe_set(bench: Benchmark, root: str | Path, frames: int, size: int, step: float, per_video: int) -> ProbeSet:
    """``per_video`` evenly spaced labelled instants of every training and validation video of the
    temporal benchmark ``bench`` at ``root``, each as the clip of ``frames`` frames ``step`` native
    frames apart that ends at it (the pretraining clip's shape), squashed to ``size``²."""
    if bench.family.name != "phase":
        raise UsageError(f"pretrain.diagnostics.benchmark: {bench.name} is not a phase benchmark")
    records = [r for r in bench.load(root) if r.split in ("train", "val")]
    clips, labels, fit = [], [], []
    for r in records:
        if r.times is None or not len(r.times):
            continue
        reader = _reader(r.source)
        try:
            pick = np.unique(np.linspace(0, len(r.times) - 1, per_video).round().astype(np.int64))
            ends = np.minimum(np.round(r.times[pick] * reader.fps).astype(np.int64), len(reader) - 1)
            idx = np.stack([clip_indices(int(e), frames, step) for e in ends])  # (k, T)
            need, where = np.unique(idx, return_inverse=True)
            decoded = reader.get_frames(need)  # uint8 (len(need), H, W, 3), each frame once
        finally:
            reader.release()
        for row in where.reshape(idx.shape):
            clips.append(to_uint8_tensor(decoded[row], size))
        labels += r.labels[pick].astype(np.int64).tolist()
        fit += [r.split == "train"] * len(pick)
    if not clips:
        raise UsageError(f"pretrain.diagnostics: no labelled training or validation video under {root}")
    fit_arr = np.asarray(fit, bool)
    name = f"{bench.title} phase (train {int(fit_arr.sum())} / val {int((~fit_arr).sum())} clips)"
    return ProbeSet(torch.stack(clips), np.asarray(labels, np.int64), fit_arr, name)


def _reader(source):
    if isinstance(source, VideoSource):
        return open_video(source.path)
    if isinstance(source, FramesSource):
        return open_video(Path(source.paths[0]).parent, fps=source.fps)
    raise UsageError(f"pretrain.diagnostics: {type(source).__name__} records have no clips")


@torch.no_grad()
def pooled_features(encoder: torch.nn.Module, clips: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 clips (n, 3, T, S, S) -> float64 mean-pooled features (n, D), the encoder in eval mode."""
    was_training = encoder.training
    encoder.eval()
    out = [
        encoder(normalize_batch(clips[i : i + PROBE_BATCH].to(device))).mean(dim=1).double().cpu()
        for i in range(0, len(clips), PROBE_BATCH)
    ]
    encoder.train(was_training)
    return torch.cat(out)


def balanced_accuracy(pred: np.ndarray, y: np.ndarray) -> float:
    """Mean over the classes present in ``y`` of the share of their samples predicted right."""
    return float(np.mean([np.mean(pred[y == c] == c) for c in np.unique(y)]))


def probe_score(feats: torch.Tensor, probe: ProbeSet, lam: float = 1.0) -> float:
    """Balanced accuracy on the validation clips of a ridge probe fitted on the training clips."""
    x = feats.numpy()
    classes, y = np.unique(probe.labels, return_inverse=True)
    pred = ridge_scores(x[probe.fit], np.eye(len(classes))[y[probe.fit]], x[~probe.fit], lam).argmax(1)
    return balanced_accuracy(pred, y[~probe.fit])


def pooled_spread(feats: torch.Tensor) -> tuple[float, float]:
    """feats (n, D) -> (effective rank across clips, mean per-channel variance across clips)."""
    return effective_rank(feats[None]), float(feats.var(dim=0).mean())


# --------------------------------------------------------------------------- weights


def _local(p: torch.Tensor) -> torch.Tensor:
    """This process's part of a parameter: its shard under FSDP, the whole tensor otherwise."""
    return p.to_local() if hasattr(p, "to_local") else p


def snapshot(module: torch.nn.Module) -> list[torch.Tensor]:
    """A detached copy of the module's parameters (this process's shards under FSDP): θ₀ for :func:`drift`."""
    return [_local(p).detach().clone() for p in module.parameters()]


@torch.no_grad()
def drift(module: torch.nn.Module, start: list[torch.Tensor], total=None) -> float:
    """||θ − θ₀|| / ||θ₀|| over all parameters; ``total`` sums a float over the processes that hold
    the shards (None: this process holds them all)."""
    moved = sum(float((_local(p).double() - p0.double()).pow(2).sum()) for p, p0 in zip(module.parameters(), start))
    norm = sum(float(p0.double().pow(2).sum()) for p0 in start)
    if total is not None:
        moved, norm = total(moved), total(norm)
    return (moved / norm) ** 0.5 if norm else float("nan")


# --------------------------------------------------------------------------- copy baselines


def grid_coords(idx: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
    """Token indices (B, K) of a (T', H', W') grid -> their (t, y, x) coordinates (B, K, 3), float."""
    _, h, w = grid
    return torch.stack([idx // (h * w), (idx // w) % h, idx % w], dim=-1).float()


@torch.no_grad()
def copy_losses(
    h: torch.Tensor,
    ctx: torch.Tensor,
    tgt: torch.Tensor,
    grid: tuple[int, int, int],
    weight: torch.Tensor | None = None,
) -> tuple[float, float]:
    """The prediction loss of two copying predictors at the target positions.

    h (B, N, D) normalised teacher tokens; ctx (B, K_c), tgt (B, K_t) token indices; ``weight``
    (B, K_t) the loss's per-token weights. -> (L1 of the clip's mean teacher token, L1 of the teacher
    token at the nearest context position; ties go to the first context token in index order).
    """
    ht = gather_tokens(h, tgt)  # (B, K_t, D)
    mean = h.mean(dim=1, keepdim=True).expand_as(ht)
    dist = torch.cdist(grid_coords(tgt, grid), grid_coords(ctx, grid))  # (B, K_t, K_c)
    nearest = torch.gather(ctx, 1, dist.argmin(dim=-1))  # (B, K_t) token indices
    return float(latent_l1(mean, ht, weight)), float(latent_l1(gather_tokens(h, nearest), ht, weight))


# --------------------------------------------------------------------------- during a run


class Diagnostics:
    """The periodic diagnostics of one pretraining run: the probe set, and θ₀ of both encoders
    (taken when built, before any resume: a resumed run measures drift from the same start)."""

    fields = ["probe_online", "probe_ema", "pooled_rank", "pooled_var", "drift_online", "drift_ema"]

    def __init__(
        self,
        probe: ProbeSet,
        online: torch.nn.Module,
        ema: torch.nn.Module | None,
        every: int,
        steps: int,
        device: torch.device,
        total=None,
    ) -> None:
        self.probe, self.online, self.ema, self.every, self.steps = probe, online, ema, every, steps
        self.device, self.total = device, total
        self.start = {"online": snapshot(online), **({"ema": snapshot(ema)} if ema is not None else {})}
        log.info("learning diagnostics on %s, every %d steps", probe.name, every)

    def due(self, done: int) -> bool:
        return done == 0 or done % self.every == 0 or done == self.steps

    def row(self) -> dict[str, str]:
        """The diagnostics' log fields now ("" where a field does not apply, e.g. no EMA encoder)."""
        out = dict.fromkeys(self.fields, "")
        pooled = None
        for name, enc in (("online", self.online), ("ema", self.ema)):
            if enc is None:
                continue
            feats = pooled_features(enc, self.probe.clips, self.device)  # (n, D)
            if self.probe.usable:
                out[f"probe_{name}"] = f"{probe_score(feats, self.probe):.4f}"
            out[f"drift_{name}"] = f"{drift(enc, self.start[name], self.total):.5f}"
            pooled = feats  # the EMA encoder's where there is one (the exported encoder), else the online one
        rank, var = pooled_spread(pooled)
        out["pooled_rank"], out["pooled_var"] = f"{rank:.3f}", f"{var:.6f}"
        return out
