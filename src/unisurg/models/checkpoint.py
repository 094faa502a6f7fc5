"""Self-describing checkpoints, and loading of public V-JEPA 2 / SurgMotion weights.

Our checkpoints carry the architecture (registered name + constructor arguments), so
``load_encoder(path)`` rebuilds the model without any other file: a ``torch.save`` file, or a
``.safetensors`` file whose metadata holds the same (``unisurg export --format safetensors``, for
tools that read safetensors and never unpickle). Public V-JEPA 2 / SurgMotion
``.pt`` files carry only state dicts (keys ``encoder``, ``target_encoder``, ``predictor``,
possibly prefixed ``module.`` / ``backbone.``): the caller names the architecture.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import UsageError
from ..io import atomic_path
from .vit import VisionTransformer, create_model, list_models

FORMAT = "unisurg/v1"
SAFETENSORS_FORMAT = "unisurg-safetensors/v1"


def save_checkpoint(path: str | os.PathLike[str], payload: dict[str, Any]) -> None:
    """torch.save atomically (temporary file + rename): a kill never leaves a truncated checkpoint.

    Through an open file, not a path: given a path, torch names the archive's root folder after the
    file, here a random temporary name, so the same weights gave different bytes (and DVC reran every
    stage downstream of a rerun). Given a file object, the root is always ``archive``.
    """
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        torch.save({"format": FORMAT, **payload}, fh)


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a ``torch.save`` file safely (``weights_only``: a file never runs code here).

    A file that is no checkpoint (a text file, a truncated download) is a :class:`UsageError`
    naming it, instead of torch's messages (a ``KeyError: '101'`` for a text file, or advice
    about ``weights_only`` and arbitrary code execution)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint file {path}")
    with open(path, "rb") as fh:
        head = fh.read(4)
    # torch.save writes a zip archive (PK..); files of torch < 1.6 are a pickle stream (0x80 ..)
    if not (head.startswith(b"PK\x03\x04") or head[:1] == b"\x80"):
        raise UsageError(f"{path}: not a PyTorch checkpoint (it starts with {head!r}, not a torch.save header)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError:
        raise UsageError(
            f"{path}: holds Python objects besides tensors and plain containers; unisurg reads checkpoints "
            "with weights_only=True (a file never runs code): save a state dict instead"
        ) from None
    except (RuntimeError, EOFError, KeyError, ValueError) as err:
        reason = str(err).split(". ")[0]
        raise UsageError(f"{path}: cannot be read as a checkpoint (truncated or corrupt? torch: {reason})") from None
    if not isinstance(ckpt, dict):
        raise UsageError(f"{path}: a checkpoint holds a dict of weights, this one holds a {type(ckpt).__name__}")
    return ckpt


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
    ckpt = load_checkpoint(path)
    if key not in ckpt:
        raise UsageError(f"{path}: no key {key!r} in the checkpoint (it has {', '.join(sorted(map(str, ckpt))[:8])})")
    model = create_model(arch)
    state = strip_prefixes(ckpt[key])
    own = model.state_dict()
    wrong = [k for k, v in state.items() if k in own and own[k].shape != v.shape]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or (strict and (missing or unexpected)):
        raise UsageError(
            f"{path}: weights do not match {arch}: wrong shapes {wrong[:3]}, missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    model.load_state_dict(state, strict=strict)
    return model


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """sha256 of the weights themselves (names, dtypes, shapes, bytes in name order): equal for equal
    weights whatever file holds them."""
    h = hashlib.sha256()
    for k in sorted(state):
        t = state[k].detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}\n".encode())
        h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def save_safetensors(path: str | os.PathLike[str], model: VisionTransformer, arch: str, meta: dict[str, Any]) -> None:
    """The encoder's weights as safetensors; its metadata (strings only, by the format) rebuilds it:
    ``format``, ``arch``, ``config`` (JSON), ``weights_sha256``, and ``meta``'s entries (JSON unless str)."""
    from safetensors.torch import save_file

    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    header = {k: v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in meta.items()}
    header.update(
        format=SAFETENSORS_FORMAT, arch=arch, config=json.dumps(model.config), weights_sha256=state_digest(state)
    )
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata=header)


def read_safetensors_meta(path: str | os.PathLike[str]) -> dict[str, str]:
    """The metadata of a safetensors file (without reading its tensors)."""
    from safetensors import SafetensorError, safe_open

    if not Path(path).is_file():
        raise FileNotFoundError(f"no safetensors file {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            return dict(fh.metadata() or {})
    except SafetensorError as err:  # a bad header: truncated, or not safetensors at all
        raise UsageError(f"{path}: cannot be read as safetensors ({err})") from None


def load_safetensors(path: str | os.PathLike[str]) -> VisionTransformer:
    """An encoder written by :func:`save_safetensors`; its weights are checked against ``weights_sha256``."""
    from safetensors.torch import load_file

    meta = read_safetensors_meta(path)
    if meta.get("format") != SAFETENSORS_FORMAT:
        raise UsageError(
            f"{path}: a safetensors file without unisurg metadata (format {meta.get('format')!r}): its "
            "architecture is unknown; a transformers folder is hf:<folder>"
        )
    model = VisionTransformer(**json.loads(meta["config"]))
    state = load_file(str(path))
    if state_digest(state) != meta.get("weights_sha256"):
        raise UsageError(f"{path}: its weights do not match the weights_sha256 of its metadata (modified or corrupt)")
    model.load_state_dict(state)
    return model


def load_encoder(path: str | os.PathLike[str], arch: str | None = None, key: str | None = None) -> VisionTransformer:
    """Load any encoder: our self-describing checkpoints (``torch.save`` or ``.safetensors``), or a public
    V-JEPA 2 file with ``arch`` given."""
    if Path(path).suffix == ".safetensors":
        return load_safetensors(path)
    ckpt = load_checkpoint(path)
    if ckpt.get("format") == FORMAT:
        model = VisionTransformer(**ckpt["config"])
        model.load_state_dict(ckpt[key or "encoder"])
        return model
    if arch is None:
        raise UsageError(
            f"{path} is not a unisurg checkpoint: name its architecture, e.g. vjepa:vit_large:{path} "
            f"(architectures: {', '.join(list_models())})"
        )
    return load_vjepa_checkpoint(path, arch, key or "target_encoder")


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
