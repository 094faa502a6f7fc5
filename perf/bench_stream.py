"""Evaluation under the paper's protocol: what one sample costs on the CPU, part by part, and what a
full Cholec80 costs on one H200.

Measured here, on a 720p H.264 video (25 fps, GOP 25) written by the script, with the real code and
the ``surgmotion`` window shape (64 frames on the 1-fps grid, 256², frames kept 512 wide):

- decode: building the video's frame store (every 1-fps frame decoded once, resized to 512 wide,
  written); a sample adds one frame to the store, so this is the decode cost per sample;
- clip preparation: reading a window's 64 rows from the store and making the evaluation view
  (512² bicubic, 292 bilinear, centre crop 256), or a training draw (+ RandAugment, RandomResizedCrop,
  erasing box), one process;
- encoder: a ``vit_micro`` forward on one clip (8,192 tokens), float32;
- probe bank: the 20-head depth-4 grid's forward and backward on one clip's tokens (width 192).

From these and from FLOPs (``protocol_cost.py``): samples/s of this CPU at that shape, and the
estimate for Cholec80 at one label per second on one H200 with ViT-L: the GPU's FLOPs at an
assumed sustained throughput (``--tflops``), the CPU side spread over ``--cores`` loader processes,
the slower of the two per split. The throughput is an assumption, stated; `make bench-gpu` measures
the real rate where a GPU is lent.

    python perf/bench_stream.py --out reports/perf_stream.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from perf_report import machine  # beside this script
from protocol_cost import protocol_cost

from unisurg.benchmarks import Record, VideoSource, get_benchmark
from unisurg.evaluation.bank import HeadBank
from unisurg.evaluation.clipdata import ClipSet
from unisurg.evaluation.framestore import FrameStore, build_store
from unisurg.evaluation.heads import AttentiveProbe
from unisurg.evaluation.media import geometry
from unisurg.evaluation.protocols import SURGMOTION
from unisurg.evaluation.samples import make_samples
from unisurg.evaluation.tasks import class_loss
from unisurg.evaluation.windows import EVAL_DRAW, SourceInfo, WindowPlan
from unisurg.media.video import VideoWriter
from unisurg.models import create_model

# Cholec80 at one label per second: 80 videos of 38 minutes on average, ~184,000 labelled seconds,
# taken here as half in videos 1-40 and half in 41-80. Held-out selection (the default) carves 33-40 out
# of training for validation (~20 % of the training seconds).
CHOLEC80_SECONDS = 184_000


def write_video(path: Path, seconds: int, w: int = 1280, h: int = 720) -> None:
    """A 720p test video: moving shapes over a gradient (x264 veryfast, GOP 25, as the corpus)."""
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([(xx * 255 // w), (yy * 255 // h), np.full_like(xx, 90)], axis=-1).astype(np.uint8)
    with VideoWriter(path, 25.0, w, h) as out:
        for k in range(seconds * 25):
            f = base.copy()
            f[(k * 7) % (h - 80) : (k * 7) % (h - 80) + 80, (k * 11) % (w - 120) : (k * 11) % (w - 120) + 120] = 255
            out.write(f)


def clip_costs(root: Path, seconds: int, repeats: int) -> dict:
    bench, s = get_benchmark("cholec80"), SURGMOTION.sampling
    video = root / "video01.mp4"
    write_video(video, seconds)
    rec = Record("video01", "train", VideoSource(str(video)), np.zeros(seconds, np.int64), np.arange(float(seconds)))
    samples = make_samples(bench, [rec], 1.0)
    plan = WindowPlan(bench, [rec], samples, s, [SourceInfo(seconds * 25, 25.0)], seed=0)
    frames = plan.needed()[0]
    t0 = time.perf_counter()
    build_store(rec, frames, geometry(s), root / "frames", "k" * 40, "decord")
    decode = (time.perf_counter() - t0) / len(frames)
    store = FrameStore.open(root / "frames", "k" * 40)
    usable = np.ones(len(samples), bool)
    views = {"eval": ClipSet(plan, {0: store}, usable), "train": ClipSet(plan, {0: store}, usable, SURGMOTION.augment)}
    out = {"decode_ms_per_sample": 1e3 * decode, "store_bytes_per_frame": store.row_bytes}
    for name, clips in views.items():
        times = []
        for r in range(repeats):
            i = 64 + 7 * r
            t0 = time.perf_counter()
            clips[(i, EVAL_DRAW if name == "eval" else r)]
            times.append(time.perf_counter() - t0)
        out[f"{name}_prep_ms_per_sample"] = 1e3 * float(np.median(times))
    return out


def model_costs(repeats: int) -> dict:
    s, g = SURGMOTION.sampling, SURGMOTION.probe
    torch.manual_seed(0)
    enc = create_model("vit_micro").eval()
    x = torch.randn(1, 3, s.frames, s.size, s.size)
    times = []
    with torch.inference_mode():
        tokens = enc(x)
        for _ in range(repeats):
            t0 = time.perf_counter()
            enc(x)
            times.append(time.perf_counter() - t0)
    heads = [AttentiveProbe(tokens.size(-1), 7, g.num_heads, g.depth, g.mlp_ratio) for _ in range(20)]
    bank = HeadBank(heads, [{}] * 20)
    y = torch.zeros(1, dtype=torch.long)
    bank_t = []
    for _ in range(max(1, repeats // 2)):
        t0 = time.perf_counter()
        bank.grads(class_loss, tokens.clone(), y)
        bank_t.append(time.perf_counter() - t0)
    return {
        "tokens": int(tokens.size(1)),
        "dim": int(tokens.size(2)),
        "encoder_s_per_sample": float(np.median(times)),
        "bank_s_per_sample": float(np.median(bank_t)),
    }


def cholec80_estimate(cpu: dict, tflops: float, cores: int) -> dict:
    """Hours on one H200 with ViT-L, per split, under held-out selection (train 1-32, val 33-40, test 41-80)."""
    c = protocol_cost("surgmotion")
    enc, fb, fwd, heads = (
        c["encoder_tflop_per_clip"],
        c["head_tflop_forward_backward"],
        c["head_tflop_forward"],
        c["heads"],
    )
    train = CHOLEC80_SECONDS * 0.5 * 0.8
    val, test = CHOLEC80_SECONDS * 0.5 * 0.2, CHOLEC80_SECONDS * 0.5
    prep = cpu["decode_ms_per_sample"] / 1e3
    rows = {
        # split: (samples, GPU TFLOP per sample, CPU seconds per sample before the GPU sees it)
        "train (1 epoch)": (train, enc + heads * fb, prep + cpu["train_prep_ms_per_sample"] / 1e3),
        "validation (20 heads)": (val, enc + heads * fwd, prep + cpu["eval_prep_ms_per_sample"] / 1e3),
        "test (chosen head)": (test, enc + fwd, prep + cpu["eval_prep_ms_per_sample"] / 1e3),
    }
    out = {"assumed_tflops": tflops, "cores": cores, "splits": {}}
    for name, (n, tf, cpu_s) in rows.items():
        gpu_h, cpu_h = n * tf / tflops / 3600, n * cpu_s / cores / 3600
        out["splits"][name] = {"samples": round(n), "gpu_h": gpu_h, "cpu_h": cpu_h, "hours": max(gpu_h, cpu_h)}
    out["total_h"] = sum(v["hours"] for v in out["splits"].values())
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=int, default=150, help="length of the 720p test video")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--tflops", type=float, default=300.0, help="assumed sustained TFLOP/s (H200: ~30%% of 989)")
    ap.add_argument("--cores", type=int, default=16, help="CPU loader processes per GPU (a 16-core node)")
    ap.add_argument("--out", default="reports/perf_stream.json")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        cpu = clip_costs(Path(tmp), args.seconds, args.repeats)
    cpu.update(model_costs(args.repeats))
    per_train = cpu["decode_ms_per_sample"] / 1e3 + cpu["train_prep_ms_per_sample"] / 1e3
    cpu["train_samples_per_s"] = 1 / (per_train + cpu["encoder_s_per_sample"] + cpu["bank_s_per_sample"])
    cpu["score_samples_per_s"] = 1 / (
        cpu["decode_ms_per_sample"] / 1e3 + cpu["eval_prep_ms_per_sample"] / 1e3 + cpu["encoder_s_per_sample"]
    )
    result = {"cpu": cpu, "cholec80_h200": cholec80_estimate(cpu, args.tflops, args.cores)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
