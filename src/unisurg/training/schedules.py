"""Learning-rate schedules: linear warmup, then constant (V-JEPA 2) or cosine decay (V-JEPA 1).

Scheduler objects in the manner of vjepa2's ``WarmupCosineSchedule`` and timm's schedulers, built
once from the optimisation params. The value is a pure function of the optimizer step
(``value_at(step)``, timm's ``step_update(num_updates)``): a resumed run needs no scheduler state
in its checkpoint, it asks for the value at the step it resumes from.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..config import OptimParams


class Schedule:
    """A value per optimizer step (a learning rate, an EMA momentum)."""

    def value_at(self, step: int) -> float:
        raise NotImplementedError


def _warmup(step: int, start: float, peak: float, warmup: int) -> float:
    """Linear ramp start -> peak over ``warmup`` steps (the value at ``step`` < ``warmup``)."""
    return start + (peak - start) * step / max(warmup, 1)


@dataclass(frozen=True)
class WarmupConstant(Schedule):
    """start_lr -> lr linearly over ``warmup_steps``, then lr (V-JEPA 2)."""

    lr: float
    start_lr: float
    warmup_steps: int

    def value_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.start_lr, self.lr, self.warmup_steps)
        return self.lr


@dataclass(frozen=True)
class WarmupCosine(Schedule):
    """start_lr -> lr linearly over ``warmup_steps``, then half a cosine down to final_lr at ``total_steps``."""

    lr: float
    start_lr: float
    final_lr: float
    warmup_steps: int
    total_steps: int

    def value_at(self, step: int) -> float:
        if step < self.warmup_steps:
            return _warmup(step, self.start_lr, self.lr, self.warmup_steps)
        # past total_steps the schedule stays at final_lr
        progress = min((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 1.0)
        return self.final_lr + 0.5 * (self.lr - self.final_lr) * (1 + math.cos(math.pi * progress))


def lr_schedule(optim: OptimParams, total_steps: int) -> Schedule:
    """The learning-rate schedule that ``optim`` names, over a run of ``total_steps``."""
    if optim.schedule == "constant":
        return WarmupConstant(optim.lr, optim.start_lr, optim.warmup_steps)
    if optim.schedule == "cosine":
        return WarmupCosine(optim.lr, optim.start_lr, optim.final_lr, optim.warmup_steps, total_steps)
    raise ValueError(f"unknown schedule {optim.schedule!r}")
