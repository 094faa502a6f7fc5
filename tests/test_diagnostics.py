"""Learning diagnostics: each computed right on a case with a known answer, logged by a real run, and
a run with them trains the same weights as one without."""

import csv

import numpy as np
import pytest
import torch
from tiny import pretrain_params

from unisurg.benchmarks import get_benchmark
from unisurg.config import PretrainParams
from unisurg.models.checkpoint import load_checkpoint
from unisurg.report import learning_rows, learning_section
from unisurg.training.diagnostics import (
    ProbeSet,
    balanced_accuracy,
    copy_losses,
    drift,
    pooled_spread,
    probe_score,
    probe_set,
    snapshot,
)
from unisurg.training.pretrain import run_pretrain


def test_pooled_rank_of_a_known_rank_matrix_and_pooled_variance():
    """k orthonormal directions with equal singular values, centred: RankMe effective rank is exactly k."""
    g = torch.Generator().manual_seed(0)
    n, d, k = 40, 16, 5
    a = torch.randn(n, k, generator=g, dtype=torch.float64)
    u, _ = torch.linalg.qr(a - a.mean(0))  # (n, k) orthonormal, zero-mean columns
    v, _ = torch.linalg.qr(torch.randn(d, k, generator=g, dtype=torch.float64))
    feats = 3.0 * u @ v.T  # (n, d), rank k, singular values all 3
    rank, var = pooled_spread(feats)
    assert rank == pytest.approx(k, abs=1e-4)
    assert var == pytest.approx(float(feats.var(dim=0).mean()))
    assert pooled_spread(torch.ones(n, d, dtype=torch.float64))[1] == 0.0  # every clip the same: no spread


def test_copy_baselines_on_a_constant_clip_and_a_known_row():
    grid = (1, 1, 4)  # one row of 4 tokens
    const = torch.full((2, 4, 3), 0.7)
    ctx, tgt = torch.tensor([[0, 3], [1, 2]]), torch.tensor([[1, 2], [0, 3]])
    assert copy_losses(const, ctx, tgt, grid) == (0.0, 0.0)  # copying a constant clip is exact
    h = torch.tensor([[[0.0], [10.0], [20.0], [30.0]]])  # (1, 4, 1)
    mean, nearest = copy_losses(h, torch.tensor([[0, 3]]), torch.tensor([[1, 2]]), grid)
    assert mean == pytest.approx(5.0)  # clip mean 15: |15 - 10|, |15 - 20|
    assert nearest == pytest.approx(10.0)  # 1 copies token 0, 2 copies token 3
    _, tie = copy_losses(h[:, :3], torch.tensor([[2, 0]]), torch.tensor([[1]]), (1, 1, 3))
    assert tie == pytest.approx(10.0)  # equidistant: the first context token in the list (2 -> 20)
    # in a (T', H', W') grid, distance counts time as well as space: index 4 = (t 1, y 0, x 0)
    _, timed = copy_losses(torch.arange(8.0).view(1, 8, 1), torch.tensor([[0, 7]]), torch.tensor([[4]]), (2, 2, 2))
    assert timed == pytest.approx(4.0)  # (1,0,0) is 1 from (0,0,0) and sqrt(2) from (1,1,1)


def test_drift_is_the_relative_distance_from_the_start():
    m = torch.nn.Linear(3, 2)
    start = snapshot(m)
    assert drift(m, start) == 0.0
    with torch.no_grad():
        for p in m.parameters():
            p.mul_(1.5)
    assert drift(m, start) == pytest.approx(0.5)


def test_probe_score_is_balanced_accuracy_on_the_validation_clips():
    assert balanced_accuracy(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 1])) == 1.0
    assert balanced_accuracy(np.array([0, 0, 0, 0]), np.array([0, 0, 0, 1])) == 0.5  # the majority alone: chance
    labels = np.array([0, 1, 2] * 6)
    fit = np.arange(18) < 12
    probe = ProbeSet(torch.zeros(18, 3, 1, 1, 1, dtype=torch.uint8), labels, fit, "toy")
    separable = torch.from_numpy(np.eye(3)[labels] * 5 + 0.01 * np.arange(18)[:, None])
    assert probe_score(separable, probe) == 1.0
    noise = torch.from_numpy(np.random.default_rng(0).normal(size=(18, 3)))
    assert probe_score(noise, probe) < 1.0  # features that carry no label do not score perfectly


def test_the_probe_set_reads_train_and_val_never_test(bench_root):
    bench = get_benchmark("cholec80")
    records = bench.load(bench_root("cholec80"))
    probe = probe_set(bench, bench_root("cholec80"), frames=4, size=32, step=2, per_video=5)
    n_train = sum(r.split == "train" for r in records)
    n_val = sum(r.split == "val" for r in records)
    assert probe.clips.shape == (5 * (n_train + n_val), 3, 4, 32, 32) and probe.clips.dtype == torch.uint8
    assert int(probe.fit.sum()) == 5 * n_train and int((~probe.fit).sum()) == 5 * n_val
    assert probe.clips.float().std() > 0  # decoded pixels, not padding
    train = [r for r in records if r.split in ("train", "val")]
    first = train[0]
    pick = np.unique(np.linspace(0, len(first.times) - 1, 5).round().astype(np.int64))
    assert probe.labels[: len(pick)].tolist() == first.labels[pick].tolist()  # each clip labelled at its end
    assert "train" in probe.name and "val" in probe.name


