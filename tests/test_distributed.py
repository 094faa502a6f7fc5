"""Scale-out and fault tolerance of the real entry point (`stages/pretrain.py` / `unisurg pretrain`)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import yaml

from unisurg.checkpoint import load_checkpoint
from unisurg.curate import curate
from unisurg.sources import Source
from unisurg.trainer import setup_distributed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def job(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    src = [Source(name="pre", root=str(corpus / "pretrain"), region="mixed", procedure="x", license="x")]
    curate(src, base / "idx", clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1)

    def params(steps: int, checkpoint_every: int = 100) -> Path:
        p = {
            "pretrain": {
                "arch": "vit_pico",
                "predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                "clip": {"frames": 4, "size": 32},
                "steps": steps,
                "batch_size": 4,
                "checkpoint_every": checkpoint_every,
                "log_every": 1,
                "probe_every": 0,
                "optim": {"warmup_steps": 2},
            }
        }
        path = base / f"params_{steps}_{checkpoint_every}.yaml"
        path.write_text(yaml.safe_dump(p))
        return path

    return base, base / "idx" / "clips.parquet", params


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    return env


def _pretrain_cmd(params: Path, clips: Path, out: Path) -> list[str]:
    return [
        str(ROOT / "stages" / "pretrain.py"),
        "--params",
        str(params),
        "--clips",
        str(clips),
        "--out",
        str(out),
        "--quiet",
    ]


def _weights(out: Path) -> dict:
    ck = load_checkpoint(out / "checkpoint.pt")
    return {
        **{f"e.{k}": v for k, v in ck["encoder"].items()},
        **{f"p.{k}": v for k, v in ck["predictor"].items()},
        **{f"t.{k}": v for k, v in ck["target_encoder"].items()},
    }


@pytest.mark.slow
def test_two_process_ddp_equals_single_process_on_the_same_global_batch(job):
    base, clips, params = job
    p = params(3)
    single = subprocess.run(
        [sys.executable, *_pretrain_cmd(p, clips, base / "single")], env=_env(), capture_output=True, text=True
    )
    assert single.returncode == 0, single.stderr[-2000:]
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            "--master_port=29533",
            *_pretrain_cmd(p, clips, base / "ddp"),
        ],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    a, b = _weights(base / "single"), _weights(base / "ddp")
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, worst  # same trajectory up to float reduction order


def test_killed_run_resumes_to_the_uninterrupted_weights(job):
    base, clips, params = job
    p = params(40, checkpoint_every=5)
    full = subprocess.run(
        [sys.executable, *_pretrain_cmd(p, clips, base / "full")], env=_env(), capture_output=True, text=True
    )
    assert full.returncode == 0, full.stderr[-2000:]
    out = base / "killed"
    proc = subprocess.Popen(
        [sys.executable, *_pretrain_cmd(p, clips, out)],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    killed_at = None
    while time.time() < deadline and proc.poll() is None:
        if (out / "checkpoint.pt").exists():
            step = load_checkpoint(out / "checkpoint.pt")["step"]
            if step >= 10:
                proc.send_signal(signal.SIGKILL)
                killed_at = step
                break
        time.sleep(0.05)
    proc.wait()
    assert killed_at is not None and killed_at < 40, "the run finished before it could be killed"
    assert not (out / "encoder.pt").exists()  # nothing final was written by the killed run
    resumed = subprocess.run(
        [sys.executable, *_pretrain_cmd(p, clips, out)], env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming pretraining from step" in resumed.stderr
    a, b = _weights(base / "full"), _weights(out)
    for k in a:
        assert torch.equal(a[k], b[k]), k


def test_misconfigured_launch_fails_loudly(monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    with pytest.raises(RuntimeError, match="misconfigured distributed launch"):
        setup_distributed()
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "5")
    with pytest.raises(RuntimeError, match="RANK=5"):
        setup_distributed()
