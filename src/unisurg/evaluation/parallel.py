"""How ranks share an evaluation under ``torchrun``: every rank encodes and every rank trains.

The probe grid is many independent heads (20 under the paper's protocol) trained on the same
batches. The ranks split it *by heads*: rank r owns a contiguous share of the bank
(:func:`head_share`) and trains it on every global batch. A head's gradient then comes from one
rank, so no gradient is all-reduced: with ViT-L tokens the 20-head bank has ~1 G parameters, an
all-reduce of which would move ~4 GB per 4-sample step, where gathering the batch's tokens moves
64 MiB. What the ranks exchange instead:

- online encoding: each rank encodes its contiguous share of a batch (:func:`share`) and the tokens
  are all-gathered (:func:`gather_tokens`), so every rank holds the batch for its heads;
- cached tokens: every rank reads the whole batch from the token store itself (nothing exchanged);
- outputs: each rank writes its heads' validation/test outputs to files (logits, or dense maps)
  and the others read them (:func:`publish_heads`, :func:`collect_heads`): only outputs cross ranks.

Every rank sees the same batches in the same order (drawn from the seed), and a head's numbers do
not depend on which rank trains it: results equal one process's (tests/test_distributed.py runs
two gloo ranks). No rank waits in a collective for another's long work: the collectives are the
per-batch token gathers, which every rank reaches together; files written by other ranks are
waited for by polling, without a timeout (a dead rank ends the job under torchrun).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from ..io import atomic_path
from ..runtime import Dist

log = logging.getLogger(__name__)

POLL_S = 1.0


def head_share(k: int, d: Dist) -> range:
    """The heads [a, b) of a bank of ``k`` that rank ``d.rank`` trains (contiguous, balanced)."""
    return range(d.rank * k // d.world, (d.rank + 1) * k // d.world)


def share(n: int, d: Dist, items):
    """Rank ``d.rank``'s contiguous share of ``n`` items (a batch's samples)."""
    return items[d.rank * n // d.world : (d.rank + 1) * n // d.world]


def gather_tokens(local: torch.Tensor | None, n: int, d: Dist) -> torch.Tensor:
    """Every rank's share of a batch's tokens (b_r, N, D), concatenated in rank order -> (n, N, D) on
    every rank (``local`` None: this rank's share was empty)."""
    if d.world == 1:
        assert local is not None
        return local
    import torch.distributed as dist

    sizes = [len(share(n, Dist(rank=r, world=d.world), range(n))) for r in range(d.world)]
    shape = torch.tensor(list(local.shape[1:]) if local is not None else [0, 0], device=d.device)
    dist.all_reduce(shape, op=dist.ReduceOp.MAX)  # (N, D) from a rank that has a share
    dtype = local.dtype if local is not None else torch.float32
    dtype_code = torch.tensor([0 if dtype == torch.float32 else 1 if dtype == torch.bfloat16 else 2], device=d.device)
    dist.all_reduce(dtype_code, op=dist.ReduceOp.MIN)
    dtype = [torch.float32, torch.bfloat16, torch.float16][int(dtype_code)]
    width = max(sizes)
    buf = torch.zeros((width, *shape.tolist()), dtype=dtype, device=d.device)
    if local is not None and len(local):
        buf[: len(local)] = local.to(dtype)
    out = [torch.empty_like(buf) for _ in range(d.world)]
    dist.all_gather(out, buf)
    return torch.cat([o[:s] for o, s in zip(out, sizes, strict=True)])


def publish_heads(folder: Path, outputs: list[np.ndarray]) -> None:
    """This rank's heads' outputs (each (n, *out)) for the other ranks: one file per head (already
    there when :func:`~.probing.predict` wrote them into ``folder``), then ``done.json`` naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    shapes = []
    for j, out in enumerate(outputs):
        path = folder / f"head{j:03d}.f32"
        if not (isinstance(out, np.memmap) and Path(out.filename) == path.resolve()):
            with atomic_path(path) as tmp:
                np.ascontiguousarray(out, np.float32).tofile(tmp)
        shapes.append(list(out.shape))
    with atomic_path(folder / "done.json") as tmp:
        tmp.write_text(json.dumps({"shapes": shapes}))


def collect_heads(folder: Path) -> list[np.ndarray]:
    """The head outputs another rank published in ``folder`` (memory-mapped), once it has."""
    t0 = time.monotonic()
    while not (folder / "done.json").exists():
        time.sleep(POLL_S)
        if time.monotonic() - t0 > 60:
            log.info("waiting for another rank's outputs in %s", folder)
            t0 = time.monotonic()
    shapes = json.loads((folder / "done.json").read_text())["shapes"]
    return [np.memmap(folder / f"head{j:03d}.f32", np.float32, "r", shape=tuple(s)) for j, s in enumerate(shapes)]
