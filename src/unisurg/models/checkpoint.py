"""Self-describing checkpoints, and loading of public V-JEPA 2 / SurgMotion weights.

Our checkpoints carry the architecture (registered name + constructor arguments), so
``load_encoder(path)`` rebuilds the model without any other file. Public V-JEPA 2 / SurgMotion
``.pt`` files carry only state dicts (keys ``encoder``, ``target_encoder``, ``predictor``,
possibly prefixed ``module.`` / ``backbone.``): the caller names the architecture.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import atomic_path
from .vit import VisionTransformer, create_model

FORMAT = "unisurg/v1"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """torch.save atomically (temporary file + rename): a kill never leaves a truncated checkpoint."""
    with atomic_path(path) as tmp:
        torch.save({"format": FORMAT, **payload}, tmp)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    return torch.load(path, map_location="cpu", weights_only=True)


def encoder_payload(
    model: VisionTransformer, arch: str, state: dict[str, torch.Tensor] | None = None, **meta: Any
) -> dict[str, Any]:
    """``state``: the weights when ``model``'s own are sharded (a gathered full state dict)."""
    weights = model.state_dict() if state is None else state
    return {"kind": "encoder", "arch": arch, "config": model.config, "encoder": weights, "meta": meta}


def strip_prefixes(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove DDP / wrapper prefixes (``module.``, ``backbone.``) from state-dict keys."""
    out = {}
    for k, v in state.items():
        for prefix in ("module.", "backbone."):
            while k.startswith(prefix):
                k = k[len(prefix) :]
        out[k] = v
    return out


def load_vjepa_checkpoint(
    path: str | os.PathLike[str], arch: str, key: str = "target_encoder", strict: bool = True
) -> VisionTransformer:
    """Build ``arch`` and load the public V-JEPA 2 / SurgMotion weights stored under ``key``.

    ``key`` is ``"encoder"`` or ``"target_encoder"`` (V-JEPA evaluates the EMA target encoder);
    prefixes ``module.`` / ``backbone.`` are stripped. With ``strict`` any missing or unexpected
    parameter is an error naming it (a wrong ``arch`` fails loudly instead of loading half a model).
    """
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if key not in ckpt:
        raise KeyError(f"{path}: no key {key!r} in checkpoint (has {sorted(ckpt)[:8]})")
    model = create_model(arch)
    state = strip_prefixes(ckpt[key])
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or (strict and (missing or unexpected)):
        raise ValueError(
            f"{path}: weights do not match {arch}: wrong shapes {wrong[:3]}, missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state, strict=strict)
    return model


def load_encoder(path: str | os.PathLike[str], arch: str | None = None, key: str | None = None) -> VisionTransformer:
    """Load any encoder: our self-describing checkpoints, or a public V-JEPA 2 file with ``arch`` given."""
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    if ckpt.get("format") == FORMAT:
        model = VisionTransformer(**ckpt["config"])
        model.load_state_dict(ckpt[key or "encoder"])
        return model
    if arch is None:
        raise ValueError(f"{Path(path).name} is not a unisurg checkpoint: pass the architecture (e.g. vit_large)")
    return load_vjepa_checkpoint(path, arch, key or "target_encoder")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
