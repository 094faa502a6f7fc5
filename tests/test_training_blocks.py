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


def test_the_context_is_never_empty():
    from unisurg.training.masks import _place_blocks

    # 4 blocks of up to 2 x 2 on a 2 x 2 frame: most draws cover the frame. V-JEPA redraws them.
    grid, spec = (1, 2, 2), MaskSpec(num_blocks=4, spatial_scale=(0.5, 0.5))
    for seed in range(200):
        ctx, tgt = sample_masks(1, grid, spec, torch.Generator().manual_seed(seed))
        assert ctx.size(1) >= 1 and tgt.size(1) >= 1
        assert sorted(ctx[0].tolist() + tgt[0].tolist()) == [0, 1, 2, 3]
    # when every redraw covers the grid, the blocks are kept up to the one that emptied the context
    emptied = 0
    for seed in range(50):
        g = torch.Generator().manual_seed(seed)
        keep = _place_blocks(2, (1, 2, 1), grid, g, None, attempts=1)  # two columns: half the draws cover all
        assert keep.any() and not keep.all()
        emptied += int(keep.sum()) == 2  # the second block fell on the first's column, or was dropped
    assert emptied == 50
    # one block as large as the grid cannot leave context: an error naming the spec, not an empty row
    with pytest.raises(ValueError, match="covers the whole"):
        sample_masks(1, grid, MaskSpec(1, (1.0, 1.0), aspect_ratio=(1.0, 1.0)), torch.Generator().manual_seed(0))


def test_effective_masking_ratio_falls_when_motion_concentrates_the_blocks():
    """The telemetry column mask_ratio: blocks drawn on the moving corner overlap, so fewer tokens are masked."""
    grid = (2, 8, 8)
    spec = MaskSpec(num_blocks=8, spatial_scale=(0.15, 0.15))
    sal = torch.full((4, *grid), 0.01)
    sal[:, :, :3, :3] = 10.0
    col = MaskCollator([spec], grid, seed=0)
    n = grid[0] * grid[1] * grid[2]
    uniform = [col(s, [0, 1, 2, 3], sal, 0.0)[0][1].size(1) / n for s in range(20)]
    biased = [col(s, [0, 1, 2, 3], sal, 4.0)[0][1].size(1) / n for s in range(20)]
    assert sum(biased) / 20 < sum(uniform) / 20 - 0.05


def test_augmentation_is_vjepas_crop_and_flip_drawn_from_the_sample_key():
    import numpy as np

    from unisurg.media.clips import Augment

    aug = Augment(seed=0)
    frames = np.random.default_rng(0).integers(0, 255, (4, 96, 128, 3), dtype=np.uint8)
    a, b = aug(frames, 32, 3, 1), aug(frames, 32, 3, 1)
    assert a.shape == (4, 32, 32, 3) and a.dtype == np.uint8 and np.array_equal(a, b)  # same key, same clip
    assert not np.array_equal(a, aug(frames, 32, 3, 2)) and not np.array_equal(a, aug(frames, 32, 4, 1))
    boxes = [aug.box(np.random.default_rng(k), 96, 128) for k in range(500)]
    areas = np.array([h * w / (96 * 128) for _, _, h, w in boxes])
    ratios = np.array([w / h for _, _, h, w in boxes])
    assert all(0 <= t and 0 <= le and t + h <= 96 and le + w <= 128 for t, le, h, w in boxes)
    # areas in [0.3, 1] (rounding aside); large crops of extreme aspect do not fit and are redrawn, as in torchvision
    assert 0.28 <= areas.min() and areas.max() <= 1.0 and 0.5 < areas.mean() < 0.65
    assert 0.73 <= ratios.min() and ratios.max() <= 1.38
    # flips: the same crop mirrored, about half the keys
    plain = Augment(seed=0, flip=False)
    flipped = sum(not np.array_equal(aug(frames, 32, 0, k), plain(frames, 32, 0, k)) for k in range(40))
    assert 10 <= flipped <= 30
    k = next(k for k in range(40) if not np.array_equal(aug(frames, 32, 0, k), plain(frames, 32, 0, k)))
    assert np.array_equal(aug(frames, 32, 0, k), plain(frames, 32, 0, k)[:, :, ::-1])
    # off: the evaluation's resize
    from unisurg.media.clips import resize_frames

    assert np.array_equal(Augment(seed=0, crop=False, flip=False)(frames, 32, 0, 0), resize_frames(frames, 32))


def test_keyed_sampler_slots_are_global_batch_positions():
    import numpy as np

    from unisurg.media.clips import StepBatchSampler

    w = np.ones(10)
    whole = list(StepBatchSampler(w, 4, 0, 2, 4, keyed=True))
    halves = [list(StepBatchSampler(w, 4, 0, 2, 4, rank=r, world=2, keyed=True)) for r in (0, 1)]
    assert whole[0] == [(i, 2, s) for s, i in enumerate(StepBatchSampler(w, 4, 0, 0, 4).batch(2))]
    assert [h0 + h1 for h0, h1 in zip(*halves)] == whole
