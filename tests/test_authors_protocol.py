"""The `surgmotion` protocol point by point against references written from the SurgMotion authors'
code (their loader's window indices, data-preparation splits and folds, eval transform, training
augmentation, schedule and precision), each reference spelled out here independently of the project.
"""

from __future__ import annotations

import dataclasses
import math
import random

import numpy as np
import pytest
import torch

from unisurg.benchmarks import get_benchmark
from unisurg.benchmarks.clips import authors_surgical_actions_split
from unisurg.benchmarks.records import Record, VideoSource
from unisurg.evaluation.augment import augment_clip, erase, parse_rand_augment
from unisurg.evaluation.bank import HeadBank, HeadScaler, StackedAdamW
from unisurg.evaluation.clipdata import eval_view
from unisurg.evaluation.heads import AttentiveProbe
from unisurg.evaluation.probing import Trainer
from unisurg.evaluation.protocols import MINI, SURGMOTION, ClipAugment, ProbeGrid, Sampling
from unisurg.evaluation.samples import Sample, drop_instants, make_samples
from unisurg.evaluation.windows import EVAL_DRAW, SourceInfo, WindowPlan, authors_pick

# --------------------------------------------------------------------------- window indices


def _their_loader(length: int, fpc: int, rng: np.random.Generator | None = None) -> list[int]:
    """video_surgical.py load_frames_from_txt, one segment, frame_step 1, overlap allowed, spelled out."""
    clip_len = min(fpc, length)
    if length > clip_len:
        end = int(rng.integers(clip_len, length))
        return [int(v) for v in np.linspace(end - clip_len, end - 1, fpc).astype(np.int64)]
    sample_len = length - 1
    idx = [int(v) for v in np.linspace(0, sample_len, sample_len, dtype=np.int64)]
    return idx + [sample_len] * (fpc - len(idx))


def test_a_full_list_drops_one_frame_and_repeats_the_last():
    assert authors_pick(64, 64).tolist() == [*range(62), 63, 63]
    for n in (1, 2, 3, 10, 63, 64):
        assert authors_pick(n, 64).tolist() == _their_loader(n, 64), n
    # longer lists (whole clips): a run of consecutive entries ending before the last one
    for seed in range(5):
        got = authors_pick(200, 64, 1, np.random.default_rng(seed)).tolist()
        assert got == _their_loader(200, 64, np.random.default_rng(seed))
        assert got == list(range(got[0], got[0] + 64)) and got[-1] <= 198


def _plan(n_seconds: int, sampling: Sampling, bench: str = "cholec80", fps: float = 25.0) -> WindowPlan:
    b = get_benchmark(bench)
    rec = Record(
        "video41", "test", VideoSource("v.mp4"), np.zeros(n_seconds, np.int64), np.arange(n_seconds, dtype=float)
    )
    samples = make_samples(b, [rec], sampling.label_fps)
    return WindowPlan(b, [rec], samples, sampling, [SourceInfo(int(n_seconds * fps), fps)], seed=0)


def test_surgmotion_windows_are_the_64_one_fps_rows_ending_at_the_label_padded_at_the_end():
    plan = _plan(200, SURGMOTION.sampling)
    # gen_clips.py: the rows ending at row t, padded at the END with row t; then the loader's pick
    for t in (0, 1, 2, 30, 62, 63, 64, 100, 199):
        rows = list(range(max(0, t - 63), t + 1))
        rows += [t] * (64 - len(rows))
        want = [25 * rows[k] for k in [*range(62), 63, 63]]  # native frames of the 1-fps rows at 25 fps
        w = plan.window(t)
        assert w[:, 1].tolist() == want, t
    # never frame 0 repeated before the video starts: at t = 2 the clip is 0, 1, 2, 2, ...
    assert plan.window(2)[:, 1].tolist()[:4] == [0, 25, 50, 50]
    # the mini rule is the project's own: frame 0 repeated before the start, the clip ends at the label
    mini = _plan(200, MINI.sampling)
    assert mini.window(0)[:, 1].tolist() == [0] * 16 and mini.window(100)[-1, 1] == 2500


def test_clip_benchmarks_take_a_random_run_of_consecutive_native_frames_per_draw():
    b = get_benchmark("surgicalactions160")
    rec = Record("01_01", "train", VideoSource("c.mp4"), np.array([0]))
    plan = WindowPlan(b, [rec], [Sample(0, None, np.array(0))], SURGMOTION.sampling, [SourceInfo(250, 25.0)], seed=3)
    a, again, other = plan.window(0, 0), plan.window(0, 0), plan.window(0, 1)
    assert np.array_equal(a, again) and not np.array_equal(a, other)  # a draw per (seed, sample, epoch)
    run = a[:, 1]
    assert np.array_equal(run, np.arange(run[0], run[0] + 64)) and run[-1] <= 248
    assert not np.array_equal(plan.window(0, EVAL_DRAW), a)  # evaluation has its own fixed draw
    assert plan.needed()[0].tolist() == list(range(250))  # every frame a draw can read is stored


