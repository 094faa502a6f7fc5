"""V-JEPA predictor: a narrow ViT that predicts target-token latents from context tokens.

Context tokens (encoder width) are projected to the predictor width, learnable zero-init
mask tokens are placed at the target positions, all tokens are sorted by position (so RoPE
sees the true 3D layout), processed, and only the target tokens are projected back to the
encoder width. Parameter names follow V-JEPA 2 (``predictor_embed``, ``mask_tokens.k``,
``predictor_blocks``, ``predictor_norm``, ``predictor_proj``).
"""

from __future__ import annotations

import torch
from torch import nn

from .rope import token_positions
from .vit import Block, apply_masks, init_vit_weights


class Predictor(nn.Module):
    def __init__(
        self,
        embed_dim: int,
        predictor_embed_dim: int = 384,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        num_mask_tokens: int = 2,
        out_embed_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.predictor_embed_dim = predictor_embed_dim
        self.predictor_embed = nn.Linear(embed_dim, predictor_embed_dim)
        self.mask_tokens = nn.ParameterList(
            nn.Parameter(torch.zeros(1, 1, predictor_embed_dim)) for _ in range(num_mask_tokens)
        )
        self.predictor_blocks = nn.ModuleList(Block(predictor_embed_dim, num_heads, mlp_ratio) for _ in range(depth))
        self.predictor_norm = nn.LayerNorm(predictor_embed_dim, eps=1e-6)
        self.predictor_proj = nn.Linear(predictor_embed_dim, out_embed_dim or embed_dim)
        init_vit_weights(self, self.predictor_blocks)
        self._config = {
            "embed_dim": embed_dim,
            "predictor_embed_dim": predictor_embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "num_mask_tokens": num_mask_tokens,
            "out_embed_dim": out_embed_dim,
        }

    @property
    def config(self) -> dict:
        return dict(self._config)

    def forward(
        self,
        ctx: torch.Tensor,
        masks_ctx: torch.Tensor,
        masks_tgt: torch.Tensor,
        grid: tuple[int, int, int],
        mask_index: int = 0,
    ) -> torch.Tensor:
        """ctx (B, Kc, D) context tokens at indices masks_ctx (B, Kc); predict targets at masks_tgt (B, Kt).

        Returns (B, Kt, out_embed_dim) in the order of ``masks_tgt``.
        """
        B, kc = masks_ctx.shape
        n_tokens = grid[0] * grid[1] * grid[2]
        x = self.predictor_embed(ctx)  # (B, Kc, P)
        tok = self.mask_tokens[mask_index % len(self.mask_tokens)]
        pred = apply_masks(tok.expand(B, n_tokens, -1), [masks_tgt])  # (B, Kt, P)
        x = torch.cat([x, pred], dim=1)  # (B, Kc + Kt, P)
        ids = torch.cat([masks_ctx, masks_tgt], dim=1)  # (B, Kc + Kt)
        order = torch.argsort(ids, dim=1)
        ids = torch.gather(ids, 1, order)
        x = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        pos = token_positions(ids.unsqueeze(1), grid[1], grid[2])  # each (B, 1, K) -> broadcast over heads
        for blk in self.predictor_blocks:
            x = blk(x, pos)
        x = self.predictor_norm(x)
        x = torch.gather(x, 1, torch.argsort(order, dim=1).unsqueeze(-1).expand_as(x))  # undo the sort
        return self.predictor_proj(x[:, kc:])
