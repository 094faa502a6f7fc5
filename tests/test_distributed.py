"""Scale-out and fault tolerance of the real entry point (`stages/pretrain.py` / `unisurg pretrain`)."""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from vjepa2_reference import write_released

from unisurg.curation.index import curate
from unisurg.curation.sources import Source
from unisurg.models.checkpoint import load_checkpoint
from unisurg.runtime import setup_distributed

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def job(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("dist")
    src = [Source(name="pre", root=str(corpus / "pretrain"), region="mixed", procedure="x", license="x")]
    curate(src, base / "idx", clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1)

    def params(steps: int, checkpoint_every: int = 100, parallel: str = "ddp", init: str = "none") -> Path:
        p = {
            "pretrain": {
                "init": init,
                "arch": "vit_pico",
                "predictor": {"embed_dim": 32, "depth": 1, "num_heads": 2},
                "clip": {"frames": 4, "size": 32},
                "steps": steps,
                "batch_size": 4,
                "checkpoint_every": checkpoint_every,
                "log_every": 1,
                "probe_every": 0,
                "optim": {"warmup_steps": 2},
                "parallel": parallel,
            }
        }
        path = base / f"params_{steps}_{checkpoint_every}_{parallel}_{init != 'none'}.yaml"
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


def _torchrun(params: Path, clips: Path, out: Path, port: int) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=2",
            f"--master_port={port}",
            *_pretrain_cmd(params, clips, out),
        ],
        env=_env(),
        capture_output=True,
        text=True,
    )


@pytest.mark.slow
@pytest.mark.parametrize("parallel,port", [("ddp", 29533), ("fsdp", 29534)])
def test_two_processes_equal_single_process_on_the_same_global_batch(job, parallel, port):
    """DDP (replicated) and FSDP (sharded weights, EMA teacher and optimizer state) follow the
    single-process trajectory; the checkpoints are full state dicts in both cases."""
    base, clips, params = job
    p = params(3, parallel=parallel)
    single = base / f"single_{parallel}"
    one = subprocess.run([sys.executable, *_pretrain_cmd(p, clips, single)], env=_env(), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _torchrun(p, clips, base / parallel, port)
    assert two.returncode == 0, two.stderr[-3000:]
    assert ("sharded over 2 ranks" in two.stderr) == (parallel == "fsdp")
    a, b = _weights(single), _weights(base / parallel)
    assert a.keys() == b.keys()
    worst = max((a[k] - b[k]).abs().max().item() for k in a)
    assert worst < 1e-4, worst  # same trajectory up to float reduction order
    oa, ob = (
        load_checkpoint(single / "checkpoint.pt")["optimizer"],
        load_checkpoint(base / parallel / "checkpoint.pt")["optimizer"],
    )
    assert oa["state"].keys() == ob["state"].keys()
    for name, st in oa["state"].items():
        assert torch.allclose(st["exp_avg_sq"], ob["state"][name]["exp_avg_sq"], rtol=1e-3, atol=1e-10), name
    enc_a = load_checkpoint(single / "encoder.pt")["encoder"]
    enc_b = load_checkpoint(base / parallel / "encoder.pt")["encoder"]
    assert enc_a.keys() == enc_b.keys()
    assert max((enc_a[k] - enc_b[k]).abs().max().item() for k in enc_a) < 1e-4


@pytest.mark.slow
def test_fsdp_run_resumes_single_process_from_its_full_checkpoint(job):
    """A checkpoint written by a sharded run is a full state dict: a single process resumes it."""
    base, clips, params = job
    p2 = params(2, parallel="fsdp")
    out = base / "fsdp_then_single"
    two = _torchrun(p2, clips, out, 29535)
    assert two.returncode == 0, two.stderr[-3000:]
    p4 = params(4, parallel="fsdp")  # same run, longer: resumes at step 2 without torchrun
    one = subprocess.run([sys.executable, *_pretrain_cmd(p4, clips, out)], env=_env(), capture_output=True, text=True)
    assert one.returncode == 0, one.stderr[-2000:]
    assert "resuming pretraining from step 2" in one.stderr
    ref = base / "single_4"
    full = subprocess.run([sys.executable, *_pretrain_cmd(p4, clips, ref)], env=_env(), capture_output=True, text=True)
    assert full.returncode == 0, full.stderr[-2000:]
    # the resumed run follows the single-process trajectory: the same loss at every logged step ...
    la, lb = (np.loadtxt(d / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1)) for d in (ref, out))
    np.testing.assert_array_equal(la[:, 0], lb[:, 0])
    np.testing.assert_allclose(la[:, 1], lb[:, 1], rtol=1e-4)
    # ... and the same weights, up to one Adam step (lr 5e-4): parameters whose gradient is
    # analytically ~0 (e.g. attention key biases) take lr-sized steps of random sign from the
    # float-reduction-order noise in their gradients, so sharded and single runs differ there by ~lr
    a, b = _weights(ref), _weights(out)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-3


# The stage in a process that SIGKILLs itself right after writing the log row of step argv[1]: a
# kill -9 at a known step whatever the machine's speed (a poll of the checkpoint could miss a fast run).
_DIE_AFTER_ROW = """
import os, runpy, signal, sys
from unisurg.training.loop import StepLog
kill_at, sys.argv = int(sys.argv[1]), sys.argv[2:]
write = StepLog.write
def write_then_die(self, row):
    write(self, row)
    if row["step"] == kill_at:
        os.kill(os.getpid(), signal.SIGKILL)
StepLog.write = write_then_die
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _log_rows(out: Path) -> list[dict]:
    with open(out / "log.csv", newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


@pytest.mark.parametrize("start", ["random", "released"])
def test_killed_run_resumes_to_the_uninterrupted_weights(job, start):
    """From random weights, or continued from a released V-JEPA 2 file (pretrain.init)."""
    base, clips, params = job
    init = "none"
    if start == "released":
        write_released(base / "released.pt")
        init = f"vjepa:vit_pico:{base / 'released.pt'}"
    p = params(16, checkpoint_every=5, init=init)
    full = subprocess.run(
        [sys.executable, *_pretrain_cmd(p, clips, base / f"full_{start}")], env=_env(), capture_output=True, text=True
    )
    assert full.returncode == 0, full.stderr[-2000:]
    out = base / f"killed_{start}"
    killed = subprocess.run(
        [sys.executable, "-c", _DIE_AFTER_ROW, "12", *_pretrain_cmd(p, clips, out)],
        env=_env(),
        capture_output=True,
        text=True,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    assert load_checkpoint(out / "checkpoint.pt")["step"] == 10  # steps 11-12 ran, then the kill
    assert len(_log_rows(out)) == 12
    assert not (out / "encoder.pt").exists()  # nothing final was written by the killed run
    resumed = subprocess.run(
        [sys.executable, *_pretrain_cmd(p, clips, out)], env=_env(), capture_output=True, text=True
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming pretraining from step 10" in resumed.stderr
    a, b = _weights(base / f"full_{start}"), _weights(out)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert _log_rows(out) == _log_rows(base / f"full_{start}")  # rows 11-12 of the killed run replaced, not repeated
    if start == "released":  # the resumed run still says where it started from
        assert load_checkpoint(out / "checkpoint.pt")["init"]["spec"] == init


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