def test_diagnostics_need_a_root():
    with pytest.raises(ValueError, match="diagnostics.root"):
        PretrainParams(diagnostics={"benchmark": "cholec80"})


def test_a_run_logs_its_diagnostics_and_trains_the_same_weights(clips, bench_root, tmp_path):
    diag = {"benchmark": "cholec80", "root": str(bench_root("cholec80")), "every": 2, "per_video": 3}
    m = run_pretrain(clips, tmp_path / "on", pretrain_params(4, diagnostics=diag), seed=0, progress=False)
    run_pretrain(clips, tmp_path / "off", pretrain_params(4), seed=0, progress=False)
    a, b = load_checkpoint(tmp_path / "on" / "checkpoint.pt"), load_checkpoint(tmp_path / "off" / "checkpoint.pt")
    for key in ("encoder", "target_encoder", "predictor"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k}: the diagnostics changed the training"
    with open(tmp_path / "on" / "log.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["step"] for r in rows] == ["0", "1", "2", "3", "4"]
    zero = rows[0]
    assert zero["loss"] == "" and float(zero["drift_online"]) == 0.0 and float(zero["drift_ema"]) == 0.0
    assert 0.0 <= float(zero["probe_online"]) <= 1.0 and float(zero["pooled_rank"]) >= 1.0
    assert all(rows[s][k] for s in (2, 4) for k in ("probe_online", "probe_ema", "pooled_var", "drift_ema"))
    assert rows[1]["probe_online"] == "" and rows[3]["drift_online"] == ""  # off cadence
    assert float(rows[4]["drift_online"]) > float(rows[4]["drift_ema"]) > 0  # the EMA trails the online encoder
    assert all(float(r["copy_mean"]) > 0 and float(r["copy_nearest"]) > 0 for r in rows[1:])
    assert m["probe_ema_step0"] == float(zero["probe_ema"]) and m["final_drift_ema"] == float(rows[4]["drift_ema"])
    lines = learning_section(rows)
    assert lines[1] == "## Does pretraining learn?" and sum(line.startswith("| 4 |") for line in lines) == 1
    window = learning_rows(rows)[1]  # step 2: the mean of steps 1 and 2
    assert window["pred"] == pytest.approx((float(rows[1]["pred"]) + float(rows[2]["pred"])) / 2)


def test_the_recipe_table_reads_each_runs_log_and_names_the_runs_not_made(tmp_path):
    from unisurg.report import write_recipe

    fields = [
        "step",
        "loss",
        "pred",
        "copy_mean",
        "copy_nearest",
        "probe_online",
        "probe_ema",
        "pooled_rank",
        "pooled_var",
        "drift_online",
        "drift_ema",
    ]
    rows = [
        {
            "step": 0,
            "probe_online": 0.2,
            "probe_ema": 0.25,
            "pooled_rank": 9.0,
            "pooled_var": 0.1,
            "drift_online": 0.0,
            "drift_ema": 0.0,
        },
        *({"step": s, "loss": 1.0, "pred": 0.5, "copy_mean": 0.8, "copy_nearest": 0.6} for s in range(5, 100, 5)),
        {
            "step": 100,
            "loss": 1.0,
            "pred": 0.3,
            "copy_mean": 0.8,
            "copy_nearest": 0.6,
            "probe_online": 0.4,
            "probe_ema": 0.45,
            "pooled_rank": 7.5,
            "pooled_var": 0.2,
            "drift_online": 0.3,
            "drift_ema": 0.2,
        },
    ]
    main = tmp_path / "log.csv"
    with open(main, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)
    out = tmp_path / "recipe.md"
    write_recipe({"main": main, "cand": tmp_path / "none.csv"}, {"cand": "--set x=1"}, out, "a CPU")
    text = out.read_text()
    # the last 20 logged steps: 19 rows of pred 0.5 and one of 0.3
    assert "| main | (params.yaml) | 0.25 | 0.45 | 0.4 | 7.5 | 0.2 | 0.4900 | 0.8000 | 0.6000 |" in text
    assert "| cand | `--set x=1` | not run |" in text and "Written on: a CPU." in text


def test_the_report_reads_the_diagnostics_copying_and_cross_clip_collapse():
    from unisurg.report import learning_reading

    def row(step: int, var: str, pred: float | None, copy: float | None) -> dict:
        return {"step": step, "pooled_var": var, "pred": pred, "copy_mean": copy, "probe_ema": "0.3"}

    # the predictor 3% below copying, the pooled variance down to a fifth: both read as the reason
    lines = "\n".join(learning_reading([row(0, "0.2", None, None), row(100, "0.04", 0.97, 1.0)]))
    assert "3% below what copying the clip's mean teacher token scores (0.9700 vs 1.0000)" in lines
    assert "adds little beyond the clip's average" in lines
    assert "ends at 20% of its step-0 value (0.0400 vs 0.2000): clips move toward one another" in lines
    # a predictor well below copying and a spread that survives read the other way
    lines = "\n".join(learning_reading([row(0, "0.2", None, None), row(100, "0.15", 0.5, 1.0)]))
    assert "50% below" in lines and "uses the context beyond the average" in lines and "keep their spread" in lines
    assert learning_reading([row(0, "", None, None)]) == []  # nothing to read
