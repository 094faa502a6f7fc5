"""The three export layouts. Each writes its files into an output folder; :func:`export` adds the
model card (``README.md``) beside them.

``transformers``
    ``config.json`` + ``model.safetensors`` that ``transformers.AutoModel.from_pretrained`` loads as a
    ``VJEPA2Model`` (names mapped by :mod:`unisurg.models.hf`), and ``video_preprocessor_config.json``
    that ``AutoVideoProcessor`` loads to prepare clips as our pipeline does. Before anything is written,
    the converted model is built in transformers and run on a probe clip: features (and predictions,
    when a predictor is exported) must equal ours within :data:`TOLERANCE`, otherwise the export is
    refused with the difference (transformers cannot express that encoder).
``safetensors``
    ``encoder.safetensors``: the weights, and metadata that rebuild and describe them (architecture,
    registered name, inputs, normalisation, weights hash, git commit, ``dvc.lock`` stage).
``vjepa``
    ``<arch>.pt``: a ``torch.save`` dict with ``encoder`` / ``target_encoder`` (and ``predictor``)
    under vjepa2's ``module.backbone.`` prefix, and ``epoch``, as vjepa2's and SurgMotion's loaders read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..errors import UsageError
from ..io import atomic_path
from ..media.clips import IMAGENET_MEAN, IMAGENET_STD
from ..models.checkpoint import save_safetensors
from ..models.hf import encoder_to_hf, hf_config, placeholder_predictor, predictor_to_hf
from .source import Exportable

log = logging.getLogger(__name__)

FORMATS = ("transformers", "safetensors", "vjepa")
TOLERANCE = 1e-4  # max |difference| of float32 features between our encoder and its transformers export
VJEPA_PREFIX = "module.backbone."  # vjepa2's DDP(MultiSeqWrapper(model)) names; its loaders strip both parts
# the sizes vjepa2's own code registers (src/models/vision_transformer.py); others are unisurg's CPU sizes
VJEPA2_ARCHS = (
    "vit_tiny",
    "vit_small",
    "vit_base",
    "vit_large",
    "vit_huge",
    "vit_giant",
    "vit_giant_xformers",
    "vit_gigantic",
    "vit_gigantic_xformers",
)


@dataclass(frozen=True)
class Inputs:
    """The clips the encoder is meant to see: what the report's protocol evaluated it at."""

    size: int
    frames: int
    fps: float | None = None

    @property
    def normalisation(self) -> dict[str, Any]:
        return {
            "rescale": "1/255",
            "mean": [round(float(v), 6) for v in IMAGENET_MEAN],
            "std": [round(float(v), 6) for v in IMAGENET_STD],
            "resize": f"whole frame to {self.size}x{self.size} (no crop), RGB",
        }


def _check_inputs(src: Exportable, inputs: Inputs) -> None:
    enc = src.encoder
    bad = []
    if inputs.size % enc.patch_size:
        bad.append(f"size {inputs.size} is not a multiple of the patch size {enc.patch_size}")
    if inputs.frames % enc.tubelet_size:
        bad.append(f"frames {inputs.frames} is not a multiple of the tubelet size {enc.tubelet_size}")
    if bad:
        raise UsageError(f"{src.spec}: " + "; ".join(bad))


# --------------------------------------------------------------------------- transformers


def transformers_model(src: Exportable, inputs: Inputs):
    """The ``VJEPA2Model`` holding ``src``, checked against it (see the module docstring)."""
    from transformers import VJEPA2Config, VJEPA2Model

    predictor = src.predictor
    if predictor is not None and predictor.config.get("out_embed_dim") not in (None, src.encoder.embed_dim):
        raise UsageError(
            f"{src.spec}: its predictor projects to {predictor.config['out_embed_dim']} dims; transformers' "
            f"VJEPA2Predictor projects back to hidden_size ({src.encoder.embed_dim}): export with --encoder-only"
        )
    config = hf_config(src.encoder, inputs.size, inputs.frames, predictor, src.arch)
    state = encoder_to_hf(src.encoder.state_dict())
    state.update(predictor_to_hf(predictor.state_dict()) if predictor is not None else placeholder_predictor(config))
    model = VJEPA2Model(VJEPA2Config(**config))
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = sorted(k for k in set(own) & set(state) if own[k].shape != state[k].shape)
    if missing or unexpected or wrong:
        raise UsageError(
            f"{src.spec}: transformers' VJEPA2Model cannot hold this encoder: it has {missing[:4]} that we lack, "
            f"we have {unexpected[:4]} that it lacks, shapes differ for {wrong[:4]}"
        )
    model.load_state_dict(state)
    check_equal(src, model.eval(), inputs, predictor)
    return model


