"""Pretraining and distillation losses (pure functions on tensors; shapes in docstrings).

- ``latent_l1``: V-JEPA's L1 between predicted and layer-normed teacher latents.
- ``distill_loss``: cosine + smooth-L1 regression of a student's projected tokens onto a
  teacher's layer-normed tokens (the distillation stage).
- ``self_distill_loss``: squared distance between layer-normed student and teacher tokens of the
  same architecture (self-distillation for further pretraining).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def normalize_targets(h: torch.Tensor) -> torch.Tensor:
    """Layer norm over the feature axis without affine parameters: (..., D) -> (..., D)."""
    return F.layer_norm(h, (h.size(-1),))


def gather_tokens(h: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """h (B, N, D), idx (B, K) -> (B, K, D)."""
    return torch.gather(h, 1, idx.unsqueeze(-1).expand(-1, -1, h.size(-1)))


def latent_l1(pred: torch.Tensor, target: torch.Tensor, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean |pred - target| over (B, K, D).

    With per-token ``weight`` (B, K), each clip's loss is its weighted mean
    sum_i w_i |.|_i / sum_i w_i, and clips are averaged: every clip counts the same, and the
    loss of a batch split over processes averages to the loss of the whole batch (DDP).
    """
    err = (pred - target).abs().mean(dim=-1)  # (B, K)
    if weight is None:
        return err.mean()
    return ((err * weight).sum(dim=1) / weight.sum(dim=1).clamp_min(1e-12)).mean()


def distill_loss(
    student: torch.Tensor, teacher: torch.Tensor, cosine_weight: float = 1.0, smooth_l1_weight: float = 1.0
) -> tuple[torch.Tensor, dict[str, float]]:
    """student, teacher (B, N, D) (teacher already normalised) -> scalar loss and its parts.

    loss = cosine_weight * mean(1 - cos(s_i, t_i)) + smooth_l1_weight * SmoothL1(s, t; beta=1)
    """
    cos = 1.0 - F.cosine_similarity(student, teacher, dim=-1).mean()
    sl1 = F.smooth_l1_loss(student, teacher, beta=1.0)
    loss = cosine_weight * cos + smooth_l1_weight * sl1
    return loss, {"cosine": cos.item(), "smooth_l1": sl1.item()}


def self_distill_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """student, teacher (B, K, D) tokens of the same input -> mean_{b,k} ||LN(s) − LN(t)||² / D.

    Both sides are layer-normed without affine (as latent-prediction targets are), so the pull is
    on the tokens' direction and spread, not on a scale the final norm could absorb.
    """
    return (normalize_targets(student) - normalize_targets(teacher)).pow(2).mean()
