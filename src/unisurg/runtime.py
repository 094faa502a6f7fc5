"""Where a stage computes: one device policy and one process-group setup for every stage.

Every stage section of ``params.yaml`` (``pretrain``, ``distill``, ``evaluate``) and
``unisurg features extract --device`` take ``device``:

- ``auto``: the process's GPU when torch sees CUDA (``cuda:LOCAL_RANK`` under ``torchrun``), else the CPU;
- ``cpu``: the CPU even on a GPU machine;
- ``cuda``: the process's GPU, an error when there is none (a GPU job that silently ran on the
  CPU would take days instead of hours);
- ``cuda:N``: GPU N of a single-process run.

On CUDA the forward passes run under bf16 autocast (``bf16: true``, V-JEPA 2's mixed precision;
switchable for a float32 reference), batches travel pinned and ``non_blocking``. On the CPU
nothing changes: float32, the same kernels, so CPU results are bit-identical with and without
this layer.

Under ``torchrun`` a :class:`Dist` says which rank this process is; training splits each global
batch over ranks (DDP/FSDP), feature extraction splits the work in whole batches
(:func:`batch_shard`), so every batch a rank computes is a batch the single process computes:
the merged features equal one process's byte for byte.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch

log = logging.getLogger(__name__)

DEVICE_PATTERN = r"^(auto|cpu|cuda(:\d+)?)$"
CPU = torch.device("cpu")
COLLECTIVE_TIMEOUT = timedelta(hours=2)


def resolve_device(spec: str, local_rank: int = 0) -> torch.device:
    """``auto | cpu | cuda | cuda:N`` -> the torch device this process computes on (see the module docstring)."""
    if not re.match(DEVICE_PATTERN, spec):
        raise ValueError(f"device {spec!r}: expected auto, cpu, cuda or cuda:N")
    cuda = torch.cuda.is_available()
    if spec == "cpu" or (spec == "auto" and not cuda):
        return torch.device("cpu")
    if not cuda:
        raise RuntimeError(
            f"device {spec!r} requested but torch sees no CUDA device (torch.cuda.is_available() is False; "
            f"torch {torch.__version__}, CUDA build {torch.version.cuda}): set device: auto or cpu"
        )
    index = int(spec.split(":")[1]) if ":" in spec else local_rank
    if index >= torch.cuda.device_count():
        raise RuntimeError(f"device {spec!r}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return torch.device("cuda", index)


def autocast(device: torch.device, bf16: bool = True) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA when ``bf16``; a no-op elsewhere (CPU stays float32)."""
    if device.type == "cuda" and bf16:
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor on ``device``: pinned and asynchronous for a GPU (the copy overlaps compute)."""
    if device.type == "cuda" and x.device.type == "cpu":
        return (x if x.is_pinned() else x.pin_memory()).to(device, non_blocking=True)
    return x.to(device)


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a (possibly single-process) run."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: torch.device = CPU

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

    def gather(self, obj: Any) -> list[Any] | None:
        """Every rank's ``obj`` in rank order on the main rank (None elsewhere); ``[obj]`` single-process.

        Pickled through the process group: fine for features of a benchmark's samples; a
        collective, so every rank calls it.
        """
        if self.world == 1:
            return [obj]
        import torch.distributed as dist

        out = [None] * self.world if self.is_main else None
        dist.gather_object(obj, out, dst=0)
        return out

    def broadcast(self, obj: Any) -> Any:
        """The main rank's ``obj`` on every rank (a collective)."""
        if self.world == 1:
            return obj
        import torch.distributed as dist

        box = [obj]
        dist.broadcast_object_list(box, src=0)
        return box[0]

    def barrier(self) -> None:
        if self.world > 1:
            import torch.distributed as dist

            dist.barrier()


SINGLE = Dist()  # one process on the CPU: the default of functions that take a Dist


def single_process(device: str = "auto") -> Dist:
    """A run of one process on ``device`` (see :func:`resolve_device`)."""
    return Dist(device=resolve_device(device))


