"""The evaluation harness: any encoder x any benchmark under one named protocol.

For each benchmark, under a :class:`~.protocols.Protocol`:
1. load the benchmark with its real-format loader (split as the protocol's recipe says) and build
   probe samples;
2. decode every record once into a frame store and plan every sample's window (:mod:`.media`);
   samples whose clip needs a frame that does not decode are left out, counted in the results;
3. per encoder, train a grid of heads (lr x weight decay x seed) as one bank on the training split,
   on tokens extracted once into an on-disk store or computed online from (augmented) clips
   (:mod:`.tokens`), batch by batch (:mod:`.probing`): memory does not grow with the benchmark;
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
never branches on a benchmark's name. Under ``torchrun`` every rank decodes, encodes and trains
its share of the heads (:mod:`.parallel`); the main rank scores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import shutil
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch

from .. import __version__
from ..benchmarks import Benchmark, Record
from ..benchmarks.records import AuthorsRecipe
from ..runtime import CPU, SINGLE, Dist
from . import stats
from .bank import HeadBank
from .clipdata import target_map
from .heads import AttentiveProbe, DenseHead
from .media import prepare_media
from .parallel import collect_heads, head_share, publish_heads
from .probing import Trainer, fit, mean_outputs, predict
from .protocols import ProbeGrid, Protocol
from .samples import Sample, drop_instants, make_samples
from .tasks import Loss, Scored, Task, Truth, task_for
from .tokens import cache_key, token_source

NULL = "null"  # the model name of the null rows (a reserved evaluate.models name)
PREDICT_BATCH = 256  # at most this many samples per prediction batch (halved while it does not fit in GPU memory)
PREDICT_BYTES = 64 * 2**20  # and at most this many bytes of float32 tokens (ViT-L at 64 x 256²: 2 samples)

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


class TensorTokens:
    """Tokens already in memory (S, N, D) as a token source (tests, benches, small studies)."""

    online = False

    def __init__(self, feats: torch.Tensor, device: torch.device = CPU) -> None:
        self.feats, self.device = feats, device

    def batches(self, batches, epoch=None):
        for idx in batches:
            yield self.feats[torch.as_tensor(np.asarray(idx), dtype=torch.long)].to(self.device).float()


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
    """Train the grid (:func:`grid_bank`) on in-memory tokens ``feats`` (n, N, D) and targets y (n, ...)
    in lockstep on the same batches, in the order drawn from the first seed (:func:`probing.fit`)."""
    bank = grid_bank(feats.size(-1), out_dim, grid, seeds, dense).to(device)
    t = Trainer(grid, grid.epochs if epochs is None else epochs, seeds[0], device)
    fit(bank, loss, TensorTokens(feats, device), np.arange(len(feats)), lambda p: y[torch.as_tensor(p)], t)
    return bank


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
    task: Task, hparams: Sequence[dict], val_out: Sequence[np.ndarray], truth: Truth, grids: int
) -> tuple[list[int], list[dict]]:
    """Each of the bank's ``grids`` (one per seed) picks its head with the best validation score from
    every head's validation outputs ``val_out`` -> (the picked heads' indices in the bank, their
    hyperparameters and validation scores; ``val_score`` None: too few validation items, the grid's
    first head)."""
    picked, chosen, per_grid = [], [], len(hparams) // grids
    for g in range(grids):
        first = g * per_grid
        best, score = best_index(task, truth, val_out[first : first + per_grid])
        chosen.append({**hparams[first + best], "val_score": None if score is None else round(score, 6)})
        picked.append(first + best)
    return picked, chosen


# --------------------------------------------------------------------------- one benchmark


class LazyTargets:
    """Dense targets read from their files when asked (one at a time): never all in memory."""

    def __init__(self, paths: Sequence[str], read: Callable[[list[str]], list[np.ndarray]]) -> None:
        self.paths, self.read = list(paths), read

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, k: int) -> np.ndarray:
        return self.read([self.paths[k]])[0]

    def __iter__(self):
        return (self[k] for k in range(len(self)))


@dataclass(frozen=True)
class Labelled:
    """Every sample of a benchmark with its labels, for training and for scoring."""

    records: list[Record]
    samples: list[Sample]
    y: np.ndarray  # (S, ...) labels: class id, multi-hot vector or score (zeros for dense tasks)
    size: int  # probe resolution (dense targets are learnt at size x size)
    task: Task

    @classmethod
    def build(cls, task: Task, records: list[Record], samples: list[Sample], size: int) -> Labelled:
        return cls(records, samples, task.labels(samples), size, task)

    def train_targets(self, idx: np.ndarray) -> torch.Tensor:
        """What the heads learn for samples ``idx``: the labels, or (dense) target maps at probe
        resolution (read from their files, nearest-neighbour, as needed)."""
        if not self.task.dense:
            return torch.as_tensor(self.y[idx])
        read = self.task.bench.read_target
        return torch.as_tensor(np.stack([target_map(self.target(i), read, self.size) for i in idx]))

    def target(self, i: int) -> str:
        return self.records[self.samples[i].record].target

    def truth(
        self,
        idx: np.ndarray,
        label_fps: float,
        scale: tuple[float, float] = (0.0, 1.0),
        rounds: np.ndarray | None = None,
    ) -> Truth:
        """What the outputs of samples ``idx`` (predicted in ``rounds``, if cross-validated) are scored against."""
        targets = LazyTargets([self.target(i) for i in idx], self.task.read_targets) if self.task.dense else None
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
        usable: np.ndarray | None = None,
    ) -> Setup:
        """``usable`` (S,) bool: samples left out of every split (their clip needs undecodable frames)."""
        task = task_for(bench)
        data = Labelled.build(task, records, samples, protocol.sampling.size)
        splits = _rounds(records, samples, np.ones(len(samples), bool) if usable is None else usable)
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
    trained_by: list[int] = dataclasses.field(default_factory=list)  # heads each rank trained and predicted


@dataclass(frozen=True)
class Outcome:
    """One model's (or the null's) pooled test outputs on a benchmark, scored."""

    summary: dict  # value, CI, metrics, heads, units: what the result file records
    out: np.ndarray  # (n_test, ...) raw outputs of the pooled test samples (Setup.test order)
    scored: Scored


def _rounds(records: list[Record], samples: list[Sample], usable: np.ndarray) -> list[Split]:
    """(train, val, test) sample index arrays of the usable samples: one round, or one per fold
    (records carrying folds: cross-validated benchmarks under their own split rule)."""
    folds = [records[s.record].fold for s in samples]
    if any(f is not None for f in folds):
        fold = np.array(folds)
        k = int(max(f for f in folds if f is not None)) + 1
        return [
            (
                np.nonzero(usable & (fold != f) & (fold != (f + 1) % k))[0],
                np.nonzero(usable & (fold == (f + 1) % k))[0],
                np.nonzero(usable & (fold == f))[0],
            )
            for f in range(k)
        ]
    split = np.array([records[s.record].split for s in samples])
    return [tuple(np.nonzero(usable & (split == name))[0] for name in ("train", "val", "test"))]


@dataclass(frozen=True)
class Probing:
    """How one encoder's heads are trained and predicted: its token source, where the rounds keep
    their resume points and exchange outputs, and which process this is."""

    source: object  # a token source (.tokens): CachedTokens, OnlineTokens or TensorTokens
    dim: int  # token width
    patch: int
    tubelet: int
    resume: Path | None = None  # folder of the rounds' probe saves (None: no resume)
    exchange: Path | None = None  # folder for outputs kept on disk / published to the other ranks
    d: Dist = SINGLE
    predict_batch: int = PREDICT_BATCH  # samples per prediction batch (bounded by token bytes: predict_batch())

    def folder(self, r: int, name: str, dense: bool) -> Path | None:
        """Where round r's ``name`` outputs of this rank go: published under torchrun, on disk for
        dense maps, in memory otherwise (None)."""
        if self.exchange is None or (self.d.world == 1 and not dense):
            return None
        return self.exchange / f"round{r}" / name / f"rank{self.d.rank}"

    def everyone(
        self, r: int, name: str, outputs: list[np.ndarray], main_only: bool = False
    ) -> tuple[list[np.ndarray], list[int]]:
        """Every rank's head outputs of round r's ``name``, in head order, and how many each rank
        produced (one process: its own). ``main_only``: the other ranks publish and do not wait (the
        main rank removes the exchange folder once it has everything)."""
        if self.d.world == 1:
            return outputs, [len(outputs)]
        mine = self.exchange / f"round{r}" / name / f"rank{self.d.rank}"
        publish_heads(mine, outputs)
        if main_only and not self.d.is_main:
            return [], []
        parts = [collect_heads(mine.parent / f"rank{k}") for k in range(self.d.world)]
        return [o for part in parts for o in part], [len(part) for part in parts]


def predict_batch(tokens: int, dim: int, encoder_batch: int | None = None) -> int:
    """Samples per prediction batch: PREDICT_BATCH, fewer when their float32 tokens would pass
    PREDICT_BYTES (memory must not grow with the benchmark), and no more than the encoder's batch when
    the encoder runs on them."""
    n = max(1, min(PREDICT_BATCH, PREDICT_BYTES // (tokens * dim * 4)))
    return min(n, encoder_batch) if encoder_batch else n


def _amp(protocol: Protocol) -> torch.dtype:
    return torch.float16 if protocol.probe.precision == "fp16" else torch.bfloat16


def train_round(setup: Setup, p: Probing, dense: tuple | None, split: Split, seeds: list[int], r: int) -> Round | None:
    """One round on (train, val, test) sample indices ``split``: train every grid on the training
    split (this rank's share of the heads), pick each grid's head on validation, predict the test
    split with the picked heads. Returns the round on the main rank (None on the others)."""
    task, data, grid, d = setup.task, setup.data, setup.protocol.probe, p.d
    tr, va, te = split
    # 1. train `seeds` grids (initialisations) on the same batches; this rank trains its share of the heads
    labels = None if task.dense else torch.as_tensor(data.y[tr])
    ytr, scale = (labels, (0.0, 1.0)) if task.dense else task.standardise(labels)
    loss = task.loss_for(labels, grid.class_weighted)
    full = grid_bank(p.dim, task.out_dim(), grid, seeds, dense)
    mine = head_share(len(full), d)
    bank = (full.subset(mine) if d.world > 1 else full).to(setup.device)
    amp = _amp(setup.protocol)
    resume = None if p.resume is None else p.resume / f"round{r}-rank{d.rank}-of{d.world}.pt"
    trainer = Trainer(grid, grid.epochs_for(setup.bench.name), seeds[0], setup.device, amp, resume, p.source.online)
    targets = (lambda q: data.train_targets(tr[q])) if task.dense else (lambda q: ytr[torch.as_tensor(q)])
    steps = fit(bank, loss, p.source, tr, targets, trainer)
    hparams = [{**hp, "steps": steps} for hp in full.hparams]
    # 2. every grid picks its head on validation (none: on the training fit, stated in the results)
    val = va if len(va) else tr
    truth = data.truth(val, setup.protocol.sampling.label_fps, scale)
    val_out, shares = p.everyone(
        r, "val", predict(bank, p.source, val, None, p.predict_batch, amp, p.folder(r, "val", task.dense))
    )
    picked, chosen = pick_heads(task, hparams, val_out, truth, grid.seeds)
    # 3. the test output is the mean of the picked heads' raw outputs (logits, log-depth, ...)
    here = [k - mine.start for k in picked if k in mine]
    test_out = predict(bank, p.source, te, here, p.predict_batch, amp, p.folder(r, "test", task.dense))
    outs, _ = p.everyone(r, "test", test_out, main_only=True)
    if not d.is_main:
        return None
    mean_dir = None if p.exchange is None or not task.dense else p.exchange / f"round{r}" / "test-mean"
    return Round(te, task.unstandardise(mean_outputs(outs, mean_dir), scale), chosen, shares)


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


def evaluate_encoder(
    setup: Setup, probing: Probing | torch.Tensor, patch: int = 16, tubelet: int = 2
) -> Outcome | None:
    """One encoder on one benchmark: train, select and score (``probing``: its token source and where
    it runs; or its tokens (S, N, D) in memory). The Outcome on the main rank, None on the others."""
    if isinstance(probing, torch.Tensor):
        n = predict_batch(probing.size(1), probing.size(2))
        probing = Probing(TensorTokens(probing, setup.device), probing.size(-1), patch, tubelet, predict_batch=n)
    s, frames = setup.protocol.sampling.size, setup.protocol.sampling.frames
    p = probing
    dense = ((frames // p.tubelet, s // p.patch, s // p.patch), p.patch) if setup.task.dense else None
    # one round, or one per fold: train, pick heads on validation, predict the test split
    rounds = []
    for r, split in enumerate(setup.splits):
        seeds = [setup.seed + r + 7919 * k for k in range(setup.protocol.probe.seeds)]  # one per grid and round
        rounds.append(train_round(setup, p, dense, split, seeds, r))
    if not p.d.is_main:
        return None
    outs = [rd.out for rd in rounds]
    out = outs[0] if len(outs) == 1 else np.concatenate([np.asarray(o) for o in outs])
    outcome = summarise(setup, out, [h for rd in rounds for h in rd.heads])
    if p.d.world > 1:  # which rank trained how many heads of each round (every rank trains a share)
        outcome.summary["heads_per_rank"] = [rd.trained_by for rd in rounds]
    return outcome


def evaluate_null(setup: Setup) -> Outcome:
    """The null row: per round, the task's constant candidates given the training labels
    (:meth:`Task.null_candidates`), the best on validation broadcast to every test sample."""
    task, data, label_fps = setup.task, setup.data, setup.protocol.sampling.label_fps
    outs, picks = [], []
    for tr, va, te in setup.splits:
        val = va if len(va) else tr
        y_train = torch.zeros(1, data.size, data.size) if task.dense else torch.as_tensor(data.y[tr])
        names, consts = zip(*task.null_candidates(y_train), strict=True)
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

    ``output`` is the raw head output (logits; de-standardised score for skill); dense tasks leave it
    empty: their log-depth or mask-logit maps at probe resolution are rows of the array that
    :func:`run_benchmark` returns beside the table (``dense_outputs.npy``), and their ground truth is
    the file in ``target``. ``label`` is the ground truth (class id, multi-hot vector or score).
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
        "output": [[] for _ in te] if dense else [o.astype(np.float32).ravel().tolist() for o in out],
    }


def rescore(
    bench: Benchmark,
    records: list[Record],
    samples: list[Sample],
    predictions: dict[str, list],
    label_fps: float,
    dense_outputs: np.ndarray | None = None,
) -> dict[str, float]:
    """Recompute the test metrics of one encoder from its shipped predictions (and, for dense tasks,
    its rows of ``dense_outputs.npy`` and the ground-truth files): the check that every reported
    number can be reproduced."""
    task = task_for(bench)
    te = np.asarray(predictions["sample"], np.int64)
    targets = None
    if task.dense:
        out = np.asarray(dense_outputs, np.float32)  # (n, 1, H, W) maps at probe resolution
        targets = task.read_targets([records[samples[i].record].target for i in te])
    else:
        out = np.stack([np.asarray(o, np.float32) for o in predictions["output"]])
    groups = np.array([records[samples[i].record].video for i in te])
    rounds = np.asarray(predictions["round"], np.int64)
    truth = Truth(task.labels(samples)[te], groups, targets, label_fps, rounds=rounds)
    return task.score(truth, out).metrics


def _round(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def split_manifest(records: list[Record]) -> dict[str, list[str]]:
    """Which videos/images were in which split (or fold): versioned with every result."""
    out: dict[str, list[str]] = {}
    for r in records:
        key = f"fold{r.fold}" if r.fold is not None else r.split
        out.setdefault(key, [])
        if r.video not in out[key]:
            out[key].append(r.video)
    return {k: sorted(v) for k, v in sorted(out.items())}


def load_samples(
    bench: Benchmark, root: Path, protocol: Protocol
) -> tuple[list[Record], list[Sample], AuthorsRecipe | None]:
    """The benchmark's records (as the protocol's recipe splits them) and its probe samples."""
    records = bench.load(root)
    recipe = bench.authors if protocol.recipe == "authors" else None
    if recipe is not None:
        records = recipe.apply(records, protocol.select_on, clips=not bench.family.temporal)
        if recipe.drop_ignored:
            records = drop_instants(records, getattr(bench.family, "ignore", ()))
    label_at = recipe.label_at if recipe is not None else "first"
    return records, make_samples(bench, records, protocol.sampling.label_fps, label_at), recipe


def run_key(
    bench: Benchmark, records: list[Record], samples: list[Sample], protocol: Protocol, wids: dict, seed: int
) -> str:
    """What a benchmark's results depend on: the protocol, the encoders' weights, the seed and the data."""
    stamp = cache_key(
        "|".join(f"{k}={v}" for k, v in sorted(wids.items())), bench.name, records, samples, protocol.as_dict()
    )
    return hashlib.sha256(f"{stamp}|{seed}|{RESULTS_VERSION}|{__version__}".encode()).hexdigest()[:32]


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
    workers: int = 0,
    decoder: str = "decord",
    previous: dict | None = None,
) -> tuple[dict, pa.Table | None, list[np.ndarray] | None] | None:
    """Evaluate every encoder (name -> (model on ``d.device``, weights id)) and the null on one benchmark.

    -> (results: summary per encoder and the null, their paired differences, the classes, splits,
        skipped samples and protocol used; predictions: one row per (model, test sample), see
        :func:`_prediction_rows`; dense tasks: every model's output maps (n, 1, H, W), concatenated in
        the table's row order, else None).
    Under ``torchrun`` every rank decodes, encodes and trains its share (:mod:`.parallel`) and the
    main rank scores and returns; the other ranks return None. ``previous``: the results a killed or
    earlier run wrote; if they were computed from the same inputs (``key``), they are returned as they
    are instead of being computed again (with an empty prediction table: the files on disk stand).
    """
    if NULL in encoders:
        raise ValueError(f"{NULL!r} names the null rows: choose another name for that encoder")
    # 1. load the benchmark with its real-format loader; one probe sample per labelled instant/clip/image
    records, samples, recipe = load_samples(bench, root, protocol)
    key = run_key(bench, records, samples, protocol, {n: w for n, (_, w) in encoders.items()}, seed)
    if previous is not None and previous.get("key") == key:
        log.info("%s: results of these inputs exist (%s): not computed again", bench.title, key)
        return (previous, None, None) if d.is_main else None
    # 2. every record decoded once into a frame store; samples whose clip cannot be decoded left out
    media = prepare_media(bench, records, samples, protocol.sampling, seed, cache_dir, recipe, workers, decoder, d)
    setup = Setup.build(bench, records, samples, protocol, seed, d.device, media.usable)
    # 3. per encoder: its tokens (a store extracted once, or the encoder online), then the probe grid
    exchange = cache_dir / "runs" / d.broadcast(uuid.uuid4().hex)
    outcomes: dict[str, Outcome] = {}
    try:
        for name, (model, wid) in encoders.items():
            outcome = _encoder_outcome(
                name, model, wid, setup, media, key, exchange, cache_dir, batch_size, d, bf16, workers, decoder
            )
            if d.is_main:
                outcomes[name] = outcome
    finally:
        media.close()
    if not d.is_main:
        return None
    outcomes[NULL] = evaluate_null(setup)
    # 4. paired differences on the same resampled test units
    result = _result(bench, records, protocol, media, key, outcomes, setup, encoders)
    table, dense = _predictions(setup, outcomes)
    # dense outputs are memory maps of files in the exchange folder: removing the folder unlinks the
    # files, and the maps stay readable until they are dropped (POSIX), which is after they are written
    shutil.rmtree(exchange, ignore_errors=True)
    return result, table, dense


def _encoder_outcome(name, model, wid, setup, media, key, exchange, cache_dir, batch_size, d, bf16, workers, decoder):
    """One encoder on the benchmark: its token source, its probes, its outcome (main rank; None elsewhere)."""
    src, (n, dim) = token_source(model, wid, setup, media, cache_dir, batch_size, d, bf16, workers, decoder)
    resume = cache_dir / "probes" / f"{key}-{name}"
    pb = predict_batch(n, dim, batch_size if src.online else None)
    p = Probing(src, dim, model.patch_size, model.tubelet_size, resume, exchange / name, d, pb)
    log.info(
        "%s / %s: %d samples (%d usable), tokens %s",
        setup.bench.title,
        name,
        len(setup.data.samples),
        int(media.usable.sum()),
        "online" if src.online else "cached",
    )
    try:
        outcome = evaluate_encoder(setup, p)
    finally:
        src.close()
    if d.is_main:
        shutil.rmtree(resume, ignore_errors=True)  # finished: its resume points have served
    return outcome


def _result(bench, records, protocol, media, key, outcomes, setup, encoders) -> dict:
    """What a benchmark's results file records (before the machine and compute info are added)."""
    result = {
        "benchmark": bench.title,
        "name": bench.name,
        "task": bench.task,
        "metric": bench.metric,
        "higher_is_better": bench.higher_is_better,
        "classes": list(bench.classes),
        "splits": split_manifest(records),
        "protocol": protocol.as_dict(),
        "n_records": len(records),
        "n_samples": int(media.usable.sum()),
        "skipped": media.skipped,
        "key": key,
        "models": {},
    }
    paired = paired_differences(outcomes, setup)
    for name, (_, wid) in encoders.items():
        result["models"][name] = {**outcomes[name].summary, "weights": wid, "paired": paired[name]}
    result["null"] = outcomes[NULL].summary
    return result


def _predictions(setup: Setup, outcomes: dict[str, Outcome]) -> tuple[pa.Table, list[np.ndarray] | None]:
    """The prediction table, and for dense tasks every model's output maps in the table's row order."""
    tables = []
    for name, o in outcomes.items():
        rows = _prediction_rows(setup, o.out)
        tables.append(pa.table({"model": [name] * len(rows["sample"]), **rows}, schema=PREDICTIONS_SCHEMA))
    return pa.concat_tables(tables), ([o.out for o in outcomes.values()] if setup.task.dense else None)


RESULTS_VERSION = 2  # bumped when what a results file holds changes meaning

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
