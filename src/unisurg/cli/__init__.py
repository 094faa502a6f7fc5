"""The ``unisurg`` command line: one sub-command per pipeline stage, plus benchmark tools.

Each stage command parses the parameters once (strictly), calls the library, and writes
its outputs and the resolved parameters it used into its output folder. ``stages/*.py``
(the DVC stages) are thin wrappers around these commands.

A user's mistake (:class:`unisurg.errors.UsageError`, a missing file) is one log line naming
the value and exit code 2; the traceback only with ``-v``. Only our loggers speak at INFO.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

from ..config import ConfigError, Params, load_params, spec_file
from ..curation.gate import QualityGateError
from ..errors import UsageError
from ..io import write_json

log = logging.getLogger("unisurg")


def _params(args: argparse.Namespace) -> Params:
    return load_params(args.params, args.set)


def cmd_synth(args: argparse.Namespace) -> int:
    from ..synth.corpus import CorpusSpec, build_corpus
    from ..synth.layouts import WRITERS, SynthSpec

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
    from ..curation.gate import run_gate
    from ..curation.index import curate
    from ..curation.sources import load_sources, registry_path

    p = _params(args)
    c = p.curate
    sources = load_sources(registry_path(args.sources, c.sources))
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


def _where(args: argparse.Namespace) -> dict[str, str]:
    """The ``--where`` condition as recorded in a run's params.json (nothing when all clips were used)."""
    return {"where": args.where} if args.where else {}


def _clips(args: argparse.Namespace, out: Path) -> Path:
    """The clip table a training stage reads: ``--clips``, or its ``--where`` rows saved in ``out``."""
    if not args.where:
        return Path(args.clips)
    from ..curation.index import select_clips

    out.mkdir(parents=True, exist_ok=True)
    return select_clips(Path(args.clips), args.where, out / "clips.parquet")


def cmd_pretrain(args: argparse.Namespace) -> int:
    from ..training.pretrain import run_pretrain

    p = _params(args)
    out = Path(args.out)
    metrics = run_pretrain(_clips(args, out), out, p.pretrain, p.base.seed, progress=not args.quiet)
    write_json(out / "params.json", {"seed": p.base.seed, **_where(args), **p.pretrain.model_dump(mode="json")})
    log.info("pretrain: %s", metrics)
    return 0


