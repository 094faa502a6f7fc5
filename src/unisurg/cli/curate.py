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
    sp.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="where the per-video inspection runs: local (curate.workers processes) or a Ray cluster (--address); "
        "the outputs are the same bytes either way",
    )
    sp.add_argument(
        "--address", default="auto", help="--engine ray: the cluster (HOST:PORT of its head, or auto: this node's)"
    )
    sp.add_argument("--batch-size", type=int, default=None, help="--engine ray: videos per Ray task (default: 16)")


def cmd_curate(args: argparse.Namespace) -> int:
    from ..curation.gate import run_gate
    from ..curation.index import curate_with
    from ..curation.sources import load_sources, registry_path

    p = stage_params(args)
    c = p.curate
    sources = load_sources(registry_path(args.sources, c.sources))
    out = Path(args.out)
    engine = None
    if args.engine == "ray":  # imported only here: the pipeline's curate stage runs and depends on the local engine
        from ..cluster.curation import BATCH, RayInspect
        from ..cluster.session import reachable

        reachable(args.address)  # before any file is listed
        engine = RayInspect(args.address, out / ".inspect", args.batch_size or BATCH)
    metrics = curate_with(c, sources, out, inspect_map=engine)
    if engine is not None:
        engine.done()
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
