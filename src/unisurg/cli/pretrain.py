"""``unisurg pretrain``: pretrain the encoder on the curated clips (the DVC stage ``pretrain``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..io import write_json
from . import clips
from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    clips.add_arguments(sp)
    sp.add_argument("--out", default="data/pretrain", help="output folder (checkpoints, log.csv, metrics.json)")


def cmd_pretrain(args: argparse.Namespace) -> int:
    from ..training.pretrain import run_pretrain

    p = stage_params(args)
    out = Path(args.out)
    metrics = run_pretrain(clips.table(args, out), out, p.pretrain, p.base.seed, progress=not args.quiet)
    write_json(out / "params.json", {"seed": p.base.seed, **clips.where(args), **p.pretrain.model_dump(mode="json")})
    log.info("pretrain: %s", metrics)
    return 0


COMMAND = Command(
    "pretrain",
    "pretrain the encoder on the curated clips",
    add_arguments,
    cmd_pretrain,
    set_example="pretrain.motion.enabled=false",
)
