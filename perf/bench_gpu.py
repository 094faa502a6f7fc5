"""`make bench-gpu`: pretraining, FSDP, frozen extraction and distillation throughput on one GPU.

Sections (each a JSON object of ``reports/perf_gpu.json``, rendered by ``perf/perf_report.py``):

``pretrain``
    V-JEPA pretraining steps of ViT-L/16 on 16x256² clips (2,048 tokens), the real modules
    (:func:`unisurg.training.pretrain.build_models`, the multiblock mask collator, the losses,
    EMA), bf16 autocast, SDPA attention, fused AdamW: eager and ``torch.compile`` (per block,
    dynamic token counts), each with and without activation checkpointing, at the largest batch
    that fits (doubling until CUDA runs out of memory). Reported: median step time and range,
    clips/s, tokens/s, model FLOPs per step (torch's FLOP counter over one eager step: forward
    and backward, no recomputation), MFU = FLOPs / step time / the device's dense bf16 peak,
    peak memory. The UniSurg objectives' overhead is the ratio of the unisurg step (motion from
    frame differences on the GPU, affinity, diversity) to plain V-JEPA, timed interleaved.
``fsdp_giant``
    ViT-g (``vit_giant_xformers``, 1B) pretraining under FSDP2 on one GPU (a one-rank process
    group): does a step fit, the largest batch, peak memory, step time.
``extraction``
    a frozen ViT-L forward under the paper's protocol (64 frames x 256², 8,192 tokens) in bf16,
    batched as large as fits: clips/s, and hours per 100,000 clips (one clip per labelled second).
``distill``
    student vs teacher forward throughput at 16x256² (bf16, inference).
``streaming``
    the whole evaluation under the paper's protocol (``surgmotion``: windows, frame stores, augmented
    clips encoded online by ViT-L, the 20-head depth-4 bank in fp16 with loss scaling) on a Cholec80
    written here in the real layout (4 videos, 320 labelled seconds at 480x480): samples/s of
    training, validation and test together, peak GPU memory, the heads' chunk size that fitted.

``--dry-run`` runs every section on the CPU with tiny models in seconds: the test suite runs
it, so the script cannot rot between GPU machines. Target for the full run: <= 8 minutes on one
H200 (``--budget-s`` skips what would overrun and says so).

    python perf/bench_gpu.py --out reports/perf_gpu.json
    python perf/bench_gpu.py --dry-run --out /tmp/perf_gpu.json
"""

from __future__ import annotations

import argparse
import json
import logging
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch

from unisurg.config import PretrainParams
from unisurg.media.motion import framediff_saliency, normalize_saliency
from unisurg.models import create_model
from unisurg.runtime import autocast
from unisurg.training.ema import ema_update
from unisurg.training.loop import param_groups
from unisurg.training.losses import normalize_targets
from unisurg.training.masks import MaskCollator, MaskSpec
from unisurg.training.pretrain import JEPA, build_models, step_losses

log = logging.getLogger("bench_gpu")

# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s.
PEAK_BF16_TFLOPS = {
    "H200": 989.0,
    "H100 SXM": 989.0,
    "H100 80GB HBM3": 989.0,
    "H100 PCIe": 756.0,
    "H100 NVL": 835.0,
    "A100": 312.0,
    "L40S": 362.0,
    "A10": 125.0,
}

VJEPA = {"motion": {"enabled": False}, "affinity": {"weight": 0.0}, "diversity": {"weight": 0.0}}
UNISURG = {"motion": {"source": "framediff"}}  # flow comes from loader workers; frame differences run here


@dataclass(frozen=True)
class Sizes:
    """What each section runs: the real configuration, or tiny models for the dry run."""

    arch: str = "vit_large"
    predictor: tuple[int, int, int] = (384, 12, 12)  # V-JEPA 2 ViT-L predictor: width, depth, heads
    frames: int = 16
    size: int = 256
    giant: str = "vit_giant_xformers"
    extract_frames: int = 64
    student: str = "vit_small"
    max_batch: int = 128
    steps: int = 6
    warmup: int = 3
    compiler: str = "inductor"  # torch.compile backend; the dry run traces with "eager" (no C++ toolchain, seconds)


