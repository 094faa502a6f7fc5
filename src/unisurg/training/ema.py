"""Exponential moving average teacher (the V-JEPA target encoder)."""

from __future__ import annotations

import torch
from torch import nn


def momentum_at(step: int, total_steps: int, start: float, end: float) -> float:
    """Linear momentum schedule start -> end over training (V-JEPA 1); constant when start == end (V-JEPA 2)."""
    if total_steps <= 1:
        return end
    return start + (end - start) * min(step, total_steps) / total_steps


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """target <- m * target + (1 - m) * online, parameter by parameter."""
    t_params = list(target.parameters())
    o_params = list(online.parameters())
    torch._foreach_mul_(t_params, momentum)
    torch._foreach_add_(t_params, o_params, alpha=1.0 - momentum)
