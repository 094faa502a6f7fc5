"""The ``unisurg`` command line: one sub-command per pipeline stage, plus benchmark tools.

Each stage command parses ``params.yaml`` once (strictly), calls the library, and writes
its outputs and the resolved parameters it used into its output folder. ``stages/*.py``
(the DVC stages) are thin wrappers around these commands.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from pathlib import Path

from .config import ConfigError, Params, load_params
from .curation.gate import QualityGateError
from .io import write_json

log = logging.getLogger("unisurg")


def _params(args: argparse.Namespace) -> Params:
    return load_params(args.params, args.set)


def cmd_synth(args: argparse.Namespace) -> int:
    from .synth.corpus import CorpusSpec, build_corpus
    from .synth.layouts import WRITERS, SynthSpec

    p = _params(args)
    s = p.synth
    spec = SynthSpec(
        size=s.size,
        seconds=s.benchmark_seconds,
        videos_per_split=s.videos_per_split,
        images_per_split=s.images_per_split,
    )
    names = tuple(s.benchmarks) if s.benchmarks is not None else tuple(WRITERS)
    m = build_corpus(
        Path(args.out),
        CorpusSpec(spec, s.pretrain_videos_per_source, s.pretrain_seconds, names, p.base.seed),
        workers=args.workers,
    )
    log.info("synth: %d files written to %s", len(m["files"]), args.out)
    return 0


def cmd_curate(args: argparse.Namespace) -> int:
    from .curation.gate import run_gate
    from .curation.index import curate
    from .curation.sources import load_sources

    p = _params(args)
    c = p.curate
    sources = load_sources(args.sources or c.sources)
    out = Path(args.out)
    metrics = curate(
        sources, out, c.clip_frames, c.frame_step, c.clip_stride_s, c.min_seconds, c.workers, c.motion_step, c.balance
    )
    write_json(out / "params.json", c.model_dump(mode="json"))
    run_gate(out)  # raises QualityGateError (exit code 3) listing every failed expectation
    log.info(
        "curate: %d videos kept, %d clips, %d quarantined",
        metrics["videos_kept"],
        metrics["clips"],
        metrics["quarantined"],
    )
    return 0


def _clips(args: argparse.Namespace, out: Path) -> Path:
    """The clip table a training stage reads: ``--clips``, or its ``--where`` rows saved in ``out``."""
    if not args.where:
        return Path(args.clips)
    from .curation.index import select_clips

    out.mkdir(parents=True, exist_ok=True)
    return select_clips(Path(args.clips), args.where, out / "clips.parquet")


def cmd_pretrain(args: argparse.Namespace) -> int:
    from .training.pretrain import run_pretrain

    p = _params(args)
    out = Path(args.out)
    metrics = run_pretrain(_clips(args, out), out, p.pretrain, p.base.seed, progress=not args.quiet)
    where = {"where": args.where} if args.where else {}
    write_json(out / "params.json", {"seed": p.base.seed, **where, **p.pretrain.model_dump(mode="json")})
    log.info("pretrain: %s", metrics)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from .training.distill import run_distill
    from .training.selfdistill import run_self_distill

    p = _params(args)
    out = Path(args.out)
    if p.distill.mode == "self":
        if len(args.teacher) != 1:
            raise ValueError(f"distill.mode self takes one teacher, got {len(args.teacher)}")
        metrics = run_self_distill(
            _clips(args, out), Path(args.teacher[0]), out, p.distill, p.pretrain, p.base.seed, progress=not args.quiet
        )
        write_json(
            out / "params.json",
            {
                "seed": p.base.seed,
                **({"where": args.where} if args.where else {}),
                "distill": p.distill.model_dump(mode="json"),
                "pretrain": p.pretrain.model_dump(mode="json"),
            },
        )
        log.info("distill (self): %s", metrics)
        return 0
    metrics = run_distill(
        _clips(args, out),
        [Path(t) for t in args.teacher],
        out,
        p.distill,
        p.pretrain.clip.frames,
        p.pretrain.clip.size,
        p.base.seed,
        progress=not args.quiet,
    )
    where = {"where": args.where} if args.where else {}
    write_json(out / "params.json", {"seed": p.base.seed, **where, **p.distill.model_dump(mode="json")})
    log.info("distill: %s", metrics)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from .benchmarks import get_benchmark
    from .evaluation.encoders import MultiLayer, load_encoder_spec
    from .evaluation.harness import run_benchmark
    from .evaluation.protocols import from_params
    from .runtime import distributed

    p = _params(args)
    e = p.evaluate
    names = list(e.benchmarks) if args.benchmark == ["all"] else args.benchmark
    benches = [get_benchmark(name) for name in names]
    if args.root and len(benches) > 1:
        raise ConfigError("--root names one dataset: evaluate one benchmark with it, or set evaluate.benchmarks")
    if args.metrics and len(benches) > 1:
        raise ConfigError("--metrics names one file: use --metrics-dir for several benchmarks")
    roots = {}
    for bench in benches:
        roots[bench.name] = args.root or e.benchmarks.get(bench.name)
        if roots[bench.name] is None:
            raise ConfigError(f"no dataset root for {bench.name}: pass --root or set evaluate.benchmarks.{bench.name}")
    protocol = from_params(e)
    if protocol.select_on == "test":
        log.warning("evaluate.select_on=test: heads chosen on the TEST split (the paper's configs), not held out")
    size = protocol.sampling.size
    with distributed(e.device) as d:
        encoders = {}
        for name, spec in e.models.items():
            model, wid = load_encoder_spec(spec, p.base.seed, size, vjepa_key=protocol.checkpoint_key)
            if e.layers:  # multi-level tokens: cached and recorded apart from the last block's
                model, wid = MultiLayer(model, e.layers), f"{wid}@layers{e.layers}"
            encoders[name] = (model.to(d.device), wid)
        batch = e.batch_size.on(d.device.type)
        for bench in benches:
            ran = run_benchmark(
                bench, Path(roots[bench.name]), encoders, protocol, p.base.seed, Path(e.cache_dir), batch, d, e.bf16
            )
            if ran is not None:  # the main rank writes; the others only extracted their share of the features
                _write_results(bench, *ran, args, len(benches), _compute(d, e.bf16))
    return 0


def _compute(d, bf16: bool) -> dict:
    """How a stage computed: device type, precision, processes (results record it beside the machine)."""
    cuda = d.device.type == "cuda"
    return {"device": d.device.type, "precision": "bf16-autocast" if cuda and bf16 else "float32", "ranks": d.world}


def _write_results(
    bench, result: dict, predictions, args: argparse.Namespace, n_benchmarks: int, compute: dict
) -> None:
    from .io import write_table

    # one benchmark: --out is its folder; several: one sub-folder each
    out = Path(args.out) if n_benchmarks == 1 else Path(args.out) / bench.name
    write_table(out / "predictions.parquet", predictions)
    metrics = args.metrics or Path(args.metrics_dir or "reports/metrics") / f"{bench.name}.json"
    write_json(Path(metrics), {**result, "machine": machine_info(), "compute": compute})
    summary = {m: d["value"] for m, d in result["models"].items()}
    log.info("evaluate %s (%s): %s", bench.title, bench.metric, summary)


def machine_info() -> dict[str, str | int]:
    """What a result ran on: training and probes on other CPUs may differ in the last bits."""
    import platform

    import numpy as np
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            cpu = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), cpu)
    except OSError:
        pass  # not Linux: platform's description stands
    acc = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no accelerator"
    return {
        "cpu": cpu,
        "cores": os.cpu_count() or 0,
        "accelerator": acc,
        "torch": torch.__version__,
        "numpy": np.__version__,
    }


def cmd_features(args: argparse.Namespace) -> int:
    from .evaluation.encoders import MultiLayer, load_encoder_spec
    from .evaluation.extract import Windows, extract, find_videos
    from .runtime import distributed

    windows = Windows(args.frames, args.fps, args.stride, args.size)
    videos = find_videos(args.videos)
    if not videos:
        raise ConfigError(f"no videos found in {args.videos}")
    with distributed(args.device) as d:
        model, wid = load_encoder_spec(args.encoder, args.seed, args.size)
        meta = {"encoder": args.encoder, "weights": wid, "windows": json.dumps(dataclasses.asdict(windows))}
        if args.layers:  # multi-level features: the blocks' tokens side by side on the channel axis
            model = MultiLayer(model, args.layers)
            meta["layers"] = json.dumps(args.layers)
        bf16 = not args.fp32
        rows = extract(model.to(d.device), videos, Path(args.out), windows, args.batch_size, args.pool, meta, d, bf16)
        if d.is_main:
            log.info("features: %d windows of %d videos -> %s (%s)", rows, len(videos), args.out, _compute(d, bf16))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .io import read_json
    from .report import Extras, build_report, load_ablation, load_continued, provenance

    p = _params(args)
    r = p.report
    logs = {"pretrain": Path(args.pretrain_log), "distill": Path(args.distill_log)}

    def optional(path: str) -> dict | None:
        return read_json(path) if Path(path).exists() else None

    extras = Extras(
        curation=optional(args.curation),
        distill=optional(args.distill_metrics),
        baselines=r.baselines,
        teacher=r.teacher,
        student=r.student,
        provenance=provenance(Path.cwd(), Path(args.params)),
        ablation=load_ablation(Path(args.ablation_dir)),
        seeds=load_ablation(Path(args.seeds_dir)),
        continued=load_continued(Path(args.continued_dir)),
        seed=p.base.seed,
    )
    info = build_report(Path(args.metrics_dir), Path(args.out), logs, extras, r.title)
    log.info("report: %d benchmarks, models %s -> %s", info["benchmarks"], info["models"], args.out)
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from .config import load_yaml
    from .report import collect_ablation, collect_continued

    if args.action == "collect-continued":
        out = Path(args.out or "reports/continued")
        n = collect_continued(Path(args.results) / "continued", load_yaml(args.grid)["continued"], out)
        log.info("ablation: %d result files of the continued-pretraining experiment -> %s", n, out)
        return 0
    seeds = args.action == "collect-seeds"
    group = "seeds" if seeds else "variants"
    names = list(load_yaml(args.grid).get(group, {}))
    results = Path(args.results) / "seeds" if seeds else Path(args.results)
    out = Path(args.out or ("reports/seeds" if seeds else "reports/ablation"))
    n = collect_ablation(results, names, out)
    log.info("ablation: %d result files of %d %s -> %s", n, len(names), group, out)
    return 0


def cmd_benchmarks(args: argparse.Namespace) -> int:
    from .benchmarks import get_benchmark, list_benchmarks

    if args.action == "list":
        rows = [
            {
                "name": b.name,
                "title": b.title,
                "task": b.task,
                "classes": b.num_classes,
                "metric": b.metric,
                "folds": b.folds,
                "description": b.description,
            }
            for b in list_benchmarks()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
        else:
            for r in rows:
                cols = f"{r['name']:<20} {r['title']:<20} {r['task']:<13} {r['classes']:>4}  {r['metric']:<13}"
                print(f"{cols} {r['description']}")
        return 0
    if not args.name or not args.root:
        raise SystemExit("usage: unisurg benchmarks validate NAME --root DIR [--json]")
    rep = get_benchmark(args.name).validate(args.root)
    if args.json:
        print(
            json.dumps(
                {
                    "benchmark": rep.benchmark,
                    "ok": rep.ok,
                    "counts": rep.counts,
                    "videos": rep.groups,
                    "classes": rep.class_counts,
                    "problems": rep.problems,
                },
                indent=2,
            )
        )
    else:
        print(f"{rep.benchmark}: {'OK' if rep.ok else f'{len(rep.problems)} problem(s)'}")
        print("  records: " + ", ".join(f"{k} {v}" for k, v in rep.counts.items()))
        print("  videos:  " + ", ".join(f"{k} {v}" for k, v in rep.groups.items()))
        for prob in rep.problems:
            print(f"  - {prob}")
    return 0 if rep.ok else 1


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="unisurg", description=__doc__.splitlines()[0])
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    def stage(name: str, fn, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_)
        sp.add_argument("--params", default="params.yaml")
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override a parameter, e.g. --set pretrain.motion.enabled=false (repeatable; value is YAML)",
        )
        sp.add_argument("--quiet", action="store_true", help="no progress bar")
        sp.set_defaults(fn=fn)
        return sp

    sp = stage("synth", cmd_synth, "render the built-in synthetic corpus")
    sp.add_argument("--out", default="data/synth")
    sp.add_argument("--workers", type=int, default=2)
    sp = stage("curate", cmd_curate, "inspect sources into the Parquet/DuckDB index")
    sp.add_argument("--sources", default=None, help="source registry (default: curate.sources in params)")
    sp.add_argument("--out", default="data/curate")
    sp = stage("pretrain", cmd_pretrain, "pretrain the encoder")
    sp.add_argument("--clips", default="data/curate/clips.parquet")
    sp.add_argument(
        "--where", default=None, help="train on the clips satisfying this DuckDB condition, e.g. \"region = 'eye'\""
    )

    sp.add_argument("--out", default="data/pretrain")
    sp = stage("distill", cmd_distill, "distill a small student")
    sp.add_argument("--clips", default="data/curate/clips.parquet")
    sp.add_argument(
        "--where", default=None, help="train on the clips satisfying this DuckDB condition, e.g. \"region = 'eye'\""
    )

    sp.add_argument(
        "--teacher",
        nargs="+",
        default=["data/pretrain/encoder.pt"],
        help="teacher checkpoint(s); several = an ensemble whose normalised features are averaged",
    )
    sp.add_argument("--out", default="data/distill")
    sp = stage("evaluate", cmd_evaluate, "evaluate encoders on one benchmark")
    sp.add_argument(
        "--benchmark", required=True, nargs="+", help="one or more registered benchmarks; 'all': evaluate.benchmarks"
    )
    sp.add_argument("--root", default=None, help="dataset root (default: evaluate.benchmarks.<name>)")
    sp.add_argument("--out", required=True, help="folder for predictions.parquet (several benchmarks: one each)")
    sp.add_argument("--metrics", default=None, help="results JSON of one benchmark")
    sp.add_argument("--metrics-dir", default=None, help="folder of <benchmark>.json results (default reports/metrics)")
    sp = stage("report", cmd_report, "build reports/benchmark.md and reports/index.html")
    sp.add_argument("--metrics-dir", default="reports/metrics")
    sp.add_argument("--pretrain-log", default="data/pretrain/log.csv")
    sp.add_argument("--distill-log", default="data/distill/log.csv")
    sp.add_argument("--curation", default="data/curate/curation.json")
    sp.add_argument("--distill-metrics", default="data/distill/metrics.json")
    sp.add_argument("--ablation-dir", default="reports/ablation", help="results of `make ablation` (optional)")
    sp.add_argument("--seeds-dir", default="reports/seeds", help="results of `make seeds` (optional)")
    sp.add_argument("--continued-dir", default="reports/continued", help="results of `make continued` (optional)")
    sp.add_argument("--out", default="reports")
    add_tools(sub)
    return ap


def add_tools(sub) -> None:
    """The commands that are not pipeline stages: benchmarks, ablation, features."""
    sp = sub.add_parser("benchmarks", help="list the benchmarks or validate a dataset download")
    sp.add_argument("action", choices=["list", "validate"])
    sp.add_argument("name", nargs="?")
    sp.add_argument("--root")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(fn=cmd_benchmarks)
    sp = sub.add_parser("ablation", help="version the ablation grid's results for the report")
    sp.add_argument(
        "action",
        choices=["collect", "collect-seeds", "collect-continued"],
        help="the variants' results, the seeds', or the continued-pretraining experiment's",
    )
    sp.add_argument("--grid", default="ablation/params.yaml", help="the grid (its variants or seeds are collected)")
    sp.add_argument("--results", default="data/ablation", help="where ablation/dvc.yaml wrote <variant>/results")
    sp.add_argument("--out", default=None, help="default reports/ablation (variants), reports/seeds, reports/continued")
    sp.set_defaults(fn=cmd_ablation)
    sp = sub.add_parser("features", help="clip embeddings of whole videos (sliding windows) with any encoder")
    sp.add_argument("action", choices=["extract"])
    sp.add_argument("videos", nargs="+", help="video files or directories (searched recursively)")
    sp.add_argument(
        "--encoder", required=True, help="checkpoint path, random:<arch>, vjepa:<arch>:<path> or timm:<name>[:<path>]"
    )
    sp.add_argument("--out", required=True, help="a .parquet file (pooled embeddings) or a directory of .npy")
    sp.add_argument("--frames", type=int, default=16)
    sp.add_argument("--fps", type=float, default=8.0)
    sp.add_argument("--stride", type=float, default=1.0, help="seconds between window starts")
    sp.add_argument("--size", type=int, default=64)
    sp.add_argument("--pool", choices=["mean", "none"], default="mean", help="none: keep every token (.npy only)")
    sp.add_argument("--batch-size", type=int, default=8)
    sp.add_argument("--seed", type=int, default=0, help="seed of random:/timm: encoders without weights")
    sp.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    sp.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (float32 throughout)")
    sp.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="blocks whose tokens are concatenated (e.g. -4 -3 -2 -1, as vjepa2's out_layers); default: the last",
    )
    sp.set_defaults(fn=cmd_features)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return args.fn(args)
    except (ConfigError, FileNotFoundError) as err:  # a wrong path or setting: the message says which
        log.error("%s", err)
        return 2
    except QualityGateError as err:
        log.error("%s", err)
        return 3


if __name__ == "__main__":
    sys.exit(main())
