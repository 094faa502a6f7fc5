"""Weights in the Hugging Face ``transformers`` V-JEPA 2 layout (``VJEPA2Model``), both ways.

A folder in that layout holds ``config.json`` (``model_type: vjepa2``) and ``model.safetensors``
(or shards named by ``model.safetensors.index.json``). This module reads and writes it with
``safetensors`` alone: importing weights never imports ``transformers`` and never downloads.

Names (ours -> transformers; the predictor maps the same way under ``predictor.``)::

    patch_embed.proj.*        encoder.embeddings.patch_embeddings.proj.*
    blocks.i.norm1.*          encoder.layer.i.norm1.*
    blocks.i.attn.qkv.*       encoder.layer.i.attention.{query,key,value}.*  (rows split in 3, q k v)
    blocks.i.attn.proj.*      encoder.layer.i.attention.proj.*
    blocks.i.{norm2,mlp}.*    encoder.layer.i.{norm2,mlp}.*
    norm.*                    encoder.layernorm.*
    predictor_embed.*         predictor.embeddings.predictor_embeddings.*
    mask_tokens.k (1, 1, P)   predictor.embeddings.mask_tokens (K, 1, 1, P), row k
    predictor_blocks.i.*      predictor.layer.i.*
    predictor_norm / _proj    predictor.layernorm / predictor.proj

What ``VJEPA2Model`` computes, checked against the transformers version pinned in
``requirements.lock`` (5.24.0): the same tubelet Conv3d, pre-norm blocks, LayerNorm eps 1e-6, GELU,
and the same 3D RoPE with V-JEPA 2's tiled (``repeat``) sin/cos tables (:mod:`.rope`); its RoPE grid
is ``crop_size / patch_size`` square, so an exported model is exact at its ``crop_size`` only. Its
predictor picks mask token 1 (``mask_index=1``) where ours is told which one.

A config field this mapping does not know (a later V-JEPA variant: another RoPE, registers, ...) is
refused by name on import: never a model that loads and computes something else.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from .predictor import Predictor
from .vit import VisionTransformer

MODEL_TYPE = "vjepa2"
CONFIG = "config.json"
WEIGHTS = "model.safetensors"
WEIGHTS_INDEX = "model.safetensors.index.json"

# config.json fields that change what VJEPA2Model computes, and the values our encoders have; the
# rest (hidden_size, depth, heads, ...) are read into the architecture
_FIXED = {"in_chans": 3, "hidden_act": "gelu", "layer_norm_eps": 1e-6, "qkv_bias": True}
# fields of the pinned VJEPA2Config that do not change the encoder or predictor at inference
_INERT = {
    "drop_path_rate",
    "attention_probs_dropout_prob",
    "attention_dropout",
    "initializer_range",
    "num_pooler_layers",
    "pred_zero_init_mask_tokens",
}
_SHAPE = {
    "patch_size",
    "crop_size",
    "frames_per_clip",
    "tubelet_size",
    "hidden_size",
    "num_attention_heads",
    "num_hidden_layers",
    "mlp_ratio",
    "pred_hidden_size",
    "pred_num_attention_heads",
    "pred_num_hidden_layers",
    "pred_num_mask_tokens",
    "pred_mlp_ratio",
}
# what PreTrainedConfig writes for every model (and classification heads' labels)
_GENERIC = {
    "model_type",
    "architectures",
    "transformers_version",
    "dtype",
    "torch_dtype",
    "_name_or_path",
    "id2label",
    "label2id",
    "problem_type",
    "return_dict",
    "output_hidden_states",
    "output_attentions",
    "use_cache",
    "chunk_size_feed_forward",
    "tie_word_embeddings",
    "is_encoder_decoder",
    "unisurg",  # ours: what the export holds (arch, whether the predictor is a placeholder)
}
KNOWN_FIELDS = set(_FIXED) | _INERT | _SHAPE | _GENERIC


# --------------------------------------------------------------------------- state dicts


def _block_to_hf(rest: str, v: torch.Tensor, out: dict[str, torch.Tensor], prefix: str) -> None:
    """One block parameter ``rest`` (after ``blocks.i.``) into ``out`` under ``prefix`` (``...layer.i.``)."""
    if rest.startswith("attn.qkv."):
        # fused (3D, ...) rows are [q; k; v], as in RoPEAttention.forward's unflatten (3, heads, head_dim)
        for name, part in zip(("query", "key", "value"), v.chunk(3, dim=0)):
            out[f"{prefix}attention.{name}.{rest.rsplit('.', 1)[1]}"] = part.clone()
    elif rest.startswith("attn."):
        out[f"{prefix}attention.{rest[len('attn.') :]}"] = v
    else:
        out[prefix + rest] = v


def _blocks_from_hf(layers: dict[str, torch.Tensor], ours: str) -> dict[str, torch.Tensor]:
    """HF ``layer.i.*`` entries (prefix removed) -> our ``{ours}.i.*`` names, q/k/v fused back."""
    out: dict[str, torch.Tensor] = {}
    for k, v in layers.items():
        i, rest = k.split(".", 1)
        if rest.startswith("attention.query."):
            suffix = rest.rsplit(".", 1)[1]
            parts = [layers[f"{i}.attention.{n}.{suffix}"] for n in ("query", "key", "value")]
            out[f"{ours}.{i}.attn.qkv.{suffix}"] = torch.cat(parts, dim=0)
        elif rest.startswith(("attention.key.", "attention.value.")):
            continue  # fused with the query above
        elif rest.startswith("attention."):
            out[f"{ours}.{i}.attn.{rest[len('attention.') :]}"] = v
        else:
            out[f"{ours}.{i}.{rest}"] = v
    return out


def encoder_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our encoder state dict -> ``VJEPA2Model`` names under ``encoder.``; an unknown key is an error."""
    out: dict[str, torch.Tensor] = {}
    for k, v in state.items():
        if k.startswith("patch_embed.proj."):
            out["encoder.embeddings.patch_embeddings.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("norm."):
            out["encoder.layernorm." + k[len("norm.") :]] = v
        elif k.startswith("blocks."):
            _, i, rest = k.split(".", 2)
            _block_to_hf(rest, v, out, f"encoder.layer.{i}.")
        else:
            raise UsageError(f"encoder parameter {k!r} has no place in transformers' VJEPA2Model")
    return out


def predictor_to_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our predictor state dict -> ``VJEPA2Model`` names under ``predictor.``."""
    out: dict[str, torch.Tensor] = {}
    tokens = sorted((int(k.split(".")[1]), v) for k, v in state.items() if k.startswith("mask_tokens."))
    if tokens:  # K tokens (1, 1, P) -> one (K, 1, 1, P) parameter
        out["predictor.embeddings.mask_tokens"] = torch.stack([v for _, v in tokens])
    for k, v in state.items():
        if k.startswith("mask_tokens."):
            continue
        if k.startswith("predictor_embed."):
            out["predictor.embeddings.predictor_embeddings." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("predictor_norm."):
            out["predictor.layernorm." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("predictor_proj."):
            out["predictor.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("predictor_blocks."):
            _, i, rest = k.split(".", 2)
            _block_to_hf(rest, v, out, f"predictor.layer.{i}.")
        else:
            raise UsageError(f"predictor parameter {k!r} has no place in transformers' VJEPA2Predictor")
    return out


def encoder_from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``VJEPA2Model`` state (``encoder.*``, other entries ignored) -> our encoder names."""
    enc = {k[len("encoder.") :]: v for k, v in state.items() if k.startswith("encoder.")}
    out = _blocks_from_hf({k[len("layer.") :]: v for k, v in enc.items() if k.startswith("layer.")}, "blocks")
    for k, v in enc.items():
        if k.startswith("embeddings.patch_embeddings.proj."):
            out["patch_embed.proj." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("layernorm."):
            out["norm." + k.rsplit(".", 1)[1]] = v
        elif not k.startswith("layer."):
            raise UsageError(f"transformers parameter encoder.{k} has no place in a unisurg encoder")
    return out


def predictor_from_hf(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``VJEPA2Model`` state (``predictor.*``) -> our predictor names."""
    pred = {k[len("predictor.") :]: v for k, v in state.items() if k.startswith("predictor.")}
    out = _blocks_from_hf(
        {k[len("layer.") :]: v for k, v in pred.items() if k.startswith("layer.")}, "predictor_blocks"
    )
    for k, v in pred.items():
        if k == "embeddings.mask_tokens":
            out.update({f"mask_tokens.{j}": t for j, t in enumerate(v.unbind(0))})  # (K, 1, 1, P) -> K x (1, 1, P)
        elif k.startswith("embeddings.predictor_embeddings."):
            out["predictor_embed." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("layernorm."):
            out["predictor_norm." + k.rsplit(".", 1)[1]] = v
        elif k.startswith("proj."):
            out["predictor_proj." + k.rsplit(".", 1)[1]] = v
        elif not k.startswith("layer."):
            raise UsageError(f"transformers parameter predictor.{k} has no place in a unisurg predictor")
    return out


# --------------------------------------------------------------------------- config


def hf_config(
    encoder: VisionTransformer, size: int, frames: int, predictor: Predictor | None, arch: str
) -> dict[str, Any]:
    """``VJEPA2Config`` fields for ``encoder`` at clips of ``frames`` x ``size`` px (``crop_size`` fixes
    transformers' RoPE grid). Without a predictor, a zero-layer placeholder whose weights are zeros
    (``unisurg.predictor: false``): transformers builds one in every ``VJEPA2Model``."""
    c = encoder.config
    p = predictor.config if predictor is not None else None
    return {
        "model_type": MODEL_TYPE,
        "architectures": ["VJEPA2Model"],
        "patch_size": c["patch_size"],
        "crop_size": size,
        "frames_per_clip": frames,
        "tubelet_size": c["tubelet_size"],
        "hidden_size": c["embed_dim"],
        "num_attention_heads": c["num_heads"],
        "num_hidden_layers": c["depth"],
        "mlp_ratio": c["mlp_ratio"],
        **_FIXED,
        "pred_hidden_size": p["predictor_embed_dim"] if p else 8,
        "pred_num_attention_heads": p["num_heads"] if p else 1,
        "pred_num_hidden_layers": p["depth"] if p else 0,
        "pred_num_mask_tokens": p["num_mask_tokens"] if p else 1,
        "pred_mlp_ratio": p["mlp_ratio"] if p else 4.0,
        "unisurg": {"arch": arch, "predictor": p is not None},
    }


def placeholder_predictor(config: dict[str, Any]) -> dict[str, torch.Tensor]:
    """Zero weights for the zero-layer predictor of an export without one: its output is all zeros,
    never a plausible prediction."""
    d, p, k = config["hidden_size"], config["pred_hidden_size"], config["pred_num_mask_tokens"]
    return {
        "predictor.embeddings.mask_tokens": torch.zeros(k, 1, 1, p),
        "predictor.embeddings.predictor_embeddings.weight": torch.zeros(p, d),
        "predictor.embeddings.predictor_embeddings.bias": torch.zeros(p),
        "predictor.layernorm.weight": torch.zeros(p),
        "predictor.layernorm.bias": torch.zeros(p),
        "predictor.proj.weight": torch.zeros(d, p),
        "predictor.proj.bias": torch.zeros(d),
    }


def check_config(config: dict[str, Any], where: str) -> None:
    """Refuse a config this mapping cannot reproduce exactly, naming each field and why."""
    problems = []
    if config.get("model_type") != MODEL_TYPE:
        problems.append(f"model_type is {config.get('model_type')!r}, not {MODEL_TYPE!r}")
    unknown = sorted(set(config) - KNOWN_FIELDS)
    if unknown:
        problems.append(
            f"fields unisurg's V-JEPA 2 mapping does not know: {', '.join(unknown)} (a later V-JEPA variant, "
            "e.g. another RoPE?)"
        )
    for k, want in _FIXED.items():
        if k in config and config[k] != want:
            problems.append(f"{k} is {config[k]!r}; unisurg encoders have {want!r}")
    missing = sorted(k for k in ("patch_size", "tubelet_size", "hidden_size", "num_attention_heads") if k not in config)
    if missing:
        problems.append(f"missing {', '.join(missing)}")
    if isinstance(config.get("patch_size"), (list, tuple)):
        problems.append(f"patch_size {config['patch_size']}: unisurg encoders have square patches (one int)")
    if problems:
        raise UsageError(f"{where}: cannot be read as a unisurg encoder: " + "; ".join(problems))


# --------------------------------------------------------------------------- folders


@dataclass
class HFModel:
    """A V-JEPA 2 folder read into our modules."""

    encoder: VisionTransformer
    predictor: Predictor | None  # None: the folder has none, or only our placeholder
    config: dict[str, Any]
    digest: str  # sha256 of the weights file (shards: of their names and sha256s)


def weight_files(folder: Path) -> list[Path]:
    """The safetensors files of a transformers folder (one, or the shards its index names)."""
    if (folder / WEIGHTS).is_file():
        return [folder / WEIGHTS]
    if (folder / WEIGHTS_INDEX).is_file():
        index = json.loads((folder / WEIGHTS_INDEX).read_text())
        files = [folder / f for f in sorted(set(index.get("weight_map", {}).values()))]
        missing = [f.name for f in files if not f.is_file()]
        if missing or not files:
            raise FileNotFoundError(f"{folder}: {WEIGHTS_INDEX} names shards that are not there: {missing or 'none'}")
        return files
    raise FileNotFoundError(
        f"{folder}: no {WEIGHTS} or {WEIGHTS_INDEX} (a transformers folder; a PyTorch .bin is not read: "
        "resave it with save_pretrained(safe_serialization=True))"
    )


def _digest(files: list[Path]) -> str:
    from ..io import sha256_file

    if len(files) == 1:
        return sha256_file(files[0])
    h = hashlib.sha256()
    for f in files:
        h.update(f"{f.name}:{sha256_file(f)}\n".encode())
    return h.hexdigest()


def load_hf(folder: str | os.PathLike[str]) -> HFModel:
    """Read a transformers V-JEPA 2 folder (ours or Meta's) into a :class:`VisionTransformer` and, when it
    has a real one, a :class:`Predictor`. Local files only; a mismatch is an error naming the keys."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CONFIG).is_file():
        raise FileNotFoundError(f"hf:{folder}: no {CONFIG} (an hf: spec names a local transformers folder)")
    config = json.loads((folder / CONFIG).read_text())
    check_config(config, f"hf:{folder}")
    files = weight_files(folder)
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    d = config["hidden_size"]
    encoder = VisionTransformer(
        embed_dim=d,
        depth=config.get("num_hidden_layers", 24),
        num_heads=config["num_attention_heads"],
        mlp_ratio=float(config.get("mlp_ratio", 4.0)),
        patch_size=config["patch_size"],
        tubelet_size=config["tubelet_size"],
    )
    _load(encoder, encoder_from_hf(state), f"hf:{folder} encoder")
    predictor = None
    if (config.get("unisurg") or {}).get("predictor", True) and any(k.startswith("predictor.") for k in state):
        predictor = Predictor(
            embed_dim=d,
            predictor_embed_dim=config.get("pred_hidden_size", 384),
            depth=config.get("pred_num_hidden_layers", 12),
            num_heads=config.get("pred_num_attention_heads", 12),
            mlp_ratio=float(config.get("pred_mlp_ratio", 4.0)),
            num_mask_tokens=config.get("pred_num_mask_tokens", 10),
        )
        _load(predictor, predictor_from_hf(state), f"hf:{folder} predictor")
    return HFModel(encoder.eval(), predictor, config, _digest(files))


def _load(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    own = module.state_dict()
    wrong = [
        f"{k} {tuple(v.shape)} vs {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if wrong or missing or unexpected:
        raise UsageError(
            f"{what}: weights do not match its config.json: wrong shapes {wrong[:3]}, missing {missing[:3]}, "
            f"unexpected {unexpected[:3]}"
        )
    module.load_state_dict(state)
