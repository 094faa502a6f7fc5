"""Training-step throughput on this machine: encoder sizes, and the cost of each UniSurg objective.

For each configuration we time full optimisation steps (teacher forward, masked student
forward, predictor, loss, backward, AdamW, EMA) on random clips, after warm-up, and report the
median step time with its interquartile range, clips/s and (visible) tokens/s. Objective
overheads are ratios against plain V-JEPA measured in the same run.

    python perf/bench_train.py --out reports/perf_train.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script
import torch

from unisurg.config import PretrainParams
from unisurg.media.clips import Augment
from unisurg.media.motion import camera_flow, field_saliency, framediff_saliency, normalize_saliency
from unisurg.training.ema import ema_update
from unisurg.training.loop import param_groups
from unisurg.training.losses import normalize_targets
from unisurg.training.masks import MaskCollator, MaskSpec
from unisurg.training.pretrain import JEPA, build_models, step_losses

VARIANTS = {
    "vjepa": {"motion": {"enabled": False}, "affinity": {"weight": 0.0}, "diversity": {"weight": 0.0}},
    "+motion(framediff)": {
        "motion": {"source": "framediff"},
        "affinity": {"weight": 0.0},
        "diversity": {"weight": 0.0},
    },
    # the loader computes a clip's flow the first time the clip is drawn and keeps it; later draws only
    # resample it to their augmented view (media.motion.field_saliency): both costs are timed
    "+motion(flow)": {"motion": {"source": "flow"}, "affinity": {"weight": 0.0}, "diversity": {"weight": 0.0}},
    "+motion(flow, first draws)": {
        "motion": {"source": "flow"},
        "affinity": {"weight": 0.0},
        "diversity": {"weight": 0.0},
        "_flow": "first",
    },
    "+affinity": {"motion": {"enabled": False}, "diversity": {"weight": 0.0}},
    "+diversity": {"motion": {"enabled": False}, "affinity": {"weight": 0.0}},
    "unisurg(flow)": {},
    "pixel": {
        "objective": "pixel",
        "motion": {"enabled": False},
        "affinity": {"weight": 0.0},
        "diversity": {"weight": 0.0},
    },
}


def make_step(arch: str, variant: dict, batch: int, frames: int, size: int):
    """Build models and random clips for one configuration -> (step function, info)."""
    torch.manual_seed(0)
    variant = dict(variant)
    first_draws = variant.pop("_flow", "kept") == "first"
    p = PretrainParams(arch=arch, clip={"frames": frames, "size": size}, batch_size=batch, **variant)
    enc, pred, target = build_models(p)
    tub, patch = enc.tubelet_size, enc.patch_size
    model = JEPA(enc, pred)
    opt = torch.optim.AdamW(param_groups([enc, pred], 0.04), lr=1e-4)
    grid = (frames // tub, size // patch, size // patch)
    col = MaskCollator(
        [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks], grid, 0
    )
    x = torch.randn(batch, 3, frames, size, size)
    raw = (np.random.default_rng(0).random((batch, frames, size, size, 3)) * 255).astype(np.uint8)
    kept = [camera_flow(c, size) for c in raw]  # what the loader holds after a clip's first draw
    augment = Augment(seed=0)
    counter = [0]

    def saliency(c: int, step: int) -> np.ndarray:
        """As ClipTable: the clip's flow (computed on a first draw, else kept) resampled to this draw's view."""
        box, flip = augment.draw(size, size, step, c)
        field = camera_flow(raw[c], size) if first_draws else kept[c]
        return field_saliency(field, tub, patch, size, tuple(map(float, box)), flip)

    def step() -> float:
        i = counter[0] = counter[0] + 1
        t0 = time.perf_counter()
        m_hat = None
        if p.motion.enabled:  # flow saliency comes from the loader, as in the pipeline
            m = (
                torch.stack([torch.from_numpy(saliency(c, i)) for c in range(batch)])
                if p.motion.source == "flow"
                else framediff_saliency(x, tub, patch)
            )
            m_hat = normalize_saliency(m)
        masks = col(
            i,
            list(range(batch)),
            m_hat.view(-1, *grid) if m_hat is not None else None,
            p.motion.mask_bias if p.motion.enabled else 0.0,
        )
        h = normalize_targets(target(x)).detach() if target is not None else None
        loss, _ = step_losses(p, model(x, masks, grid), masks, h, x, m_hat, grid, tub, patch)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if target is not None:
            ema_update(target, enc, 0.999)
        return time.perf_counter() - t0

    info = {
        "arch": arch,
        "params_M": round(sum(q.numel() for q in enc.parameters()) / 1e6, 2),
        "tokens_per_clip": grid[0] * grid[1] * grid[2],
        "batch": batch,
    }
    return step, info


def summarise(times: list[float], info: dict) -> dict:
    med = float(np.median(times))
    q1, q3 = np.percentile(times, [25, 75])
    return {
        **info,
        "steps": len(times),
        "step_s": round(med, 3),
        "step_iqr_s": [round(float(q1), 3), round(float(q3), 3)],
        "clips_per_s": round(info["batch"] / med, 2),
        "tokens_per_s": round(info["batch"] * info["tokens_per_clip"] / med, 1),
    }


def _peak_rss_after_steps(arch: str, batch: int, q) -> None:
    step, _ = make_step(arch, VARIANTS["vjepa"], batch, 16, 128)
    step()
    step()
    # VmHWM: this process image's peak RSS. (getrusage's ru_maxrss survives exec and would report the
    # parent's high-water mark when the parent is the larger one.)
    hwm = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM"))
    q.put(int(hwm.split()[1]) / 1024)  # kB -> MB


def memory_per_clip(arch: str) -> float:
    """Training memory per clip (MB): peak RSS of a fresh process stepping batch 8 minus batch 1, / 7."""
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    peaks = []
    for batch in (1, 8):
        q = ctx.Queue()
        p = ctx.Process(target=_peak_rss_after_steps, args=(arch, batch, q))
        p.start()
        peaks.append(q.get())
        p.join()
    return round((peaks[1] - peaks[0]) / 7, 1)


def time_interleaved(configs: dict[str, tuple], steps: int, warmup: int = 2) -> dict[str, dict]:
    """Time several configurations step by step in round-robin order, so that slow drifts of the
    machine's load affect all of them alike (the ratios are what matter)."""
    runners = {name: make_step(*cfg) for name, cfg in configs.items()}
    times: dict[str, list[float]] = {name: [] for name in configs}
    for i in range(warmup + steps):
        for name, (step, _) in runners.items():
            t = step()
            if i >= warmup:
                times[name].append(t)
    return {name: summarise(times[name], runners[name][1]) for name in configs}


