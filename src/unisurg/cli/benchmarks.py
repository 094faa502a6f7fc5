"""``unisurg benchmarks``: list the registered benchmarks, show a dataset's on-disk layout, validate a
download. A tool, not a pipeline stage; its output is for people (or ``--json``), not logs."""

from __future__ import annotations

import argparse
import json

from ..errors import UsageError
from .common import Command

LAYOUT_LEGEND = "\n(<NN>: one name part, e.g. a zero-padded number; {a,b}: either; text after a path: its content)"


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("action", choices=["list", "layout", "validate"], help="what to do")
    sp.add_argument("name", nargs="?", help="benchmark name (layout, validate)")
    sp.add_argument("--root", help="the downloaded dataset's folder (validate)")
    sp.add_argument("--deep", action="store_true", help="validate: also open every video and image, check durations")
    sp.add_argument("--json", action="store_true", help="machine-readable output")


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


COMMAND = Command(
    "benchmarks", "list the benchmarks, show a dataset's layout, validate a download", add_arguments, cmd_benchmarks
)
