"""``unisurg curate``: index video sources, quarantine bad files, run the quality gate (the DVC stage
``curate``; ``flows/curation.py`` runs the same library calls as Prefect tasks)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io import write_json
from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--sources", default=None, help="source registry (default: curate.sources of the parameters)")
    sp.add_argument("--out", default="data/curate", help="output folder (videos/clips/quarantine.parquet, index.sql)")


def cmd_curate(args: argparse.Namespace) -> int:
    from ..curation.gate import run_gate
    from ..curation.index import curate
    from ..curation.sources import load_sources, registry_path

    p = stage_params(args)
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


COMMAND = Command(
    "curate",
    "index video sources into Parquet/DuckDB, quarantine bad files, run the gate",
    add_arguments,
    cmd_curate,
    set_example="curate.min_seconds=2",
)
