"""Pieces shared by the pretraining and distillation loops: optimiser groups, step logs, resume."""

from __future__ import annotations

import csv
import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..io import atomic_path


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


def resume(path: Path, modules: dict, optimizer: torch.optim.Optimizer) -> int:
    """Load ``path`` (if it exists) into ``modules`` (checkpoint key -> module) and the optimizer.

    Returns the step to resume from (0 when there is no checkpoint).
    """
    if not path.exists():
        return 0
    from ..models.checkpoint import load_checkpoint

    ck = load_checkpoint(path)
    for key, module in modules.items():
        module.load_state_dict(ck[key])
    optimizer.load_state_dict(ck["optimizer"])
    return int(ck["step"])


# --------------------------------------------------------------------------- distributed


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def reduce_min(self, values: list[int]) -> list[int]:
        """Element-wise minimum over processes (identity when single-process)."""
        if self.world == 1:
            return values
        import torch.distributed as dist

        t = torch.tensor(values, dtype=torch.int64, device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MIN)
        return t.tolist()

    def mean(self, value: float) -> float:
        if self.world == 1:
            return value
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(t)
        return float(t.item()) / self.world


def setup_distributed() -> Dist:
    """Read the torchrun environment; fail loudly on a half-configured launch.

    Single process: no WORLD_SIZE / RANK / LOCAL_RANK in the environment. Under ``torchrun``
    all three are set; a process that sees only some of them, or a world size that the process
    group does not confirm, raises instead of silently training alone.
    """
    env = os.environ
    keys = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    present = [k for k in keys if k in env]
    cuda = torch.cuda.is_available()
    if not present:
        return Dist(device=torch.device("cuda", 0) if cuda else torch.device("cpu"))
    if len(present) != len(keys):
        missing = sorted(set(keys) - set(present))
        raise RuntimeError(f"misconfigured distributed launch: {present} set but {missing} missing (use torchrun)")
    world, rank, local = (int(env[k]) for k in keys)
    if not 0 <= rank < world:
        raise RuntimeError(f"misconfigured distributed launch: RANK={rank} not in [0, WORLD_SIZE={world})")
    device = torch.device("cuda", local) if cuda else torch.device("cpu")
    if world > 1:
        import torch.distributed as dist

        if cuda:
            torch.cuda.set_device(device)
        dist.init_process_group("nccl" if cuda else "gloo")
        if dist.get_world_size() != world:
            raise RuntimeError(f"process group has {dist.get_world_size()} ranks, WORLD_SIZE says {world}")
    return Dist(rank=rank, world=world, local_rank=local, device=device)


def teardown_distributed(d: Dist) -> None:
    if d.world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
