"""Masks, losses and the EMA update: pure functions checked on hand-computed values (schedules: test_schedules.py)."""

import math

import pytest
import torch

from unisurg.training.ema import ema_update
from unisurg.training.losses import distill_loss, latent_l1, normalize_targets
from unisurg.training.masks import MaskCollator, MaskSpec, block_size, sample_masks


def test_masks_partition_the_grid_and_are_seeded():
    grid = (8, 4, 4)
    spec = MaskSpec(num_blocks=2, spatial_scale=(0.25, 0.25))
    g = torch.Generator().manual_seed(0)
    ctx, tgt = sample_masks(3, grid, spec, g)
    assert ctx.shape[0] == tgt.shape[0] == 3
    for c, t in zip(ctx, tgt):
        assert not set(c.tolist()) & set(t.tolist())
        assert (c.diff() > 0).all() and (t.diff() > 0).all()
    # temporal scale 1.0: blocks are tubes through the whole clip, so (one sample, no truncation)
    # the target is the same set of spatial positions in every frame, and context is the rest
    c, t = sample_masks(1, grid, spec, torch.Generator().manual_seed(1))
    spatial = {i % 16 for i in t[0].tolist()}
    assert set(t[0].tolist()) == {s + 16 * k for s in spatial for k in range(8)}
    assert len(c[0]) + len(t[0]) == 8 * 16
    col = MaskCollator([spec], grid, seed=3)
    c1, c2 = col(step=5, sample_ids=[0, 1, 2, 3]), col(step=5, sample_ids=[0, 1, 2, 3])
    assert torch.equal(c1[0][0], c2[0][0]) and torch.equal(c1[0][1], c2[0][1])
    # a process that draws only samples 2 and 3 (DDP rank 1) gets the same rows, once truncated alike
    kc, kt = c1[0][0].size(1), c1[0][1].size(1)
    part = col(step=5, sample_ids=[2, 3], reduce_min=lambda v: [min(v[0], kc), min(v[1], kt)])
    assert torch.equal(part[0][0], c1[0][0][2:]) and torch.equal(part[0][1], c1[0][1][2:])


def test_vjepa2_long_range_block_covers_most_of_the_frame():
    g = torch.Generator().manual_seed(0)
    t, h, w = block_size(MaskSpec(2, (0.7, 0.7)), (8, 16, 16), g)
    assert t == 8 and 0.5 * 256 <= h * w <= 0.9 * 256


def test_latent_l1_and_weighting():
    pred = torch.tensor([[[1.0, 1.0], [0.0, 0.0]]])  # (B=1, K=2, D=2)
    tgt = torch.zeros(1, 2, 2)
    assert latent_l1(pred, tgt).item() == pytest.approx(0.5)
    w = torch.tensor([[3.0, 1.0]])  # token 0 error 1, token 1 error 0 -> 3/4
    assert latent_l1(pred, tgt, w).item() == pytest.approx(0.75)
    # two clips: per-clip weighted means (0.75 and 0), then averaged
    pred2 = torch.cat([pred, torch.zeros(1, 2, 2)])
    assert latent_l1(pred2, torch.zeros(2, 2, 2), torch.tensor([[3.0, 1.0], [1.0, 5.0]])).item() == pytest.approx(0.375)


def test_normalize_targets_is_affine_free_layernorm():
    h = torch.tensor([[1.0, 2.0, 3.0]])
    out = normalize_targets(h)
    assert out.mean().item() == pytest.approx(0, abs=1e-6)
    assert out[0, 2].item() == pytest.approx(1 / math.sqrt(2 / 3 + 1e-5), rel=1e-4)


def test_distill_loss_hand_computed():
    s = torch.tensor([[[1.0, 0.0], [0.0, 2.0]]])
    t = torch.tensor([[[0.0, 1.0], [0.0, 1.0]]])
    loss, parts = distill_loss(s, t, cosine_weight=1.0, smooth_l1_weight=0.5)
    # cosines 0 and 1 -> mean distance 0.5; smooth-L1 elements: |1|->0.5, |-1|->0.5, 0, |1|->0.5 -> mean 0.375
    assert parts["cosine"] == pytest.approx(0.5) and parts["smooth_l1"] == pytest.approx(0.375)
    assert loss.item() == pytest.approx(0.5 + 0.5 * 0.375)


def test_ema_update():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    with torch.no_grad():
        a.weight.fill_(1.0)
        b.weight.fill_(3.0)
    ema_update(a, b, 0.75)
    assert torch.allclose(a.weight, torch.full((2, 2), 1.5))
