"""Heads trained on frozen tokens: the attentive probe (V-JEPA 2) and a light dense head.

:class:`AttentiveProbe` is V-JEPA 2's ``AttentiveClassifier`` (``src/models/attentive_pooler.py``)
with one learned query, parameter for parameter, so probes trained by vjepa2 or SurgMotion load
without renaming (:func:`load_vjepa_probe`): ``depth - 1`` pre-norm self-attention blocks over the
tokens (no position encoding: the tokens carry the encoder's), then one cross-attention block in
which the query attends to the normalised tokens (``norm1`` normalises the tokens, not the query;
no output projection) and is added back, then an MLP on ``norm2`` with a residual, then ``linear``.
LayerNorms use torch's default eps 1e-5 (the probe, unlike the encoder, is built with plain
``nn.LayerNorm``), GELU is the exact one. The mini protocol trains it at depth 1 (the cross-attention
block alone); the ``surgmotion`` protocol at depth 4 with 16 heads, as the paper's configs do.
:class:`DenseHead`: per-patch linear decoder on the time-averaged patch tokens, pixel-shuffled back
to the clip resolution.

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
import os
import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UsageError
from ..models.checkpoint import load_checkpoint, strip_prefixes
from ..models.vit import MLP, init_vit_weights


class SelfAttention(nn.Module):
    """Multi-head self-attention without position encoding (vjepa2's ``Attention``): ``qkv``, ``proj``."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, 3 * dim, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, N, D) -> (B, N, D)."""
        B, N, D = x.shape
        h = self.num_heads
        q, k, v = self.qkv(x).unflatten(-1, (3, h, D // h)).permute(2, 0, 3, 1, 4)  # each (B, h, N, d)
        y = F.scaled_dot_product_attention(q, k, v)  # (B, h, N, d)
        return self.proj(y.transpose(1, 2).reshape(B, N, D))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm1(x)) -> + mlp(norm2(.))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = SelfAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.norm1(x))
        return x + self.mlp(self.norm2(x))


class CrossAttention(nn.Module):
    """The parameters ``q``, ``kv`` of vjepa2's ``CrossAttention`` (it has no output projection).

    :meth:`forward` is the textbook computation; the probe uses the token-linear
    :meth:`CrossAttentionBlock.attend` instead."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.q = nn.Linear(dim, dim, bias=qkv_bias)
        self.kv = nn.Linear(dim, 2 * dim, bias=qkv_bias)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B, Q, D) queries, x (B, N, D) (normalised) tokens -> (B, Q, D), every token projected."""
        B, N, D = x.shape
        h = self.num_heads
        qh = self.q(q).unflatten(-1, (h, D // h)).transpose(1, 2)  # (B, h, Q, d)
        k, v = self.kv(x).unflatten(-1, (2, h, D // h)).permute(2, 0, 3, 1, 4)  # each (B, h, N, d)
        return F.scaled_dot_product_attention(qh, k, v).transpose(1, 2).reshape(B, -1, D)


class CrossAttentionBlock(nn.Module):
    """V-JEPA's probe block: q + xattn(q, norm1(x)) -> + mlp(norm2(.))."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.xattn = CrossAttention(dim, num_heads, qkv_bias)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = MLP(dim, int(dim * mlp_ratio))

    def attend(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B or 1, 1, D) query, x (B, N, D) tokens -> xattn(q, norm1(x)) (B, 1, D), at token-linear
        cost. A query shared by the batch (its first dim 1) is projected once, not per sample."""
        B, N, D = x.shape
        h, d = self.xattn.num_heads, D // self.xattn.num_heads
        kv = self.xattn.kv
        xh = F.layer_norm(x, (D,), eps=self.norm1.eps)  # x̂: normalised, affine folded in below
        g, b = self.norm1.weight, self.norm1.bias
        wk, wv = kv.weight[:D].view(h, d, D), kv.weight[D:].view(h, d, D)
        qh = self.xattn.q(q).view(-1, h, d)  # (B or 1, h, d)
        u = torch.einsum("bhd,hde->bhe", qh, wk) * g  # (B or 1, h, D): g * W_k,h^T q_h
        # a shared query: (B, N, D) @ (D, h) is one matrix product, also for a vmapped grid of heads
        logits = xh @ u[0].T if u.size(0) == 1 else torch.einsum("bnd,bhd->bnh", xh, u)  # (B, N, h)
        a = (logits.transpose(1, 2) / math.sqrt(d)).softmax(-1)  # (B, h, N)
        pooled = torch.matmul(a, xh) * g + b  # (B, h, D): sum_n a_hn LN(x_n)
        v = torch.einsum("bhe,hde->bhd", pooled, wv)  # (B, h, d)
        if kv.bias is not None:
            v = v + kv.bias[D:].view(h, d)
        return v.reshape(B, 1, D)

    def forward(self, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """q (B or 1, 1, D) query, x (B, N, D) tokens -> (B, 1, D)."""
        q = q + self.attend(q, x)
        return q + self.mlp(self.norm2(q))


def reference_cross_attention(block: CrossAttentionBlock, q: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The textbook computation of :meth:`CrossAttentionBlock.attend` (project every token)."""
    return block.xattn(q, block.norm1(x))


class AttentivePooler(nn.Module):
    """vjepa2's ``AttentivePooler`` with one query: tokens (B, N, D) -> pooled (B, 1, D)."""

    def __init__(
        self, dim: int, num_heads: int, depth: int, mlp_ratio: float, qkv_bias: bool, std: float = 0.02
    ) -> None:
        super().__init__()
        self.query_tokens = nn.Parameter(torch.zeros(1, 1, dim))
        self.blocks = nn.ModuleList(Block(dim, num_heads, mlp_ratio, qkv_bias) for _ in range(depth - 1))
        self.cross_attention_block = CrossAttentionBlock(dim, num_heads, mlp_ratio, qkv_bias)
        self._init_weights(std)

    @torch.no_grad()
    def _init_weights(self, std: float) -> None:
        """vjepa2's init: trunc-normal (std, cut at ±2 absolute) query and linear weights, zero
        biases, unit LayerNorms; then block i's ``attn.proj`` and ``mlp.fc2`` weights are divided by
        sqrt(2·(i+1)), and the cross-attention block's ``mlp.fc2`` by the last block's factor
        (sqrt(2) without blocks: vjepa2's layer id stays at its last value)."""
        nn.init.trunc_normal_(self.query_tokens, std=std)
        init_vit_weights(self, self.blocks, std)  # the encoder's V-JEPA init, blocks rescaled by depth
        self.cross_attention_block.mlp.fc2.weight.div_(math.sqrt(2.0 * max(len(self.blocks), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for blk in self.blocks:
            x = blk(x)  # (B, N, D)
        # the learned query (1, 1, D) is shared by the batch (vjepa2 repeats it: same result)
        return self.cross_attention_block(self.query_tokens, x)  # (B, 1, D)


class AttentiveProbe(nn.Module):
    """tokens (B, N, D) -> outputs (B, out_dim): vjepa2's ``AttentiveClassifier`` (one query,
    ``depth - 1`` self-attention blocks, then cross-attention, then ``linear``).

    ``linear`` keeps torch's default initialisation, as in vjepa2 (its init touches only the pooler).
    """

    def __init__(
        self,
        dim: int,
        out_dim: int,
        num_heads: int = 4,
        depth: int = 1,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = True,
    ) -> None:
        super().__init__()
        if depth < 1:
            raise ValueError(f"probe depth {depth}: need at least 1 (the cross-attention block)")
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"probe width {dim} is not divisible by num_heads {num_heads}")
        self.pooler = AttentivePooler(dim, num_heads, depth, mlp_ratio, qkv_bias)
        self.linear = nn.Linear(dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.pooler(x).squeeze(1))


_BLOCK = re.compile(r"pooler\.blocks\.(\d+)\.")


def load_vjepa_probe(
    path: str | os.PathLike[str], head: int = 0, num_heads: int = 16, mlp_ratio: float = 4.0
) -> AttentiveProbe:
    """Head ``head`` of a vjepa2 / SurgMotion probe checkpoint as an :class:`AttentiveProbe` in eval mode.

    The file holds ``{"classifiers": [state dict per head], ...}`` (vjepa2 saves the DDP-wrapped
    heads, keys prefixed ``module.``; SurgMotion unwraps them: both are accepted). Width, depth
    and number of outputs come from the tensors; ``num_heads`` (which no tensor shows; 16 in both
    evals) and ``mlp_ratio`` must be given. Missing or unexpected keys and wrong shapes are errors
    that name them.
    """
    ckpt = load_checkpoint(path)  # a dict, or a UsageError naming what the file is instead
    heads = ckpt.get("classifiers")
    if not isinstance(heads, (list, tuple)):
        raise UsageError(f"{path}: not a probe checkpoint, no 'classifiers' list (has {sorted(ckpt)[:8]})")
    if not 0 <= head < len(heads):
        raise UsageError(f"{path}: head {head} out of range, the checkpoint holds {len(heads)} heads")
    state = strip_prefixes(heads[head])
    for key in ("pooler.query_tokens", "linear.weight"):
        if key not in state:
            raise UsageError(f"{path}: head {head} has no key {key!r}: not an attentive probe")
    dim, out_dim = state["pooler.query_tokens"].shape[-1], state["linear.weight"].shape[0]
    blocks = {int(m.group(1)) for k in state if (m := _BLOCK.match(k))}
    depth = max(blocks, default=-1) + 2  # blocks 0..n-1, then the cross-attention block
    probe = AttentiveProbe(dim, out_dim, num_heads=num_heads, depth=depth, mlp_ratio=mlp_ratio)
    own = probe.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [
        f"{k} {tuple(v.shape)} (expected {tuple(own[k].shape)})"
        for k, v in state.items()
        if k in own and v.shape != own[k].shape
    ]
    if missing or unexpected or wrong:
        raise ValueError(
            f"{path}: head {head} does not match an attentive probe of width {dim}, depth {depth}, "
            f"mlp_ratio {mlp_ratio}: missing {missing}, unexpected {unexpected}, wrong shapes {wrong}"
        )
    probe.load_state_dict(state)
    return probe.eval()


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
