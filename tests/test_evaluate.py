"""The evaluation harness end to end on each task family, with a random (untrained) encoder."""

import dataclasses

import cv2
import numpy as np
import pyarrow.compute as pc
import pytest
import torch
import torch.nn.functional as F
from scipy.stats import spearmanr
from sklearn.metrics import accuracy_score, average_precision_score, f1_score

from unisurg.benchmarks import get_benchmark
from unisurg.evaluation.harness import Setup, _prediction_rows, evaluate_encoder, rescore, run_benchmark, train_heads
from unisurg.evaluation.media import prepare_media
from unisurg.evaluation.protocols import ProbeGrid, Protocol, Sampling
from unisurg.evaluation.samples import make_samples
from unisurg.evaluation.tasks import class_loss
from unisurg.models import create_model

GRID = ProbeGrid(lrs=(1e-3, 3e-3), weight_decays=(0.01,), epochs=3, batch_size=16, depth=1, num_heads=2)
PROTO = Protocol("test", Sampling(frames=4, fps=4.0, size=32), GRID, bootstrap=50)
NO_BOOT = dataclasses.replace(PROTO, bootstrap=0)

# --------------------------------------------------------------------------- independent recomputation
# The reported metrics recomputed from the shipped predictions with scikit-learn / SciPy / plain NumPy,
# written here from the benchmarks' protocols (benchmarks.md), not with the project's scorers.


def _edit(y: np.ndarray, p: np.ndarray) -> float:
    """1 - levenshtein(segments) / max(len): a plain dynamic programme over run-collapsed sequences."""
    a, b = [[int(v) for i, v in enumerate(x) if i == 0 or v != x[i - 1]] for x in (y, p)]
    d = np.arange(len(b) + 1)
    for i, x in enumerate(a, 1):
        prev, d[0] = d.copy(), i
        for j, z in enumerate(b, 1):
            d[j] = min(prev[j] + 1, d[j - 1] + 1, prev[j - 1] + (x != z))
    return 1 - d[-1] / max(len(a), len(b))


def _per_video(preds: dict, fn) -> float:
    y = np.array([lab[0] for lab in preds["label"]]).astype(int)
    p = np.array([int(np.argmax(o)) for o in preds["output"]])
    v = np.array(preds["video"])
    return float(np.mean([fn(y[v == g], p[v == g]) for g in np.unique(v)]))


def _pitvis(y: np.ndarray, p: np.ndarray) -> float:
    keep = ~np.isin(y, [14, 10, 12])  # background (-1) and steps 11 and 13 do not count
    y, p = y[keep], p[keep]
    f1 = f1_score(y, p, labels=np.unique(np.r_[y, p]), average="macro", zero_division=1)
    return (f1 + _edit(y, p)) / 2


def _triplet_map(preds: dict) -> float:
    y, s, v = np.array(preds["label"]), 1 / (1 + np.exp(-np.array(preds["output"]))), np.array(preds["video"])
    ap = np.full((len(np.unique(v)), y.shape[1]), np.nan)  # (videos, classes), NaN = absent from the video
    for i, g in enumerate(np.unique(v)):
        for c in np.nonzero(y[v == g].any(axis=0))[0]:
            ap[i, c] = average_precision_score(y[v == g][:, c], s[v == g][:, c])
    seen = ~np.isnan(ap).all(axis=0)
    return float(np.mean(np.nanmean(ap[:, seen], axis=0)))


def _dense(preds: dict, decode, image_metric) -> float:
    """Mean over images of ``image_metric(target, logits upsampled bilinearly to the target)``
    (``preds["maps"]``: the rows of dense_outputs.npy, (n, 1, side, side))."""
    vals = []
    for out, path in zip(preds["maps"], preds["target"], strict=True):
        gt = decode(cv2.imread(path, cv2.IMREAD_UNCHANGED))
        logits = np.asarray(out[0], np.float32)
        vals.append(image_metric(gt, cv2.resize(logits, gt.shape[::-1], interpolation=cv2.INTER_LINEAR)))
    return float(np.mean([v for v in vals if v is not None]))


def _mask(raw: np.ndarray) -> np.ndarray:
    return (raw[..., :3].mean(axis=2) if raw.ndim == 3 else raw) >= 128  # JPEG masks: threshold 128


