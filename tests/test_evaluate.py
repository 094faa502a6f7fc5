"""The evaluation harness end to end on each task family, with a random (untrained) encoder."""

import numpy as np
import pytest
import torch

from unisurg.benchmarks import get_benchmark
from unisurg.evaluation.harness import ProbeGrid, Protocol, rescore, run_benchmark
from unisurg.evaluation.samples import ClipReader, make_samples
from unisurg.models import create_model

GRID = ProbeGrid(lrs=(1e-3, 3e-3), weight_decays=(0.01,), epochs=3, batch_size=16, depth=1, num_heads=2)
PROTO = Protocol(frames=4, fps=4.0, size=32)


@pytest.mark.parametrize("name", ["cholec80", "pitvis", "cholect50", "polypdiag", "jigsaws", "kvasirseg", "scared"])
def test_harness_scores_every_task_family(name, bench_root, tmp_path):
    torch.manual_seed(0)
    enc = create_model("vit_pico")
    bench = get_benchmark(name)
    res, preds = run_benchmark(
        bench,
        bench_root(name),
        {"rand": (enc, "rand")},
        GRID,
        PROTO,
        bootstrap=50,
        seed=0,
        cache_dir=tmp_path,
        batch_size=8,
    )
    r = res["models"]["rand"]
    assert r["value"] is not None and np.isfinite(r["value"])
    assert bench.metric in r["metrics"] and r["heads"] and r["n_test_samples"] > 0
    assert res["classes"] == list(bench.classes) and res["splits"] and r["weights"] == "rand"
    # the grid the heads were trained with is part of the result (the report compares it)
    assert res["probe"]["lrs"] == list(GRID.lrs) and res["probe"]["seeds"] == GRID.seeds
    if bench.folds:
        assert len(r["heads"]) == bench.folds  # one head chosen per fold
    # every reported number can be recomputed from the shipped per-sample predictions
    assert preds.num_rows == r["n_test_samples"] and set(preds.column("model").to_pylist()) == {"rand"}
    records = bench.load(bench_root(name))
    again = rescore(bench, records, make_samples(bench, records, PROTO.label_fps), preds.to_pydict(), PROTO.label_fps)
    assert {k: round(v, 6) for k, v in again.items()} == r["metrics"]
    # second run: features come from the cache and the result is identical
    res2, preds2 = run_benchmark(
        bench,
        bench_root(name),
        {"rand": (enc, "rand")},
        GRID,
        PROTO,
        bootstrap=50,
        seed=0,
        cache_dir=tmp_path,
        batch_size=8,
    )
    assert res2 == res and preds2.equals(preds)
    assert len(list(tmp_path.glob("*.pt"))) == 1


def test_phase_results_carry_the_labelled_relaxed_boundary_variant(bench_root, tmp_path):
    torch.manual_seed(0)
    bench = get_benchmark("cholec80")
    res, _ = run_benchmark(
        bench, bench_root("cholec80"), {"rand": (create_model("vit_pico"), "rand")}, GRID, PROTO, 0, 0, tmp_path, 8
    )
    m = res["models"]["rand"]["metrics"]
    for k in ("relaxed_accuracy", "relaxed_jaccard", "relaxed_precision", "relaxed_recall"):
        assert k in m
    assert m["relaxed_accuracy"] >= m["accuracy"]  # relaxation only forgives errors


def test_clips_end_at_the_labelled_frame(bench_root):
    bench = get_benchmark("cholec80")
    recs = bench.load(bench_root("cholec80"))
    samples = make_samples(bench, recs, label_fps=1.0)
    first = [s for s in samples if s.record == 0]
    assert [s.t_end for s in first[:3]] == [0.0, 1.0, 2.0]  # one labelled instant per second
    reader = ClipReader(frames=4, fps=5.0, size=32)
    clip = reader.read(recs[0].source, 2.0)
    assert clip.shape == (4, 32, 32, 3) and clip.dtype == np.uint8


