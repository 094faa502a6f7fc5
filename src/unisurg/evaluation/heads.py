"""Heads trained on frozen tokens: the attentive probe (V-JEPA 2) and a light dense head.

AttentiveProbe: optional self-attention blocks over the tokens, then one cross-attention
block whose single learned query attends to them (queries not normalised, keys/values are),
then a linear layer. DenseHead: per-patch linear decoder on the time-averaged patch tokens,
pixel-shuffled back to the clip resolution.

The cross-attention with one query is computed without projecting every token to keys and
values (exactly, not approximately). For attention head h with query q_h (d,), key/value
weights W_k,h, W_v,h (d, D) and the token LayerNorm LN(x_n) = g * x̂_n + b:

    logit_hn = q_h · (W_k,h LN(x_n) + c) / sqrt(d) = x̂_n · (g * W_k,h^T q_h) / sqrt(d) + const_h
    out_h    = sum_n a_hn (W_v,h LN(x_n) + c_v) = W_v,h (g * sum_n a_hn x̂_n + b) + c_v

(the constant is the same for every token, so the softmax ignores it). Per sample this costs
O(N·D·heads) instead of O(N·D²) for the key/value projections — ~50x fewer FLOPs for a
192-wide encoder — which is what lets the probe grid train many epochs on a CPU.
:func:`reference_cross_attention` is the textbook computation the tests compare against.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class CrossAttentionBlock(nn.Module):
    """V-JEPA's probe block: q + attn(q, norm1(x)) -> + mlp(norm2(.)); attn has q/kv/proj linears."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(dim)
        self.q = nn.Linear(dim, dim)
        self.kv = nn.Linear(dim, 2 * dim)
        self.proj = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, int(dim * mlp_ratio)), nn.GELU(), nn.Linear(int(dim * mlp_ratio), dim))

    def attend(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B or 1, 1, D) query, x (B, N, D) tokens -> attention output (B, 1, D), token-linear
        cost. A query shared by the batch (its first dim 1) is projected once, not per sample."""
        B, N, D = x.shape
        h, d = self.num_heads, D // self.num_heads
        xh = F.layer_norm(x, (D,))  # x̂: normalised, affine folded in below
        g, b = self.norm1.weight, self.norm1.bias
        wk, wv = self.kv.weight[:D].view(h, d, D), self.kv.weight[D:].view(h, d, D)
        qh = self.q(q).view(-1, h, d)  # (B or 1, h, d)
        u = torch.einsum("bhd,hde->bhe", qh, wk) * g  # (B or 1, h, D): g * W_k,h^T q_h
        # a shared query: (B, N, D) @ (D, h) is one matrix product, also for a vmapped grid of heads
        logits = xh @ u[0].T if u.size(0) == 1 else torch.einsum("bnd,bhd->bnh", xh, u)  # (B, N, h)
        a = (logits.transpose(1, 2) / math.sqrt(d)).softmax(-1)  # (B, h, N)
        pooled = torch.matmul(a, xh) * g + b  # (B, h, D): sum_n a_hn LN(x_n)
        v = torch.einsum("bhe,hde->bhd", pooled, wv) + self.kv.bias[D:].view(h, d)  # (B, h, d)
        return self.proj(v.reshape(B, 1, D))

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B or 1, 1, D) query, x (B, N, D) tokens -> (B, 1, D)."""
        q = q + self.attend(q, x)
        return q + self.mlp(self.norm2(q))


def reference_cross_attention(block: CrossAttentionBlock, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The textbook computation of :meth:`CrossAttentionBlock.attend` (project every token)."""
    B, N, D = x.shape
    h = block.num_heads
    qh = block.q(q).unflatten(-1, (h, D // h)).transpose(1, 2)  # (B, h, Q, d)
    k, v = block.kv(block.norm1(x)).unflatten(-1, (2, h, D // h)).permute(2, 0, 3, 1, 4)  # each (B, h, N, d)
    return block.proj(F.scaled_dot_product_attention(qh, k, v).transpose(1, 2).reshape(B, -1, D))


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
        q = self.cross(self.query, x)  # (B, 1, D): the learned query (1, 1, D) is shared by the batch
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
