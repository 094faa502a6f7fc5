"""The evaluation harness: any encoder x any benchmark under one named protocol.

For each benchmark, under a :class:`~.protocols.Protocol`:
1. load the benchmark with its real-format loader and build probe samples;
2. extract every encoder's frozen tokens (cached on disk by encoder weights + sampling);
3. per encoder, train a grid of heads (lr x weight decay x seed) as one bank on the training split;
4. pick the head with the best validation score (macro-F1 / mAP / rho / Dice / AbsRel); a
   validation split with fewer than 3 items cannot rank heads: the grid's first head is used
   and the result says so (``val_score`` None);
5. score the test split with the benchmark's official metric, with a 95% bootstrap CI over the
   independent test units (videos, sequences, trials; no CI with fewer than 3);
6. score the *null* — the best constant output given the training labels (prior class scores,
   all-foreground or all-background, a constant depth, the training-mean skill), chosen on
   validation like a head — with the same code, so every table shows what no information scores;
7. compare every pair of models (and each model with the null) on the same test units: the
   paired bootstrap of the metric difference.
Cross-validated benchmarks (JIGSAWS, SurgicalActions160) rotate test/val folds and pool the
test predictions of all folds; the scorer knows each prediction's fold (JIGSAWS's Spearman ρ is
taken within folds). What differs between task families (head
size, loss, labels, null, scorer) comes from the benchmark's :class:`~.tasks.Task`; the harness
never branches on a benchmark's name.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import torch

from ..benchmarks import Benchmark, Record
from ..runtime import CPU, SINGLE, Dist, batch_shard
from . import stats
from .bank import HeadBank, StackedAdamW
from .features import cache_key, extract_features, load_cached, store_cached
from .heads import AttentiveProbe, DenseHead
from .protocols import ProbeGrid, Protocol, Sampling
from .samples import Sample, make_samples
from .tasks import Loss, Scored, Task, Truth, task_for

NULL = "null"  # the model name of the null rows (a reserved evaluate.models name)

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- training


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
                    else AttentiveProbe(
                        dim, out_dim, num_heads=grid.num_heads, depth=grid.depth, mlp_ratio=grid.mlp_ratio
                    )
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
    epochs: int | None = None,
    device: torch.device = CPU,
) -> HeadBank:
    """Train the grid (:func:`grid_bank`) in lockstep on the same batches, in the order drawn from
    the first seed (the seeds differ by initialisation), for ``epochs`` (default: the grid's).
    Cosine LR decay to 0 over all steps. The heads, features and targets live on ``device``
    (initialised on the CPU first, so a seed gives the same heads on any device)."""
    bank = grid_bank(feats.size(-1), out_dim, grid, seeds, dense).to(device)
    n = feats.size(0)
    steps_per_epoch = max(math.ceil(n / grid.batch_size), 1)
    # A mini benchmark has ~100 training samples: `epochs` alone would give a few dozen updates,
    # far from convergence, so whole epochs are repeated until at least `min_steps` updates.
    epochs = max(grid.epochs if epochs is None else epochs, math.ceil(grid.min_steps / steps_per_epoch))
    total = epochs * steps_per_epoch
    for hp in bank.hparams:
        hp["steps"] = total
    opt = bank_optimizer(bank)
    g = torch.Generator().manual_seed(seeds[0])  # batch order drawn on the CPU: the same on any device
    feats, y = feats.to(device).float(), y.to(device)
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


def best_index(task: Task, truth: Truth, outputs: Sequence[np.ndarray]) -> tuple[int, float | None]:
    """The candidate output (of a head, or a null) with the best validation score -> (index, score).

    With fewer than :data:`stats.MIN_UNITS` validation items (labelled instants, clips, trials,
    images) a score cannot rank candidates (two trials give a correlation of +-1): the first
    candidate is taken and the score is None."""
    if len(truth.y) < stats.MIN_UNITS:
        return 0, None
    scores = [task.score(truth, o).select for o in outputs]
    best = int(np.nanargmax(np.nan_to_num(scores, nan=-np.inf)))
    return best, float(scores[best])


def pick_heads(
    task: Task, bank: HeadBank, val_feats: torch.Tensor, truth: Truth, grids: int
) -> tuple[list[int], list[dict]]:
    """Each of the bank's ``grids`` (one per seed) picks its head with the best validation score
    -> (the picked heads' indices in the bank, their hyperparameters and validation scores;
    ``val_score`` None: too few validation items, the grid's first head)."""
    val_out = bank.predict(val_feats)  # (K, n_val, ...)
    picked, chosen, per_grid = [], [], len(bank) // grids
    for g in range(grids):
        first = g * per_grid
        best, score = best_index(task, truth, val_out[first : first + per_grid])
        chosen.append({**bank.hparams[first + best], "val_score": None if score is None else round(score, 6)})
        picked.append(first + best)
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

    def truth(
        self,
        idx: np.ndarray,
        label_fps: float,
        scale: tuple[float, float] = (0.0, 1.0),
        rounds: np.ndarray | None = None,
    ) -> Truth:
        """What the outputs of samples ``idx`` (predicted in ``rounds``, if cross-validated) are scored against."""
        targets = [self.targets[i] for i in idx] if self.targets is not None else None
        groups = np.array([self.records[self.samples[i].record].video for i in idx])
        return Truth(self.y[idx], groups, targets, label_fps, scale, rounds)


Split = tuple[np.ndarray, np.ndarray, np.ndarray]  # (train, val, test) sample indices


@dataclass(frozen=True)
class Setup:
    """What every encoder (and the null) of one benchmark is evaluated on: the task, the labels,
    the rounds' splits (one, or one per fold), the protocol and the seeds."""

    bench: Benchmark
    task: Task
    data: Labelled
    splits: list[Split]
    protocol: Protocol
    seed: int  # probe initialisation and batch order
    boot_seed: int  # bootstrap resampling (the protocol's, or the seed)
    device: torch.device = CPU  # where the probe heads train (metrics: always the CPU)

    @classmethod
    def build(
        cls,
        bench: Benchmark,
        records: list[Record],
        samples: list[Sample],
        protocol: Protocol,
        seed: int,
        device: torch.device = CPU,
    ) -> Setup:
        task = task_for(bench)
        data = Labelled.build(task, records, samples, protocol.sampling.size)
        splits = _rounds(bench, records, samples)
        if protocol.select_on == "test":  # the paper's configs: heads chosen on the test split itself
            splits = [(tr, te, te) for tr, _, te in splits]
        for tr, _, te in splits:
            if not len(tr) or not len(te):
                raise ValueError(f"{bench.title}: empty train or test split (train {len(tr)}, test {len(te)})")
        boot_seed = seed if protocol.bootstrap_seed is None else protocol.bootstrap_seed
        return cls(bench, task, data, splits, protocol, seed, boot_seed, device)

    @property
    def test(self) -> np.ndarray:
        """The pooled test samples of all rounds, in round order."""
        return np.concatenate([te for _, _, te in self.splits])

    def test_truth(self) -> Truth:
        rounds = np.concatenate([np.full(len(te), r) for r, (_, _, te) in enumerate(self.splits)])
        return self.data.truth(self.test, self.protocol.sampling.label_fps, rounds=rounds)


@dataclass(frozen=True)
class Round:
    """One round's result: a fixed split's, or one fold's."""

    test: np.ndarray  # test sample indices
    out: np.ndarray  # (n_test, ...) raw outputs, the mean over the heads the seeds' grids picked
    heads: list[dict]  # per seed: the picked head's hyperparameters and validation score


@dataclass(frozen=True)
class Outcome:
    """One model's (or the null's) pooled test outputs on a benchmark, scored."""

    summary: dict  # value, CI, metrics, heads, units: what the result file records
    out: np.ndarray  # (n_test, ...) raw outputs of the pooled test samples (Setup.test order)
    scored: Scored


def _rounds(bench: Benchmark, records: list[Record], samples: list[Sample]) -> list[Split]:
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
    setup: Setup, feats: torch.Tensor, dense: tuple[tuple[int, int, int], int] | None, split: Split, seeds: list[int]
) -> Round:
    """One round on (train, val, test) sample indices ``split``."""
    task, data, grid = setup.task, setup.data, setup.protocol.probe
    tr, va, te = split
    # 1. train `seeds` grids (initialisations) on the same batches
    ytr, scale = task.standardise(data.y_train[tr])
    loss = task.loss_for(data.y_train[tr], grid.class_weighted)
    epochs = grid.epochs_for(setup.bench.name)
    bank = train_heads(loss, feats[tr], ytr, task.out_dim(), grid, seeds, dense, epochs, setup.device)
    # 2. each grid picks its head on validation (none: on the training fit, stated in the results)
    val = va if len(va) else tr
    truth = data.truth(val, setup.protocol.sampling.label_fps, scale)
    picked, chosen = pick_heads(task, bank, feats[val], truth, grid.seeds)
    # 3. the test output is the mean of the picked heads' raw outputs (logits, log-depth, ...)
    out = np.mean(bank.predict(feats[te], picked), axis=0)
    return Round(te, task.unstandardise(out, scale), chosen)


def summarise(setup: Setup, out: np.ndarray, heads: list[dict]) -> Outcome:
    """Score pooled test outputs with the benchmark's official metric; 95% bootstrap CI over the
    independent test units (None with fewer than :data:`stats.MIN_UNITS`)."""
    bench, n_boot = setup.bench, setup.protocol.bootstrap
    scored = setup.task.score(setup.test_truth(), out)
    ci = (
        stats.bootstrap_ci(scored.units, n_boot, setup.boot_seed, stat=scored.stat)
        if scored.units >= stats.MIN_UNITS
        else (float("nan"), float("nan"))
    )
    summary = {
        "value": _round(scored.metrics.get(bench.metric, float("nan"))),
        "ci": [_round(ci[0]), _round(ci[1])],
        "metrics": {k: _round(v) for k, v in sorted(scored.metrics.items())},
        "heads": heads,
        "n_test_samples": int(len(out)),
        "n_test_units": int(scored.units),
        "unit": setup.task.unit,
    }
    return Outcome(summary, out, scored)


def evaluate_encoder(setup: Setup, feats: torch.Tensor, patch: int, tubelet: int) -> Outcome:
    """One encoder's frozen tokens ``feats`` (S, N, D) on one benchmark: train, select, score."""
    s, frames = setup.protocol.sampling.size, setup.protocol.sampling.frames
    dense = ((frames // tubelet, s // patch, s // patch), patch) if setup.task.dense else None
    # one round, or one per fold: train, pick heads on validation, predict the test split
    rounds = []
    for r, split in enumerate(setup.splits):
        seeds = [setup.seed + r + 7919 * k for k in range(setup.protocol.probe.seeds)]  # one per grid and round
        rounds.append(train_round(setup, feats, dense, split, seeds))
    return summarise(setup, np.concatenate([rd.out for rd in rounds]), [h for rd in rounds for h in rd.heads])


def evaluate_null(setup: Setup) -> Outcome:
    """The null row: per round, the task's constant candidates given the training labels
    (:meth:`Task.null_candidates`), the best on validation broadcast to every test sample."""
    task, data, label_fps = setup.task, setup.data, setup.protocol.sampling.label_fps
    outs, picks = [], []
    for tr, va, te in setup.splits:
        val = va if len(va) else tr
        names, consts = zip(*task.null_candidates(data.y_train[tr]), strict=True)
        truth = data.truth(val, label_fps)
        best, score = best_index(task, truth, [np.broadcast_to(c, (len(val), *c.shape)) for c in consts])
        outs.append(np.broadcast_to(consts[best], (len(te), *consts[best].shape)))
        picks.append({"null": names[best], "val_score": None if score is None else round(score, 6)})
    return summarise(setup, np.concatenate(outs).astype(np.float32), picks)


def paired_differences(outcomes: dict[str, Outcome], setup: Setup) -> dict[str, dict[str, dict]]:
    """Every model against every other model and the null, on the same resampled test units:
    ``{model: {other: {"diff", "ci", "separated"}}}`` with diff = model - other in the primary
    metric (CI None with fewer than :data:`stats.MIN_UNITS` units)."""
    names, out = list(outcomes), {m: {} for m in outcomes}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            sa, sb = outcomes[a].scored, outcomes[b].scored
            d = stats.paired_bootstrap(sa.units, setup.protocol.bootstrap, setup.boot_seed, sa.stat, sb.stat)
            lo, hi = (d.lo, d.hi) if d.units >= stats.MIN_UNITS else (float("nan"), float("nan"))
            out[a][b] = {"diff": _round(d.diff), "ci": [_round(lo), _round(hi)], "separated": bool(d.separated)}
            out[b][a] = {"diff": _round(-d.diff), "ci": [_round(-hi), _round(-lo)], "separated": bool(d.separated)}
    return out


def _prediction_rows(setup: Setup, out: np.ndarray) -> dict[str, list]:
    """Columns of the per-sample test predictions: enough to recompute every reported metric.

    ``output`` is the raw head output (logits; de-standardised score for skill; the log-depth or
    mask-logit map at probe resolution, row-major, for dense tasks, whose ground truth is the file
    in ``target``). ``label`` is the ground truth (class id, multi-hot vector or score).
    """
    records, samples, te, dense = setup.data.records, setup.data.samples, setup.test, setup.task.dense
    rnd = np.concatenate([np.full(len(t), r) for r, (_, _, t) in enumerate(setup.splits)])
    return {
        "sample": [int(i) for i in te],
        "round": [int(r) for r in rnd],
        "record": [records[samples[i].record].id for i in te],
        "video": [records[samples[i].record].video for i in te],
        "t": [samples[i].t_end for i in te],
        "label": [[] if dense else np.atleast_1d(setup.data.y[i]).astype(np.float64).tolist() for i in te],
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
    rounds = np.asarray(predictions["round"], np.int64)
    truth = Truth(task.labels(samples)[te], groups, targets, label_fps, rounds=rounds)
    return task.score(truth, out).metrics


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
    sampling: Sampling,
    cache_dir: Path,
    batch_size: int,
    d: Dist = SINGLE,
    bf16: bool = True,
) -> tuple[dict[str, torch.Tensor], set[str]]:
    """-> (frozen tokens (S, N, D) of every sample per encoder, the encoders whose tokens were not cached).

    Encoders run on ``d.device``. Under ``torchrun`` every rank extracts its share of the samples
    in whole batches (:func:`~unisurg.runtime.batch_shard`) and the main rank merges them in
    sample order, so the tokens equal one process's; the main rank reads and writes the cache,
    the other ranks get ``{}``.
    """
    # GPU tokens (bf16 autocast, other kernels) differ from the CPU's in the last bits: cached apart
    compute = {"compute": f"cuda-{'bf16' if bf16 else 'fp32'}"} if d.device.type == "cuda" else {}
    keys = {
        name: cache_key(wid, bench.name, records, samples, {**sampling.as_dict(), **compute})
        for name, (_, wid) in encoders.items()
    }
    feats = {name: load_cached(cache_dir, key) for name, key in keys.items()} if d.is_main else {}
    missing = d.broadcast(sorted(name for name, f in feats.items() if f is None))
    if missing:
        s = sampling
        part = batch_shard(len(samples), batch_size, d.rank, d.world)
        mine = extract_features(
            {name: encoders[name][0] for name in missing},
            records,
            [samples[i] for i in part],
            s.frames,
            s.fps,
            s.size,
            batch_size,
            d.device,
            bf16,
        )
        parts = d.gather(mine)
        if d.is_main:
            for name in missing:
                f = torch.cat([p[name] for p in parts if len(p[name])])  # ranks in order = sample order
                store_cached(cache_dir, keys[name], f)
                feats[name] = f
    return feats, set(missing)


def run_benchmark(
    bench: Benchmark,
    root: Path,
    encoders: dict[str, tuple[torch.nn.Module, str]],
    protocol: Protocol,
    seed: int,
    cache_dir: Path,
    batch_size: int,
    d: Dist = SINGLE,
    bf16: bool = True,
) -> tuple[dict, pa.Table] | None:
    """Evaluate every encoder (name -> (model on ``d.device``, weights id)) and the null on one benchmark.

    -> (results: summary per encoder and the null, their paired differences, the classes, splits
        and protocol used; predictions: one row per (model, test sample), see :func:`_prediction_rows`).
    Under ``torchrun`` every rank extracts its share of the features and the main rank trains
    and scores the probes (a few MB of heads: one device does it); the other ranks return None.
    """
    if NULL in encoders:
        raise ValueError(f"{NULL!r} names the null rows: choose another name for that encoder")
    # 1. load the benchmark with its real-format loader; one probe sample per labelled instant/clip/image
    records = bench.load(root)
    samples = make_samples(bench, records, protocol.sampling.label_fps)
    setup = Setup.build(bench, records, samples, protocol, seed, d.device)
    result = {
        "benchmark": bench.title,
        "name": bench.name,
        "task": bench.task,
        "metric": bench.metric,
        "higher_is_better": bench.higher_is_better,
        "classes": list(bench.classes),
        "splits": split_manifest(bench, records),
        "protocol": protocol.as_dict(),
        "n_records": len(records),
        "n_samples": len(samples),
        "models": {},
    }
    # 2. frozen tokens of every encoder (from the cache where the same weights saw the same samples)
    feats, extracted = encoder_features(
        encoders, bench, records, samples, protocol.sampling, cache_dir, batch_size, d, bf16
    )
    if not d.is_main:
        return None
    # 3. per encoder: train, select and score the probe grid; then the null the same way
    outcomes: dict[str, Outcome] = {}
    for name, (model, _) in encoders.items():
        log.info(
            "%s / %s: %d samples, features %s (%s)",
            bench.title,
            name,
            len(samples),
            tuple(feats[name].shape),
            "extracted" if name in extracted else "cached",
        )
        outcomes[name] = evaluate_encoder(setup, feats[name], model.patch_size, model.tubelet_size)
    outcomes[NULL] = evaluate_null(setup)
    # 4. paired differences on the same resampled test units
    paired = paired_differences(outcomes, setup)
    for name, (_, wid) in encoders.items():
        result["models"][name] = {**outcomes[name].summary, "weights": wid, "paired": paired[name]}
    result["null"] = outcomes[NULL].summary
    tables = []
    for name, o in outcomes.items():
        rows = _prediction_rows(setup, o.out)
        tables.append(pa.table({"model": [name] * len(rows["sample"]), **rows}, schema=PREDICTIONS_SCHEMA))
    return result, pa.concat_tables(tables)


# One row per (model, test sample); `output` and `label` are flat lists (see _prediction_rows).
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
