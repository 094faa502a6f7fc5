"""Bad input and damage during a long evaluation: a benchmark video that stops decoding part-way, a
finished benchmark rerun, damaged cache entries (a truncated token shard, an altered frame store)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from tests.test_streaming import PatchEncoder, small_surgmotion, write_cholec80
from unisurg.benchmarks import get_benchmark
from unisurg.evaluation.harness import run_benchmark


def test_a_video_that_stops_decoding_part_way_skips_its_windows_and_the_run_goes_on(tmp_path, caplog, record):
    root = write_cholec80(tmp_path / "c", 20, corrupt=42)
    torch.manual_seed(0)
    res, preds, _ = run_benchmark(
        get_benchmark("cholec80"),
        root,
        {"patch": (PatchEncoder(64), "patch")},
        small_surgmotion("cached"),
        0,
        tmp_path / "cache",
        4,
    )
    skipped = res["skipped"]
    assert 0 < skipped["samples"] < 20 and list(skipped["videos"]) == ["video42"]
    assert "video42.mp4" in skipped["videos"]["video42"]
    assert res["n_samples"] == 4 * 20 - skipped["samples"]
    scored = [v for v, m in zip(preds.column("video").to_pylist(), preds.column("model").to_pylist()) if m == "patch"]
    assert scored.count("video42") == 20 - skipped["samples"]  # its first seconds decoded and were scored
    assert any("skipped" in r.message and "video42" in r.message for r in caplog.records)
    record(
        "evaluation",
        "benchmark video that stops decoding half-way",
        f"{skipped['samples']} of its windows skipped with the reason, counted in the results; the run went on",
    )


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "unisurg", *args], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def _params(tmp: Path) -> Path:
    import yaml

    p = {
        "evaluate": {
            "device": "cpu",
            "models": {"rand": "random:vit_pico"},
            "clip": {"frames": 4, "fps": 4.0, "size": 32},
            "probe": {"lrs": [1e-3], "epochs": 1, "min_steps": 4, "seeds": 1, "num_heads": 2},
            "bootstrap": 20,
            "workers": 0,
            "cache_dir": str(tmp / "cache"),
        }
    }
    (tmp / "params.yaml").write_text(yaml.safe_dump(p))
    return tmp / "params.yaml"


def test_a_rerun_keeps_finished_benchmarks_and_rebuilds_damaged_cache_entries(bench_root, tmp_path, record):
    roots = {b: str(bench_root(b)) for b in ("cholec80", "autolaparo")}
    params = _params(tmp_path)
    args = [
        "evaluate",
        "--params",
        str(params),
        "--benchmark",
        *roots,
        "--out",
        str(tmp_path / "out"),
        "--metrics-dir",
        str(tmp_path / "m"),
    ]
    benchmarks = {"evaluate": {**yaml_load(params)["evaluate"], "benchmarks": roots}}
    params.write_text(__import__("yaml").safe_dump(benchmarks))
    _cli(args)
    first = {b: (tmp_path / "m" / f"{b}.json").read_bytes() for b in roots}
    stamps = {b: (tmp_path / "m" / f"{b}.json").stat().st_mtime_ns for b in roots}
    # a finished benchmark is not computed again: same inputs, same key
    again = _cli(args)
    assert again.stderr.count("not computed again") == 2
    assert {b: (tmp_path / "m" / f"{b}.json").stat().st_mtime_ns for b in roots} == stamps
    # damaged cache entries (a truncated token shard, a flipped byte in a frame store) are found and rebuilt
    shard = next((tmp_path / "cache" / "tokens").rglob("shard-*.f16"))
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    store = next((tmp_path / "cache" / "frames").glob("*.u8"))
    data = bytearray(store.read_bytes())
    data[len(data) // 3] ^= 0xFF
    store.write_bytes(bytes(data))
    for b in roots:
        (tmp_path / "m" / f"{b}.json").unlink()  # the results are gone: evaluate again from the cache
    third = _cli(args)
    assert "token shard" in third.stderr and "damaged" in third.stderr and "frame store" in third.stderr
    assert {b: (tmp_path / "m" / f"{b}.json").read_bytes() for b in roots} == first
    record(
        "evaluation",
        "truncated token shard / altered frame store in the cache",
        "detected by size and checksum, logged, rebuilt; the results are those of a clean run",
    )


def yaml_load(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text())
