"""Multiblock 3D masking (V-JEPA): target = union of spatio-temporal blocks, context = the rest.

For each mask generator a block size is drawn once per batch (spatial scale, aspect ratio,
temporal scale), then each sample places ``num_blocks`` blocks at random positions. The
union of the blocks is the prediction target; its complement is the encoder's context.
Index lists are truncated to the shortest in the batch so they stack into (B, K) tensors
(this drops the highest indices, as V-JEPA does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class MaskSpec:
    num_blocks: int
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)


def _uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return lo + (hi - lo) * float(torch.rand(1, generator=g))


def block_size(spec: MaskSpec, grid: tuple[int, int, int], g: torch.Generator) -> tuple[int, int, int]:
    """(t, h, w) extent of one block in tokens for a (T', H', W') grid."""
    T, H, W = grid
    t = max(1, int(T * _uniform(g, *spec.temporal_scale)))
    keep = int(H * W * _uniform(g, *spec.spatial_scale))
    ar = _uniform(g, *spec.aspect_ratio)
    h = min(max(1, int(round(math.sqrt(keep * ar)))), H)
    w = min(max(1, int(round(math.sqrt(keep / ar)))), W)
    return t, h, w


def sample_masks(
    batch_size: int, grid: tuple[int, int, int], spec: MaskSpec, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (context, target) index tensors, each (B, K) int64, sorted ascending per row."""
    T, H, W = grid
    t, h, w = block_size(spec, grid, g)
    ctx, tgt = [], []
    for _ in range(batch_size):
        for _attempt in range(20):
            keep = torch.ones(T, H, W, dtype=torch.bool)
            for _ in range(spec.num_blocks):
                t0 = int(torch.randint(0, T - t + 1, (1,), generator=g))
                y0 = int(torch.randint(0, H - h + 1, (1,), generator=g))
                x0 = int(torch.randint(0, W - w + 1, (1,), generator=g))
                keep[t0 : t0 + t, y0 : y0 + h, x0 : x0 + w] = False
            flat = keep.flatten()
            if flat.any() and (~flat).any():  # need some context and some target
                break
        ctx.append(torch.nonzero(flat).squeeze(1))
        tgt.append(torch.nonzero(~flat).squeeze(1))
    kc = min(len(c) for c in ctx)
    kt = min(len(c) for c in tgt)
    return torch.stack([c[:kc] for c in ctx]), torch.stack([c[:kt] for c in tgt])


class MaskCollator:
    """DataLoader collate_fn: stacks clips and draws one (context, target) pair per mask spec.

    Seeded from (seed, batch counter) so a resumed run draws the same masks as an uninterrupted one.
    """

    def __init__(self, specs: list[MaskSpec], grid: tuple[int, int, int], seed: int) -> None:
        self.specs, self.grid, self.seed = specs, grid, seed

    def __call__(self, batch_index: int, batch_size: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + batch_index)
        return [sample_masks(batch_size, self.grid, s, g) for s in self.specs]