# --------------------------------------------------------------------------- splits, labels


def _cholec80_records(ids):
    return [
        Record(f"video{i:02d}", "train", VideoSource(f"video{i:02d}.mp4"), np.zeros(3), np.arange(3.0)) for i in ids
    ]


def test_cholec80_is_videos_1_to_40_against_41_to_80():
    recipe = get_benchmark("cholec80").authors
    recs = _cholec80_records(range(1, 81))
    by_split = lambda rs, s: [int(r.id[5:]) for r in rs if r.split == s]  # noqa: E731
    held_out = recipe.apply(recs, "val", clips=False)
    assert by_split(held_out, "test") == list(range(41, 81))
    assert by_split(held_out, "val") == list(range(33, 41))  # carved from their training videos
    assert by_split(held_out, "train") == list(range(1, 33))
    on_test = recipe.apply(recs, "test", clips=False)  # their configs: all of 1-40 train, heads on test
    assert by_split(on_test, "train") == list(range(1, 41)) and by_split(on_test, "test") == list(range(41, 81))
    assert not by_split(on_test, "val")


# surgicalactions160_prepare.py re-run by hand (Python 3.11, 16 classes x 10 clips): the clips of
# fold 0 per class, in the authors' numbering 0000k = our CC_k.
AUTHORS_FOLD0 = {1: [1, 6, 8], 2: [2, 4, 7], 3: [4, 5, 8], 4: [3, 6, 8], 5: [1, 6, 10], 9: [3, 6, 7], 16: [4, 8, 10]}


def test_surgical_actions_uses_the_authors_seeded_fold_zero():
    recs = [
        Record(f"{c:02d}_{v:02d}", "train", VideoSource("x"), np.array([c - 1]), fold=(v - 1) % 4)
        for c in range(1, 17)
        for v in range(1, 11)
    ]
    split = authors_surgical_actions_split(recs)
    for c, vs in AUTHORS_FOLD0.items():
        assert [int(r.id[3:]) for r, s in zip(recs, split) if s == "test" and int(r.id[:2]) == c] == vs
    assert split.count("test") == 48 and split.count("train") == 112
    # the same algorithm spelled out: one Random(42) shuffling each class's list in class order
    rng, fold = random.Random(42), {}
    for c in range(16):
        idx = list(range(c * 10, c * 10 + 10))
        rng.shuffle(idx)
        fold.update({m: i % 4 for i, m in enumerate(idx)})
    assert [s == "test" for s in split] == [fold[i] == 0 for i in range(160)]
    applied = get_benchmark("surgicalactions160").authors.apply(recs, "val", clips=True)
    assert all(r.fold is None for r in applied)  # one round, not 4 pooled folds
    val = [r for r in applied if r.split == "val"]
    assert sorted({int(r.labels[0]) for r in val}) == list(range(16))  # validation carved per class


def test_m2cai_labels_a_second_with_its_last_frame_and_pitvis_drops_its_ignored_steps():
    b = get_benchmark("m2cai16")
    times = np.arange(0, 3, 1 / 25)
    labels = np.where(times < 1.96, 0, 1)  # the phase changes in the last frame of second 1
    rec = Record("v", "train", VideoSource("v.mp4"), labels, times)
    first, last = make_samples(b, [rec], 1.0), make_samples(b, [rec], 1.0, "last")
    assert [int(s.label) for s in first] == [0, 0, 1] and [int(s.label) for s in last] == [0, 1, 1]
    assert [s.t_end for s in last] == [0.0, 1.0, 2.0]  # the clip still ends at the second's first frame
    pit = get_benchmark("pitvis")
    rec = Record("video_01", "train", VideoSource("p.mp4"), np.array([14, 0, 10, 1, 12, 14]), np.arange(6.0))
    kept = drop_instants([rec], pit.family.ignore)[0]
    assert kept.labels.tolist() == [0, 1] and kept.times.tolist() == [1.0, 3.0]


# --------------------------------------------------------------------------- field of view, augmentation


def _bordered(fraction: float) -> np.ndarray:
    """A 288 x 512 frame (their extraction: 512 wide, aspect kept), its outer ``fraction`` red."""
    frame = np.zeros((288, 512, 3), np.uint8)
    frame[:, :, 1] = 200
    by, bx = int(288 * fraction), int(512 * fraction)
    frame[:by], frame[-by:], frame[:, :bx], frame[:, -bx:] = (255, 0, 0), (255, 0, 0), (255, 0, 0), (255, 0, 0)
    return frame[None]


def test_the_eval_view_is_the_central_224_256_of_the_squashed_frame():
    # squashed to 512², resized to 292, centre-cropped to 256: (292 - 256) / 2 / 292 = 6.2 % of each side goes
    view = eval_view(_bordered(0.05), SURGMOTION.sampling, dense=False)[0]
    assert view.shape == (256, 256, 3) and view[..., 0].max() < 60  # a 5 % border is cut away
    kept = eval_view(_bordered(0.08), SURGMOTION.sampling, dense=False)[0]
    assert kept[0, 128, 0] > 200 and kept[128, 0, 0] > 200 and kept[128, 128, 0] < 60  # an 8 % one is not
    full = eval_view(_bordered(0.05), SURGMOTION.sampling, dense=True)[0]  # dense targets cover the whole frame
    assert full.shape == (256, 256, 3) and full[0, 128, 0] > 200
    assert SURGMOTION.sampling.resize == 292 and MINI.sampling.resize == MINI.sampling.size


