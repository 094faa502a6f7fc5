"""``unisurg synth``: render the built-in synthetic corpus (the DVC stage ``synth``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("--out", default="data/synth", help="output folder")
    sp.add_argument("--workers", type=int, default=2, help="rendering processes")


def cmd_synth(args: argparse.Namespace) -> int:
    from ..synth.corpus import CorpusSpec, build_corpus
    from ..synth.layouts import WRITERS, SynthSpec

    p = stage_params(args)
    s = p.synth
    spec = SynthSpec(
        size=s.size,
        seconds=s.benchmark_seconds,
        videos_per_split=s.videos_per_split,
        images_per_split=s.images_per_split,
        archive_seed=p.base.seed,
    )
    names = tuple(s.benchmarks) if s.benchmarks is not None else tuple(WRITERS)
    m = build_corpus(
        Path(args.out),
        CorpusSpec(spec, s.pretrain_videos_per_source, s.pretrain_seconds, names, p.base.seed),
        workers=args.workers,
    )
    log.info("synth: %d files written to %s", len(m["files"]), args.out)
    return 0


COMMAND = Command(
    "synth",
    "render the built-in synthetic corpus (benchmarks in their real formats)",
    add_arguments,
    cmd_synth,
    set_example="synth.size=96",
)
