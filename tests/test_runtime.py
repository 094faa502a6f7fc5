"""Devices and processes (unisurg.runtime): every stage computes where `device` says, and sharded
feature extraction under torchrun equals one process byte for byte."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
import yaml
from tiny import distill_params, pretrain_params

from unisurg.benchmarks import get_benchmark
from unisurg.cli import main
from unisurg.config import ConfigError, parse_params
from unisurg.evaluation.harness import run_benchmark
from unisurg.evaluation.protocols import ProbeGrid, Protocol, Sampling
from unisurg.models import create_model
from unisurg.models.checkpoint import load_checkpoint
from unisurg.runtime import Dist, FittingBatch, batch_shard, resolve_device
from unisurg.training.distill import run_distill
from unisurg.training.pretrain import run_pretrain

ROOT = Path(__file__).resolve().parents[1]
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.gpu)]
PROTO = Protocol(
    "test",
    Sampling(frames=4, fps=4.0, size=32),
    ProbeGrid(lrs=(1e-3,), weight_decays=(0.01,), epochs=2, batch_size=8, depth=1, num_heads=2),
    bootstrap=20,
)


# --------------------------------------------------------------------------- the policy


def test_device_policy_resolves_or_names_the_problem():
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="expected auto, cpu, cuda or cuda:N"):
        resolve_device("gpu")
    if not torch.cuda.is_available():  # asking for a GPU that is not there is an error, not a CPU run
        with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
            resolve_device("cuda")
    with pytest.raises(ConfigError, match="evaluate.device"):
        parse_params({"evaluate": {"device": "gpu0"}})
    # one integer batch size sets both devices; a mapping sets each
    assert parse_params({"evaluate": {"batch_size": 4}}).evaluate.batch_size.on("cuda") == 4
    e = parse_params({"evaluate": {"batch_size": {"cpu": 4, "cuda": 64}}}).evaluate
    assert (e.batch_size.on("cpu"), e.batch_size.on("cuda")) == (4, 64)


@pytest.mark.parametrize("n,batch,world", [(10, 3, 2), (7, 4, 3), (2, 4, 3), (64, 8, 8), (65, 8, 2), (0, 4, 2)])
def test_batch_shards_cover_the_items_in_order_in_whole_batches(n, batch, world):
    shards = [batch_shard(n, batch, r, world) for r in range(world)]
    assert [i for s in shards for i in s] == list(range(n))  # concatenated in rank order = one process
    for s in shards:
        assert s.start % batch == 0  # every rank starts at a batch boundary of the single process
        assert len(s) % batch == 0 or s.stop == n


def test_a_batch_that_does_not_fit_is_halved_and_the_result_is_unchanged(caplog):
    torch.manual_seed(0)
    enc = create_model("vit_pico").eval()
    x = torch.randn(5, 3, 4, 32, 32)
    calls = []

    def small_gpu(chunk: torch.Tensor) -> torch.Tensor:  # a device that holds at most 2 clips
        calls.append(len(chunk))
        if len(chunk) > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated: more than 2 clips)")
        return enc(chunk)

    fit = FittingBatch()
    with torch.no_grad(), caplog.at_level(logging.WARNING):
        out = fit(small_gpu, x)
        again = fit(small_gpu, x)  # the working chunk is remembered: no failed attempt, no second warning
        want = enc(x)
    assert calls == [5, 2, 2, 1] + [2, 2, 1]  # 5 fails, then 5 clips in chunks of 2, 2, 1; again at 2
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(out, again)
    assert sum("does not fit in GPU memory" in r.message for r in caplog.records) == 1

    def no_gpu(chunk: torch.Tensor) -> torch.Tensor:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory (simulated)")

    with pytest.raises(torch.cuda.OutOfMemoryError):  # not even one clip fits: the error stands
        FittingBatch()(no_gpu, x)


# --------------------------------------------------------------------------- every stage on its device


@contextlib.contextmanager
def devices_seen():
    """The device types of every module's parameters, buffers, inputs and outputs while the block runs."""
    seen: set[str] = set()

    def tensors(obj):
        if isinstance(obj, torch.Tensor):
            yield obj
        elif isinstance(obj, dict):
            for v in obj.values():
                yield from tensors(v)
        elif isinstance(obj, list | tuple):
            for v in obj:
                yield from tensors(v)

    def hook(module, args, kwargs, output):
        for t in [*module.parameters(recurse=False), *module.buffers(recurse=False), *tensors((args, kwargs, output))]:
            seen.add(t.device.type)

    handle = torch.nn.modules.module.register_module_forward_hook(hook, with_kwargs=True)
    try:
        yield seen
    finally:
        handle.remove()


