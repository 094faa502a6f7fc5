"""Video ViT encoder compatible with V-JEPA 2 / SurgMotion checkpoints.

Architecture and parameter names follow the public V-JEPA 2 code so released ``.pt`` files
load without renaming: Conv3d tubelet patch embedding (``patch_embed.proj``), pre-norm blocks
(``blocks.i.norm1 / attn.qkv / attn.proj / norm2 / mlp.fc1 / mlp.fc2``), LayerNorm eps 1e-6,
GELU MLP, final ``norm``, 3D RoPE in every attention and no absolute position embedding.

Tokens are ordered t-major: index = t * (H'W') + h * W' + w for a (T', H', W') grid with
T' = T / tubelet, H' = H / patch, W' = W / patch. ``forward(x, masks)`` takes ``masks`` as
index tensors of the tokens to **keep** (the context), like V-JEPA's ``apply_masks``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from ..errors import UnknownName
from .rope import apply_rope_3d, token_positions

# --------------------------------------------------------------------------- registry

_MODELS: dict[str, Callable[..., VisionTransformer]] = {}


def register_model(fn: Callable[..., VisionTransformer]) -> Callable[..., VisionTransformer]:
    _MODELS[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    return sorted(_MODELS)


def create_model(name: str, **kwargs) -> VisionTransformer:
    """Build a registered encoder by name; unknown names and unknown kwargs raise."""
    if name not in _MODELS:
        raise UnknownName(f"unknown architecture {name!r}; registered: {', '.join(list_models())}")
    return _MODELS[name](**kwargs)


# --------------------------------------------------------------------------- layers


def apply_masks(x: torch.Tensor, masks: list[torch.Tensor]) -> torch.Tensor:
    """Gather tokens: x (B, N, D), each mask (B, K) of indices to keep -> (B * len(masks), K, D)."""
    out = [torch.gather(x, 1, m.unsqueeze(-1).expand(-1, -1, x.size(-1))) for m in masks]
    return torch.cat(out, dim=0)


class PatchEmbed3D(nn.Module):
    """(B, C, T, H, W) -> (B, N, D) with a Conv3d over tubelet x patch x patch cubes."""

    def __init__(self, patch_size: int, tubelet_size: int, in_chans: int, embed_dim: int) -> None:
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = nn.Conv3d(in_chans, embed_dim, kernel_size=k, stride=k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, act_layer: type[nn.Module] = nn.GELU) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = act_layer()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class RoPEAttention(nn.Module):
    """Multi-head self-attention with 3D RoPE on queries and keys (SDPA kernel)."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor, pos: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, self.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # each (B, heads, N, head_dim)
        q, k = apply_rope_3d(q, pos), apply_rope_3d(k, pos)
        x = F.scaled_dot_product_attention(q, k, v)  # (B, heads, N, head_dim)
        return self.proj(x.transpose(1, 2).reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = RoPEAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor, pos: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
        x = x + self.attn(self.norm1(x), pos)
        return x + self.mlp(self.norm2(x))


def init_vit_weights(module: nn.Module, blocks: nn.ModuleList, std: float = 0.02) -> None:
    """V-JEPA init: trunc-normal linear/conv weights, zero biases, then residual rescaling."""
    for m in module.modules():
        if isinstance(m, (nn.Linear, nn.Conv3d)):
            nn.init.trunc_normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
    for i, blk in enumerate(blocks):
        blk.attn.proj.weight.data.div_(math.sqrt(2.0 * (i + 1)))
        blk.mlp.fc2.weight.data.div_(math.sqrt(2.0 * (i + 1)))


# --------------------------------------------------------------------------- encoder


class VisionTransformer(nn.Module):
    """Video ViT encoder: (B, 3, T, H, W) -> tokens (B, N, embed_dim)."""

    def __init__(
        self,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        patch_size: int = 16,
        tubelet_size: int = 2,
        in_chans: int = 3,
        qkv_bias: bool = True,
        use_activation_checkpointing: bool = False,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.depth = depth
        self.num_heads = num_heads
        self.patch_size = patch_size
        self.tubelet_size = tubelet_size
        self.use_activation_checkpointing = use_activation_checkpointing
        self.patch_embed = PatchEmbed3D(patch_size, tubelet_size, in_chans, embed_dim)
        self.blocks = nn.ModuleList(Block(embed_dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth))
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)
        init_vit_weights(self, self.blocks)

    def grid(self, x: torch.Tensor) -> tuple[int, int, int]:
        """(T', H', W') token grid of an input clip (B, C, T, H, W)."""
        _, _, t, h, w = x.shape
        if t % self.tubelet_size or h % self.patch_size or w % self.patch_size:
            raise ValueError(
                f"clip {tuple(x.shape)} not divisible by tubelet {self.tubelet_size} / patch {self.patch_size}"
            )
        return t // self.tubelet_size, h // self.patch_size, w // self.patch_size

    def forward(self, x: torch.Tensor, masks: list[torch.Tensor] | torch.Tensor | None = None) -> torch.Tensor:
        """Encode clips x (B, C, T, H, W); with ``masks`` keep only those token indices per sample.

        Returns (B, N, D) without masks, (B * len(masks), K, D) with masks.
        """
        return self.forward_intermediates(x, [self.depth - 1], masks)[0]

    def forward_intermediates(
        self,
        x: torch.Tensor,
        layers: Sequence[int],
        masks: list[torch.Tensor] | torch.Tensor | None = None,
        norm: bool = True,
    ) -> list[torch.Tensor]:
        """The tokens after each block of ``layers`` (0-based, negative counts from the end), each
        through the final LayerNorm as vjepa2's ``out_layers`` returns them (``norm=False``: the raw
        residual stream): a list of (B, N, D), in the order asked. Blocks after the last one asked
        for are not run."""
        bad = [i for i in layers if not -self.depth <= i < self.depth]
        if bad or not layers:
            n = self.depth
            raise IndexError(f"layers {list(layers)}: this encoder has blocks 0..{n - 1} (or -{n}..-1)")
        wanted = {i % self.depth for i in layers}
        if x.ndim == 4:  # an image batch: repeat it over one tubelet
            x = x.unsqueeze(2).repeat(1, 1, self.tubelet_size, 1, 1)
        gt, gh, gw = self.grid(x)
        tokens = self.patch_embed(x)  # (B, N, D)
        if masks is not None:
            masks = [masks] if isinstance(masks, torch.Tensor) else masks
            tokens = apply_masks(tokens, masks)
            ids = torch.cat(masks, dim=0).unsqueeze(1)  # (B*M, 1, K): broadcast over heads
        else:
            ids = torch.arange(gt * gh * gw, device=x.device)
        pos = token_positions(ids, gh, gw)
        out: dict[int, torch.Tensor] = {}
        for i, blk in enumerate(self.blocks):
            if self.use_activation_checkpointing and self.training:
                tokens = checkpoint(blk, tokens, pos, use_reentrant=False)
            else:
                tokens = blk(tokens, pos)
            if i in wanted:
                out[i] = self.norm(tokens) if norm else tokens
                if len(out) == len(wanted):
                    break
        return [out[i % self.depth] for i in layers]

    @property
    def config(self) -> dict:
        """Constructor arguments: stored in checkpoints so they rebuild themselves."""
        return {
            "embed_dim": self.embed_dim,
            "depth": self.depth,
            "num_heads": self.num_heads,
            "mlp_ratio": self.blocks[0].mlp.fc1.out_features / self.embed_dim if self.depth else 4.0,
            "patch_size": self.patch_size,
            "tubelet_size": self.tubelet_size,
        }


# --------------------------------------------------------------------------- sizes
# Test/CPU variants first (timm-style tiny models so CI exercises the real builder), then
# the V-JEPA 2 sizes. head_dim = embed_dim / num_heads.


def _vit(embed_dim: int, depth: int, num_heads: int, mlp_ratio: float = 4.0, **kw) -> VisionTransformer:
    return VisionTransformer(embed_dim=embed_dim, depth=depth, num_heads=num_heads, mlp_ratio=mlp_ratio, **kw)


@register_model
def vit_pico(**kw) -> VisionTransformer:  # 2 x 48, for unit tests
    return _vit(48, 2, 2, **kw)


@register_model
def vit_nano(**kw) -> VisionTransformer:  # default distillation student on CPU
    return _vit(96, 4, 4, **kw)


@register_model
def vit_micro(**kw) -> VisionTransformer:  # default pretraining encoder on CPU
    return _vit(192, 6, 3, **kw)


@register_model
def vit_tiny(**kw) -> VisionTransformer:
    return _vit(192, 12, 3, **kw)


@register_model
def vit_small(**kw) -> VisionTransformer:
    return _vit(384, 12, 6, **kw)


@register_model
def vit_base(**kw) -> VisionTransformer:
    return _vit(768, 12, 12, **kw)


@register_model
def vit_large(**kw) -> VisionTransformer:  # SurgMotion-L / V-JEPA 2 ViT-L (300M)
    return _vit(1024, 24, 16, **kw)


@register_model
def vit_huge(**kw) -> VisionTransformer:
    return _vit(1280, 32, 16, **kw)


@register_model
def vit_giant(**kw) -> VisionTransformer:
    return _vit(1408, 40, 16, mlp_ratio=48 / 11, **kw)


@register_model
def vit_giant_xformers(**kw) -> VisionTransformer:  # SurgMotion-G / V-JEPA 2 ViT-g (1B)
    return _vit(1408, 40, 22, mlp_ratio=48 / 11, **kw)


@register_model
def vit_gigantic(**kw) -> VisionTransformer:
    return _vit(1664, 48, 16, mlp_ratio=64 / 13, **kw)


@register_model
def vit_gigantic_xformers(**kw) -> VisionTransformer:
    return _vit(1664, 48, 26, mlp_ratio=64 / 13, **kw)
