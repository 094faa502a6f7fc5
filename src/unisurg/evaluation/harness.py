"""The evaluation harness: any encoder x any benchmark under one frozen protocol.

For each (encoder, benchmark):
1. load the benchmark with its real-format loader and build probe samples;
2. extract frozen tokens (cached on disk by encoder weights + protocol);
3. train a grid of heads (lr x weight decay x seed) as one bank on the training split;
4. pick the head with the best validation score (macro-F1 / mAP / rho / Dice / AbsRel);
5. score the test split per video with the benchmark's official metric, and attach a 95%
   bootstrap confidence interval over test videos.
Cross-validated benchmarks (JIGSAWS, SurgicalActions160) rotate test/val folds and pool
the test predictions of all folds before scoring.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import torch
import torch.nn.functional as F

from . import metrics as M
from ..benchmarks.base import Benchmark, Record
from ..benchmarks.dense import read_target
from ..benchmarks.phase import PITVIS_BACKGROUND
from ..benchmarks.triplets import TRIPLET_IVT
from .bank import HeadBank, StackedAdamW
from .features import cache_key, extract_features, load_cached, store_cached
from .probe import AttentiveProbe, DenseHead
from .samples import Sample, make_samples

log = logging.getLogger(__name__)

# PitVis official score ignores background and steps 11 and 13 (class ids 10 and 12).
PITVIS_DROP = {PITVIS_BACKGROUND, 10, 12}


@dataclass(frozen=True)
class ProbeGrid:
    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    epochs: int
    batch_size: int
    depth: int
    num_heads: int
    min_steps: int = 0
    seeds: int = 1

    @classmethod
    def from_params(cls, probe) -> ProbeGrid:
        """From ``params.yaml``'s ``evaluate.probe`` (a :class:`unisurg.config.ProbeParams`)."""
        return cls(
            tuple(probe.lrs),
            tuple(probe.weight_decays),
            probe.epochs,
            probe.batch_size,
            probe.depth,
            probe.num_heads,
            probe.min_steps,
            probe.seeds,
        )

    def as_dict(self) -> dict:
        """The grid as recorded in every result, so that results trained otherwise are told apart.
        ``seed_batches``: how the seeds' heads are fed (``shared``: one batch order, init differs)."""
        return {
            "lrs": list(self.lrs),
            "weight_decays": list(self.weight_decays),
            "epochs": self.epochs,
            "min_steps": self.min_steps,
            "batch_size": self.batch_size,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "seeds": self.seeds,
            "seed_batches": "shared",
        }


@dataclass(frozen=True)
class Protocol:
    frames: int
    fps: float
    size: int
    label_fps: float = 1.0

    @classmethod
    def from_params(cls, evaluate) -> Protocol:
        """From ``params.yaml``'s ``evaluate`` section (a :class:`unisurg.config.EvaluateParams`)."""
        return cls(evaluate.clip.frames, evaluate.clip.fps, evaluate.clip.size, evaluate.label_fps)

    def as_dict(self) -> dict:
        return {"frames": self.frames, "fps": self.fps, "size": self.size, "label_fps": self.label_fps}


# --------------------------------------------------------------------------- training


def _out_dim(bench: Benchmark) -> int:
    return {
        "phase": bench.num_classes,
        "clip": bench.num_classes,
        "multilabel": bench.num_classes,
        "skill": 1,
        "segmentation": 1,
        "depth": 1,
    }[bench.task]


