"""Multiblock 3D masking (V-JEPA): target = union of spatio-temporal blocks, context = the rest.

For each mask generator a block size is drawn once per batch (spatial scale, aspect ratio,
temporal scale), then each sample places ``num_blocks`` blocks at random positions. The
union of the blocks is the prediction target; its complement is the encoder's context, never
empty (positions are redrawn while the blocks cover every token, as in V-JEPA).
Index lists are truncated to the shortest in the batch so they stack into (B, K) tensors
(this drops the highest indices, as V-JEPA does).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_ATTEMPTS = 100  # redraws of a sample's block positions while its context is empty


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


def placement_probs(saliency: torch.Tensor, t: int, h: int, w: int, bias: float) -> torch.Tensor:
    """Probability of each block position (t0, y0, x0) ∝ (mean saliency under the block)^bias.

    saliency (T', H', W') -> (T'-t+1, H'-h+1, W'-w+1), sums to 1. bias 0 = uniform placement.
    """
    box = F.avg_pool3d(saliency[None, None].float(), kernel_size=(t, h, w), stride=1)[0, 0]
    score = box.clamp_min(1e-6) ** bias
    return score / score.sum()


def sample_masks(
    batch_size: int,
    grid: tuple[int, int, int],
    spec: MaskSpec,
    g: torch.Generator,
    saliency: torch.Tensor | None = None,
    bias: float = 0.0,
    sample_generators: list[torch.Generator] | None = None,
    lengths: tuple[int, int] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """-> (context, target) index tensors, each (B, K) int64, sorted ascending per row.

    The block size is drawn once from ``g`` (shared by the batch, as in V-JEPA); block positions
    from ``sample_generators[b]`` when given (so a sample's mask does not depend on which
    process draws it), else from ``g``. With ``saliency`` (B, T', H', W') and ``bias`` > 0,
    blocks land preferentially where the saliency (motion) is high: motion-guided masking.
    Rows are truncated to the shortest row, or to ``lengths`` = (context, target) when the
    minimum is taken over a larger (distributed) batch.
    """
    T, H, W = grid
    t, h, w = block_size(spec, grid, g)
    if (t, h, w) == (T, H, W):
        raise ValueError(
            f"mask {spec}: one block covers the whole {grid} token grid, so no context token is left; "
            "lower spatial_scale or temporal_scale"
        )
    ctx, tgt = [], []
    for b in range(batch_size):
        gb = sample_generators[b] if sample_generators is not None else g
        probs = placement_probs(saliency[b], t, h, w, bias).flatten() if saliency is not None and bias > 0 else None
        keep = _place_blocks(spec.num_blocks, (t, h, w), grid, gb, probs)
        ctx.append(torch.nonzero(keep).squeeze(1))
        tgt.append(torch.nonzero(~keep).squeeze(1))
    kc, kt = lengths if lengths is not None else (min(len(c) for c in ctx), min(len(c) for c in tgt))
    return torch.stack([c[:kc] for c in ctx]), torch.stack([c[:kt] for c in tgt])


def _place_blocks(
    num_blocks: int,
    size: tuple[int, int, int],
    grid: tuple[int, int, int],
    g: torch.Generator,
    probs: torch.Tensor | None,
    attempts: int = MAX_ATTEMPTS,
) -> torch.Tensor:
    """Place ``num_blocks`` blocks of ``size`` on ``grid`` -> the context (kept tokens) as a flat (N,) bool mask.

    As V-JEPA, positions are redrawn while the blocks cover every token (an empty context). V-JEPA
    redraws without bound; after ``attempts`` draws this keeps the last draw's first blocks up to the
    one that emptied the context, so the context is never empty and the call always returns (one
    block smaller than the grid always leaves context).
    """
    T, H, W = grid
    t, h, w = size
    for _attempt in range(attempts):
        keep = torch.ones(T, H, W, dtype=torch.bool)
        corners = []
        for _ in range(num_blocks):
            if probs is None:
                t0 = int(torch.randint(0, T - t + 1, (1,), generator=g))
                y0 = int(torch.randint(0, H - h + 1, (1,), generator=g))
                x0 = int(torch.randint(0, W - w + 1, (1,), generator=g))
            else:
                k = int(torch.multinomial(probs, 1, generator=g))
                t0, rem = divmod(k, (H - h + 1) * (W - w + 1))
                y0, x0 = divmod(rem, W - w + 1)
            corners.append((t0, y0, x0))
            keep[t0 : t0 + t, y0 : y0 + h, x0 : x0 + w] = False
        if keep.any():
            return keep.flatten()
    keep = torch.ones(T, H, W, dtype=torch.bool)
    for t0, y0, x0 in corners:
        block = keep.clone()
        block[t0 : t0 + t, y0 : y0 + h, x0 : x0 + w] = False
        if not block.any():
            break
        keep = block
    return keep.flatten()


def sample_generators(seed: int, step: int, stream: int, sample_ids: list[int]) -> list[torch.Generator]:
    """One generator per sample, seeded by (seed, step, stream, global sample index): a sample's
    draws do not depend on the other samples, on the process drawing them or on the global RNG.
    Streams 0..len(masks)-1 place the masks; other users take their own stream numbers."""
    return [
        torch.Generator().manual_seed(int(np.random.SeedSequence([seed, step, stream, i]).generate_state(1)[0]))
        for i in sample_ids
    ]


class MaskCollator:
    """Draws one (context, target) pair per mask spec for a batch, as a pure function of
    (seed, step, global sample index): a resumed run, or a run split over several processes,
    draws exactly the masks of an uninterrupted single-process run.
    """

    def __init__(self, specs: list[MaskSpec], grid: tuple[int, int, int], seed: int) -> None:
        self.specs, self.grid, self.seed = specs, grid, seed

    def __call__(
        self, step: int, sample_ids: list[int], saliency: torch.Tensor | None = None, bias: float = 0.0, reduce_min=None
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """``reduce_min(list[int]) -> list[int]`` takes the element-wise minimum over processes."""
        out = []
        for k, spec in enumerate(self.specs):
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + step * 101 + k)
            gens = sample_generators(self.seed, step, k, sample_ids)
            c, t = sample_masks(len(sample_ids), self.grid, spec, g, saliency, bias, gens)
            if reduce_min is not None:
                kc, kt = reduce_min([c.size(1), t.size(1)])
                c, t = c[:, :kc], t[:, :kt]
            out.append((c, t))
        return out