def first_draw_share(params: Path, clips: Path) -> dict | None:
    """The share of the pipeline's clip draws that are a clip's first (its flow computed, not kept):
    the pretraining sampler's batches over the curated clip table, one loader process (num_workers 0)."""
    import pyarrow.parquet as pq

    from unisurg.config import load_params
    from unisurg.media.clips import StepBatchSampler

    if not clips.exists():
        return None
    p = load_params(params).pretrain
    weights = pq.read_table(clips, columns=["weight"]).column("weight").to_numpy()
    sampler = StepBatchSampler(weights, p.batch_size, 0, 0, p.steps)
    draws = [i for step in range(p.steps) for i in sampler.batch(step)]
    return {
        "clips": len(weights),
        "draws": len(draws),
        "first_draws": len(set(draws)),
        "share": round(len(set(draws)) / len(draws), 4),
        "source": f"{params} (pretrain.steps, batch_size) over {clips}",
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default="reports/perf_train.json")
    ap.add_argument("--params", type=Path, default=Path("params.yaml"))
    ap.add_argument("--clips", type=Path, default=Path("data/curate/clips.parquet"), help="for the pipeline's draws")
    args = ap.parse_args(argv)
    torch.set_num_threads(max(torch.get_num_threads(), 1))
    # encoder sizes at the V-JEPA 2 reference configuration: 8 clips x 16 frames x 128^2
    sizes = time_interleaved(
        {a: (a, VARIANTS["vjepa"], 8, 16, 128) for a in ("vit_tiny", "vit_small", "vit_base")}, steps=args.steps
    )
    for arch in sizes:
        sizes[arch]["memory_per_clip_mb"] = memory_per_clip(arch)
    print(json.dumps(sizes, indent=1), flush=True)
    # objectives at the pipeline's default CPU configuration
    objectives = time_interleaved({n: ("vit_micro", v, 8, 16, 64) for n, v in VARIANTS.items()}, steps=args.steps * 4)
    print(json.dumps(objectives, indent=1), flush=True)
    base = objectives["vjepa"]["step_s"]
    for r in objectives.values():
        r["overhead_vs_vjepa"] = round(r["step_s"] / base - 1, 3)
    # over a whole pretraining run: first draws pay the flow, the others a resampling of the kept flow
    run = first_draw_share(args.params, args.clips)
    if run is not None:
        first, kept = objectives["+motion(flow, first draws)"]["step_s"], objectives["+motion(flow)"]["step_s"]
        run["flow_step_s"] = round(run["share"] * first + (1 - run["share"]) * kept, 4)
        run["flow_overhead_vs_vjepa"] = round(run["flow_step_s"] / base - 1, 3)
        print(json.dumps(run), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "sizes": sizes, "objectives": objectives, "pipeline_flow": run}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