def test_training_clips_get_one_randaugment_draw_for_all_frames_and_reproducible_boxes():
    assert parse_rand_augment("rand-m7-n4-mstd0.5-inc1") == (7.0, 4, 0.5)
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (96, 96, 3), dtype=np.uint8)
    clip = np.repeat(frame[None], 6, axis=0)
    aug = ClipAugment()
    changed = 0
    for k in range(20):
        out, box = augment_clip(clip, 64, aug, (0, k, 1, 0))
        assert out.shape == (6, 64, 64, 3) and (out == out[:1]).all()  # the same operations on every frame
        again, box2 = augment_clip(clip, 64, aug, (0, k, 1, 0))
        assert np.array_equal(out, again) and np.array_equal(box, box2)  # keyed: reproducible
        changed += not np.array_equal(out[0], augment_clip(clip, 64, aug, (0, k, 1, 1))[0][0])
        if box[0] >= 0:
            area = box[2] * box[3] / 64**2
            assert 0.015 <= area <= 1 / 3 + 0.02 and 0.3 / 1.05 <= box[2] / box[3] <= 1.05 / 0.3
    assert changed >= 18  # another epoch, another draw
    x = torch.zeros(2, 3, 4, 8, 8)
    erase(x, torch.tensor([[1, 2, 3, 4], [-1, -1, 0, 0]]), torch.tensor([[0, 1, 1, 0], [0, 2, 1, 0]]))
    region = x[0, :, :, 1:4, 2:6]
    assert (x[1] == 0).all() and (region != 0).all() and x[0].count_nonzero() == region.numel()
    assert not torch.equal(region[:, 0], region[:, 1])  # per-pixel noise, fresh in every frame


# --------------------------------------------------------------------------- schedule, precision


def test_the_authors_schedule_steps_before_each_update():
    grid = dataclasses.replace(SURGMOTION.probe, batch_size=4)
    t, ours = Trainer(grid, 1, 0, torch.device("cpu")), Trainer(MINI.probe, 1, 0, torch.device("cpu"))
    total = 10
    # WarmupCosineLRSchedule with warmup 0 and final_lr 0: step() then train -> update i at (i + 1) / T
    want = [0.5 * (1 + math.cos(math.pi * (i + 1) / total)) for i in range(total)]
    assert [t.lr_scale(i, total) for i in range(total)] == pytest.approx(want)
    assert t.lr_scale(total - 1, total) == pytest.approx(0.0) and ours.lr_scale(0, total) == 1.0
    assert SURGMOTION.probe.precision == "fp16" and MINI.probe.precision == "bf16"


def test_a_head_whose_fp16_gradients_overflow_skips_its_update_and_halves_its_scale():
    torch.manual_seed(0)
    heads = [AttentiveProbe(8, 2, num_heads=2, depth=1) for _ in range(3)]
    bank = HeadBank(heads, [{"lr": 1e-2, "weight_decay": 0.0}] * 3)
    opt = StackedAdamW(list(bank.params.values()), [1e-2] * 3, [0.0] * 3)
    scaler = HeadScaler(3, torch.device("cpu"))
    before = {k: v.detach().clone() for k, v in bank.params.items()}
    grads = [torch.ones_like(p) * scaler.scale.view(-1, *([1] * (p.dim() - 1))) for p in bank.params.values()]
    grads[0][1].fill_(float("inf"))  # head 1 overflowed
    finite = scaler.unscale(grads)
    scaler.update(finite)
    opt.step(grads, 1.0, ~finite)
    assert finite.tolist() == [True, False, True] and scaler.scale.tolist() == [2.0**16, 2.0**15, 2.0**16]
    for k, v in bank.params.items():
        assert torch.equal(v[1], before[k][1])  # untouched, moments included
        assert not torch.equal(v[0], before[k][0]) and not torch.equal(v[2], before[k][2])
    torch.testing.assert_close(grads[1][0], torch.ones_like(grads[1][0]))  # unscaled to the true gradient


def test_surgmotion_preset_records_every_point_it_reproduces():
    d = SURGMOTION.as_dict()
    assert d["tokens"] == "online" and d["recipe"] == "authors" and d["augment"]["rand_augment"].startswith("rand-m7")
    assert d["sampling"]["window"] == "authors" and d["sampling"]["crop_fraction"] == 0.875
    assert d["sampling"]["source_width"] == 512 and d["probe"]["lr_step_first"] is True
    assert (MINI.tokens, MINI.augment, MINI.recipe, MINI.sampling.window) == ("cached", None, "ours", "end")
    assert isinstance(ProbeGrid, type)
