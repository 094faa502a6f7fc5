"""Exponential moving average teacher (the V-JEPA target encoder) and its momentum schedule."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .schedules import Schedule


@dataclass(frozen=True)
class MomentumSchedule(Schedule):
    """Linear momentum start -> end over training (V-JEPA 1); constant when start == end (V-JEPA 2)."""

    start: float
    end: float
    total_steps: int

    def value_at(self, step: int) -> float:
        if self.total_steps <= 1:
            return self.end
        return self.start + (self.end - self.start) * min(step, self.total_steps) / self.total_steps


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- m * target + (1 - m) * online, parameter by parameter."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
