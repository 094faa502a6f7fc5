"""Evaluation cost: frozen feature extraction (clips/s), probe-grid training time, cached re-run.

Runs the real harness on a mini Cholec80 written by the built-in corpus writer, with a random
``vit_micro`` encoder and the default probe grid from params.yaml, three times: features
extracted (cold: frame stores built, tokens extracted into the store), features from the on-disk
cache (warm), and extraction alone (frame stores + tokens). Then the probe
grid's training step on those features, as one bank (:mod:`unisurg.evaluation.bank`) against
the same heads trained one after another with ``torch.optim.AdamW``, for the params.yaml grid and
for one with twice the heads (a second weight decay). Last, one encoder over all
17 mini benchmarks at the pipeline's size (``synth`` params), cold cache: the evaluate stage's
cost per encoder (target: <= 5 minutes on 2 CPU cores).

    python perf/bench_eval.py --out reports/perf_eval.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script
import torch

from unisurg.benchmarks import get_benchmark
from unisurg.config import load_params
from unisurg.evaluation.harness import Setup, grid_bank, run_benchmark
from unisurg.evaluation.media import prepare_media
from unisurg.evaluation.probing import bank_optimizer, bank_step
from unisurg.evaluation.protocols import ProbeGrid, Protocol, from_params
from unisurg.evaluation.samples import make_samples
from unisurg.evaluation.tasks import class_loss
from unisurg.evaluation.tokens import token_source
from unisurg.models import create_model
from unisurg.synth.layouts import WRITERS, SynthSpec, write_cholec80


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reports/perf_eval.json")
    args = ap.parse_args(argv)
    e = load_params().evaluate
    batch = e.batch_size.cpu  # this benchmark measures the CPU
    proto = from_params(e)
    grid, sampling, no_boot = proto.probe, proto.sampling, replace(proto, bootstrap=0)
    torch.manual_seed(0)
    enc = create_model("vit_micro")
    bench = get_benchmark("cholec80")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "cholec80"
        write_cholec80(root, SynthSpec(), 0)
        records = bench.load(root)
        samples = make_samples(bench, records, sampling.label_fps)
        extract = []
        for r in range(args.repeats):
            t0 = time.perf_counter()
            feats = extract_tokens(bench, records, samples, no_boot, enc, batch, Path(tmp) / f"extract{r}")
            extract.append(time.perf_counter() - t0)
        cold, warm = [], []
        for r in range(args.repeats):
            cache = Path(tmp) / f"cache{r}"
            t0 = time.perf_counter()
            run_benchmark(bench, root, {"m": (enc, "bench")}, no_boot, 0, cache, batch)
            cold.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            run_benchmark(bench, root, {"m": (enc, "bench")}, no_boot, 0, cache, batch)
            warm.append(time.perf_counter() - t0)
        bank_ms, loop_ms = grid_step(feats, bench.num_classes, grid, args.repeats)
        wide = replace(grid, weight_decays=(*grid.weight_decays, 10 * grid.weight_decays[-1]))  # twice the heads
        wide_bank_ms, wide_loop_ms = grid_step(feats, bench.num_classes, wide, args.repeats)
        suite_s, n_samples = suite(Path(tmp), enc, proto, batch)  # with the bootstrap, nulls, pairs
    med = lambda v: float(np.median(v))  # noqa: E731
    spread = lambda v: [round(float(min(v)), 2), round(float(max(v)), 2)]  # noqa: E731
    result = {
        "samples": len(samples),
        "heads": len(grid.lrs) * len(grid.weight_decays) * grid.seeds,
        "seeds": grid.seeds,
        "epochs": grid.epochs,
        "min_steps": grid.min_steps,
        "extract_s": round(med(extract), 2),
        "extract_range_s": spread(extract),
        "clips_per_s": round(len(samples) / med(extract), 1),
        "cold_run_s": round(med(cold), 2),
        "cold_range_s": spread(cold),
        "warm_run_s": round(med(warm), 2),
        "warm_range_s": spread(warm),
        "probe_grid_s": round(med(warm), 2),
        "cache_speedup": round(med(cold) / med(warm), 2),
        "bank_step_ms": round(med(bank_ms), 1),
        "bank_step_range_ms": spread(bank_ms),
        "loop_step_ms": round(med(loop_ms), 1),
        "loop_step_range_ms": spread(loop_ms),
        "bank_speedup": round(med(loop_ms) / med(bank_ms), 2),
        "wide_heads": len(wide.lrs) * len(wide.weight_decays) * wide.seeds,
        "wide_bank_step_ms": round(med(wide_bank_ms), 1),
        "wide_loop_step_ms": round(med(wide_loop_ms), 1),
        "wide_bank_speedup": round(med(wide_loop_ms) / med(wide_bank_ms), 2),
        "suite_benchmarks": len(WRITERS),
        "suite_samples": n_samples,
        "suite_s": round(suite_s, 1),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


def extract_tokens(bench, records, samples, proto: Protocol, enc, batch: int, cache: Path) -> torch.Tensor:
    """The mini protocol's extraction from cold: every video decoded once into a frame store, every
    sample's tokens into the token store -> the tokens (S, N, D), read back."""
    media = prepare_media(bench, records, samples, proto.sampling, 0, cache)
    setup = Setup.build(bench, records, samples, proto, 0, usable=media.usable)
    src, _ = token_source(enc, "bench", setup, media, cache, batch, workers=0)
    return src.store.read(np.arange(len(samples)))