def setup_distributed(device: str = "auto") -> Dist:
    """Read the torchrun environment; fail loudly on a half-configured launch.

    Single process: no WORLD_SIZE / RANK / LOCAL_RANK in the environment. Under ``torchrun``
    all three are set; a process that sees only some of them, or a world size that the process
    group does not confirm, raises instead of silently training alone. Ranks on GPUs talk over
    NCCL, ranks on CPUs over gloo.
    """
    env = os.environ
    keys = ("WORLD_SIZE", "RANK", "LOCAL_RANK")
    present = [k for k in keys if k in env]
    if not present:
        return single_process(device)
    if len(present) != len(keys):
        missing = sorted(set(keys) - set(present))
        raise RuntimeError(f"misconfigured distributed launch: {present} set but {missing} missing (use torchrun)")
    world, rank, local = (int(env[k]) for k in keys)
    if not 0 <= rank < world:
        raise RuntimeError(f"misconfigured distributed launch: RANK={rank} not in [0, WORLD_SIZE={world})")
    if world > 1 and ":" in device:
        raise ValueError(
            f"device {device!r} pins one GPU: under torchrun use device: cuda (rank r takes cuda:LOCAL_RANK)"
        )
    dev = resolve_device(device, local)
    if world > 1:
        import torch.distributed as dist

        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        # the other ranks wait in a collective while rank 0 trains a benchmark's probes (minutes under
        # the paper's protocol): a timeout far above the default 10 minutes. A dead rank is still seen
        # at once by torchrun, which stops the job.
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=COLLECTIVE_TIMEOUT)
        if dist.get_world_size() != world:
            raise RuntimeError(f"process group has {dist.get_world_size()} ranks, WORLD_SIZE says {world}")
    return Dist(rank=rank, world=world, local_rank=local, device=dev)


def teardown_distributed(d: Dist, barrier: bool = True) -> None:
    """Leave the process group (after a barrier, unless this rank is failing: the others may never reach it)."""
    if d.world > 1:
        import torch.distributed as dist

        if barrier:
            dist.barrier()
        dist.destroy_process_group()


@contextlib.contextmanager
def distributed(device: str = "auto") -> Iterator[Dist]:
    """:func:`setup_distributed` for the duration of a ``with`` block, torn down even on an error."""
    d = setup_distributed(device)
    try:
        yield d
    except BaseException:
        teardown_distributed(d, barrier=False)
        raise
    teardown_distributed(d)


def batch_shard(n: int, batch: int, rank: int, world: int) -> range:
    """The items [start, stop) of ``n`` that ``rank`` of ``world`` computes, in whole batches of ``batch``.

    The single process's batches are dealt out in contiguous runs, so each rank's batches are
    exactly batches of the single process (same composition, same numerics) and concatenating
    the ranks' outputs in rank order gives the single process's output.
    """
    batches = -(-n // batch)
    lo, hi = rank * batches // world, (rank + 1) * batches // world
    return range(min(lo * batch, n), min(hi * batch, n))


# --------------------------------------------------------------------------- memory


class FittingBatch:
    """Run a frozen forward in the largest chunk of the batch that fits in GPU memory.

    ``forward(x)`` on the whole batch first; on a CUDA out-of-memory error the chunk is halved
    (and remembered for the next batches) until it fits or one sample does not (then the error
    stands). Logged once per instance, not once per batch.
    """

    def __init__(self) -> None:
        self.chunk: int | None = None

    def __call__(self, forward: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        while True:
            chunk = min(self.chunk or x.size(0), x.size(0))
            try:
                return torch.cat([forward(x[i : i + chunk]) for i in range(0, x.size(0), chunk)])
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                if self.chunk is None:
                    log.warning("batch of %d clips does not fit in GPU memory: halving it until it does", chunk)
                self.chunk = chunk // 2
                if torch.cuda.is_available():
                    torch.cuda.empty_cache()