@pytest.mark.parametrize("device", DEVICES)
def test_every_stage_computes_on_the_requested_device(device, clips, teacher, bench_root, tmp_path):
    """Pretraining, distillation, evaluation (features and probes) and `features extract` on tiny
    models: every module that runs has its parameters, its inputs and its outputs on ``device``."""
    with devices_seen() as seen:
        run_pretrain(clips, tmp_path / "p", pretrain_params(2, device=device), seed=0, progress=False)
    assert seen == {device}, f"pretraining touched {seen}"
    with devices_seen() as seen:
        run_distill(clips, [teacher], tmp_path / "d", distill_params(2, device=device), 4, 32, 0, progress=False)
    assert seen == {device}, f"distillation touched {seen}"
    dev = resolve_device(device)
    torch.manual_seed(0)
    enc = create_model("vit_pico").to(dev)
    with devices_seen() as seen:
        res, _, _ = run_benchmark(
            get_benchmark("cholec80"),
            bench_root("cholec80"),
            {"rand": (enc, "rand")},
            PROTO,
            0,
            tmp_path / "c",
            8,
            Dist(device=dev),
        )
    assert seen == {device}, f"evaluation touched {seen}"
    assert res["models"]["rand"]["value"] is not None
    videos = bench_root("cholec80") / "videos"
    args = ["--encoder", "random:vit_pico", "--frames", "4", "--size", "32", "--device", device]
    with devices_seen() as seen:
        assert main(["features", "extract", str(videos), *args, "--out", str(tmp_path / "f.parquet")]) == 0
    assert seen == {device}, f"feature extraction touched {seen}"
    # the checkpoints are device-independent: CPU tensors whatever the run's device
    ck = load_checkpoint(tmp_path / "d" / "student.pt")
    assert {t.device.type for t in ck["encoder"].values()} == {"cpu"}


