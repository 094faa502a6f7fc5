"""Data parallelism for the training loops: DDP (replicated weights) or FSDP (sharded weights).

``pretrain.parallel`` picks the strategy for a multi-process (``torchrun``) launch:

- ``ddp``: every rank holds all weights, gradients are all-reduced (fine up to ViT-L);
- ``fsdp``: PyTorch's FSDP2 (``torch.distributed.fsdp.fully_shard``) shards every transformer
  block, then the rest of the model, so parameters, gradients and AdamW state take ~1/world of
  the memory (ViT-g and up). The EMA target encoder is sharded the same way, block by block,
  so the EMA update is a purely local operation on matching shards.

Checkpoints are always *full* (unsharded, FQN-keyed) state dicts gathered with
``torch.distributed.checkpoint.state_dict``: a run saved under FSDP on 8 GPUs resumes
single-process, under DDP, or under FSDP with another world size, and ``encoder.pt`` is the
same file whatever the launch. The gathering functions are collectives under FSDP: every rank
must call them (only the main rank writes).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.distributed.checkpoint.state_dict import (
    StateDictOptions,
    get_model_state_dict,
    get_optimizer_state_dict,
    set_model_state_dict,
    set_optimizer_state_dict,
)

_FULL = StateDictOptions(full_state_dict=True, cpu_offload=True)


def shard(model: nn.Module, block_lists: Iterable[nn.ModuleList]) -> nn.Module:
    """FSDP2 in place: each block of ``block_lists`` is one shard unit, the root takes the rest.

    Block-level units bound the peak memory to one gathered block at a time (V-JEPA 2 / torchtitan
    practice). Call on the identical module tree on every rank, before building the optimizer.
    """
    from torch.distributed.fsdp import fully_shard

    for blocks in block_lists:
        for blk in blocks:
            fully_shard(blk)
    # The root also reshards after forward (FSDP2 keeps it gathered by default): the EMA teacher
    # has no backward that would reshard it, and the EMA update needs its sharded parameters.
    fully_shard(model, reshard_after_forward=True)
    return model


def full_model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Unsharded state dict on CPU (a collective under FSDP; a plain ``state_dict`` otherwise)."""
    return get_model_state_dict(model, options=_FULL)


def full_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer) -> dict:
    """Unsharded optimizer state keyed by parameter name (not position), valid for any launch."""
    return get_optimizer_state_dict(model, opt, options=_FULL)


def load_full_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a full state dict into a plain or sharded model; strict: missing/unexpected keys raise."""
    expected = set(model.state_dict())  # same names sharded or not; not a collective
    missing, unexpected = sorted(expected - set(state)), sorted(set(state) - expected)
    if missing or unexpected:
        raise KeyError(f"state dict mismatch: missing {missing[:8]}, unexpected {unexpected[:8]}")
    set_model_state_dict(model, state, options=StateDictOptions(full_state_dict=True))


def load_full_optimizer_state(model: nn.Module, opt: torch.optim.Optimizer, state: dict) -> None:
    set_optimizer_state_dict(model, opt, state, options=StateDictOptions(full_state_dict=True))


def prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries of ``state`` under ``prefix.`` with the prefix removed."""
    p = prefix + "."
    return {k[len(p) :]: v for k, v in state.items() if k.startswith(p)}
