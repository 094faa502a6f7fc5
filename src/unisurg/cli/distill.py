"""``unisurg distill``: distil a student from the pretrained encoder(s), or self-distil one (the DVC
stage ``distill``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..errors import UsageError
from ..io import write_json
from . import clips
from .common import Command, log, stage_params


def add_arguments(sp: argparse.ArgumentParser) -> None:
    clips.add_arguments(sp)
    sp.add_argument("--out", default="data/distill", help="output folder (checkpoints, log.csv, metrics.json)")
    sp.add_argument(
        "--teacher",
        nargs="+",
        default=["data/pretrain/encoder.pt"],
        help="teacher checkpoint(s); several = an ensemble whose normalised features are averaged",
    )


def cmd_distill(args: argparse.Namespace) -> int:
    from ..training.distill import run_distill
    from ..training.selfdistill import run_self_distill

    p = stage_params(args)
    out = Path(args.out)
    if p.distill.mode == "self":
        if len(args.teacher) != 1:
            raise UsageError(f"distill.mode self takes one teacher, got {len(args.teacher)}")
        metrics = run_self_distill(
            clips.table(args, out),
            Path(args.teacher[0]),
            out,
            p.distill,
            p.pretrain,
            p.base.seed,
            progress=not args.quiet,
        )
        write_json(
            out / "params.json",
            {
                "seed": p.base.seed,
                **clips.where(args),
                "distill": p.distill.model_dump(mode="json"),
                "pretrain": p.pretrain.model_dump(mode="json"),
            },
        )
        log.info("distill (self): %s", metrics)
        return 0
    metrics = run_distill(
        clips.table(args, out),
        [Path(t) for t in args.teacher],
        out,
        p.distill,
        p.pretrain.clip.frames,
        p.pretrain.clip.size,
        p.base.seed,
        progress=not args.quiet,
    )
    write_json(out / "params.json", {"seed": p.base.seed, **clips.where(args), **p.distill.model_dump(mode="json")})
    log.info("distill: %s", metrics)
    return 0


COMMAND = Command(
    "distill",
    "distil a small student from the pretrained encoder(s)",
    add_arguments,
    cmd_distill,
    set_example="distill.steps=100",
)
