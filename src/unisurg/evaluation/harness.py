"""The evaluation harness: any encoder x any benchmark under one frozen protocol.

For each (encoder, benchmark):
1. load the benchmark with its real-format loader and build probe samples;
2. extract frozen tokens (cached on disk by encoder weights + protocol);
3. train a grid of heads (lr x weight decay x seed) as one bank on the training split;
4. pick the head with the best validation score (macro-F1 / mAP / rho / Dice / AbsRel);
5. score the test split per video with the benchmark's official metric, and attach a 95%
   bootstrap confidence interval over test videos.
Cross-validated benchmarks (JIGSAWS, SurgicalActions160) rotate test/val folds and pool
the test predictions of all folds before scoring. What differs between task families (head
size, loss, labels, scorer) comes from the benchmark's :class:`~.tasks.Task`; the harness never
branches on a benchmark's name.
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

from ..benchmarks import Benchmark, Record
from . import metrics as M
from .bank import HeadBank, StackedAdamW
from .features import cache_key, extract_features, load_cached, store_cached
from .heads import AttentiveProbe, DenseHead
from .samples import Sample, make_samples
from .tasks import Task, Truth, task_for

log = logging.getLogger(__name__)


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

Loss = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (outputs, targets) of (*L, B, ...) -> (*L) losses


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
    loss: Loss,
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
            bank_step(bank, opt, loss, feats[idx], y[idx], 0.5 * (1 + math.cos(math.pi * step / total)))
            step += 1
    return bank


def bank_optimizer(bank: HeadBank) -> StackedAdamW:
    """AdamW over the bank's stacked parameters, each head with its own lr and weight decay."""
    lrs, wds = [hp["lr"] for hp in bank.hparams], [hp["weight_decay"] for hp in bank.hparams]
    return StackedAdamW(list(bank.params.values()), lrs, wds)


def bank_step(
    bank: HeadBank, opt: StackedAdamW, loss: Loss, x: torch.Tensor, y: torch.Tensor, lr_scale: float = 1.0
) -> None:
    """One update of every head on the same batch: x (B, ...) features, y (B, ...) targets."""
    out = bank(x)  # (K, B, ...)
    yb = y.expand(len(bank), *y.shape)
    # the heads' losses are independent: the gradient of their sum is each head's own
    params = list(bank.params.values())
    opt.step(torch.autograd.grad(loss(out, yb).sum(), params), lr_scale)


def pick_heads(
    task: Task, bank: HeadBank, val_feats: torch.Tensor, truth: Truth, grids: int
) -> tuple[list[int], list[dict]]:
    """Each of the bank's ``grids`` (one per seed) picks its head with the best validation score
    -> (the picked heads' indices in the bank, their hyperparameters and validation scores)."""
    val_out = bank.predict(val_feats)  # (K, n_val, ...)
    picked, chosen, per_grid = [], [], len(bank) // grids
    for g in range(grids):
        ks = range(g * per_grid, (g + 1) * per_grid)
        scores = [task.score(truth, val_out[k]).select for k in ks]
        best = ks[int(np.nanargmax(np.nan_to_num(scores, nan=-np.inf)))]
        chosen.append({**bank.hparams[best], "val_score": round(float(scores[best - ks[0]]), 6)})
        picked.append(best)
    return picked, chosen


# --------------------------------------------------------------------------- one benchmark


@dataclass(frozen=True)
class Labelled:
    """Every sample of a benchmark with its labels, for training and for scoring."""

    records: list[Record]
    samples: list[Sample]
    y: np.ndarray  # (S, ...) labels: class id, multi-hot vector or score (zeros for dense tasks)
    y_train: torch.Tensor  # (S, ...) what the heads learn: the labels, or target maps at probe resolution
    targets: list[np.ndarray] | None  # dense tasks: every sample's target map at full resolution

    @classmethod
    def build(cls, task: Task, records: list[Record], samples: list[Sample], size: int) -> Labelled:
        y = task.labels(samples)
        if not task.dense:
            return cls(records, samples, y, torch.as_tensor(y), None)
        targets = task.read_targets([records[s.record].target for s in samples])
        small = [cv2.resize(t.astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST) for t in targets]
        return cls(records, samples, y, torch.as_tensor(np.stack(small)), targets)

    def truth(self, idx: np.ndarray, label_fps: float, scale: tuple[float, float] = (0.0, 1.0)) -> Truth:
        """What the outputs of samples ``idx`` are scored against."""
        targets = [self.targets[i] for i in idx] if self.targets is not None else None
        groups = np.array([self.records[self.samples[i].record].video for i in idx])
        return Truth(self.y[idx], groups, targets, label_fps, scale)


