"""One encoder interface for evaluation and feature extraction.

Every encoder maps a normalised clip batch (B, 3, T, H, W) to tokens (B, N, D) and exposes
``patch_size``, ``tubelet_size`` and ``embed_dim`` (dense heads rebuild the token grid
(T/tubelet, H/patch, W/patch) from them). An encoder is named by a *spec* string, the
values of ``evaluate.models`` in ``params.yaml`` and of ``--encoder`` on the command line:

``path/to/encoder.pt``
    our self-describing checkpoint (architecture stored inside); also ``encoder.safetensors`` from
    ``unisurg export --format safetensors``.
``hf:<folder>``
    a local folder in the Hugging Face transformers V-JEPA 2 layout (``config.json`` +
    ``model.safetensors``: ``unisurg export --format transformers``, or Meta's published weights),
    converted by :mod:`unisurg.models.hf`; nothing is downloaded.
``vjepa:<arch>:<path>[:<key>]``
    public V-JEPA 2 / SurgMotion weights (e.g. ``vjepa:vit_large:/ckpt/vitl.pt``); ``key`` is
    ``target_encoder`` (what V-JEPA evaluates) or ``encoder`` (what SurgMotion evaluates); without
    it, the evaluation protocol's ``checkpoint_key``.
``random:<arch>``
    an untrained encoder, initialised from the seed (the baseline every score is compared with).
``timm:<model>[:<path>]``
    a timm image backbone applied frame-wise (baseline); weights from a local file (nothing is
    downloaded), or random when no path is given.

:func:`load_encoder_spec` returns the module and a *weights id* (file sha256, or the spec and
seed for random weights): the feature cache and every result are keyed on it.
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..io import sha256_file
from ..models import create_model, list_models
from ..models.checkpoint import load_encoder, load_vjepa_checkpoint

log = logging.getLogger(__name__)


class FramewiseEncoder(nn.Module):
    """A timm image model applied to every frame: (B, 3, T, H, W) -> (B, T*h*w, D).

    Tokens are the backbone's final feature map (CNNs: (C, h, w) flattened; ViTs: patch
    tokens without the class/register tokens), frame after frame, so attentive probes and
    dense heads see the same layout as from a video ViT with ``tubelet_size`` 1.
    """

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.model = model
        self.tubelet_size = 1
        with torch.no_grad():
            was_training = model.training
            model.eval()
            grid = self._frame_tokens(torch.zeros(1, 3, size, size)).shape  # (1, h*w, D)
            model.train(was_training)
        side = int(round(grid[1] ** 0.5))
        if side * side != grid[1] or size % side:
            raise ValueError(f"timm model gives {grid[1]} tokens at {size}px: not a square grid dividing the input")
        self.patch_size = size // side
        self.embed_dim = int(grid[2])

    def _frame_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """x (F, 3, H, W) -> (F, h*w, D)."""
        f = self.model.forward_features(x)
        if f.dim() == 4:  # CNN feature map (F, C, h, w)
            return f.flatten(2).transpose(1, 2)
        return f[:, getattr(self.model, "num_prefix_tokens", 0) :]  # ViT tokens (F, prefix + h*w, D)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, C, T, H, W = x.shape
        frames = x.transpose(1, 2).reshape(B * T, C, H, W)
        tokens = self._frame_tokens(frames)  # (B*T, h*w, D)
        return tokens.reshape(B, T * tokens.size(1), tokens.size(2))


class MultiLayer(nn.Module):
    """Multi-level features: the tokens of an encoder's blocks ``layers`` (each through the final
    LayerNorm, vjepa2's ``out_layers``) concatenated along the channel axis: (B, N, D * len(layers)).

    Same token grid as the encoder, so probes and dense heads take it like any encoder."""

    def __init__(self, encoder: nn.Module, layers: list[int]) -> None:
        super().__init__()
        if not hasattr(encoder, "forward_intermediates"):
            raise ValueError(f"{type(encoder).__name__} has no intermediate layers: use its final tokens (no layers)")
        self.encoder, self.layers = encoder, list(layers)
        self.patch_size, self.tubelet_size = encoder.patch_size, encoder.tubelet_size
        self.embed_dim = encoder.embed_dim * len(self.layers)
        bad = [i for i in self.layers if not -encoder.depth <= i < encoder.depth]
        if bad or not self.layers:
            raise IndexError(f"layers {self.layers}: the encoder has blocks 0..{encoder.depth - 1}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.encoder.forward_intermediates(x, self.layers), dim=-1)


def _timm_encoder(name: str, path: str | None, size: int) -> nn.Module:
    import timm

    if name not in timm.list_models():
        raise UsageError(f"timm has no model {name!r} (timm.list_models() names them, e.g. resnet50)")
    kwargs: dict = {"num_classes": 0}
    if path is not None:
        # timm loads a local file through the pretrained config (head removed for num_classes=0);
        # nothing is fetched from the network.
        kwargs.update(pretrained=True, pretrained_cfg_overlay={"file": str(path)})
    try:
        model = timm.create_model(name, img_size=size, **kwargs)  # ViTs: positional grid for this size
    except TypeError:
        model = timm.create_model(name, **kwargs)  # CNNs take no img_size
    return FramewiseEncoder(model, size)


def load_encoder_spec(
    spec: str, seed: int = 0, size: int = 64, vjepa_key: str = "target_encoder"
) -> tuple[nn.Module, str]:
    """Build the encoder a spec names (see the module docstring) -> (model in eval mode, weights id).

    ``size`` is the clip side the encoder will see (timm ViTs are built for it); ``vjepa_key`` the
    weights a ``vjepa:`` checkpoint is read from when the spec names none (the protocol's).
    """
    kind, _, rest = spec.partition(":")
    if kind in ("random", "timm", "vjepa", "hf") and not rest:
        raise UsageError(f"encoder spec {spec!r}: nothing after '{kind}:' ({SPEC_FORMS})")
    if kind == "random" and rest:
        torch.manual_seed(seed)
        model, wid = create_model(rest), f"{spec}@seed{seed}"
    elif kind == "timm" and rest:
        name, _, path = rest.partition(":")
        if path:
            _require_file(path, spec)
            model, wid = _timm_encoder(name, path, size), f"timm:{name}@{sha256_file(path)}"
        else:
            torch.manual_seed(seed)
            model, wid = _timm_encoder(name, None, size), f"timm:{name}@random-seed{seed}@{size}"
    elif kind == "vjepa" and rest:
        parts = rest.split(":")
        if len(parts) not in (2, 3) or parts[0] not in list_models():
            raise UsageError(
                f"encoder spec {spec!r}: expected vjepa:<arch>:<path>[:<key>] with <arch> one of "
                f"{', '.join(list_models())} (e.g. vjepa:vit_large:/ckpt/vitl.pt)"
            )
        arch, path = parts[0], parts[1]
        key = parts[2] if len(parts) == 3 else vjepa_key
        _require_file(path, spec)
        model, wid = load_vjepa_checkpoint(path, arch, key), f"{sha256_file(path)}:{key}"
    elif kind == "hf" and rest:
        from ..models.hf import load_hf

        hf = load_hf(rest)
        model, wid = hf.encoder, f"hf:{hf.digest}"
    else:
        _require_file(spec, spec)
        model, wid = load_encoder(spec), sha256_file(spec)
    return model.eval(), wid


SPEC_FORMS = "a checkpoint path, random:<arch>, vjepa:<arch>:<path>[:<key>], hf:<folder> or timm:<name>[:<path>]"


def _require_file(path: str, spec: str) -> None:
    if not Path(path).is_file():
        raise FileNotFoundError(f"encoder {spec!r}: no file {path} (an encoder spec is {SPEC_FORMS})")
