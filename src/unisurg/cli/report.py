"""``unisurg report``: build the Markdown and HTML reports from the results (the DVC stage ``report``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--metrics-dir", default="reports/metrics", help="folder of <benchmark>.json results")
    sp.add_argument("--pretrain-log", default="data/pretrain/log.csv", help="pretraining log (loss curves)")
    sp.add_argument("--distill-log", default="data/distill/log.csv", help="distillation log")
    sp.add_argument("--curation", default="data/curate/curation.json", help="curation summary (optional)")
    sp.add_argument("--distill-metrics", default="data/distill/metrics.json", help="distillation metrics (optional)")
    sp.add_argument("--ablation-dir", default="reports/ablation", help="results of `make ablation` (optional)")
    sp.add_argument("--seeds-dir", default="reports/seeds", help="results of `make seeds` (optional)")
    sp.add_argument("--continued-dir", default="reports/continued", help="results of `make continued` (optional)")
    sp.add_argument(
        "--random-teacher-dir", default="reports/random_teacher", help="the random-teacher control (optional)"
    )
    sp.add_argument("--out", default="reports", help="output folder")


def cmd_report(args: argparse.Namespace) -> int:
    from ..io import read_json
    from ..report import (
        Extras,
        build_report,
        load_ablation,
        load_continued,
        load_log,
        load_results,
        load_seed_metrics,
        provenance,
    )

    p = stage_params(args)
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
        learning=load_log(logs["pretrain"]),
        seeds_pretrain=load_seed_metrics(Path(args.seeds_dir)),
        random_teacher=load_results(Path(args.random_teacher_dir)) if Path(args.random_teacher_dir).is_dir() else [],
    )
    info = build_report(Path(args.metrics_dir), Path(args.out), logs, extras, r.title)
    log.info("report: %d benchmarks, models %s -> %s", info["benchmarks"], info["models"], args.out)
    return 0


COMMAND = Command(
    "report",
    "build reports/benchmark.md and reports/index.html from the results",
    add_arguments,
    cmd_report,
    set_example="report.title='My report'",
)