@dataclass(frozen=True)
class Round:
    """One round's result: a fixed split's, or one fold's."""

    test: np.ndarray  # test sample indices
    out: np.ndarray  # (n_test, ...) raw outputs, the mean over the heads the seeds' grids picked
    heads: list[dict]  # per seed: the picked head's hyperparameters and validation score


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


def train_round(
    task: Task,
    data: Labelled,
    feats: torch.Tensor,
    grid: ProbeGrid,
    dense: tuple[tuple[int, int, int], int] | None,
    split: tuple[np.ndarray, np.ndarray, np.ndarray],
    seeds: list[int],
    label_fps: float,
) -> Round:
    """One round on (train, val, test) sample indices ``split``."""
    tr, va, te = split
    if not len(tr) or not len(te):
        raise ValueError(f"{task.bench.title}: empty train or test split (train {len(tr)}, test {len(te)})")
    # 1. train `seeds` grids (initialisations) on the same batches
    ytr, scale = task.standardise(data.y_train[tr])
    bank = train_heads(task.loss, feats[tr], ytr, task.out_dim(), grid, seeds, dense)
    # 2. each grid picks its head on validation (none: on the training fit, stated in the results)
    val = va if len(va) else tr
    picked, chosen = pick_heads(task, bank, feats[val], data.truth(val, label_fps, scale), grid.seeds)
    # 3. the test output is the mean of the picked heads' raw outputs (logits, log-depth, ...)
    out = np.mean(bank.predict(feats[te], picked), axis=0)
    return Round(te, task.unstandardise(out, scale), chosen)


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
    task = task_for(bench)
    # 1. every sample's labels (dense tasks: target maps, at full and at probe resolution)
    data = Labelled.build(task, records, samples, protocol.size)
    s = protocol.size
    dense = ((protocol.frames // tubelet, s // patch, s // patch), patch) if task.dense else None
    # 2. one round, or one per fold: train, pick heads on validation, predict the test split
    rounds = []
    for r, split in enumerate(_rounds(bench, records, samples)):
        seeds = [seed + r + 7919 * k for k in range(grid.seeds)]  # one per grid, new each round
        rounds.append(train_round(task, data, feats, grid, dense, split, seeds, protocol.label_fps))
    # 3. score the rounds' pooled test predictions; 95% bootstrap CI over the test units
    te = np.concatenate([rd.test for rd in rounds])
    out = np.concatenate([rd.out for rd in rounds])
    scored = task.score(data.truth(te, protocol.label_fps), out)
    ci = M.bootstrap_ci(np.arange(scored.units), bootstrap, seed, stat=scored.stat)
    value = scored.metrics.get(bench.metric, float("nan"))
    summary = {
        "value": _round(value),
        "ci": [_round(ci[0]), _round(ci[1])],
        "metrics": {k: _round(v) for k, v in sorted(scored.metrics.items())},
        "heads": [h for rd in rounds for h in rd.heads],
        "n_test_samples": int(len(te)),
        "n_test_units": int(scored.units),
    }
    return summary, _prediction_rows(task, records, samples, te, out, data.y, [rd.test for rd in rounds])


def _prediction_rows(
    task: Task,
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
    dense = task.dense
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
    task = task_for(bench)
    te = np.asarray(predictions["sample"], np.int64)
    out = np.stack([np.asarray(o, np.float32) for o in predictions["output"]])
    targets = None
    if task.dense:
        side = int(round(math.sqrt(out.shape[1])))
        out = out.reshape(len(te), 1, side, side)  # (n, 1, H, W) maps at probe resolution
        targets = task.read_targets([records[samples[i].record].target for i in te])
    groups = np.array([records[samples[i].record].video for i in te])
    return task.score(Truth(task.labels(samples)[te], groups, targets, label_fps), out).metrics


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


def encoder_features(
    encoders: dict[str, tuple[torch.nn.Module, str]],
    bench: Benchmark,
    records: list[Record],
    samples: list[Sample],
    protocol: Protocol,
    cache_dir: Path,
    batch_size: int,
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """-> (frozen tokens (S, N, D) of every sample per encoder, the encoders whose tokens were not cached)."""
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
    return feats, set(missing)


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
    # 1. load the benchmark with its real-format loader; one probe sample per labelled instant/clip/image
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
    # 2. frozen tokens of every encoder (from the cache where the same weights saw the same samples)
    feats, extracted = encoder_features(encoders, bench, records, samples, protocol, cache_dir, batch_size)
    # 3. per encoder: train, select and score the probe grid
    tables = []
    for name, (model, wid) in encoders.items():
        log.info(
            "%s / %s: %d samples, features %s (%s)",
            bench.title,
            name,
            len(samples),
            tuple(feats[name].shape),
            "extracted" if name in extracted else "cached",
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
