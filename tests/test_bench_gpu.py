"""`make bench-gpu` cannot rot between GPU machines: its CPU dry run runs every section here, and the
report renders what it writes. (The real run is `make bench-gpu` itself, on a GPU machine.)"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))  # the benchmark scripts are scripts, not a package

import bench_gpu  # noqa: E402
import perf_report  # noqa: E402


def _check(result: dict, dry: bool) -> None:
    assert result["dry_run"] is dry
    rows = result["pretrain"]["rows"]
    assert [r["variant"] for r in rows] == ["eager", "eager + act. ckpt", "compiled", "compiled + act. ckpt"]
    for r in rows:
        if "step_s" not in r:  # a compiler failure or the time budget is reported, never hidden
            assert r.get("failed") or r.get("skipped"), r
            continue
        assert r["step_s"] > 0 and r["batch"] >= 1 and r["tflop_per_step"] > 0
        assert r["tokens_per_s"] == pytest.approx(r["batch"] * r["tokens_per_clip"] / r["step_s"], rel=1e-2)
    assert result["pretrain"]["unisurg_over_vjepa"] > 0
    assert result["fsdp_giant"]["fits"] is True and result["fsdp_giant"]["step_s"] > 0
    assert result["extraction"]["clips_per_s"] > 0 and result["extraction"]["hours_per_100k_clips"] > 0
    assert result["distill"]["student"]["clips_per_s"] > 0
    st = result["streaming"]  # the whole streaming evaluation under the paper's protocol ran
    assert st["samples"] > 0 and st["samples_per_s"] > 0 and st["heads"] >= 1


def test_bench_gpu_dry_run_exercises_every_section_and_renders(tmp_path, monkeypatch):
    out = tmp_path / "perf_gpu.json"
    assert bench_gpu.main(["--dry-run", "--out", str(out)]) == 0
    result = json.loads(out.read_text())
    _check(result, dry=True)
    assert result["sizes"]["arch"] == "vit_pico" and result["device"] == "cpu"
    # a dry run is not a measurement: the report says there are no GPU figures
    text = "\n".join(perf_report.gpu_section({}, result))
    assert "No GPU figures" in text
    # a GPU run renders its table, with the MFU verdict against the 45 % target
    fake = {**result, "dry_run": False, "device": "NVIDIA H200", "peak_bf16_tflops": 989.0}
    fake["pretrain"] = {**result["pretrain"], "rows": [{**r, "mfu": 0.3} for r in result["pretrain"]["rows"]]}
    text = "\n".join(perf_report.gpu_section({}, fake))
    assert "NVIDIA H200" in text and "30.0 % (**missed by 1.50x**)" in text


def test_computed_training_memory_scales_as_stated():
    """States shrink by the FSDP world size; checkpointing cuts activations; ViT-g holds ~3x ViT-L's parameters."""
    s = bench_gpu.Sizes()
    one = bench_gpu.training_memory_gb(s.giant, s.predictor, 16, 256, 8, 1, False, True)
    eight = bench_gpu.training_memory_gb(s.giant, s.predictor, 16, 256, 8, 8, True, True)
    assert eight["states_gb"] == pytest.approx(one["states_gb"] / 8, abs=0.06)
    assert eight["activations_gb"] == one["activations_gb"]
    large = bench_gpu.training_memory_gb(s.arch, s.predictor, 16, 256, 8, 1, False, False)
    large_ckpt = bench_gpu.training_memory_gb(s.arch, s.predictor, 16, 256, 8, 1, False, True)
    assert large_ckpt["activations_gb"] < large["activations_gb"] / 4
    assert 300 < large["params_M"] < 340 and 2.5 < one["params_M"] / large["params_M"] < 3.5
    # 20 bytes per encoder parameter + 16 per predictor parameter, in GiB
    assert large["states_gb"] == pytest.approx(large["params_M"] * 1e6 * 19.9 / 2**30, rel=0.05)