def cmd_distill(args: argparse.Namespace) -> int:
    from ..training.distill import run_distill
    from ..training.selfdistill import run_self_distill

    p = _params(args)
    out = Path(args.out)
    if p.distill.mode == "self":
        if len(args.teacher) != 1:
            raise UsageError(f"distill.mode self takes one teacher, got {len(args.teacher)}")
        metrics = run_self_distill(
            _clips(args, out), Path(args.teacher[0]), out, p.distill, p.pretrain, p.base.seed, progress=not args.quiet
        )
        write_json(
            out / "params.json",
            {
                "seed": p.base.seed,
                **_where(args),
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
    write_json(out / "params.json", {"seed": p.base.seed, **_where(args), **p.distill.model_dump(mode="json")})
    log.info("distill: %s", metrics)
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from ..benchmarks import get_benchmark
    from ..evaluation.encoders import MultiLayer, load_encoder_spec
    from ..evaluation.harness import run_benchmark
    from ..evaluation.protocols import from_params
    from ..runtime import distributed

    p = _params(args)
    e = p.evaluate
    models = _encoders(args.encoder) or e.models
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
        for name, spec in models.items():
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


def _encoders(items: list[str]) -> dict[str, str]:
    """``--encoder NAME=SPEC`` (repeatable) -> {name: spec}; a bare SPEC is named after its file's stem."""
    out: dict[str, str] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        if not sep:
            file = spec_file(item)
            name, spec = (Path(file[1]).stem if file else item), item
        if not name or not spec or name in out:
            raise UsageError(
                f"--encoder {item!r}: expected NAME=SPEC with a new NAME, e.g. mine=data/pretrain/encoder.pt"
            )
        out[name] = spec
    return out


def _compute(d, bf16: bool) -> dict:
    """How a stage computed: device type, precision, processes (results record it beside the machine)."""
    cuda = d.device.type == "cuda"
    return {"device": d.device.type, "precision": "bf16-autocast" if cuda and bf16 else "float32", "ranks": d.world}


def _write_results(
    bench, result: dict, predictions, args: argparse.Namespace, n_benchmarks: int, compute: dict
) -> None:
    from ..io import write_table

    # one benchmark: --out is its folder; several: one sub-folder each
    out = Path(args.out) if n_benchmarks == 1 else Path(args.out) / bench.name
    write_table(out / "predictions.parquet", predictions)
    # beside the predictions unless named: never into the pipeline's reports/metrics by accident
    if args.metrics:
        metrics = Path(args.metrics)
    else:
        metrics = Path(args.metrics_dir) / f"{bench.name}.json" if args.metrics_dir else out / "results.json"
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
    from ..evaluation.encoders import MultiLayer, load_encoder_spec
    from ..evaluation.extract import Windows, extract, find_videos
    from ..runtime import distributed

    if args.pool == "none" and Path(args.out).suffix == ".parquet":
        raise UsageError(f"--pool none keeps every token: --out must be a folder of .npy files, not {args.out}")
    windows = Windows(args.frames, args.fps, args.stride, args.size)
    videos = find_videos(args.videos)
    if not videos:
        raise UsageError(f"no video files in {' '.join(args.videos)}")
    with distributed(args.device) as d:
        model, wid = load_encoder_spec(args.encoder, args.seed, args.size)
        meta = {"encoder": args.encoder, "weights": wid, "windows": json.dumps(dataclasses.asdict(windows))}
        if args.layers:  # multi-level features: the blocks' tokens side by side on the channel axis
            model = MultiLayer(model, args.layers)
            meta["layers"] = json.dumps(args.layers)
        bf16 = not args.fp32
        rows = extract(model.to(d.device), videos, Path(args.out), windows, args.batch_size, args.pool, meta, d, bf16)
        if d.is_main:
            log.info(
                "features: %d windows of the %d videos given -> %s (%s)", rows, len(videos), args.out, _compute(d, bf16)
            )
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from ..io import read_json
    from ..report import Extras, build_report, load_ablation, load_continued, provenance

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
        provenance=provenance(Path.cwd(), Path(args.params or "params.yaml")),
        ablation=load_ablation(Path(args.ablation_dir)),
        seeds=load_ablation(Path(args.seeds_dir)),
        continued=load_continued(Path(args.continued_dir)),
        seed=p.base.seed,
    )
    info = build_report(Path(args.metrics_dir), Path(args.out), logs, extras, r.title)
    log.info("report: %d benchmarks, models %s -> %s", info["benchmarks"], info["models"], args.out)
    return 0


def cmd_ablation(args: argparse.Namespace) -> int:
    from ..config import load_yaml
    from ..report import collect_ablation, collect_continued

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


LAYOUT_LEGEND = "\n(<NN>: one name part, e.g. a zero-padded number; {a,b}: either; text after a path: its content)"


def cmd_benchmarks(args: argparse.Namespace) -> int:
    from ..benchmarks import get_benchmark, list_benchmarks

    if args.action == "list":
        rows = [
            {
                "name": b.name,
                "title": b.title,
                "task": b.task,
                "classes": b.num_classes,
                "metric": b.metric,
                "higher_is_better": b.higher_is_better,
                "folds": b.folds,
                "description": b.description,
            }
            for b in list_benchmarks()
        ]
        if args.json:
            print(json.dumps(rows, indent=2))
            return 0
        print(f"{'name':<20} {'title':<20} {'task':<13} {'classes':>7}  {'metric':<16} description")
        for r in rows:
            classes = str(r["classes"]) if r["classes"] else "-"  # regression and depth have none
            metric = f"{r['metric']} {'↑' if r['higher_is_better'] else '↓'}"
            print(f"{r['name']:<20} {r['title']:<20} {r['task']:<13} {classes:>7}  {metric:<16} {r['description']}")
        return 0
    if not args.name:
        raise UsageError(f"benchmarks {args.action} needs a benchmark NAME (unisurg benchmarks list names them)")
    bench = get_benchmark(args.name)
    if args.action == "layout":
        print(f"{bench.title}: the on-disk layout its loader reads (the root is the folder shown first)\n")
        print(bench.layout)
        print(LAYOUT_LEGEND)
        return 0
    if not args.root:
        raise UsageError(f"benchmarks validate {args.name} needs --root DIR, the dataset's folder")
    rep = bench.validate(args.root, deep=args.deep)
    if args.json:
        fields = {"counts": rep.counts, "videos": rep.groups, "classes": rep.class_counts, "problems": rep.problems}
        print(json.dumps({"benchmark": rep.benchmark, "ok": rep.ok, **fields, "checked": rep.checked}, indent=2))
        return 0 if rep.ok else 1
    print(f"{rep.benchmark}: {'OK' if rep.ok else f'{len(rep.problems)} problem(s)'}{' (deep)' if args.deep else ''}")
    print("  records: " + ", ".join(f"{k} {v}" for k, v in rep.counts.items()))
    print("  videos:  " + ", ".join(f"{k} {v}" for k, v in rep.groups.items()))
    if rep.checked:
        print("  opened:  " + ", ".join(f"{k} {v}" for k, v in rep.checked.items()))
    for prob in rep.problems:
        print(f"  - {prob}")
    if not rep.ok and not any(rep.counts.values()):  # nothing found: the root does not follow the layout
        print(f"\nExpected layout of {bench.title} (unisurg benchmarks layout {bench.name}):\n{bench.layout}")
        print(LAYOUT_LEGEND)
    return 0 if rep.ok else 1


# --------------------------------------------------------------------------- the parser

DESCRIPTION = """\
unisurg: the pipeline of the UniSurg surgical video foundation model.

Pipeline stages (what `dvc repro` runs, in order): synth, curate, pretrain, distill, evaluate,
report. Tools: benchmarks (list, layout, validate a download), features (embed whole videos),
ablation (version the ablation grid's results). `unisurg COMMAND -h` explains a command.
"""

EPILOG = """\
first steps:
  unisurg benchmarks list
  unisurg benchmarks validate cholec80 --root /data/cholec80 --deep
  unisurg curate --sources my_sources.yaml --out data/curate
  unisurg features extract /data/videos --encoder data/pretrain/encoder.pt --out feats.parquet
  unisurg evaluate --benchmark cholec80 --root /data/cholec80 --encoder mine=vjepa:vit_large:/ckpt/vitl.pt

exit codes: 0 done, 1 a validation found problems, 2 a wrong value or file (the message says
which), 3 the curated index failed its quality gate.
"""

# An example --set per stage: a key of the stage's own section (params.yaml has one per stage).
SET_EXAMPLES = {
    "synth": "synth.size=96",
    "curate": "curate.min_seconds=2",
    "pretrain": "pretrain.motion.enabled=false",
    "distill": "distill.steps=100",
    "evaluate": "evaluate.protocol=surgmotion",
    "report": "report.title='My report'",
}


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Each option's default at the end of its help (unless the help already says it, or there is
    none to show); descriptions and epilogs keep their line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        d = action.default
        empty = d is None or d is False or d is argparse.SUPPRESS or d == []  # `0 in (False,)` is True: no `in`
        if "default" in text or empty or action.required or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)"