@torch.no_grad()
def check_equal(src: Exportable, model, inputs: Inputs, predictor) -> float:
    """Run ours and transformers' model on one probe clip; refuse a difference above :data:`TOLERANCE`.

    Two tubelets of frames at the export size: every spatial RoPE position and two temporal ones
    (the frame count only adds temporal positions, computed by the same formula). Returns max |Δ|."""
    enc = src.encoder.eval()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 3, 2 * enc.tubelet_size, inputs.size, inputs.size, generator=g)  # (B, C, T, H, W)
    ours = enc(x)  # (1, N, D)
    theirs = model.get_vision_features(x.transpose(1, 2))  # transformers takes (B, T, C, H, W)
    diff = float((ours - theirs).abs().max())
    if predictor is not None:
        n = ours.size(1)
        perm = torch.randperm(n, generator=g)
        ctx, tgt = perm[: n // 2].sort().values[None], perm[n // 2 :].sort().values[None]  # (1, N/2) each
        grid = enc.grid(x)
        # transformers' predictor uses mask token 1 (its embeddings' default mask_index)
        mine = predictor.eval()(torch.gather(ours, 1, ctx[..., None].expand(-1, -1, ours.size(-1))), ctx, tgt, grid, 1)
        hf = model.predictor(encoder_hidden_states=ours, context_mask=[ctx], target_mask=[tgt]).last_hidden_state
        diff = max(diff, float((mine - hf).abs().max()))
    if not diff <= TOLERANCE:  # `not <=`: a NaN refuses too
        raise UsageError(
            f"{src.spec}: transformers' VJEPA2Model computes something else from the same weights (max |Δ| "
            f"{diff:.3g} > {TOLERANCE:g} on a probe clip): it cannot express this encoder (a RoPE variant, another "
            "block?); refusing to write a model that loads but computes something else"
        )
    log.info("export: transformers' VJEPA2Model matches ours (max |Δ| %.2g on a probe clip)", diff)
    return diff


def write_transformers(src: Exportable, out: Path, inputs: Inputs) -> list[str]:
    from transformers import LlavaNextVideoVideoProcessor
    from transformers.image_utils import PILImageResampling

    model = transformers_model(src, inputs)
    model.save_pretrained(out)
    # VJEPA2VideoProcessor always resizes the short side to crop_size * 256/224 and centre-crops
    # (V-JEPA's evaluation transform, its __init__ overrides `size`); our pipeline resizes the whole
    # frame to size x size. A plain BaseVideoProcessor subclass with every field set does exactly that.
    processor = LlavaNextVideoVideoProcessor(
        size={"height": inputs.size, "width": inputs.size},
        do_resize=True,
        do_center_crop=False,
        do_rescale=True,
        rescale_factor=1 / 255,
        do_normalize=True,
        image_mean=inputs.normalisation["mean"],
        image_std=inputs.normalisation["std"],
        resample=PILImageResampling.BILINEAR,
        do_sample_frames=False,
    )
    processor.save_pretrained(out)
    return sorted(p.name for p in out.iterdir() if p.name != "README.md")


# --------------------------------------------------------------------------- safetensors / vjepa


def write_safetensors(src: Exportable, out: Path, inputs: Inputs, prov: dict[str, Any]) -> list[str]:
    meta = {
        "input": {"size": inputs.size, "frames": inputs.frames, "fps": inputs.fps},
        "patch_size": str(src.encoder.patch_size),
        "tubelet_size": str(src.encoder.tubelet_size),
        "normalisation": inputs.normalisation,
        "source": src.spec,
        "git_commit": prov.get("git_commit", "unknown"),
        "dvc": prov.get("dvc") or {},
    }
    if src.file_sha256:
        meta["source_sha256"] = src.file_sha256
    save_safetensors(out / "encoder.safetensors", src.encoder, src.arch, meta)
    return ["encoder.safetensors"]


def write_vjepa(src: Exportable, out: Path, prov: dict[str, Any]) -> list[str]:
    def prefixed(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {VJEPA_PREFIX + k: v.detach().cpu() for k, v in state.items()}

    target = src.encoder.state_dict()
    payload: dict[str, Any] = {
        "encoder": prefixed(src.context if src.context is not None else target),
        "target_encoder": prefixed(target),
        "epoch": 0,  # vjepa2's load_pretrained logs it (KeyError without); a continued run starts at 0
        "unisurg": {
            "arch": src.arch,
            "config": json.dumps(src.encoder.config),
            "source": src.spec,
            "git_commit": prov.get("git_commit", "unknown"),
        },
    }
    if src.predictor is not None:
        payload["predictor"] = prefixed(src.predictor.state_dict())
    name = f"{src.arch or 'encoder'}.pt"
    with atomic_path(out / name) as tmp, open(tmp, "wb") as fh:
        torch.save(payload, fh)  # through a file object: the archive's inner folder is "archive", not the temp name
    return [name]


def export(src: Exportable, fmt: str, out: Path, inputs: Inputs, prov: dict[str, Any]) -> list[str]:
    """Write ``src`` in ``fmt`` into ``out`` (created; files of an earlier export are replaced)."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown export format {fmt!r}; formats: {', '.join(FORMATS)}")
    _check_inputs(src, inputs)
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "transformers":
        return write_transformers(src, out, inputs)
    if fmt == "safetensors":
        return write_safetensors(src, out, inputs, prov)
    return write_vjepa(src, out, prov)
