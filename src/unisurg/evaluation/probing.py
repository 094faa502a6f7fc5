"""Training a grid of heads on a stream of token batches, resumable, and predicting with it.

The batches come from a token source (:mod:`.tokens`): rows read from the on-disk store, or clips
encoded online (augmented in training epochs). Nothing here holds more than one batch of tokens.

Order and schedule: the epochs' permutations are drawn from one CPU generator seeded by the grid's
first seed, so any device, any number of ranks and a resumed run see the same batches. The learning
rate follows a cosine from the head's rate to 0 over all updates, evaluated at update i / T, or at
(i + 1) / T when the protocol steps the schedule before each update (the authors' eval.py).

Resume (``checkpoint``): the bank's weights, the optimizer's moments, the gradient scales and the
number of updates done are saved atomically at the end of an epoch and every ``CHECKPOINT_EVERY``
updates, at most every ``SAVE_EVERY_S`` seconds (a few-second grid is not worth a save); a killed
run restarts from the last save and skips the batches already trained on without computing them
(an online source never decodes or encodes them).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from .bank import Chunks, HeadBank, HeadScaler, StackedAdamW
from .protocols import ProbeGrid

log = logging.getLogger(__name__)

CHECKPOINT_EVERY = 500  # updates between resume points within an epoch
SAVE_EVERY_S = 60.0  # and at least this long between two saves


@dataclass
class Trainer:
    """How one grid is trained: its batches, schedule, precision and resume file."""

    grid: ProbeGrid
    epochs: int
    seed: int  # batch order
    device: torch.device
    amp: torch.dtype | None = None  # autocast of the heads on CUDA (None: float32)
    checkpoint: Path | None = None
    augmenting: bool = False  # the source augments training draws (the epoch is passed to it)

    def plan(self, n: int) -> tuple[int, int, list[torch.Tensor]]:
        """-> (updates per epoch, epochs, every epoch's permutation of the n training samples)."""
        spe = max(math.ceil(n / self.grid.batch_size), 1)
        # A mini benchmark has ~100 training samples: `epochs` alone would give a few dozen updates,
        # far from convergence, so whole epochs are repeated until at least `min_steps` updates.
        epochs = max(self.epochs, math.ceil(self.grid.min_steps / spe))
        g = torch.Generator().manual_seed(self.seed)  # on the CPU: the same on any device
        return spe, epochs, [torch.randperm(n, generator=g) for _ in range(epochs)]

    def lr_scale(self, step: int, total: int) -> float:
        t = (step + 1) / total if self.grid.lr_step_first else step / total
        return 0.5 * (1 + math.cos(math.pi * t))


def bank_optimizer(bank: HeadBank) -> StackedAdamW:
    """AdamW over the bank's stacked parameters, each head with its own lr and weight decay."""
    lrs, wds = [hp["lr"] for hp in bank.hparams], [hp["weight_decay"] for hp in bank.hparams]
    return StackedAdamW(list(bank.params.values()), lrs, wds)


def bank_step(
    bank: HeadBank,
    opt: StackedAdamW,
    loss: Callable,
    x: torch.Tensor,
    y: torch.Tensor,
    lr_scale: float = 1.0,
    amp: torch.dtype | None = None,
    scaler: HeadScaler | None = None,
    chunks: Chunks | None = None,
) -> None:
    """One update of every head on the same batch: x (B, ...) tokens, y (B, ...) targets."""
    grads = bank.grads(loss, x, y, amp, None if scaler is None else scaler.scale, chunks)
    skip = None
    if scaler is not None:
        finite = scaler.unscale(grads)
        scaler.update(finite)
        skip = ~finite
    opt.step(grads, lr_scale, skip)


def fit(
    bank: HeadBank,
    loss: Callable,
    source,
    samples: np.ndarray,
    targets: Callable[[np.ndarray], torch.Tensor],
    t: Trainer,
) -> int:
    """Train ``bank`` (on ``t.device``) on the training ``samples`` (sample indices into the source):
    ``targets(positions)`` gives the targets of positions into ``samples`` (module docstring).
    -> the number of updates. A bank without heads (more ranks than heads) only takes its part in
    the online source's encoding of every batch."""
    spe, epochs, perms = t.plan(len(samples))
    total = epochs * spe
    for hp in bank.hparams:
        hp["steps"] = total
    B = t.grid.batch_size
    if not len(bank):
        for e in range(epochs) if source.online else ():
            for _ in source.batches(
                [samples[perms[e][b * B : (b + 1) * B].numpy()] for b in range(spe)], e if t.augmenting else None
            ):
                pass
        return total
    opt = bank_optimizer(bank)
    fp16 = t.amp == torch.float16 and t.device.type == "cuda"
    scaler = HeadScaler(len(bank), t.device) if fp16 else None
    chunks = Chunks("probe heads") if t.device.type == "cuda" else None
    step = _resume(t.checkpoint, bank, opt, scaler)
    saved = time.monotonic()
    while step < total:
        epoch, first = divmod(step, spe)
        pos = [perms[epoch][b * B : (b + 1) * B].numpy() for b in range(first, spe)]
        for p, x in zip(pos, source.batches([samples[q] for q in pos], epoch if t.augmenting else None)):
            y = targets(p).to(t.device)
            bank_step(bank, opt, loss, x, y, t.lr_scale(step, total), t.amp, scaler, chunks)
            step += 1
            due = step % spe == 0 or step % CHECKPOINT_EVERY == 0
            if t.checkpoint is not None and due and step < total and time.monotonic() - saved >= SAVE_EVERY_S:
                _save(t.checkpoint, bank, opt, scaler, step)
                saved = time.monotonic()
    return total


def _save(path: Path, bank: HeadBank, opt: StackedAdamW, scaler: HeadScaler | None, step: int) -> None:
    state = {
        "step": step,
        "params": {k: v.detach().cpu() for k, v in bank.params.items()},
        "opt": opt.state_dict(),
        "scaler": None if scaler is None else scaler.state_dict(),
    }
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    log.info("probe grid saved at update %d (%s)", step, path.name)


def _resume(path: Path | None, bank: HeadBank, opt: StackedAdamW, scaler: HeadScaler | None) -> int:
    """Load the last save into ``bank``/``opt``/``scaler`` -> updates already done (0: none, or unusable)."""
    if path is None or not path.exists():
        return 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        with torch.no_grad():
            for k, v in bank.params.items():
                v.copy_(state["params"][k])
        opt.load_state_dict(state["opt"])
        if scaler is not None and state["scaler"] is not None:
            scaler.load_state_dict(state["scaler"])
    except (OSError, RuntimeError, KeyError, ValueError) as err:  # a damaged save: start over, say so
        log.warning("probe grid save %s is unusable (%s): training from the start", path, err)
        return 0
    log.info("probe grid resumed at update %d from %s", state["step"], path.name)
    return int(state["step"])


def predict(
    bank: HeadBank,
    source,
    samples: np.ndarray,
    heads: Sequence[int] | None,
    batch: int,
    amp: torch.dtype | None = None,
    into: Path | None = None,
) -> list[np.ndarray]:
    """Every one of the bank's ``heads``' (None: all) float32 outputs (n, *out) on ``samples``; the source
    yields ``batch`` samples at a time (a prediction batch is halved while it does not fit). With
    ``into`` (a folder), each head's outputs are appended to a file there and returned memory-mapped:
    dense maps of a long benchmark never sit in memory together."""
    chunks = Chunks("prediction samples")
    k = len(bank) if heads is None else len(heads)
    batches = [samples[i : i + batch] for i in range(0, len(samples), batch)]
    if k == 0:  # no head of this rank's: only its share of every batch's encoding (online sources)
        for _ in source.batches(batches) if source.online else ():
            pass
        return []
    files = [open(_head_file(into, j), "wb") for j in range(k)] if into is not None else None
    parts: list[list[np.ndarray]] = [[] for _ in range(k)]
    shape = None
    try:
        for x in source.batches(batches):
            out = bank.predict(x, heads, batch=batch, amp=amp, chunks=chunks)  # (k, b, *out)
            shape = out.shape[2:]
            for j in range(k):
                (files[j].write(np.ascontiguousarray(out[j]).tobytes()) if files else parts[j].append(out[j]))
    finally:
        for fh in files or ():
            fh.close()
    if files is None:
        return [np.concatenate(p) if p else np.zeros((0,), np.float32) for p in parts]
    n = len(samples)
    return [np.memmap(_head_file(into, j), np.float32, "r", shape=(n, *(shape or ()))) for j in range(k)]


def _head_file(folder: Path, j: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return folder / f"head{j:03d}.f32"


def mean_outputs(outputs: Sequence[np.ndarray], into: Path | None = None, rows: int = 256) -> np.ndarray:
    """The mean over heads of their outputs (n, *out), ``rows`` samples at a time (into a file in ``into``)."""
    if len(outputs) == 1 and into is None:
        return np.asarray(outputs[0])
    n, shape = len(outputs[0]), outputs[0].shape[1:]
    if into is None:
        return np.mean(np.stack([np.asarray(o) for o in outputs]), axis=0)
    path = into / "mean.f32"
    into.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        for i in range(0, n, rows):
            fh.write(
                np.mean(np.stack([np.asarray(o[i : i + rows]) for o in outputs]), axis=0).astype(np.float32).tobytes()
            )
    return np.memmap(path, np.float32, "r", shape=(n, *shape))