def _common() -> argparse.ArgumentParser:
    """-v / -q, accepted before or after the command (``unisurg -v curate`` = ``unisurg curate -v``)."""
    p = argparse.ArgumentParser(add_help=False)
    # SUPPRESS: a sub-command's own default must not overwrite what was given before the command
    p.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logs; tracebacks")
    p.add_argument(
        "-q",
        "--quiet",
        action="count",
        default=argparse.SUPPRESS,
        help="no progress bars (the DVC stages' setting); -qq: also only warnings and errors",
    )
    return p


def build_parser() -> argparse.ArgumentParser:
    common = _common()
    ap = argparse.ArgumentParser(
        prog="unisurg", description=DESCRIPTION, epilog=EPILOG, formatter_class=_Formatter, parents=[common]
    )
    ap.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def stage(name: str, fn, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common], formatter_class=_Formatter)
        sp.add_argument(
            "--params",
            default=None,
            help="pipeline parameters (default: ./params.yaml if present, else the built-in defaults); "
            "relative paths inside it are relative to its folder",
        )
        sp.add_argument(
            "--set",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help=f"override a parameter, e.g. --set {SET_EXAMPLES[name]} (repeatable; the value is YAML)",
        )
        sp.set_defaults(fn=fn)
        return sp

    sp = stage("synth", cmd_synth, "render the built-in synthetic corpus (benchmarks in their real formats)")
    sp.add_argument("--out", default="data/synth", help="output folder")
    sp.add_argument("--workers", type=int, default=2, help="rendering processes")
    sp = stage("curate", cmd_curate, "index video sources into Parquet/DuckDB, quarantine bad files, run the gate")
    sp.add_argument("--sources", default=None, help="source registry (default: curate.sources of the parameters)")
    sp.add_argument("--out", default="data/curate", help="output folder (videos/clips/quarantine.parquet, index.sql)")
    for name, fn, help_, out in (
        ("pretrain", cmd_pretrain, "pretrain the encoder on the curated clips", "data/pretrain"),
        ("distill", cmd_distill, "distil a small student from the pretrained encoder(s)", "data/distill"),
    ):
        sp = stage(name, fn, help_)
        sp.add_argument("--clips", default="data/curate/clips.parquet", help="clip table written by curate")
        sp.add_argument(
            "--where",
            default=None,
            help="train only on the clips satisfying this DuckDB condition, e.g. \"region = 'eye'\"",
        )
        sp.add_argument("--out", default=out, help="output folder (checkpoints, log.csv, metrics.json)")
    sp.add_argument(
        "--teacher",
        nargs="+",
        default=["data/pretrain/encoder.pt"],
        help="teacher checkpoint(s); several = an ensemble whose normalised features are averaged",
    )
    add_evaluate(stage("evaluate", cmd_evaluate, "probe frozen encoders on benchmarks (evaluate.protocol)"))
    sp = stage("report", cmd_report, "build reports/benchmark.md and reports/index.html from the results")
    sp.add_argument("--metrics-dir", default="reports/metrics", help="folder of <benchmark>.json results")
    sp.add_argument("--pretrain-log", default="data/pretrain/log.csv", help="pretraining log (loss curves)")
    sp.add_argument("--distill-log", default="data/distill/log.csv", help="distillation log")
    sp.add_argument("--curation", default="data/curate/curation.json", help="curation summary (optional)")
    sp.add_argument("--distill-metrics", default="data/distill/metrics.json", help="distillation metrics (optional)")
    sp.add_argument("--ablation-dir", default="reports/ablation", help="results of `make ablation` (optional)")
    sp.add_argument("--seeds-dir", default="reports/seeds", help="results of `make seeds` (optional)")
    sp.add_argument("--continued-dir", default="reports/continued", help="results of `make continued` (optional)")
    sp.add_argument("--out", default="reports", help="output folder")
    add_tools(sub, common)
    return ap