DRY = Sizes(
    arch="vit_pico",
    predictor=(32, 1, 2),
    frames=4,
    size=32,
    giant="vit_pico",
    extract_frames=4,
    student="vit_pico",
    max_batch=2,
    steps=1,
    warmup=1,
    compiler="eager",
)


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """The device's dense bf16 peak (None on CPU or for a GPU not in the table, unless given)."""
    if override:
        return override
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((v for k, v in PEAK_BF16_TFLOPS.items() if k in name), None)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reset_peak(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_gb(device: torch.device) -> float | None:
    return round(torch.cuda.max_memory_allocated(device) / 2**30, 2) if device.type == "cuda" else None


def timed(step: Callable[[int], None], device: torch.device, steps: int, warmup: int) -> list[float]:
    out = []
    for i in range(warmup + steps):
        sync(device)
        t0 = time.perf_counter()
        step(i)
        sync(device)
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


def median_range(times: list[float]) -> dict:
    return {"step_s": round(float(np.median(times)), 4), "range_s": [round(min(times), 4), round(max(times), 4)]}


# --------------------------------------------------------------------------- pretraining


def pretrain_step(
    s: Sizes, variant: dict, batch: int, device: torch.device, compile_: bool, ckpt: bool, arch: str | None = None
) -> tuple[Callable[[int], None], dict]:
    """One real pretraining step (masks, teacher, student, losses, AdamW, EMA) -> (step(i), info)."""
    torch.manual_seed(0)
    width, depth, heads = s.predictor
    p = PretrainParams(
        arch=arch or s.arch,
        predictor={"embed_dim": width, "depth": depth, "num_heads": heads},
        clip={"frames": s.frames, "size": s.size},
        batch_size=batch,
        activation_checkpointing=ckpt,
        **variant,
    )
    enc, pred, target = build_models(p)
    model = JEPA(enc, pred).to(device)
    target.to(device)
    if compile_:
        # per block: the token count changes with every mask draw, so shapes are marked dynamic
        for blk in [*enc.blocks, *pred.predictor_blocks, *target.blocks]:
            blk.compile(dynamic=True, backend=s.compiler)
    opt = torch.optim.AdamW(param_groups([enc, pred], 0.04), lr=1e-4, fused=device.type == "cuda")
    tub, patch = enc.tubelet_size, enc.patch_size
    grid = (s.frames // tub, s.size // patch, s.size // patch)
    specs = [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks]
    col = MaskCollator(specs, grid, 0)
    x = torch.randn(batch, 3, s.frames, s.size, s.size, device=device)  # (B, 3, T, H, W), normalised

    def step(i: int) -> None:
        with autocast(device, True):
            m_hat = normalize_saliency(framediff_saliency(x, tub, patch)) if p.motion.enabled else None
            sal = m_hat.view(-1, *grid).float().cpu() if m_hat is not None else None
            masks = col(i, list(range(batch)), sal, p.motion.mask_bias if p.motion.enabled else 0.0)
            masks = [(c.to(device), t.to(device)) for c, t in masks]
            with torch.no_grad():
                h = normalize_targets(target(x))  # (B, N, D)
            loss, _ = step_losses(p, model(x, masks, grid), masks, h, x, m_hat, grid, tub, patch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        ema_update(target, enc, 0.999)

    info = {"arch": p.arch, "batch": batch, "tokens_per_clip": grid[0] * grid[1] * grid[2]}
    return step, info


def step_flops(step: Callable[[int], None]) -> int:
    """Model FLOPs of one step (forward + backward), by torch's FLOP counter."""
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        step(0)
    return int(counter.get_total_flops())


def largest_batch(build: Callable[[int], tuple], device: torch.device, start: int, cap: int) -> int | None:
    """The largest power-of-two multiple of ``start`` (<= cap) whose step runs twice without a CUDA OOM."""
    best, b = None, start
    while b <= cap:
        try:
            step, _ = build(b)
            step(0)
            step(1)
            sync(device)
            best = b
        except torch.cuda.OutOfMemoryError:
            log.info("batch %d: out of memory", b)
            break
        finally:
            step = None  # noqa: F841 -- drop the models before the next size is built
            reset_peak(device)
        b *= 2
    return best


def bench_pretrain(s: Sizes, device: torch.device, peak: float | None, deadline: float) -> dict:
    rows, flops, batch = [], None, {}
    for ckpt in (False, True):
        build = lambda b, c=ckpt: pretrain_step(s, UNISURG, b, device, False, c)  # noqa: E731
        batch[ckpt] = largest_batch(build, device, 1 if device.type == "cpu" else 8, s.max_batch)
    for compile_ in (False, True):
        for ckpt in (False, True):
            name = f"{'compiled' if compile_ else 'eager'}{' + act. ckpt' if ckpt else ''}"
            if batch[ckpt] is None:
                rows.append({"variant": name, "skipped": "one clip does not fit"})
                continue
            if time.monotonic() > deadline:
                rows.append({"variant": name, "skipped": "time budget spent"})
                continue
            reset_peak(device)
            try:
                step, info = pretrain_step(s, UNISURG, batch[ckpt], device, compile_, ckpt)
                times = timed(step, device, s.steps, s.warmup + (2 if compile_ and device.type == "cuda" else 0))
            except Exception as err:  # noqa: BLE001 -- a compiler failure is a result to report, not a crash
                if not compile_:
                    raise
                log.warning("%s failed: %r", name, err)
                rows.append({"variant": name, "failed": repr(err)[:300]})
                continue
            row = {"variant": name, **info, **median_range(times), "peak_mem_gb": peak_gb(device)}
            if flops is None:  # model FLOPs per clip from the eager step without recomputation
                probe, _ = pretrain_step(s, UNISURG, 1, device, False, False)
                flops = step_flops(probe)
                del probe
            row["tflop_per_step"] = float(f"{flops * row['batch'] / 1e12:.4g}")
            row["clips_per_s"] = round(row["batch"] / row["step_s"], 2)
            row["tokens_per_s"] = round(row["batch"] * row["tokens_per_clip"] / row["step_s"], 1)
            row["mfu"] = round(flops * row["batch"] / row["step_s"] / (peak * 1e12), 4) if peak else None
            rows.append(row)
            del step
    # the UniSurg objectives' overhead: both steps at the eager batch, timed interleaved
    overhead = None
    if batch[False] is not None and time.monotonic() < deadline:
        steps = {
            n: pretrain_step(s, v, batch[False], device, False, False)[0]
            for n, v in (("vjepa", VJEPA), ("unisurg", UNISURG))
        }
        times: dict[str, list[float]] = {n: [] for n in steps}
        for i in range(s.warmup + s.steps):
            for n, st in steps.items():
                t = timed(lambda _i, st=st, i=i: st(i), device, 1, 0)[0]
                if i >= s.warmup:
                    times[n].append(t)
        overhead = round(float(np.median(times["unisurg"]) / np.median(times["vjepa"])), 3)
    return {"rows": rows, "unisurg_over_vjepa": overhead, "flops_per_clip": flops}


# --------------------------------------------------------------------------- FSDP ViT-g


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def bench_fsdp_giant(s: Sizes, device: torch.device, deadline: float) -> dict:
    """ViT-g pretraining under FSDP2 on a one-rank process group: fits? at what batch? memory, step time."""
    import torch.distributed as dist

    from unisurg.training.parallel import shard

    if time.monotonic() > deadline:
        return {"arch": s.giant, "skipped": "time budget spent"}
    backend = "nccl" if device.type == "cuda" else "gloo"
    dist.init_process_group(backend, init_method=f"tcp://127.0.0.1:{_free_port()}", rank=0, world_size=1)
    try:

        def build(b: int):
            torch.manual_seed(0)
            width, depth, heads = s.predictor
            p = PretrainParams(
                arch=s.giant,
                predictor={"embed_dim": width, "depth": depth, "num_heads": heads},
                clip={"frames": s.frames, "size": s.size},
                activation_checkpointing=True,
                **VJEPA,
            )
            enc, pred, target = build_models(p)
            model = JEPA(enc, pred).to(device)
            target.to(device)
            shard(model, [model.encoder.blocks, model.predictor.predictor_blocks])
            shard(target, [target.blocks])
            opt = torch.optim.AdamW(param_groups([model.encoder, model.predictor], 0.04), lr=1e-4)
            grid = (s.frames // enc.tubelet_size, s.size // enc.patch_size, s.size // enc.patch_size)
            specs = [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks]
            col = MaskCollator(specs, grid, 0)
            x = torch.randn(b, 3, s.frames, s.size, s.size, device=device)

            def step(i: int) -> None:
                with autocast(device, True):
                    masks = [(c.to(device), t.to(device)) for c, t in col(i, list(range(b)))]
                    with torch.no_grad():
                        h = normalize_targets(target(x))
                    out = model(x, masks, grid)
                    loss, _ = step_losses(p, out, masks, h, x, None, grid, enc.tubelet_size, enc.patch_size)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                ema_update(target, model.encoder, 0.999)

            return step, {"batch": b}

        b = largest_batch(build, device, 1, s.max_batch)
        if b is None:
            return {"arch": s.giant, "fits": False, "batch": None}
        reset_peak(device)
        step, _ = build(b)
        times = timed(step, device, max(s.steps // 2, 1), 1)
        return {"arch": s.giant, "fits": True, "batch": b, **median_range(times), "peak_mem_gb": peak_gb(device)}
    finally:
        dist.destroy_process_group()


# --------------------------------------------------------------------------- inference


@torch.inference_mode()
def forward_rate(arch: str, frames: int, size: int, device: torch.device, cap: int, repeats: int) -> dict:
    """Frozen forward clips/s of ``arch`` at frames x size², bf16 on CUDA, at the largest batch that fits."""
    torch.manual_seed(0)
    enc = create_model(arch).eval().to(device)
    best, b = None, 1
    while b <= cap:
        try:
            x = torch.randn(b, 3, frames, size, size, device=device)
            with autocast(device, True):
                enc(x)
            sync(device)
            best = b
        except torch.cuda.OutOfMemoryError:
            break
        finally:
            reset_peak(device)
        b *= 2
    x = torch.randn(best, 3, frames, size, size, device=device)

    def step(_: int) -> None:
        with autocast(device, True):
            enc(x)

    times = timed(step, device, repeats, 1)
    rate = best / float(np.median(times))
    return {"arch": arch, "clip": [frames, size, size], "batch": best, "clips_per_s": round(rate, 2)}


def bench_extraction(s: Sizes, device: torch.device) -> dict:
    r = forward_rate(s.arch, s.extract_frames, s.size, device, min(s.max_batch, 64), s.steps)
    r["hours_per_100k_clips"] = round(1e5 / r["clips_per_s"] / 3600, 2)
    return r


def bench_streaming(s: Sizes, device: torch.device, deadline: float) -> dict:
    """The streaming evaluation end to end (module docstring, ``streaming``)."""
    import tempfile

    from unisurg.benchmarks import get_benchmark
    from unisurg.evaluation import harness
    from unisurg.evaluation.protocols import SURGMOTION
    from unisurg.runtime import Dist
    from unisurg.synth.layouts import write_cholec80_long

    if time.monotonic() > deadline:
        return {"skipped": "time budget"}
    seconds, size = (80, 480) if device.type == "cuda" else (6, 64)
    proto = SURGMOTION
    if device.type != "cuda":  # the dry run: tiny clips and a one-head grid on the CPU
        proto = replace(
            proto,
            sampling=replace(proto.sampling, frames=8, size=32, source_width=None),
            probe=replace(proto.probe, lrs=(1e-3,), weight_decays=(0.01,), depth=1, num_heads=2),
        )
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cholec80"
        write_cholec80_long(root, seconds, (1, 2, 41, 42), size)
        torch.manual_seed(0)
        enc = create_model(s.arch).eval().to(device)
        reset_peak(device)
        t0 = time.monotonic()
        res, _, _ = harness.run_benchmark(
            get_benchmark("cholec80"),
            root,
            {"m": (enc, "bench")},
            proto,
            0,
            Path(tmp) / "cache",
            8,
            Dist(device=device),
            True,
            8 if device.type == "cuda" else 0,
        )
        wall = time.monotonic() - t0
    n = res["n_samples"]
    return {
        "arch": s.arch,
        "samples": n,
        "clip": [proto.sampling.frames, proto.sampling.size, proto.sampling.size],
        "heads": len(proto.probe.lrs) * len(proto.probe.weight_decays),
        "seconds": round(wall, 1),
        "samples_per_s": round(n / wall, 3),
        "peak_gpu_gb": peak_gb(device),
    }


def bench_distill(s: Sizes, device: torch.device) -> dict:
    teacher = forward_rate(s.arch, s.frames, s.size, device, s.max_batch, s.steps)
    student = forward_rate(s.student, s.frames, s.size, device, s.max_batch, s.steps)
    return {
        "teacher": teacher,
        "student": student,
        "speedup": round(student["clips_per_s"] / teacher["clips_per_s"], 2),
    }


# --------------------------------------------------------------------------- memory, computed


def training_memory_gb(
    arch: str, predictor: tuple[int, int, int], frames: int, size: int, batch: int, world: int, fsdp: bool, ckpt: bool
) -> dict:
    """Per-GPU memory of a pretraining run, computed (not measured) from the architecture.

    States: encoder + predictor weights, gradients and AdamW moments in float32 (16 bytes per
    parameter) plus the EMA teacher (4 bytes per parameter), divided by ``world`` under FSDP.
    Activations (bf16, SDPA flash attention: no N x N matrix), per token and block ~34 x width
    bytes (Korthikanti et al., 2022), ~2 x width with activation checkpointing (the block input,
    plus one block's full activations while it is recomputed);
    encoder tokens: the context tokens of both V-JEPA 2 mask generators (~1 - masked fraction of
    the grid, measured from the real collator); predictor tokens: the whole grid per generator.
    """
    with torch.device("meta"):
        enc = create_model(arch)
        width, depth, heads = predictor
        from unisurg.models import Predictor

        pred = Predictor(enc.embed_dim, width, depth, heads, num_mask_tokens=2)
    n_enc = sum(p.numel() for p in enc.parameters())
    n_pred = sum(p.numel() for p in pred.parameters())
    states = (16 * (n_enc + n_pred) + 4 * n_enc) / (world if fsdp else 1)
    grid = (frames // enc.tubelet_size, size // enc.patch_size, size // enc.patch_size)
    n = grid[0] * grid[1] * grid[2]
    p = PretrainParams()
    col = MaskCollator(
        [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks], grid, 0
    )
    ctx = float(np.mean([sum(c.size(1) for c, _ in col(i, [0])) for i in range(8)]))  # context tokens, both generators
    per_tok = 2 if ckpt else 34
    act = batch * (per_tok * enc.embed_dim * ctx * enc.depth + per_tok * width * n * len(p.masks) * depth)
    if ckpt:  # the block being recomputed holds its full activations during its backward
        act += batch * 34 * max(enc.embed_dim * ctx, width * n * len(p.masks))
    return {
        "arch": arch,
        "params_M": round((n_enc + n_pred) / 1e6, 1),
        "world": world,
        "fsdp": fsdp,
        "activation_checkpointing": ckpt,
        "batch_per_gpu": batch,
        "states_gb": round(states / 2**30, 1),
        "activations_gb": round(act / 2**30, 1),
        "total_gb": round((states + act) / 2**30, 1),
    }


def memory_table(s: Sizes) -> list[dict]:
    """The README's per-GPU memory figures: ViT-L (DDP) and ViT-g (FSDP on 8), 16x256², batch 8 per GPU."""
    return [
        training_memory_gb(s.arch, s.predictor, s.frames, s.size, 8, 1, False, False),
        training_memory_gb(s.arch, s.predictor, s.frames, s.size, 8, 1, False, True),
        training_memory_gb(s.giant, s.predictor, s.frames, s.size, 8, 1, False, True),
        training_memory_gb(s.giant, s.predictor, s.frames, s.size, 8, 8, True, True),
    ]


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="reports/perf_gpu.json")
    ap.add_argument("--dry-run", action="store_true", help="tiny models on the CPU (what the test suite runs)")
    ap.add_argument("--budget-s", type=float, default=420.0, help="sections that would start after this are skipped")
    ap.add_argument("--peak-tflops", type=float, default=None, help="dense bf16 peak, for a GPU not in the table")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    if args.dry_run:
        device, s = torch.device("cpu"), DRY
    elif torch.cuda.is_available():
        device, s = torch.device("cuda", 0), Sizes()
        torch.backends.cuda.matmul.allow_tf32 = True
    else:
        raise SystemExit(
            "bench_gpu: torch sees no CUDA device; --dry-run runs the sections on the CPU with tiny models"
        )
    t0 = time.monotonic()
    deadline = t0 + args.budget_s
    peak = peak_tflops(device, args.peak_tflops)
    result = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "dry_run": args.dry_run,
        "torch": torch.__version__,
        "peak_bf16_tflops": peak,
        "sizes": asdict(s),
    }
    log.info("pretraining steps (%s)", s.arch)
    result["pretrain"] = bench_pretrain(s, device, peak, deadline)
    log.info("FSDP (%s)", s.giant)
    result["fsdp_giant"] = bench_fsdp_giant(s, device, deadline)
    log.info("frozen extraction")
    result["extraction"] = bench_extraction(s, device)
    log.info("distillation student vs teacher")
    result["distill"] = bench_distill(replace(s, max_batch=min(s.max_batch, 64)), device)
    log.info("streaming evaluation under the paper's protocol")
    result["streaming"] = bench_streaming(s, device, deadline)
    result["memory"] = memory_table(Sizes())  # computed on the meta device: the real sizes even in a dry run
    result["seconds"] = round(time.monotonic() - t0, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    log.info("wrote %s in %.0f s", args.out, result["seconds"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
