"""Evaluation at real length: memory that does not grow with the benchmark, each frame decoded once,
killed runs that resume, videos that stop decoding part-way, damaged cache entries.

The long-video case writes its own Cholec80 (the real layout: ``videos/videoNN.mp4`` at 25 fps and
``phase_annotations/videoNN-phase.txt``, a row per frame) at two lengths and evaluates it under the
paper's protocol (``surgmotion``: 64-frame windows on the 1-fps grid, the authors' window rule and
split, augmented clips encoded online) with a tiny patch encoder and a one-head probe, each run in
its own process, and compares the peak resident memory.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from unisurg.benchmarks import get_benchmark
from unisurg.evaluation.harness import run_benchmark
from unisurg.evaluation.protocols import SURGMOTION
from unisurg.synth.layouts import write_cholec80_long

ROOT = Path(__file__).resolve().parents[1]
VIDEOS = (1, 2, 41, 42)  # under the authors' split: 1-2 train (2 carved for validation), 41-42 test
DIM, TOKENS = 256, 32 * 8 * 8  # the patch encoder's tokens at 64 frames x 64 px (tubelet 2, patch 8)


class PatchEncoder(nn.Module):
    """The encoder interface at its cheapest: a 3D patch embedding, tokens (B, N, D)."""

    def __init__(self, dim: int = DIM, patch: int = 8, tubelet: int = 2) -> None:
        super().__init__()
        self.embed_dim, self.patch_size, self.tubelet_size = dim, patch, tubelet
        self.proj = nn.Conv3d(3, dim, (tubelet, patch, patch), stride=(tubelet, patch, patch))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)


def write_cholec80(root: Path, seconds: int, videos=VIDEOS, size: int = 64, corrupt: int | None = None) -> Path:
    """A Cholec80 download in its real layout (:func:`write_cholec80_long`); ``corrupt``: that video's data
    is zeroed from its middle on (it opens, then stops decoding)."""
    write_cholec80_long(root, seconds, tuple(videos), size)
    if corrupt is not None:
        _zero_second_half(root / "videos" / f"video{corrupt:02d}.mp4")
    return root


def _zero_second_half(path: Path) -> None:
    """Rewrite ``path`` with its index first (faststart), then zero the second half of its data: the
    file opens and lists every frame, and decoding stops part-way."""
    import av

    tmp = path.with_suffix(".fast.mp4")
    with av.open(str(path)) as src, av.open(str(tmp), "w", options={"movflags": "faststart"}) as dst:
        stream = dst.add_stream_from_template(src.streams.video[0])
        for pkt in src.demux(src.streams.video[0]):
            if pkt.dts is not None:
                pkt.stream = stream
                dst.mux(pkt)
    data = bytearray(tmp.read_bytes())
    data[len(data) // 2 :] = bytes(len(data) - len(data) // 2)
    path.write_bytes(bytes(data))
    tmp.unlink()


def small_surgmotion(tokens: str = "online"):
    """The paper's protocol with its windows, recipe, augmentation and schedule, at 64 px (no 512-wide
    source frames) and with a one-head depth-1 probe: what a CPU test can afford."""
    s = dataclasses.replace(SURGMOTION.sampling, size=64, source_width=None)
    probe = dataclasses.replace(SURGMOTION.probe, lrs=(1e-3,), weight_decays=(0.01,), depth=1, num_heads=2)
    augment = SURGMOTION.augment if tokens == "online" else None
    return dataclasses.replace(SURGMOTION, sampling=s, probe=probe, bootstrap=0, tokens=tokens, augment=augment)


SCRIPT = textwrap.dedent(
    """
    import json, resource, sys
    from pathlib import Path
    import torch
    sys.path.insert(0, {tests!r})
    from test_streaming import PatchEncoder, small_surgmotion
    import unisurg.evaluation.harness as H
    from unisurg.benchmarks import get_benchmark

    seen = []
    prepare = H.prepare_media
    H.prepare_media = lambda *a, **k: seen.append(prepare(*a, **k)) or seen[-1]
    torch.manual_seed(0)
    res, preds, _ = H.run_benchmark(get_benchmark("cholec80"), Path({root!r}), {{"patch": (PatchEncoder(), "patch")}},
                                    small_surgmotion({tokens!r}), 0, Path({cache!r}), 4, workers=0)
    scored = sorted(set(preds.column("video").to_pylist()))
    print(json.dumps({{"rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, "scored": scored,
                      "samples": res["n_samples"], "decoded": seen[0].decoded, "needed": seen[0].needed,
                      "value": res["models"]["patch"]["value"]}}))
    """
)


def _evaluate_in_a_process(root: Path, cache: Path, tokens: str) -> dict:
    code = SCRIPT.format(tests=str(Path(__file__).parent), root=str(root), cache=str(cache), tokens=tokens)
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=900,
        env={**os.environ, "OMP_NUM_THREADS": "2"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.parametrize("tokens", ["online", "cached"])
def test_memory_does_not_grow_with_the_benchmark_and_each_frame_is_decoded_once(tokens, tmp_path):
    runs = {}
    for seconds in (40, 160):  # 4x the labelled seconds
        root = write_cholec80(tmp_path / f"c{seconds}", seconds)
        runs[seconds] = _evaluate_in_a_process(root, tmp_path / f"cache{seconds}-{tokens}", tokens)
    short, long = runs[40], runs[160]
    assert (short["samples"], long["samples"]) == (4 * 40, 4 * 160)
    # what today's in-memory path would have held for the extra samples: their tokens in float16
    extra_tokens = (long["samples"] - short["samples"]) * TOKENS * DIM * 2
    grew = (long["rss_kb"] - short["rss_kb"]) * 1024
    assert grew < 0.1 * extra_tokens, (
        f"peak RSS grew {grew / 2**20:.1f} MiB for {extra_tokens / 2**20:.0f} MiB of tokens"
    )
    for r in runs.values():
        assert r["decoded"] <= 1.05 * r["needed"]  # frames handed out by the reader vs frames windows read
        assert r["scored"] == ["video41", "video42"]  # the authors' test videos, 41-80
        assert np.isfinite(r["value"])


class Killed(Exception):
    """Stands for the process being killed mid-training."""


def test_a_killed_probe_training_resumes_from_its_last_save_without_redoing_batches(bench_root, tmp_path, monkeypatch):
    import unisurg.evaluation.probing as probing
    import unisurg.evaluation.tokens as tokens

    monkeypatch.setattr(probing, "CHECKPOINT_EVERY", 4)
    monkeypatch.setattr(probing, "SAVE_EVERY_S", 0.0)
    proto = small_surgmotion("online")
    proto = dataclasses.replace(proto, probe=dataclasses.replace(proto.probe, epochs=2, epochs_by_benchmark=()))
    bench, root = get_benchmark("cholec80"), bench_root("cholec80")
    trained, kill_at = [], [None]
    batches = tokens.OnlineTokens.batches

    def counted(self, items, epoch=None):
        for x in batches(self, items, epoch):
            if epoch is not None:  # a training batch (the epoch keys its augmentation)
                trained.append(epoch)
                if len(trained) == kill_at[0]:
                    raise Killed
            yield x

    monkeypatch.setattr(tokens.OnlineTokens, "batches", counted)

    def run(cache: Path):
        torch.manual_seed(0)
        return run_benchmark(bench, root, {"patch": (PatchEncoder(32), "patch")}, proto, 0, cache, 4)

    ref, ref_preds, _ = run(tmp_path / "uninterrupted")
    total = len(trained)
    assert total > 10 and ref["models"]["patch"]["heads"][0]["steps"] == total
    trained.clear()
    kill_at[0] = 10
    with pytest.raises(Killed):
        run(tmp_path / "killed")  # saved at updates 4 and 8, killed during the 10th
    saves = list((tmp_path / "killed" / "probes").rglob("*.pt"))
    assert len(saves) == 1
    trained.clear()
    kill_at[0] = None
    res, preds, _ = run(tmp_path / "killed")
    assert len(trained) == total - 8  # the first 8 updates' batches were neither decoded nor encoded again
    assert res["models"] == ref["models"] and preds.equals(ref_preds)
    assert not (tmp_path / "killed" / "probes").exists() or not any((tmp_path / "killed" / "probes").rglob("*.pt"))