def add_evaluate(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "--benchmark",
        required=True,
        nargs="+",
        help="registered benchmark name(s) (unisurg benchmarks list); 'all': every one of evaluate.benchmarks",
    )
    sp.add_argument("--root", default=None, help="the dataset's folder (default: evaluate.benchmarks.<name>)")
    sp.add_argument(
        "--encoder",
        action="append",
        default=[],
        metavar="NAME=SPEC",
        help="evaluate this encoder instead of evaluate.models (repeatable); SPEC is a checkpoint path, "
        "random:<arch>, vjepa:<arch>:<path>[:<key>] or timm:<name>[:<path>]",
    )
    sp.add_argument(
        "--out",
        default="data/evaluate",
        help="folder for predictions.parquet (several benchmarks: one sub-folder each)",
    )
    sp.add_argument(
        "--metrics", default=None, help="results JSON of one benchmark (default: results.json beside its predictions)"
    )
    sp.add_argument("--metrics-dir", default=None, help="or: a folder of <benchmark>.json results (the pipeline's)")


def add_tools(sub, common: argparse.ArgumentParser) -> None:
    """The commands that are not pipeline stages: benchmarks, ablation, features."""

    def tool(name: str, fn, help_: str) -> argparse.ArgumentParser:
        sp = sub.add_parser(name, help=help_, description=help_, parents=[common], formatter_class=_Formatter)
        sp.set_defaults(fn=fn)
        return sp

    sp = tool("benchmarks", cmd_benchmarks, "list the benchmarks, show a dataset's layout, validate a download")
    sp.add_argument("action", choices=["list", "layout", "validate"], help="what to do")
    sp.add_argument("name", nargs="?", help="benchmark name (layout, validate)")
    sp.add_argument("--root", help="the downloaded dataset's folder (validate)")
    sp.add_argument("--deep", action="store_true", help="validate: also open every video and image, check durations")
    sp.add_argument("--json", action="store_true", help="machine-readable output")
    sp = tool("ablation", cmd_ablation, "version the ablation grid's results for the report")
    sp.add_argument(
        "action",
        choices=["collect", "collect-seeds", "collect-continued"],
        help="the variants' results, the seeds', or the continued-pretraining experiment's",
    )
    sp.add_argument("--grid", default="ablation/params.yaml", help="the grid (its variants or seeds are collected)")
    sp.add_argument("--results", default="data/ablation", help="where ablation/dvc.yaml wrote <variant>/results")
    sp.add_argument("--out", default=None, help="default reports/ablation (variants), reports/seeds, reports/continued")
    sp = tool("features", cmd_features, "embed whole videos in sliding windows with any encoder")
    sp.add_argument("action", choices=["extract"], help="what to do")
    sp.add_argument(
        "videos", nargs="+", help="video files, folders (searched recursively) or curation's videos.parquet"
    )
    sp.add_argument("--encoder", required=True, help="checkpoint path, random:<arch>, vjepa:<arch>:<path>, timm:<name>")
    sp.add_argument("--out", required=True, help="a .parquet file (pooled embeddings) or a folder of .npy files")
    sp.add_argument("--frames", type=int, default=16, help="frames per window")
    sp.add_argument("--fps", type=float, default=8.0, help="frames per second sampled in a window")
    sp.add_argument("--stride", type=float, default=1.0, help="seconds between window starts")
    sp.add_argument("--size", type=int, default=64, help="frame side in pixels (V-JEPA 2 ViT-L weights expect 256)")
    sp.add_argument("--pool", choices=["mean", "none"], default="mean", help="none: every token (.npy folder only)")
    sp.add_argument("--batch-size", type=int, default=8, help="windows per encoder forward")
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


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("unisurg")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


