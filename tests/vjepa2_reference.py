"""The public V-JEPA 2 encoder and predictor, transcribed from facebookresearch/vjepa2 (commit c2963a4),
for tests that check our models against released weights' own arithmetic and checkpoint layout.

src/models/utils/modules.py (rotate_queries_or_keys, RoPEAttention, Block, MLP),
src/models/vision_transformer.py (VisionTransformer with use_rope=True, handle_nonsquare_inputs),
src/models/predictor.py (the parameter names of VisionTransformerPredictor) and src/masks/utils.py
(apply_masks). Only eval-time paths (no dropout, drop-path, checkpointing). It is written from their
code, not ours: its module names define the checkpoint layout, its arithmetic the function released
weights were trained for.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def rotate_queries_or_keys(x, pos):
    B, num_heads, N, D = x.size()
    omega = torch.arange(D // 2, dtype=x.dtype, device=x.device)
    omega /= D / 2.0
    omega = 1.0 / 10000**omega  # (D/2,)
    freq = torch.einsum("..., f -> ... f", pos, omega)  # (..., N, D/2)
    emb_sin = freq.sin()
    emb_cos = freq.cos()
    emb_sin = emb_sin.squeeze(-1).repeat(1, 1, 1, 2)  # V-JEPA 2's duplicated-frequency quirk
    emb_cos = emb_cos.squeeze(-1).repeat(1, 1, 1, 2)
    y = x.unflatten(-1, (-1, 2))
    y1, y2 = y.unbind(dim=-1)
    y = torch.stack((-y2, y1), dim=-1)
    y = y.flatten(-2)
    return (x * emb_cos) + (y * emb_sin)


class VJEPA2RoPEAttention(torch.nn.Module):
    def __init__(self, dim, num_heads):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = head_dim = dim // num_heads
        self.qkv = torch.nn.Linear(dim, dim * 3, bias=True)
        self.proj = torch.nn.Linear(dim, dim)
        self.d_dim = self.h_dim = self.w_dim = int(2 * ((head_dim // 3) // 2))

    def separate_positions(self, ids, H_patches, W_patches):
        tokens_per_frame = int(H_patches * W_patches)
        tokens_per_row = W_patches
        frame_ids = ids // tokens_per_frame
        height_ids = (ids - tokens_per_frame * frame_ids) // tokens_per_row
        width_ids = (ids - tokens_per_frame * frame_ids) - tokens_per_row * height_ids
        return frame_ids, height_ids, width_ids

    def forward(self, x, mask, T, H_patches, W_patches):
        B, N, C = x.size()
        qkv = self.qkv(x).unflatten(-1, (3, self.num_heads, -1)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # [B, num_heads, N, D]
        if mask is not None:
            mask = mask.unsqueeze(1).repeat(1, self.num_heads, 1)
        else:
            mask = torch.arange(int(T * H_patches * W_patches), device=x.device)
        d_mask, h_mask, w_mask = self.separate_positions(mask, H_patches, W_patches)
        s = 0
        qd = rotate_queries_or_keys(q[..., s : s + self.d_dim], pos=d_mask)
        kd = rotate_queries_or_keys(k[..., s : s + self.d_dim], pos=d_mask)
        s += self.d_dim
        qh = rotate_queries_or_keys(q[..., s : s + self.h_dim], pos=h_mask)
        kh = rotate_queries_or_keys(k[..., s : s + self.h_dim], pos=h_mask)
        s += self.h_dim
        qw = rotate_queries_or_keys(q[..., s : s + self.w_dim], pos=w_mask)
        kw = rotate_queries_or_keys(k[..., s : s + self.w_dim], pos=w_mask)
        s += self.w_dim
        if s < self.head_dim:
            q = torch.cat([qd, qh, qw, q[..., s:]], dim=-1)
            k = torch.cat([kd, kh, kw, k[..., s:]], dim=-1)
        else:
            q = torch.cat([qd, qh, qw], dim=-1)
            k = torch.cat([kd, kh, kw], dim=-1)
        x = F.scaled_dot_product_attention(q, k, v)
        x = x.transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class VJEPA2MLP(torch.nn.Module):
    def __init__(self, in_features, hidden_features):
        super().__init__()
        self.fc1 = torch.nn.Linear(in_features, hidden_features)
        self.act = torch.nn.GELU()
        self.fc2 = torch.nn.Linear(hidden_features, in_features)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(x)))


class VJEPA2Block(torch.nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio):
        super().__init__()
        self.norm1 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.attn = VJEPA2RoPEAttention(dim, num_heads)
        self.norm2 = torch.nn.LayerNorm(dim, eps=1e-6)
        self.mlp = VJEPA2MLP(dim, int(dim * mlp_ratio))

    def forward(self, x, mask, T, H_patches, W_patches):
        x = x + self.attn(self.norm1(x), mask=mask, T=T, H_patches=H_patches, W_patches=W_patches)
        return x + self.mlp(self.norm2(x))


class VJEPA2PatchEmbed3D(torch.nn.Module):
    def __init__(self, patch_size, tubelet_size, in_chans, embed_dim):
        super().__init__()
        k = (tubelet_size, patch_size, patch_size)
        self.proj = torch.nn.Conv3d(in_channels=in_chans, out_channels=embed_dim, kernel_size=k, stride=k)

    def forward(self, x):
        return self.proj(x).flatten(2).transpose(1, 2)


class VJEPA2VisionTransformer(torch.nn.Module):
    def __init__(self, embed_dim, depth, num_heads, mlp_ratio, patch_size=16, tubelet_size=2):
        super().__init__()
        self.patch_size, self.tubelet_size = patch_size, tubelet_size
        self.patch_embed = VJEPA2PatchEmbed3D(patch_size, tubelet_size, 3, embed_dim)
        self.blocks = torch.nn.ModuleList(VJEPA2Block(embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.norm = torch.nn.LayerNorm(embed_dim, eps=1e-6)

    def forward(self, x, masks=None):
        if masks is not None and not isinstance(masks, list):
            masks = [masks]
        _, _, T, H, W = x.shape
        T = T // self.tubelet_size
        H_patches, W_patches = H // self.patch_size, W // self.patch_size
        x = self.patch_embed(x)
        if masks is not None:
            x = torch.cat([torch.gather(x, 1, m.unsqueeze(-1).repeat(1, 1, x.size(-1))) for m in masks], dim=0)
            masks = torch.cat(masks, dim=0)
        for blk in self.blocks:
            x = blk(x, mask=masks, T=T, H_patches=H_patches, W_patches=W_patches)
        return self.norm(x)


class VJEPA2PredictorLayout(torch.nn.Module):
    """The parameter names and shapes of vjepa2's ``VisionTransformerPredictor`` (RoPE, no positional
    table, ``num_mask_tokens`` learnable mask tokens): what a released file's ``predictor`` holds."""

    def __init__(self, embed_dim, predictor_embed_dim, depth, num_heads, num_mask_tokens=2, mlp_ratio=4.0):
        super().__init__()
        self.predictor_embed = torch.nn.Linear(embed_dim, predictor_embed_dim, bias=True)
        self.mask_tokens = torch.nn.ParameterList(
            [torch.nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens)]
        )
        self.predictor_blocks = torch.nn.ModuleList(
            VJEPA2Block(predictor_embed_dim, num_heads, mlp_ratio) for _ in range(depth)
        )
        self.predictor_norm = torch.nn.LayerNorm(predictor_embed_dim, eps=1e-6)
        self.predictor_proj = torch.nn.Linear(predictor_embed_dim, embed_dim, bias=True)


def write_released(path, predictor_depth: int = 1, seed: int = 0, dims=(48, 2, 2)) -> dict[str, torch.nn.Module]:
    """A released checkpoint (of vit_pico's size by default: width, depth, heads ``dims``) as vjepa2
    writes it: DDP-prefixed state dicts of its own modules, the EMA teacher with other weights than the
    online encoder, a predictor 32 wide of ``predictor_depth`` blocks. -> the encoder modules."""
    torch.manual_seed(seed)
    enc, ema = VJEPA2VisionTransformer(*dims, mlp_ratio=4.0), VJEPA2VisionTransformer(*dims, mlp_ratio=4.0)
    pred = VJEPA2PredictorLayout(dims[0], 32, predictor_depth, 2)
    for m in (enc, ema, pred):
        for p in m.parameters():  # off every default (zeros, ones): a parameter left unloaded would show
            torch.nn.init.normal_(p, std=0.2)
    sd = {
        k: {f"module.{n}": v for n, v in m.state_dict().items()}
        for k, m in (("encoder", enc), ("target_encoder", ema), ("predictor", pred))
    }
    torch.save({**sd, "epoch": 300, "loss": 0.1}, path)
    return {"encoder": enc, "target_encoder": ema}