def test_feature_cache_is_invalidated_when_a_source_file_changes(bench_root, tmp_path):
    import os
    import shutil

    root = tmp_path / "cholec80"
    shutil.copytree(bench_root("cholec80"), root)
    torch.manual_seed(0)
    enc = {"rand": (create_model("vit_pico"), "rand")}
    bench = get_benchmark("cholec80")
    cache = tmp_path / "cache"
    run_benchmark(bench, root, enc, GRID, PROTO, bootstrap=0, seed=0, cache_dir=cache, batch_size=8)
    run_benchmark(bench, root, enc, GRID, PROTO, bootstrap=0, seed=0, cache_dir=cache, batch_size=8)
    assert len(list(cache.glob("*.pt"))) == 1  # unchanged data: reused
    video = root / "videos" / "video49.mp4"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was regenerated
    run_benchmark(bench, root, enc, GRID, PROTO, bootstrap=0, seed=0, cache_dir=cache, batch_size=8)
    assert len(list(cache.glob("*.pt"))) == 2  # a new entry, the stale features were not used


def test_segmentation_loss_is_bce_plus_soft_dice_hand_computed():
    from unisurg.evaluation.harness import _loss

    logit = torch.tensor([[[[0.0, 2.0], [-2.0, 0.0]]]])  # (B=1, 1, 2, 2)
    y = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])  # one foreground pixel of four
    p = torch.sigmoid(logit[0, 0])
    bce = -(y[0] * torch.log(p) + (1 - y[0]) * torch.log(1 - p)).mean()
    dice = 1 - (2 * p[0, 1] + 1) / (p.sum() + 1 + 1)
    assert torch.allclose(_loss("segmentation", logit, y), bce + dice)
    # the all-background prediction BCE alone favours on small objects is no longer a minimum
    background = torch.full_like(logit, -6.0)
    exact = torch.where(y[:, None] > 0, 6.0, -6.0)
    assert _loss("segmentation", exact, y) < _loss("segmentation", background, y) - 0.5


def test_probe_min_steps_repeats_whole_epochs_on_tiny_training_sets():
    from unisurg.evaluation.harness import train_heads

    feats, y = torch.randn(20, 8, 16), torch.randint(0, 3, (20,))  # 20 samples: 2 batches per epoch
    for min_steps, expected in [(0, 3 * 2), (15, 8 * 2)]:  # max(3 epochs, ceil(15 / 2) = 8 epochs)
        grid = ProbeGrid(
            lrs=(1e-3,), weight_decays=(0.0,), epochs=3, batch_size=10, depth=1, num_heads=2, min_steps=min_steps
        )
        bank = train_heads("phase", feats, y, 3, grid, seeds=[0], dense=None)
        assert bank.hparams[0]["steps"] == expected


def test_probe_seeds_average_the_chosen_heads_outputs(bench_root, tmp_path):
    """seeds=2: two grids, each picks its own head; the test output is the mean of their outputs."""
    torch.manual_seed(0)
    enc = create_model("vit_pico")
    bench = get_benchmark("cholec80")
    runs = {}
    for seeds in (1, 2):
        grid = ProbeGrid(lrs=(1e-3,), weight_decays=(0.01,), epochs=2, batch_size=16, depth=1, num_heads=2, seeds=seeds)
        res, preds = run_benchmark(
            bench, bench_root("cholec80"), {"rand": (enc, "rand")}, grid, PROTO, 20, 0, tmp_path, 8
        )
        runs[seeds] = (res["models"]["rand"], np.array(preds.column("output").to_pylist()))
    one, two = runs[1], runs[2]
    assert len(one[0]["heads"]) == 1 and len(two[0]["heads"]) == 2
    assert one[0]["heads"][0] == two[0]["heads"][0]  # the first grid is the single-seed run
    assert not np.allclose(one[1], two[1])  # the second grid changed the averaged output