# --------------------------------------------------------------------------- entry point


_HANDLER = "unisurg-cli"


class _OursOrWarnings(logging.Filter):
    """Our records at the chosen level; every library's (Great Expectations logs hundreds of INFO
    lines per run, with its own logger levels) only from WARNING up."""

    def __init__(self, level: int) -> None:
        super().__init__()
        self.level = level

    def filter(self, record: logging.LogRecord) -> bool:
        ours = record.name == "unisurg" or record.name.startswith(("unisurg.", "__main__"))
        return record.levelno >= (self.level if ours else logging.WARNING)


def configure_logging(verbose: bool = False, quiet: int = 0) -> None:
    """One stderr handler: unisurg's logs at INFO (DEBUG with -v, WARNING with -qq), libraries' at WARNING.

    A single -q only hides progress bars: the stages' INFO lines (what was kept, a resumed step, each
    benchmark's scores) stay in ``dvc repro``'s output."""
    level = logging.DEBUG if verbose else logging.WARNING if quiet >= 2 else logging.INFO
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == _HANDLER]:  # a previous call's (tests call main often)
        root.removeHandler(old)
    handler = logging.StreamHandler(sys.stderr)
    handler.set_name(_HANDLER)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_OursOrWarnings(level))
    root.addHandler(handler)  # other handlers (an embedding application's, pytest's) stay
    root.setLevel(min(level, logging.INFO))
    logging.getLogger("unisurg").setLevel(level)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.verbose, args.quiet = getattr(args, "verbose", False), getattr(args, "quiet", 0)
    configure_logging(args.verbose, args.quiet)
    return guarded(lambda: args.fn(args), args.verbose)


def guarded(run: Callable[[], int], verbose: bool = False) -> int:
    """``run()``'s exit code, with a user's mistake as one error line and code 2 (a failed quality
    gate: 3); the traceback only when ``verbose``. Bugs (any other exception) keep theirs."""
    try:
        return run()
    except (UsageError, FileNotFoundError) as err:  # a user's mistake: the message says which value and why
        return _fail(err, 2, verbose)
    except QualityGateError as err:
        return _fail(err, 3, verbose)
    except BrokenPipeError:  # `unisurg benchmarks list | head`: the reader left, nothing is wrong
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not raise again
        return 0


def _fail(err: Exception, code: int, verbose: bool) -> int:
    """Log the error's message alone (with -v: and its traceback); -> the exit code."""
    if isinstance(err, FileNotFoundError) and err.filename:  # raised by open(): "[Errno 2] ..." -> "path: reason"
        msg = f"{err.filename}: {err.strerror.lower()}"
    else:
        msg = str(err)
    if verbose:
        log.exception("%s", msg)
    else:
        log.error("%s", msg)
    return code


if __name__ == "__main__":
    sys.exit(main())