def test_asking_for_a_missing_gpu_stops_the_stage_before_any_work(clips, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU: the error case cannot happen here")
    with pytest.raises(RuntimeError, match="torch sees no CUDA device"):
        run_pretrain(clips, tmp_path / "p", pretrain_params(1, device="cuda"), seed=0, progress=False)
    assert not (tmp_path / "p" / "checkpoint.pt").exists()


# --------------------------------------------------------------------------- several processes


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _env() -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK")}
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["OMP_NUM_THREADS"] = "1"  # what torchrun gives each rank: one process gets the same kernels
    return env


def _run(argv: list[str], ranks: int = 1) -> None:
    """``argv`` (a script and its arguments) in one process, or under torchrun with ``ranks`` gloo processes."""
    launch = [sys.executable]
    if ranks > 1:
        launch += ["-m", "torch.distributed.run", f"--nproc_per_node={ranks}", f"--master_port={_free_port()}"]
    done = subprocess.run([*launch, *argv], env=_env(), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def _eval_params(tmp: Path, name: str) -> Path:
    params = {
        "evaluate": {
            "device": "cpu",
            "models": {"rand": "random:vit_pico"},
            "clip": {"frames": 4, "fps": 4.0, "size": 32},
            "probe": {"lrs": [1e-3, 3e-3, 1e-2], "epochs": 1, "min_steps": 4, "seeds": 1, "num_heads": 2},
            "bootstrap": 20,
            "batch_size": 3,  # several batches per rank, and a short last one
            "cache_dir": str(tmp / name / "cache"),
        }
    }
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(params))
    return path


def test_two_processes_extract_and_evaluate_exactly_like_one(bench_root, tmp_path):
    """`unisurg evaluate` and `unisurg features extract` under torchrun (2 gloo ranks): the token store,
    the results and the predictions equal a single process's, byte for byte, and both ranks trained
    probe heads (3 heads: rank 0 one, rank 1 two)."""
    root = str(bench_root("cholec80"))
    out = {}
    for name, ranks in (("one", 1), ("two", 2)):
        args = ["--benchmark", "cholec80", "--root", root, "--out", str(tmp_path / name / "eval")]
        _run(
            [
                str(ROOT / "stages" / "evaluate.py"),
                "--params",
                str(_eval_params(tmp_path, name)),
                *args,
                "--metrics",
                str(tmp_path / name / "r.json"),
            ],
            ranks,
        )
        feats = sorted((tmp_path / name / "cache" / "tokens").rglob("shard-*"))
        videos = str(Path(root) / "videos")
        ex = ["--encoder", "random:vit_pico", "--frames", "4", "--size", "32", "--device", "cpu", "--batch-size", "3"]
        _run(["-m", "unisurg", "features", "extract", videos, *ex, "--out", str(tmp_path / name / "f.parquet")], ranks)
        _run(
            [
                "-m",
                "unisurg",
                "features",
                "extract",
                videos,
                *ex,
                "--pool",
                "none",
                "--out",
                str(tmp_path / name / "npy"),
            ],
            ranks,
        )
        out[name] = {
            "feats": {f.name: f.read_bytes() for f in feats},
            "result": json.loads((tmp_path / name / "r.json").read_text()),
            "preds": pq.read_table(tmp_path / name / "eval" / "predictions.parquet"),
            "pooled": pq.read_table(tmp_path / name / "f.parquet"),
            "index": pq.read_table(tmp_path / name / "npy" / "windows.parquet"),
            "npy": {p.name: p.read_bytes() for p in sorted((tmp_path / name / "npy").glob("*.npy"))},
        }
    one, two = out["one"], out["two"]
    assert one["feats"] and one["feats"] == two["feats"]  # the encoder's token shards, byte for byte
    assert two["result"]["compute"] == {"device": "cpu", "precision": "float32", "ranks": 2}
    assert two["result"]["models"]["rand"].pop("heads_per_rank") == [[1, 2]]  # every rank trained heads
    strip = lambda r: {k: v for k, v in r.items() if k not in ("machine", "compute")}  # noqa: E731
    assert strip(one["result"]) == strip(two["result"])
    assert one["preds"].equals(two["preds"])
    assert one["pooled"].equals(two["pooled"]) and one["index"].equals(two["index"])
    assert one["npy"] and one["npy"] == two["npy"]  # every video's token file, byte for byte
    assert len({r["video"] for r in one["index"].to_pylist()}) > 1  # both ranks had videos to embed


@pytest.mark.slow
def test_two_processes_encode_online_and_train_every_rank_like_one(bench_root, tmp_path):
    """The paper's protocol (augmented clips encoded online every epoch) under torchrun: each rank encodes
    its part of every batch, the tokens are gathered, each rank trains its share of the heads; the
    results equal one process's."""
    root = str(bench_root("cholec80"))
    out = {}
    for name, ranks in (("one", 1), ("two", 2)):
        params = yaml.safe_load(_eval_params(tmp_path, name).read_text())
        params["evaluate"].update(
            protocol="surgmotion",
            clip={"frames": 8, "size": 32},
            probe={"lrs": [1e-3, 3e-3, 1e-2], "weight_decays": [0.01], "depth": 1, "num_heads": 2},
            batch_size=4,
        )
        (tmp_path / f"{name}-online.yaml").write_text(yaml.safe_dump(params))
        metrics = tmp_path / name / "online.json"
        args = ["--benchmark", "cholec80", "--root", root, "--out", str(tmp_path / name / "online")]
        _run(
            [
                str(ROOT / "stages" / "evaluate.py"),
                "--params",
                str(tmp_path / f"{name}-online.yaml"),
                *args,
                "--metrics",
                str(metrics),
            ],
            ranks,
        )
        out[name] = json.loads(metrics.read_text())
    one, two = out["one"], out["two"]
    assert one["protocol"]["tokens"] == "online" and not list((tmp_path / "one" / "cache").glob("tokens/*"))
    assert two["models"]["rand"].pop("heads_per_rank") == [[1, 2]]
    strip = lambda r: {k: v for k, v in r.items() if k not in ("machine", "compute")}  # noqa: E731
    assert strip(one) == strip(two)


@pytest.mark.slow
def test_two_process_distillation_follows_the_single_process_trajectory(clips, teacher, tmp_path):
    """Distillation under DDP (2 gloo ranks, each half of every global batch) ends at the weights of
    the single-process run, up to float reduction order."""
    params = {
        "distill": {
            "device": "cpu",
            "student_arch": "vit_pico",
            "steps": 3,
            "batch_size": 4,
            "log_every": 1,
            "optim": {"warmup_steps": 0, "schedule": "constant"},
        },
        "pretrain": {"clip": {"frames": 4, "size": 32}},
    }
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(params))
    for name, ranks in (("one", 1), ("two", 2)):
        argv = [str(ROOT / "stages" / "distill.py"), "--params", str(path), "--clips", str(clips)]
        _run([*argv, "--teacher", str(teacher), "--out", str(tmp_path / name), "--quiet"], ranks)
    a, b = (load_checkpoint(tmp_path / n / "student.pt")["encoder"] for n in ("one", "two"))
    assert a.keys() == b.keys()
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-4
    la, lb = (np.loadtxt(tmp_path / n / "log.csv", delimiter=",", skiprows=1, usecols=(0, 1)) for n in ("one", "two"))
    np.testing.assert_allclose(la, lb, rtol=1e-4)