def _scared_depth(raw: np.ndarray) -> np.ndarray:
    z = raw[: raw.shape[0] // 2, :, 0]  # Z channel (cv2 reads BGR) of the left view (top half)
    return np.nan_to_num(z.astype(np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def _dice(g: np.ndarray, logits: np.ndarray) -> float:
    p = logits > 0
    return 2 * np.sum(g & p) / (g.sum() + p.sum()) if g.sum() + p.sum() else 1.0


def _abs_rel(z: np.ndarray, log_depth: np.ndarray) -> float | None:
    m = (z > 1e-3) & (z < 150)  # SCARED's valid range (mm)
    if not m.any():
        return None
    g, p = z[m], np.exp(log_depth.astype(np.float64))[m]
    p = np.clip(p * np.median(g) / np.median(p), 1e-3, 150)  # per-image median scaling
    return float(np.mean(np.abs(g - p) / g))


INDEPENDENT = {  # benchmark -> {reported metric: recomputation from the predictions table}
    "cholec80": {
        "accuracy": lambda t: _per_video(t, accuracy_score),
        # scikit-learn's default labels (truth and prediction), as SurgMotion's eval.py
        "f1": lambda t: _per_video(t, lambda y, p: f1_score(y, p, average="macro", zero_division=0)),
        "edit": lambda t: _per_video(t, _edit),  # the segmental edit score the authors report for every phase task
    },
    "pitvis": {"pitvis_score": lambda t: _per_video(t, _pitvis)},
    "cholect50": {"map_ivt": _triplet_map},
    "polypdiag": {
        "accuracy": lambda t: accuracy_score(*_clip(t)),
        "f1": lambda t: f1_score(*_clip(t), average="macro"),
    },
    "jigsaws": {
        "spearman": lambda t: _fisher_mean_rho(t),
        "mae": lambda t: float(np.mean(np.abs(np.subtract(*_skill(t))))),
    },
    "kvasirseg": {"dice": lambda t: _dense(t, _mask, _dice)},
    "scared": {"abs_rel": lambda t: _dense(t, _scared_depth, _abs_rel)},
}


def _clip(t: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.array([lab[0] for lab in t["label"]]), np.array([int(np.argmax(o)) for o in t["output"]])


def _skill(t: dict) -> tuple[np.ndarray, np.ndarray]:
    return np.array([lab[0] for lab in t["label"]]), np.array([o[0] for o in t["output"]])


def _fisher_mean_rho(t: dict) -> float:
    """Spearman rho within each fold (round), averaged through Fisher's z."""
    y, p = _skill(t)
    rnd = np.array(t["round"])
    zs = []
    for r in np.unique(rnd):
        rho = spearmanr(y[rnd == r], p[rnd == r]).statistic
        zs.append(np.arctanh(np.clip(0.0 if np.isnan(rho) else rho, -0.9999, 0.9999)))
    return float(np.tanh(np.mean(zs)))


@pytest.mark.parametrize("name", ["cholec80", "pitvis", "cholect50", "polypdiag", "jigsaws", "kvasirseg", "scared"])
def test_harness_scores_every_task_family(name, bench_root, tmp_path):
    torch.manual_seed(0)
    enc = create_model("vit_pico")
    bench = get_benchmark(name)
    res, preds, dense = run_benchmark(
        bench, bench_root(name), {"rand": (enc, "rand")}, PROTO, 0, tmp_path, batch_size=8
    )
    r = res["models"]["rand"]
    assert r["value"] is not None and np.isfinite(r["value"])
    assert bench.metric in r["metrics"] and r["heads"] and r["n_test_samples"] > 0
    assert res["classes"] == list(bench.classes) and res["splits"] and r["weights"] == "rand"
    # the grid the heads were trained with is part of the result (the report compares it)
    assert res["protocol"]["probe"]["lrs"] == list(GRID.lrs) and res["protocol"]["probe"]["seeds"] == GRID.seeds
    assert res["protocol"]["label"] == "test" and r["unit"] and r["n_test_units"] >= 1
    if bench.folds:
        assert len(r["heads"]) == bench.folds  # one head chosen per fold
    # every reported number can be recomputed from the shipped per-sample predictions
    assert set(preds.column("model").to_pylist()) == {"rand", "null"}
    rows = np.nonzero(np.array(preds.column("model").to_pylist()) == "rand")[0]
    mine = preds.filter(pc.equal(preds.column("model"), "rand"))
    assert mine.num_rows == r["n_test_samples"] == res["null"]["n_test_samples"]
    table = mine.to_pydict()
    maps = None
    if bench.family.dense:  # dense maps are rows of the array beside the table, not Python floats
        assert (dense is not None and all(o == [] for o in table["output"])) and len(np.concatenate(dense)) == len(
            preds
        )
        maps = np.concatenate(dense)[rows]
        table["maps"] = maps
    else:
        assert dense is None
    for metric, recompute in INDEPENDENT[name].items():
        assert recompute(table) == pytest.approx(r["metrics"][metric], abs=2e-6), metric
    records = bench.load(bench_root(name))
    label_fps = PROTO.sampling.label_fps
    again = rescore(bench, records, make_samples(bench, records, label_fps), table, label_fps, maps)
    assert {k: round(v, 6) for k, v in again.items()} == r["metrics"]
    # second run: tokens come from the store (one per encoder) and the result is identical
    res2, preds2, _ = run_benchmark(bench, bench_root(name), {"rand": (enc, "rand")}, PROTO, 0, tmp_path, batch_size=8)
    assert res2 == res and preds2.equals(preds)
    assert len(list((tmp_path / "tokens").iterdir())) == 1


def test_phase_results_carry_the_labelled_relaxed_boundary_variant(bench_root, tmp_path):
    torch.manual_seed(0)
    bench = get_benchmark("cholec80")
    res, _, _ = run_benchmark(
        bench, bench_root("cholec80"), {"rand": (create_model("vit_pico"), "rand")}, NO_BOOT, 0, tmp_path, 8
    )
    m = res["models"]["rand"]["metrics"]
    for k in ("relaxed_accuracy", "relaxed_jaccard", "relaxed_precision", "relaxed_recall"):
        assert k in m
    assert m["relaxed_accuracy"] >= m["accuracy"]  # relaxation only forgives errors


def test_clips_end_at_the_labelled_frame(bench_root, tmp_path):
    bench = get_benchmark("cholec80")
    recs = bench.load(bench_root("cholec80"))
    samples = make_samples(bench, recs, label_fps=1.0)
    first = [s for s in samples if s.record == 0]
    assert [s.t_end for s in first[:3]] == [0.0, 1.0, 2.0]  # one labelled instant per second
    media = prepare_media(bench, recs, samples, Sampling(frames=4, fps=5.0, size=32), 0, tmp_path)
    w = media.plan.window(2)  # the third second of video 0: frames 25*2 - {15, 10, 5, 0} at 25 fps
    assert w[:, 0].tolist() == [0] * 4 and w[:, 1].tolist() == [35, 40, 45, 50]
    clip = media.stores[0].read(w[:, 1])
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
    run_benchmark(bench, root, enc, NO_BOOT, seed=0, cache_dir=cache, batch_size=8)
    stores = sorted(p.name for p in (cache / "frames").glob("*.json"))
    run_benchmark(bench, root, enc, NO_BOOT, seed=0, cache_dir=cache, batch_size=8)
    assert len(list((cache / "tokens").iterdir())) == 1  # unchanged data: reused
    assert sorted(p.name for p in (cache / "frames").glob("*.json")) == stores
    video = root / "videos" / "video49.mp4"
    st = video.stat()
    os.utime(video, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))  # the file was regenerated
    run_benchmark(bench, root, enc, NO_BOOT, seed=0, cache_dir=cache, batch_size=8)
    assert len(list((cache / "tokens").iterdir())) == 2  # a new entry, the stale tokens were not used
    assert len(list((cache / "frames").glob("*.json"))) == len(stores) + 1  # and that video decoded again


def test_segmentation_loss_is_bce_plus_soft_dice_hand_computed():
    from unisurg.evaluation.tasks import segmentation_loss

    logit = torch.tensor([[[[0.0, 2.0], [-2.0, 0.0]]]])  # (B=1, 1, 2, 2)
    y = torch.tensor([[[0.0, 1.0], [0.0, 0.0]]])  # one foreground pixel of four
    p = torch.sigmoid(logit[0, 0])
    bce = -(y[0] * torch.log(p) + (1 - y[0]) * torch.log(1 - p)).mean()
    dice = 1 - (2 * p[0, 1] + 1) / (p.sum() + 1 + 1)
    assert torch.allclose(segmentation_loss(logit, y), bce + dice)
    # the all-background prediction BCE alone favours on small objects is no longer a minimum
    background = torch.full_like(logit, -6.0)
    exact = torch.where(y[:, None] > 0, 6.0, -6.0)
    assert segmentation_loss(exact, y) < segmentation_loss(background, y) - 0.5


def test_probe_min_steps_repeats_whole_epochs_on_tiny_training_sets():
    feats, y = torch.randn(20, 8, 16), torch.randint(0, 3, (20,))  # 20 samples: 2 batches per epoch
    for min_steps, expected in [(0, 3 * 2), (15, 8 * 2)]:  # max(3 epochs, ceil(15 / 2) = 8 epochs)
        grid = ProbeGrid(
            lrs=(1e-3,), weight_decays=(0.0,), epochs=3, batch_size=10, depth=1, num_heads=2, min_steps=min_steps
        )
        bank = train_heads(class_loss, feats, y, 3, grid, seeds=[0], dense=None)
        assert bank.hparams[0]["steps"] == expected


# --------------------------------------------------------------------------- the probe on known signals


def _cholec80_with_signal(bench_root, strength: float):
    """Cholec80's mini records and samples with made-up tokens (S, 8, 16): Gaussian noise plus
    ``strength`` x the label's one-hot in the first 7 channels of every token (a linear signal)."""
    bench = get_benchmark("cholec80")
    records = bench.load(bench_root("cholec80"))
    samples = make_samples(bench, records, PROTO.sampling.label_fps)
    y = torch.as_tensor(np.array([int(s.label) for s in samples]))
    g = torch.Generator().manual_seed(0)
    feats = torch.randn(len(samples), 8, 16, generator=g)
    feats[:, :, :7] += strength * F.one_hot(y, 7)[:, None, :].float()
    return bench, records, samples, feats.half(), y.numpy()


def _evaluate(bench, records, samples, feats, grid):
    """-> (summary, prediction columns) of made-up tokens ``feats`` under the probe ``grid``."""
    setup = Setup.build(bench, records, samples, dataclasses.replace(NO_BOOT, probe=grid), seed=0)
    outcome = evaluate_encoder(setup, feats, 16, 2)
    return outcome.summary, _prediction_rows(setup, outcome.out)


def test_probe_reads_a_linear_signal_far_above_chance_and_head_selection_picks_the_head_that_learnt(bench_root):
    bench, records, samples, feats, y = _cholec80_with_signal(bench_root, strength=3.0)
    test = np.array([records[s.record].split == "test" for s in samples])
    majority = np.bincount(y[test]).max() / test.sum()  # the best constant guess on the test video
    # the grid's first head cannot learn (lr 0: it stays at its random initialisation)
    grid = ProbeGrid(lrs=(0.0, 3e-2), weight_decays=(0.0,), epochs=2, batch_size=8, depth=1, num_heads=2, min_steps=60)
    summary, _ = _evaluate(bench, records, samples, feats, grid)
    assert summary["heads"][0]["lr"] == 3e-2  # validation picked the head that learnt
    assert summary["metrics"]["accuracy"] >= 0.9 > majority + 0.3
    # picking the other (the worst) head instead would fail the bar by far: alone, it scores at most 0.5
    frozen = ProbeGrid(lrs=(0.0,), weight_decays=(0.0,), epochs=2, batch_size=8, depth=1, num_heads=2, min_steps=60)
    worst, _ = _evaluate(bench, records, samples, feats, frozen)
    assert worst["metrics"]["accuracy"] <= 0.5 <= summary["metrics"]["accuracy"] - 0.4


def test_probe_seeds_average_the_chosen_heads_outputs(bench_root):
    """seeds=2: two grids (initialisations) trained on the same batches, each picks its own head;
    the test output is the mean of the picked heads' raw outputs."""
    bench, records, samples, feats, y = _cholec80_with_signal(bench_root, strength=1.0)
    runs = {}
    for seeds in (1, 2):
        grid = ProbeGrid(lrs=(1e-2,), weight_decays=(0.01,), epochs=2, batch_size=8, depth=1, num_heads=2, seeds=seeds)
        summary, rows = _evaluate(bench, records, samples, feats, grid)
        runs[seeds] = (summary, np.array(rows["output"], np.float32))
    (one, out1), (two, out2) = runs[1], runs[2]
    assert len(one["heads"]) == 1 and len(two["heads"]) == 2
    assert one["heads"][0] == two["heads"][0]  # the first grid is the single-seed run
    # the same two grids trained here (one head each, so each grid's pick is its only head)
    split = np.array([records[s.record].split for s in samples])
    tr, te = split == "train", split == "test"
    bank = train_heads(class_loss, feats[tr], torch.as_tensor(y[tr]), 7, grid, seeds=[0, 7919], dense=None)
    first, second = bank.predict(feats[te])
    assert not np.allclose(first, second, atol=1e-2)  # the grids differ by their initialisation
    np.testing.assert_allclose(out1, first, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(out2, (first + second) / 2, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------- null rows, pairs, selection


def _null_table(preds) -> dict:
    return preds.filter(pc.equal(preds.column("model"), "null")).to_pydict()


def test_null_rows_equal_their_closed_forms(bench_root, tmp_path):
    """The null row of each family, recomputed here from its definition and the labels alone."""
    enc = {"rand": (create_model("vit_pico"), "rand")}
    # phase: the training majority class everywhere -> per video, the share of that class
    bench = get_benchmark("cholec80")
    res, preds, _ = run_benchmark(bench, bench_root("cholec80"), enc, NO_BOOT, 0, tmp_path, 8)
    records = bench.load(bench_root("cholec80"))
    samples = make_samples(bench, records, 1.0)
    train_y = [int(s.label) for s in samples if records[s.record].split == "train"]
    majority = int(np.bincount(train_y, minlength=7).argmax())
    t = _null_table(preds)
    assert {int(np.argmax(o)) for o in t["output"]} == {majority}
    y, v = np.array([lab[0] for lab in t["label"]]), np.array(t["video"])
    share = np.mean([np.mean(y[v == g] == majority) for g in np.unique(v)])
    assert res["null"]["metrics"]["accuracy"] == pytest.approx(share, abs=1e-6)
    # triplets: constant scores -> per video and class, AP = the class's positive rate in the video
    res, preds, _ = run_benchmark(get_benchmark("cholect50"), bench_root("cholect50"), enc, NO_BOOT, 0, tmp_path, 8)
    t = _null_table(preds)
    y, v = np.array(t["label"]), np.array(t["video"])
    rates = np.stack([np.where(y[v == g].any(0), y[v == g].mean(0), np.nan) for g in np.unique(v)])
    seen = ~np.isnan(rates).all(0)
    assert res["null"]["value"] == pytest.approx(float(np.mean(np.nanmean(rates[:, seen], 0))), abs=1e-6)
    # segmentation: all-foreground Dice = 2|g| / (|g| + HW) per image (the polyps are never empty)
    res, preds, maps = run_benchmark(get_benchmark("kvasirseg"), bench_root("kvasirseg"), enc, NO_BOOT, 0, tmp_path, 8)
    assert res["null"]["heads"][0]["null"] == "all foreground"
    masks = [_mask(cv2.imread(p, cv2.IMREAD_UNCHANGED)) for p in _null_table(preds)["target"]]
    dice = np.mean([2 * g.sum() / (g.sum() + g.size) for g in masks])
    assert res["null"]["value"] == pytest.approx(dice, abs=1e-6) and res["models"]["rand"]["paired"]["null"]
    # depth: a constant map, median-scaled -> AbsRel = mean |g - median(g)| / g over the valid pixels
    res, preds, maps = run_benchmark(get_benchmark("scared"), bench_root("scared"), enc, NO_BOOT, 0, tmp_path, 8)
    zs = [_scared_depth(cv2.imread(p, cv2.IMREAD_UNCHANGED)) for p in _null_table(preds)["target"]]
    rel = [np.mean(np.abs(z[m] - np.median(z[m])) / z[m]) for z in zs if (m := (z > 1e-3) & (z < 150)).any()]
    assert res["null"]["value"] == pytest.approx(float(np.mean(rel)), abs=1e-6)


def test_paired_differences_resample_the_same_units_for_both_models(bench_root, tmp_path):
    torch.manual_seed(0)
    model = create_model("vit_pico")
    encs = {"a": (model, "w"), "b": (model, "w"), "c": (create_model("vit_pico"), "other")}
    # Kvasir-SEG's images are independent units (each its own group): 3 test units in the test corpus
    res, _, _ = run_benchmark(get_benchmark("kvasirseg"), bench_root("kvasirseg"), encs, PROTO, 0, tmp_path, 8)
    a, c = res["models"]["a"], res["models"]["c"]
    assert a["n_test_units"] >= 3 and a["unit"] == "sequence" and set(a["paired"]) == {"b", "c", "null"}
    # the same weights: the same outputs, so every resample's difference is exactly 0
    assert a["paired"]["b"] == {"diff": 0.0, "ci": [0.0, 0.0], "separated": False}
    # antisymmetric, and the difference of the two reported values
    assert a["paired"]["c"]["diff"] == pytest.approx(a["value"] - c["value"], abs=2e-6)
    assert c["paired"]["a"]["diff"] == -a["paired"]["c"]["diff"]
    assert c["paired"]["a"]["ci"] == [-a["paired"]["c"]["ci"][1], -a["paired"]["c"]["ci"][0]]
    lo, hi = a["paired"]["c"]["ci"]
    assert lo <= a["paired"]["c"]["diff"] <= hi and a["paired"]["c"]["separated"] == (lo > 0 or hi < 0)


def test_too_few_units_give_no_ci_and_too_few_validation_items_a_fixed_head(bench_root):
    bench, records, samples, feats, y = _cholec80_with_signal(bench_root, strength=3.0)
    grid = ProbeGrid(lrs=(0.0, 3e-2), weight_decays=(0.0,), epochs=2, batch_size=8, depth=1, num_heads=2, min_steps=60)
    setup = Setup.build(bench, records, samples, dataclasses.replace(PROTO, probe=grid), seed=0)
    tr, va, te = setup.splits[0]
    # two validation instants cannot rank heads: the grid's first head (lr 0), said so by val_score None
    few_val = dataclasses.replace(setup, splits=[(tr, va[:2], te)])
    summary = evaluate_encoder(few_val, feats, 16, 2).summary
    assert summary["heads"] == [
        {"lr": 0.0, "weight_decay": 0.0, "steps": summary["heads"][0]["steps"], "val_score": None}
    ]
    # one test video (the test corpus): a value, but no CI
    assert summary["n_test_units"] == 1 and summary["ci"] == [None, None] and summary["value"] is not None
    # enough validation instants: the head that learnt, with its score
    assert evaluate_encoder(setup, feats, 16, 2).summary["heads"][0]["lr"] == 3e-2


def test_selecting_on_test_is_an_explicit_labelled_switch(bench_root):
    bench = get_benchmark("cholec80")
    records = bench.load(bench_root("cholec80"))
    samples = make_samples(bench, records, 1.0)
    held_out = Setup.build(bench, records, samples, PROTO, seed=0)
    on_test = Setup.build(bench, records, samples, dataclasses.replace(PROTO, select_on="test"), seed=0)
    (_, va, te), (_, va_t, te_t) = held_out.splits[0], on_test.splits[0]
    assert not set(va) & set(te) and np.array_equal(va_t, te_t) and np.array_equal(te, te_t)
    assert "TEST" in on_test.protocol.label and "TEST" not in held_out.protocol.label


def test_an_evaluation_closes_the_files_it_opened(bench_root, tmp_path):
    """Frame stores and token shards are read through file descriptors: a `--benchmark all` run over many
    videos must not keep one per record and shard open after each benchmark."""
    import os

    def open_files() -> set[str]:
        out = set()
        for fd in os.listdir("/proc/self/fd"):
            try:
                out.add(os.readlink(f"/proc/self/fd/{fd}"))
            except FileNotFoundError:  # the descriptor listdir itself used, closed since
                continue
        return out

    enc = {"rand": (create_model("vit_pico"), "rand")}
    cache = tmp_path / "cache"
    assert not any(str(cache) in f for f in open_files())
    run_benchmark(get_benchmark("cholec80"), bench_root("cholec80"), enc, NO_BOOT, 0, cache, 8)
    left = {f for f in open_files() if str(cache) in f}
    assert not left, left
