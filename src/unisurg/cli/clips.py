"""The clip table a training stage reads (``pretrain``, ``distill``): all of it, or its ``--where`` rows."""

from __future__ import annotations

import argparse
from pathlib import Path


def add_arguments(sp: argparse.ArgumentParser) -> None:
    """--clips and --where."""
    sp.add_argument("--clips", default="data/curate/clips.parquet", help="clip table written by curate")
    sp.add_argument(
        "--where",
        default=None,
        help="train only on the clips satisfying this DuckDB condition, e.g. \"region = 'eye'\"",
    )


def where(args: argparse.Namespace) -> dict[str, str]:
    """The ``--where`` condition as recorded in a run's params.json (nothing when all clips were used)."""
    return {"where": args.where} if args.where else {}


def table(args: argparse.Namespace, out: Path) -> Path:
    """The clip table a training stage reads: ``--clips``, or its ``--where`` rows saved in ``out``."""
    if not args.where:
        return Path(args.clips)
    from ..curation.index import select_clips

    out.mkdir(parents=True, exist_ok=True)
    return select_clips(Path(args.clips), args.where, out / "clips.parquet")
