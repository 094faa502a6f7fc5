"""Faults: kill -9 mid-stage then rerun (no partial output taken as complete, final outputs equal an
uninterrupted run), a failing stage fails the Prefect flow, and the pipeline runs with no network."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from unisurg.models.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _run(args: list[str], cwd: Path | None = None) -> subprocess.CompletedProcess:
    p = subprocess.run(
        [sys.executable, "-m", "unisurg.cli", *args], cwd=cwd, env=_env(), capture_output=True, text=True
    )
    assert p.returncode == 0, p.stderr[-2000:]
    return p


def _kill_when(args: list[str], ready, timeout: float = 120.0) -> bool:
    """Start ``unisurg <args>``, SIGKILL it as soon as ``ready()`` is true; True if killed mid-run."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "unisurg.cli", *args], env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.time() + timeout
    try:
        while time.time() < deadline and proc.poll() is None:
            if ready():
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return True
            time.sleep(0.02)
        return False
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def world(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("faults")
    reg = base / "sources.yaml"
    reg.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "pre",
                        "root": str(corpus / "pretrain"),
                        "region": "mixed",
                        "procedure": "x",
                        "license": "x",
                    }
                ]
            }
        )
    )
    params = base / "params.yaml"
    params.write_text(
        yaml.safe_dump(
            {
                "curate": {"clip_frames": 4, "workers": 1, "sources": str(reg)},
                "pretrain": {
                    "arch": "vit_pico",
                    "predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                    "clip": {"frames": 4, "size": 32},
                    "steps": 4,
                    "batch_size": 2,
                    "probe_every": 0,
                },
                "distill": {
                    "student_arch": "vit_pico",
                    "steps": 24,
                    "batch_size": 2,
                    "checkpoint_every": 5,
                    "log_every": 1,
                },
                "evaluate": {
                    "models": {"a": str(base / "pre" / "encoder.pt"), "b": "random:vit_pico"},
                    "clip": {"frames": 4, "fps": 4.0, "size": 32},
                    "bootstrap": 20,
                    "cache_dir": str(base / "cache"),
                    "probe": {"epochs": 2, "lrs": [0.003], "weight_decays": [0.01]},
                },
            }
        )
    )
    _run(["curate", "--params", str(params), "--out", str(base / "idx")])
    _run(
        [
            "pretrain",
            "--params",
            str(params),
            "--clips",
            str(base / "idx" / "clips.parquet"),
            "--out",
            str(base / "pre"),
            "--quiet",
        ]
    )
    return base, params


def test_kill_during_curation_leaves_no_partial_index(world, record):
    base, params = world
    out = base / "idx_killed"
    killed = _kill_when(["curate", "--params", str(params), "--out", str(out)], lambda: out.exists())
    assert killed
    partial = [p.name for p in out.glob("*")] if out.exists() else []
    assert not [n for n in partial if not n.startswith(".")], partial  # only hidden temporary files, if anything
    _run(["curate", "--params", str(params), "--out", str(out)])
    for f in ("videos.parquet", "clips.parquet", "quarantine.parquet", "curation.json"):
        assert (out / f).read_bytes() == (base / "idx" / f).read_bytes(), f
    record("faults", "kill -9 during curation", "no index file left behind; rerun identical to an uninterrupted run")


def test_kill_during_distillation_resumes_to_the_same_student(world, record):
    base, params = world
    clips, teacher = str(base / "idx" / "clips.parquet"), str(base / "pre" / "encoder.pt")
    args = ["distill", "--params", str(params), "--clips", clips, "--teacher", teacher, "--quiet"]
    _run([*args, "--out", str(base / "d_full")])
    out = base / "d_killed"

    def ready() -> bool:
        try:
            return load_checkpoint(out / "checkpoint.pt")["step"] >= 5
        except (FileNotFoundError, RuntimeError, EOFError, KeyError):
            return False

    assert _kill_when([*args, "--out", str(out)], ready)
    assert not (out / "student.pt").exists()
    resumed = _run([*args, "--out", str(out)])
    assert "resuming distillation from step" in resumed.stderr
    a, b = load_checkpoint(base / "d_full" / "checkpoint.pt"), load_checkpoint(out / "checkpoint.pt")
    for k in a["student"]:
        assert torch.equal(a["student"][k], b["student"][k]), k
    record("faults", "kill -9 during distillation", "resumed from the last checkpoint; same final student weights")


def test_kill_during_evaluation_reruns_to_the_same_results(world, bench_root, record):
    base, params = world
    args = [
        "evaluate",
        "--params",
        str(params),
        "--benchmark",
        "cholec80",
        "--root",
        str(bench_root("cholec80")),
        "--quiet",
    ]

    def out_args(d: Path) -> list[str]:
        return ["--out", str(d), "--metrics", str(d / "results.json")]

    _run([*args, *out_args(base / "e_full")])
    shutil.rmtree(base / "cache")
    out = base / "e_killed"
    # kill once the first encoder's token shard is written, before the results exist
    assert _kill_when([*args, *out_args(out)], lambda: any((base / "cache").rglob("shard-*.json")))
    assert not (out / "results.json").exists() and not (out / "predictions.parquet").exists()
    _run([*args, *out_args(out)])
    assert (out / "results.json").read_text() == (base / "e_full" / "results.json").read_text()
    assert (out / "predictions.parquet").read_bytes() == (base / "e_full" / "predictions.parquet").read_bytes()
    record("faults", "kill -9 during evaluation", "no results.json from the killed run; rerun (cache reused) identical")


@pytest.mark.slow
def test_pipeline_runs_with_the_network_disabled(bench_root, tmp_path, record):
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-n", "true"]).returncode != 0:
        pytest.fail("network namespaces (unshare -n) are needed for the offline check")
    from tests.test_pipeline_flow import copy_project, tiny_params

    proj = copy_project(tmp_path / "offline")
    p = tiny_params()
    keep = ["cholec80", "cholect50", "kvasirseg"]
    p["synth"]["benchmarks"] = keep
    p["evaluate"]["benchmarks"] = {k: v for k, v in p["evaluate"]["benchmarks"].items() if k in keep}
    (proj / "sources.yaml").write_text(
        yaml.safe_dump(
            {
                "sources": [
                    s
                    for s in yaml.safe_load((ROOT / "sources.yaml").read_text())["sources"]
                    if s.get("role", "pretrain") == "pretrain"
                ]
            }
        )
    )
    (proj / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    env = _env()
    subprocess.run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], cwd=proj, env=env, check=True)
    run = subprocess.run(
        ["unshare", "-n", sys.executable, "-m", "dvc", "repro"], cwd=proj, env=env, capture_output=True, text=True
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    md = (proj / "reports" / "benchmark.md").read_text()
    assert all(name in md for name in ("Cholec80", "CholecT50", "Kvasir-SEG"))
    record("offline", "whole pipeline in a network namespace with no network", "completed; report written")
