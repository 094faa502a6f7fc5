"""Pieces shared by the pretraining and distillation loops: optimiser groups, step logs, resume."""

from __future__ import annotations

import csv
import os
import random
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .io import atomic_path


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
