"""Render reports/perf.md from the JSON results the benchmark scripts write (reports/perf_*.json)."""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import torch


def machine() -> str:
    import os

    py = platform.python_version()
    return f"{platform.machine()}, {os.cpu_count()} CPU cores, Python {py}, torch {torch.__version__}"


def index_section(r: dict) -> list[str]:
    q = r["queries_s"]
    return [
        "## Curation index at UniSurg-15M scale (`benchmarks/bench_index.py`)",
        "",
        f"Synthetic video table: {r['videos']:,} videos, {r['hours']:,} hours -> {r['clip_rows']:,} clip rows "
        "(16-frame clips, 1 s stride), built by the same code path as `unisurg curate`.",
        "",
        "| measure | value | target |",
        "|---|---|---|",
        f"| index build (clip table + Parquet/zstd writes) | {r['build_s']} s | |",
        f"| bare DuckDB `CREATE TABLE ... FROM range(n)` + `COPY`, 7 columns, same run "
        f"| {r['bare_duckdb_write_s']} s | |",
        f"| ratio build / bare | {r['build_vs_bare']}x | <= 2x |",
        f"| clips.parquet size | {r['clips_parquet_bytes'] / 1e6:.1f} MB ({r['bytes_per_row']} bytes/row) | |",
        f"| peak memory (RSS) | {r['peak_rss_mb']:.0f} MB | <= 3 GB |",
        f"| query: hours by region | {q['hours_by_region']} s | <= 0.5 s |",
        f"| query: clips by region | {q['clips_by_region']} s | <= 0.5 s |",
        f"| query: clips of one source | {q['clips_of_one_source']} s | <= 0.5 s |",
        "",
    ]


def main() -> int:
    out = Path("reports")
    lines = [
        "# Performance",
        "",
        f"Machine: {machine()}.",
        "",
        "Each ratio is measured in the same run as its reference. Regenerate with `make bench`.",
        "",
    ]
    idx = out / "perf_index.json"
    if idx.exists():
        lines += index_section(json.loads(idx.read_text()))
    (out / "perf.md").write_text("\n".join(lines) + "\n")
    print((out / "perf.md").read_text())
    return 0


if __name__ == "__main__":
    sys.exit(main())
