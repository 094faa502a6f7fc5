"""Heads trained on frozen tokens: the attentive probe (V-JEPA 2) and a light dense head.

AttentiveProbe: optional self-attention blocks over the tokens, then one cross-attention
block whose single learned query attends to them (queries not normalised, keys/values are),
then a linear layer. DenseHead: per-patch linear decoder on the time-averaged patch tokens,
pixel-shuffled back to the clip resolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttentionBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B, Q, D) queries, x (B, N, D) tokens -> (B, Q, D)."""
        B, N, D = x.shape
        h = self.num_heads
        xn = self.norm1(x)
        qh = self.q(q).unflatten(-1, (h, D // h)).transpose(1, 2)  # (B, h, Q, D/h)
        k, v = self.kv(xn).unflatten(-1, (2, h, D // h)).permute(2, 0, 3, 1, 4)  # each (B, h, N, D/h)
        a = F.scaled_dot_product_attention(qh, k, v).transpose(1, 2).reshape(B, -1, D)
        q = q + a
        return q + self.mlp(self.norm2(q))


class AttentiveProbe(nn.Module):
    """tokens (B, N, D) -> outputs (B, out_dim)."""

    def __init__(self, dim: int, out_dim: int, num_heads: int = 4, depth: int = 1) -> None:
        super().__init__()
        heads = num_heads if dim % num_heads == 0 else 1
        self.blocks = nn.ModuleList(
            nn.TransformerEncoderLayer(
                dim, heads, 4 * dim, dropout=0.0, activation="gelu", batch_first=True, norm_first=True
            )
            for _ in range(depth - 1)
        )
        self.query = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.trunc_normal_(self.query, std=0.02)
        self.cross = CrossAttentionBlock(dim, heads)
        self.head = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)
        q = self.cross(self.query.expand(x.size(0), -1, -1), x)  # (B, 1, D)
        return self.head(q.squeeze(1))


class DenseHead(nn.Module):
    """tokens (B, T'*H'*W', D) -> per-pixel maps (B, out_ch, H'*p, W'*p)."""

    def __init__(self, dim: int, out_ch: int, grid: tuple[int, int, int], patch: int) -> None:
        super().__init__()
        self.grid, self.patch, self.out_ch = grid, patch, out_ch
        self.norm = nn.LayerNorm(dim)
        self.proj = nn.Linear(dim, out_ch * patch * patch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t, h, w = self.grid
        x = x.view(x.size(0), t, h * w, -1).mean(dim=1)  # (B, H'W', D): average over time
        y = self.proj(self.norm(x))  # (B, H'W', C*p*p)
        y = y.transpose(1, 2).reshape(x.size(0), self.out_ch * self.patch**2, h, w)
        return F.pixel_shuffle(y, self.patch)  # (B, C, H'p, W'p)
