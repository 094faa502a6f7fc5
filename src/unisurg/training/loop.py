"""One training loop for pretraining and distillation, and the pieces around it.

A run supplies a :class:`Task`: its step (a batch on the device -> loss and the parts to log),
what follows the optimizer step (the EMA teacher), and telemetry. The :class:`Trainer` does the
rest, the same way for both: learning-rate schedule, device and bf16 autocast, backward, gradient
clipping, optimizer step, NaN guard, ``log.csv`` rows, atomic checkpoints on a cadence and at
the end, and resume.

Checkpoints are full state dicts gathered through :mod:`unisurg.training.parallel`: one entry per
child of the trained module (``encoder``/``predictor``, ``student``/``proj``), one per frozen
module that travels with the run (the EMA ``target_encoder``), and the optimizer state keyed by
parameter name. One resume path loads them into plain, DDP or FSDP-sharded modules, so a run
killed at any point reruns to the weights of an uninterrupted run.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import random
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from ..io import atomic_path
from ..models.checkpoint import load_checkpoint, save_checkpoint
from ..runtime import Dist, autocast, to_device
from .parallel import (
    full_model_state,
    full_optimizer_state,
    load_full_model_state,
    load_full_optimizer_state,
    prefixed,
)
from .schedules import Schedule

log = logging.getLogger(__name__)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def param_groups(modules: list[nn.Module], weight_decay: float) -> list[dict]:
    """AdamW groups: no weight decay on biases and other 1-D parameters (norms)."""
    decay, no_decay = [], []
    for m in modules:
        for name, p in m.named_parameters():
            if not p.requires_grad:
                continue
            (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for g in opt.param_groups:
        g["lr"] = lr


class StepLog:
    """Per-step metrics as CSV (a DVC plot). On resume the rows after the resumed step are dropped."""

    def __init__(self, path: str | os.PathLike[str], fields: list[str], resume_step: int = 0) -> None:
        self.path, self.fields = Path(path), fields
        rows = []
        if resume_step > 0 and self.path.exists():
            with open(self.path, newline="") as fh:
                rows = [r for r in csv.DictReader(fh) if int(r["step"]) <= resume_step]  # "step" = steps done
        with atomic_path(self.path) as tmp:
            with open(tmp, "w", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=fields)
                w.writeheader()
                w.writerows(rows)

    def write(self, row: dict) -> None:
        with open(self.path, "a", newline="") as fh:
            csv.DictWriter(fh, fieldnames=self.fields).writerow({k: row[k] for k in self.fields})


# --------------------------------------------------------------------------- the loop


class Task:
    """What a training run supplies to :class:`Trainer`: its step, and what it logs beyond the loss."""

    fields: list[str] = ["step", "loss", "lr", "seconds"]  # log.csv columns, in order

    def step(self, step: int, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        """``batch`` (already on the device, under autocast) -> (scalar loss with its graph, loss parts to log)."""
        raise NotImplementedError

    def after_update(self, step: int) -> None:
        """Runs after each optimizer step (the EMA teacher follows the student here)."""

    def initial(self) -> dict[str, str]:
        """Log fields of the initial weights, before the first step (the ``step 0`` row; {}: no such row).

        Called on every rank, as :meth:`telemetry`."""
        return {}

    def telemetry(self, done: int, logged: bool) -> dict[str, str]:
        """Log fields beyond step/loss/parts/lr/seconds after ``done`` steps, when ``logged`` (a row is written).

        Called on every rank after every step, so periodic evaluations that are collectives under
        FSDP can run here on their own cadence.
        """
        return {}


@dataclass
class Fit:
    """How :meth:`Trainer.fit` ended."""

    loss: float = float("nan")  # loss of the last step run, averaged over processes (nan when none ran)
    parts: dict[str, float] = field(default_factory=dict)  # its parts, as the task logged them
    steps_run: int = 0
    seconds: float = 0.0  # wall time of the steps (without the final checkpoint)


class Trainer:
    """Optimisation of ``model`` (the module whose children are checkpointed) by ``opt``, for ``steps`` steps.

    ``frozen``: modules saved and resumed with the run but not optimised (checkpoint key -> module,
    None saved as None). ``meta``: what the checkpoint says about itself (kind, arch, params).
    """

    def __init__(
        self,
        model: nn.Module,
        opt: torch.optim.Optimizer,
        out: Path,
        d: Dist,
        *,
        name: str,
        lr: Schedule,
        steps: int,
        clip_grad: float | None,
        log_every: int,
        checkpoint_every: int,
        meta: dict,
        frozen: dict[str, nn.Module | None] | None = None,
        bf16: bool = True,
    ) -> None:
        self.model, self.opt, self.d, self.name, self.lr = model, opt, d, name, lr
        self.steps, self.clip_grad = steps, clip_grad
        self.log_every, self.checkpoint_every = log_every, checkpoint_every
        self.meta, self.frozen = meta, frozen or {}
        self.path, self.log_path = out / "checkpoint.pt", out / "log.csv"
        self.children = [k for k, _ in model.named_children()]
        # bf16 autocast on CUDA when `bf16` (V-JEPA's mixed precision); the CPU stays float32
        self.autocast = autocast(d.device, bf16)

    def resume(self) -> int:
        """Load ``checkpoint.pt``, if there is one, into the plain or sharded modules -> the step to resume from.

        Every rank loads the same full state dicts; under FSDP each keeps its own shard.
        """
        if not self.path.exists():
            return 0
        ck = load_checkpoint(self.path)
        load_full_model_state(self.model, {f"{c}.{k}": v for c in self.children for k, v in ck[c].items()})
        for key, module in self.frozen.items():
            if module is not None:
                load_full_model_state(module, ck[key])
        load_full_optimizer_state(self.model, self.opt, ck["optimizer"])
        step = int(ck["step"])
        if step:
            log.info("resuming %s from step %d", self.name, step)
        return step

    def save(self, step: int) -> None:
        """Atomic full checkpoint after ``step`` steps; every rank must call it (gathers are collectives under FSDP)."""
        state = full_model_state(self.model)
        frozen = {k: full_model_state(m) if m is not None else None for k, m in self.frozen.items()}
        optim = full_optimizer_state(self.model, self.opt)
        if not self.d.is_main:
            return
        children = {c: prefixed(state, c) for c in self.children}
        save_checkpoint(self.path, {**self.meta, **children, **frozen, "optimizer": optim, "step": step})

    def fit(self, task: Task, loader: Iterable[dict[str, torch.Tensor]], start: int, progress: bool = True) -> Fit:
        """Steps [start, steps), one batch of ``loader`` each; checkpoint every ``checkpoint_every`` and at the end."""
        steplog = StepLog(self.log_path, task.fields, resume_step=start) if self.d.is_main else None
        bar = tqdm(total=self.steps, initial=start, desc=self.name, disable=not progress, mininterval=2.0)
        self.model.train()
        fit = Fit()
        if start == 0:  # the initial weights, where the task measures them
            first = task.initial()
            if first and steplog is not None:
                steplog.write({**dict.fromkeys(task.fields, ""), "step": 0, **first})
        t0 = time.perf_counter()
        for step, batch in enumerate(loader, start=start):
            # 1. learning rate: a function of the step alone, so a resumed run needs no scheduler state
            lr = self.lr.value_at(step)
            set_lr(self.opt, lr)
            # 2. forward on the device: clips (B, 3, T, H, W) travel as uint8 (4x fewer bytes than float32)
            batch = {k: to_device(v, self.d.device) for k, v in batch.items()}
            with self.autocast:
                loss, parts = task.step(step, batch)
            # 3. update, then what follows the student (the EMA teacher)
            self._update(loss)
            task.after_update(step)
            # 4. NaN guard on the loss averaged over processes: every rank stops at the same step
            loss_val = self.d.mean(loss.item())
            if not math.isfinite(loss_val):
                raise FloatingPointError(f"{self.name} diverged at step {step}: loss {loss_val}")
            fit = Fit(loss_val, parts, fit.steps_run + 1)
            # 5. log row and checkpoint on their cadences ("step" in the log = steps done)
            done = step + 1
            logged = steplog is not None and (done % self.log_every == 0 or done == self.steps)
            extra = task.telemetry(done, logged)
            if logged:
                steplog.write(self._row(done, loss_val, parts, lr, extra, time.perf_counter() - t0))
            if done % self.checkpoint_every == 0 and done < self.steps:
                self.save(done)
            bar.update(1)
            bar.set_postfix(loss=f"{loss_val:.4f}")
        bar.close()
        fit.seconds = time.perf_counter() - t0
        # 6. the final checkpoint (also when a rerun finds the run complete: nothing to do, same file)
        self.save(self.steps)
        return fit

    def _update(self, loss: torch.Tensor) -> None:
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        if self.clip_grad:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.clip_grad)
        self.opt.step()

    @staticmethod
    def _row(done: int, loss: float, parts: dict[str, float], lr: float, extra: dict[str, str], seconds: float) -> dict:
        return {
            "step": done,
            "loss": f"{loss:.6f}",
            **{k: f"{v:.6f}" for k, v in parts.items()},
            "lr": f"{lr:.3e}",
            **extra,
            "seconds": f"{seconds:.2f}",
        }
