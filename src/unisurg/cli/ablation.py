"""``unisurg ablation``: copy the ablation grid's results (variants, seeds, continued pretraining) where
the report reads them. A tool: ``make ablation``, ``make seeds`` and ``make continued`` run it."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from .common import Command, log
from .evaluate import machine_info


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "action",
        choices=["collect", "collect-seeds", "collect-continued", "collect-recipe"],
        help="the variants' results (and the random-teacher control's), the seeds' (and their pretraining "
        "metrics), the continued-pretraining experiment's, or the recipe candidates' learning diagnostics "
        "(-> reports/recipe.md)",
    )
    sp.add_argument("--grid", default="ablation/params.yaml", help="the grid (its variants or seeds are collected)")
    sp.add_argument("--results", default="data/ablation", help="where ablation/dvc.yaml wrote <variant>/results")
    sp.add_argument("--out", default=None, help="default reports/ablation (variants), reports/seeds, reports/continued")


def cmd_ablation(args: argparse.Namespace) -> int:
    from ..config import load_yaml
    from ..report import collect_ablation, collect_continued, collect_results, collect_seed_metrics, write_recipe

    if args.action == "collect-recipe":
        out = Path(args.out or "reports/recipe.md")
        grid = load_yaml(args.grid).get("recipe", {})
        logs = {"main": Path("data/pretrain/log.csv")}
        logs |= {name: Path(args.results) / "recipe" / name / "log.csv" for name in grid}
        cpu = machine_info()["cpu"]  # `make recipe` pretrains the candidates and writes the table on one machine
        write_recipe(logs, {name: v["set"] for name, v in grid.items()}, out, f"{cpu}, {os.cpu_count()} cores")
        log.info("ablation: learning diagnostics of the main run and %d recipe candidates -> %s", len(grid), out)
        return 0
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
    if seeds:
        collect_seed_metrics(results, names, out)
    else:
        # the random-teacher control (stages random_teacher_*), when it ran
        teacher = Path(args.results) / "random_teacher" / "results"
        if teacher.is_dir():
            dest = out.parent / "random_teacher"  # beside reports/ablation
            n = collect_results(teacher, dest)
            log.info("ablation: %d result files of the random-teacher control -> %s", n, dest)
    return 0


COMMAND = Command("ablation", "version the ablation grid's results for the report", add_arguments, cmd_ablation)