def grid_step(
    feats: torch.Tensor, classes: int, grid: ProbeGrid, repeats: int, steps: int = 20
) -> tuple[list[float], list[float]]:
    """ms per training step of the whole grid (all seeds): as one bank, and head by head."""
    seeds = list(range(grid.seeds))
    x, y = feats[: grid.batch_size].float(), torch.randint(0, classes, (grid.batch_size,))
    bank_ms, loop_ms = [], []
    for _ in range(repeats):
        bank = grid_bank(feats.size(-1), classes, grid, seeds, None)
        opt = bank_optimizer(bank)
        t0 = time.perf_counter()
        for _ in range(steps):
            bank_step(bank, opt, class_loss, x, y)  # what train_heads runs per batch
        bank_ms.append((time.perf_counter() - t0) / steps * 1e3)
        heads = [bank.module(k).train() for k in range(len(bank))]
        opts = [
            torch.optim.AdamW(h.parameters(), lr=hp["lr"], weight_decay=hp["weight_decay"])
            for h, hp in zip(heads, bank.hparams, strict=True)
        ]
        t0 = time.perf_counter()
        for _ in range(steps):
            for h, o in zip(heads, opts, strict=True):
                o.zero_grad(set_to_none=True)
                class_loss(h(x), y).backward()
                o.step()
        loop_ms.append((time.perf_counter() - t0) / steps * 1e3)
    return bank_ms, loop_ms


def suite(tmp: Path, enc: torch.nn.Module, proto: Protocol, batch: int) -> tuple[float, int]:
    """Wall time of one encoder over the 17 mini benchmarks (corpus written first, not timed)."""
    s = load_params().synth
    spec = SynthSpec(
        size=s.size,
        seconds=s.benchmark_seconds,
        videos_per_split=tuple(s.videos_per_split),
        images_per_split=tuple(s.images_per_split),
    )
    roots = {}
    for name, (folder, writer) in WRITERS.items():
        roots[name] = tmp / "suite" / folder
        writer(roots[name], spec, 0)
    t0 = time.perf_counter()
    n = 0
    for name, root in roots.items():
        res, _, _ = run_benchmark(get_benchmark(name), root, {"m": (enc, "bench")}, proto, 0, tmp / "sc", batch)
        n += res["n_samples"]
    return time.perf_counter() - t0, n


if __name__ == "__main__":
    sys.exit(main())
