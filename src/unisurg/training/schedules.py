"""Learning-rate schedules: linear warmup, then constant (V-JEPA 2) or cosine decay."""

from __future__ import annotations

import math


def lr_at(step: int, total: int, lr: float, start_lr: float, final_lr: float, warmup: int, schedule: str) -> float:
    if step < warmup:
        return start_lr + (lr - start_lr) * step / max(warmup, 1)
    if schedule == "constant":
        return lr
    if schedule == "cosine":
        progress = min((step - warmup) / max(total - warmup, 1), 1.0)
        return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * progress))
    raise ValueError(f"unknown schedule {schedule!r}")