def _loss(task: str, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Loss per head: out (*L, B, ...) outputs of heads with leading dims L (none for one head),
    y (*L, B, ...) their targets -> (*L) losses, each averaged over its own batch."""
    if task in ("phase", "clip"):
        ce = F.cross_entropy(out.flatten(0, -2), y.flatten().long(), reduction="none")
        return ce.view(y.shape).mean(-1)
    if task == "multilabel":
        return F.binary_cross_entropy_with_logits(out, y.float(), reduction="none").mean((-2, -1))
    if task == "skill":
        return (out.squeeze(-1) - y.float()).square().mean(-1)
    if task == "segmentation":
        # BCE + soft Dice (the usual polyp-segmentation loss): with a few percent foreground,
        # BCE alone is minimised by predicting background everywhere, i.e. Dice 0.
        logit, y = out.squeeze(-3), y.float()  # (*L, B, H, W)
        bce = F.binary_cross_entropy_with_logits(logit, y, reduction="none").mean((-3, -2, -1))
        prob = torch.sigmoid(logit)
        inter = (prob * y).sum((-2, -1))
        dice = 1 - (2 * inter + 1) / (prob.sum((-2, -1)) + y.sum((-2, -1)) + 1)  # (*L, B)
        return bce + dice.mean(-1)
    if task == "depth":  # scale-invariant log loss over the valid pixels of the batch (metrics are median-scaled)
        valid = (y > 0).float()
        d = (out.squeeze(-3) - torch.log(y.clamp_min(1e-3))) * valid  # (*L, B, H, W)
        n = valid.sum((-3, -2, -1)).clamp_min(1)  # a batch without valid pixels: loss 0
        return d.square().sum((-3, -2, -1)) / n - 0.85 * (d.sum((-3, -2, -1)) / n) ** 2
    raise ValueError(task)


def grid_bank(
    dim: int, out_dim: int, grid: ProbeGrid, seeds: Sequence[int], dense: tuple[tuple[int, int, int], int] | None
) -> HeadBank:
    """The untrained grid: for each seed (which sets the initialisation) one head per (lr, wd),
    in (seed, lr, wd) order; dense tasks get :class:`DenseHead`, the others :class:`AttentiveProbe`."""
    heads, hparams = [], []
    for seed in seeds:
        torch.manual_seed(seed)
        for lr in grid.lrs:
            for wd in grid.weight_decays:
                heads.append(
                    DenseHead(dim, out_dim, *dense)
                    if dense
                    else AttentiveProbe(dim, out_dim, grid.num_heads, grid.depth)
                )
                hparams.append({"lr": lr, "weight_decay": wd})
    return HeadBank(heads, hparams)


def train_heads(
    task: str,
    feats: torch.Tensor,
    y: torch.Tensor,
    out_dim: int,
    grid: ProbeGrid,
    seeds: Sequence[int],
    dense: tuple[tuple[int, int, int], int] | None,
) -> HeadBank:
    """Train the grid (:func:`grid_bank`) in lockstep on the same batches, in the order drawn from
    the first seed (the seeds differ by initialisation). Cosine LR decay to 0 over all steps."""
    bank = grid_bank(feats.size(-1), out_dim, grid, seeds, dense)
    n = feats.size(0)
    steps_per_epoch = max(math.ceil(n / grid.batch_size), 1)
    # A mini benchmark has ~100 training samples: `epochs` alone would give a few dozen updates,
    # far from convergence, so whole epochs are repeated until at least `min_steps` updates.
    epochs = max(grid.epochs, math.ceil(grid.min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    for hp in bank.hparams:
        hp["steps"] = total
    opt = bank_optimizer(bank)
    g = torch.Generator().manual_seed(seeds[0])
    feats = feats.float()
    step = 0
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for b in range(steps_per_epoch):
            idx = perm[b * grid.batch_size : (b + 1) * grid.batch_size]
            bank_step(bank, opt, task, feats[idx], y[idx], 0.5 * (1 + math.cos(math.pi * step / total)))
            step += 1
    return bank


def bank_optimizer(bank: HeadBank) -> StackedAdamW:
    """AdamW over the bank's stacked parameters, each head with its own lr and weight decay."""
    lrs, wds = [hp["lr"] for hp in bank.hparams], [hp["weight_decay"] for hp in bank.hparams]
    return StackedAdamW(list(bank.params.values()), lrs, wds)


def bank_step(
    bank: HeadBank, opt: StackedAdamW, task: str, x: torch.Tensor, y: torch.Tensor, lr_scale: float = 1.0
) -> None:
    """One update of every head on the same batch: x (B, ...) features, y (B, ...) targets."""
    out = bank(x)  # (K, B, ...)
    yb = y.expand(len(bank), *y.shape)
    # the heads' losses are independent: the gradient of their sum is each head's own
    params = list(bank.params.values())
    opt.step(torch.autograd.grad(_loss(task, out, yb).sum(), params), lr_scale)


# --------------------------------------------------------------------------- scoring


@dataclass
class Scored:
    metrics: dict[str, float]  # aggregate metrics
    select: float  # the validation selection score (higher is better)
    stat: Callable[[np.ndarray], float]  # primary metric on a resample of unit indices
    units: int  # number of bootstrap units (videos, clips or images)


class Scorer:
    """Turns raw head outputs into official metrics for one benchmark split."""

    def __init__(
        self,
        bench: Benchmark,
        records: list[Record],
        samples: list[Sample],
        idx: np.ndarray,
        y: np.ndarray,
        targets: list | None,
        skill_stats: tuple[float, float],
        label_fps: float = 1.0,
    ) -> None:
        self.bench, self.records, self.samples, self.idx = bench, records, samples, idx
        self.label_fps = label_fps
        self.y, self.targets, self.skill_stats = y, targets, skill_stats
        self.groups = np.array([records[samples[i].record].video for i in idx])

    def _relaxed(self, pred: np.ndarray) -> dict[str, float]:
        """Relaxed-boundary variant with the reference script's indexing bug fixed; the 10 s window
        is expressed in labelled instants (samples are one per 1/label_fps seconds, in time order)."""
        window = max(int(round(10 * self.label_fps)), 1)
        per_video = [
            M.relaxed_video_phase(
                self.y[self.groups == g],
                pred[self.groups == g],
                self.bench.num_classes,
                window,
                M.RELAXED_JUMPS[self.bench.name],
            )
            for g in np.unique(self.groups)
        ]
        return M.relaxed_phase_summary(per_video)

    def __call__(self, out: np.ndarray) -> Scored:
        task, primary = self.bench.task, self.bench.metric
        if task == "phase":
            pred = out.argmax(1)
            if self.bench.name == "pitvis":
                per = M.per_group(lambda a, b: M.video_pitvis_score(a, b, PITVIS_DROP), self.y, pred, self.groups)
            else:
                per = M.per_group(M.video_phase_metrics, self.y, pred, self.groups)
            vals = np.array([v[primary] for v in per.values()])
            sel = float(np.mean([v["f1"] for v in per.values()])) if per else 0.0
            metrics = M.mean_over(per)
            if self.bench.name in M.RELAXED_JUMPS:  # secondary, labelled "relaxed_*" in results
                metrics.update(self._relaxed(pred))
            return Scored(metrics, sel, lambda ix: float(np.mean(vals[ix])), len(vals))
        if task == "multilabel":
            probs = 0.5 * (1 + np.tanh(0.5 * out))  # sigmoid without exp overflow on large logits
            mats = M.triplet_ap_matrices(self.y, probs, self.groups, list(TRIPLET_IVT))
            metrics = {f"map_{k}": M.map_from_matrix(v) for k, v in mats.items()}
            ivt = mats["ivt"]
            return Scored(metrics, metrics["map_ivt"], lambda ix: M.map_from_matrix(ivt[ix]), len(ivt))
        if task == "clip":
            pred = out.argmax(1)
            y = self.y
            metrics = M.clip_metrics(y, pred)
            return Scored(metrics, metrics["f1"], lambda ix: M.clip_metrics(y[ix], pred[ix])[primary], len(y))
        if task == "skill":
            mu, sd = self.skill_stats
            pred = out[:, 0] * sd + mu
            y = self.y
            metrics = M.skill_metrics(y, pred)
            return Scored(metrics, metrics["spearman"], lambda ix: M.skill_metrics(y[ix], pred[ix])[primary], len(y))
        # dense: upsample predictions to each target's own resolution
        per_img = []
        for k, tgt in enumerate(self.targets or []):
            o = cv2.resize(out[k, 0], (tgt.shape[1], tgt.shape[0]), interpolation=cv2.INTER_LINEAR)
            if task == "segmentation":
                r = M.seg_metrics(tgt, o > 0)
            else:
                mx = 100.0 if self.bench.name == "c3vd" else 150.0
                r = M.depth_metrics(tgt, np.exp(o), max_depth=mx)
            if r is not None:
                per_img.append(r)
        vals = np.array([r[primary] for r in per_img])
        metrics = (
            {k: float(np.mean([r[k] for r in per_img])) for k in per_img[0]} if per_img else {primary: float("nan")}
        )
        sel = metrics[primary] if self.bench.higher_is_better else -metrics[primary]
        return Scored(metrics, sel, lambda ix: float(np.mean(vals[ix])), len(vals))


# --------------------------------------------------------------------------- one benchmark


def _labels(bench: Benchmark, samples: list[Sample]) -> np.ndarray:
    if bench.task in ("segmentation", "depth"):
        return np.zeros(len(samples))
    return np.stack([np.asarray(s.label) for s in samples])


def _rounds(
    bench: Benchmark, records: list[Record], samples: list[Sample]
) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """(train, val, test) sample index arrays: one round, or one per fold."""
    if bench.folds:
        fold = np.array([records[s.record].fold for s in samples])
        k = bench.folds
        return [
            (
                np.nonzero((fold != f) & (fold != (f + 1) % k))[0],
                np.nonzero(fold == (f + 1) % k)[0],
                np.nonzero(fold == f)[0],
            )
            for f in range(k)
        ]
    split = np.array([records[s.record].split for s in samples])
    return [(np.nonzero(split == "train")[0], np.nonzero(split == "val")[0], np.nonzero(split == "test")[0])]


def evaluate_encoder(
    bench: Benchmark,
    records: list[Record],
    samples: list[Sample],
    feats: torch.Tensor,
    grid: ProbeGrid,
    protocol: Protocol,
    patch: int,
    tubelet: int,
    bootstrap: int,
    seed: int,
) -> tuple[dict, dict[str, list]]:
    """-> (test summary, per-sample test prediction columns) of one encoder on one benchmark."""
    y_all = _labels(bench, samples)
    dense = None
    targets_full: list[np.ndarray] | None = None
    y_train_all = torch.as_tensor(y_all)
    if bench.task in ("segmentation", "depth"):
        s = protocol.size
        dense = ((protocol.frames // tubelet, s // patch, s // patch), patch)
        targets_full = [read_target(bench.name, records[x.record].target) for x in samples]
        small = [cv2.resize(t.astype(np.float32), (s, s), interpolation=cv2.INTER_NEAREST) for t in targets_full]
        y_train_all = torch.as_tensor(np.stack(small))
    skill_stats = (0.0, 1.0)
    test_out, test_idx, chosen = [], [], []
    for r, (tr, va, te) in enumerate(_rounds(bench, records, samples)):
        if not len(tr) or not len(te):
            raise ValueError(f"{bench.title}: empty train or test split (train {len(tr)}, test {len(te)})")
        ytr = y_train_all[tr]
        if bench.task == "skill":
            skill_stats = (float(ytr.mean()), float(ytr.std()) or 1.0)
            ytr = (ytr - skill_stats[0]) / skill_stats[1]
        val = va if len(va) else tr  # no validation split: select on training fit (stated in results)
        vscore = Scorer(
            bench,
            records,
            samples,
            val,
            y_all[val],
            [targets_full[i] for i in val] if targets_full else None,
            skill_stats,
            protocol.label_fps,
        )
        # `seeds` grids (initialisations) trained on the same batches; each picks its head on validation
        # and the test output is the mean of the picked heads' raw outputs (logits, log-depth, ...)
        seeds = [seed + r + 7919 * k for k in range(grid.seeds)]
        bank = train_heads(bench.task, feats[tr], ytr, _out_dim(bench), grid, seeds, dense)
        val_out = bank.predict(feats[val])  # (K, n_val, ...)
        picked, per_seed = [], len(bank) // grid.seeds
        for g in range(grid.seeds):
            ks = range(g * per_seed, (g + 1) * per_seed)
            scores = [vscore(val_out[k]).select for k in ks]
            best = ks[int(np.nanargmax(np.nan_to_num(scores, nan=-np.inf)))]
            chosen.append({**bank.hparams[best], "val_score": round(float(scores[best - ks[0]]), 6)})
            picked.append(best)
        outs = bank.predict(feats[te], picked)
        out = np.mean(outs, axis=0)
        if bench.task == "skill":  # pool de-standardised predictions across folds
            out = out * skill_stats[1] + skill_stats[0]
        test_out.append(out)
        test_idx.append(te)
    te = np.concatenate(test_idx)
    out = np.concatenate(test_out)
    scored = _test_scorer(bench, records, samples, te, y_all, targets_full, protocol.label_fps)(out)
    ci = M.bootstrap_ci(np.arange(scored.units), bootstrap, seed, stat=scored.stat)
    value = scored.metrics.get(bench.metric, float("nan"))
    summary = {
        "value": _round(value),
        "ci": [_round(ci[0]), _round(ci[1])],
        "metrics": {k: _round(v) for k, v in sorted(scored.metrics.items())},
        "heads": chosen,
        "n_test_samples": int(len(te)),
        "n_test_units": int(scored.units),
    }
    return summary, _prediction_rows(bench, records, samples, te, out, y_all, test_idx)


def _test_scorer(
    bench: Benchmark,
    records: list[Record],
    samples: list[Sample],
    te: np.ndarray,
    y_all: np.ndarray,
    targets_full: list[np.ndarray] | None,
    label_fps: float,
) -> Scorer:
    targets = [targets_full[i] for i in te] if targets_full is not None else None
    return Scorer(bench, records, samples, te, y_all[te], targets, (0.0, 1.0), label_fps)


def _prediction_rows(
    bench: Benchmark,
    records: list[Record],
    samples: list[Sample],
    te: np.ndarray,
    out: np.ndarray,
    y_all: np.ndarray,
    test_idx: list[np.ndarray],
) -> dict[str, list]:
    """Columns of the per-sample test predictions: enough to recompute every reported metric.

    ``output`` is the raw head output (logits; de-standardised score for skill; the log-depth or
    mask-logit map at probe resolution, row-major, for dense tasks, whose ground truth is the file
    in ``target``). ``label`` is the ground truth (class id, multi-hot vector or score).
    """
    rnd = np.concatenate([np.full(len(ix), r) for r, ix in enumerate(test_idx)])
    dense = bench.task in ("segmentation", "depth")
    return {
        "sample": [int(i) for i in te],
        "round": [int(r) for r in rnd],
        "record": [records[samples[i].record].id for i in te],
        "video": [records[samples[i].record].video for i in te],
        "t": [samples[i].t_end for i in te],
        "label": [[] if dense else np.atleast_1d(y_all[i]).astype(np.float64).tolist() for i in te],
        "target": [records[samples[i].record].target if dense else None for i in te],
        "output": [o.astype(np.float32).ravel().tolist() for o in out],
    }


def rescore(
    bench: Benchmark, records: list[Record], samples: list[Sample], predictions: dict[str, list], label_fps: float
) -> dict[str, float]:
    """Recompute the test metrics of one encoder from its shipped predictions (and, for dense
    tasks, the ground-truth files): the check that every reported number can be reproduced."""
    te = np.asarray(predictions["sample"], np.int64)
    out = np.stack([np.asarray(o, np.float32) for o in predictions["output"]])
    if bench.task in ("segmentation", "depth"):
        side = int(round(math.sqrt(out.shape[1])))
        out = out.reshape(len(te), 1, side, side)
    y_all = _labels(bench, samples)
    targets = None
    if bench.task in ("segmentation", "depth"):
        targets = [read_target(bench.name, records[samples[i].record].target) for i in te]
    scorer = Scorer(bench, records, samples, te, y_all[te], targets, (0.0, 1.0), label_fps)
    return scorer(out).metrics


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def split_manifest(bench: Benchmark, records: list[Record]) -> dict[str, list[str]]:
    """Which videos/images were in which split (or fold): versioned with every result."""
    out: dict[str, list[str]] = {}
    for r in records:
        key = f"fold{r.fold}" if bench.folds else r.split
        out.setdefault(key, [])
        if r.video not in out[key]:
            out[key].append(r.video)
    return {k: sorted(v) for k, v in sorted(out.items())}


def run_benchmark(
    bench: Benchmark,
    root: Path,
    encoders: dict[str, tuple[torch.nn.Module, str]],
    grid: ProbeGrid,
    protocol: Protocol,
    bootstrap: int,
    seed: int,
    cache_dir: Path,
    batch_size: int,
) -> tuple[dict, pa.Table]:
    """Evaluate every encoder (name -> (model, weights id)) on one benchmark.

    -> (results: summary per encoder plus the classes, splits and protocol used;
        predictions: one row per (encoder, test sample), see :func:`_prediction_rows`).
    """
    records = bench.load(root)
    samples = make_samples(bench, records, protocol.label_fps)
    result = {
        "benchmark": bench.title,
        "name": bench.name,
        "task": bench.task,
        "metric": bench.metric,
        "higher_is_better": bench.higher_is_better,
        "classes": list(bench.classes),
        "splits": split_manifest(bench, records),
        "protocol": protocol.as_dict(),
        "probe": grid.as_dict(),
        "n_records": len(records),
        "n_samples": len(samples),
        "models": {},
    }
    keys = {
        name: cache_key(wid, bench.name, records, samples, protocol.as_dict()) for name, (_, wid) in encoders.items()
    }
    feats = {name: load_cached(cache_dir, key) for name, key in keys.items()}
    missing = {name: encoders[name][0] for name, f in feats.items() if f is None}
    if missing:
        fresh = extract_features(missing, records, samples, protocol.frames, protocol.fps, protocol.size, batch_size)
        for name, f in fresh.items():
            store_cached(cache_dir, keys[name], f)
            feats[name] = f
    tables = []
    for name, (model, wid) in encoders.items():
        log.info(
            "%s / %s: %d samples, features %s (%s)",
            bench.title,
            name,
            len(samples),
            tuple(feats[name].shape),
            "extracted" if name in missing else "cached",
        )
        summary, rows = evaluate_encoder(
            bench, records, samples, feats[name], grid, protocol, model.patch_size, model.tubelet_size, bootstrap, seed
        )
        result["models"][name] = {**summary, "weights": wid}
        tables.append(pa.table({"model": [name] * len(rows["sample"]), **rows}, schema=PREDICTIONS_SCHEMA))
    return result, pa.concat_tables(tables)


# One row per (encoder, test sample); `output` and `label` are flat lists (see _prediction_rows).
PREDICTIONS_SCHEMA = pa.schema(
    [
        ("model", pa.string()),
        ("sample", pa.int64()),
        ("round", pa.int64()),
        ("record", pa.string()),
        ("video", pa.string()),
        ("t", pa.float64()),
        ("label", pa.list_(pa.float64())),
        ("target", pa.string()),
        ("output", pa.list_(pa.float32())),
    ]
)
