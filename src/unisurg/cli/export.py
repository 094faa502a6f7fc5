"""``unisurg export``: hand an encoder to transformers, safetensors tools or vjepa2's code, with a
generated model card. A tool, not a pipeline stage."""

from __future__ import annotations

import argparse
from pathlib import Path

from .common import Command, log, stage_params

FORMAT_CHOICES = ("transformers", "safetensors", "vjepa")  # unisurg.export.formats.FORMATS (not imported here:
# building the parser must stay cheap)


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument(
        "spec",
        help="the encoder: a checkpoint (data/pretrain/encoder.pt, data/distill/student.pt, a pretraining "
        "checkpoint.pt), vjepa:<arch>:<path>[:<key>], hf:<folder>, random:<arch> or an encoder.safetensors",
    )
    sp.add_argument("--format", required=True, choices=FORMAT_CHOICES, help="the layout to write")
    sp.add_argument("--out", required=True, help="output folder (created; the model card is its README.md)")
    sp.add_argument("--size", type=int, default=None, help="clip side in px; default: the evaluation protocol's")
    sp.add_argument("--frames", type=int, default=None, help="frames per clip; default: the evaluation protocol's")
    sp.add_argument("--encoder-only", action="store_true", help="leave the predictor out (transformers, vjepa)")
    sp.add_argument("--metrics-dir", default="reports/metrics", help="the report's results, for the model card")
    sp.add_argument("--seed", type=int, default=None, help="seed of a random:<arch> encoder (default: base.seed)")


def cmd_export(args: argparse.Namespace) -> int:
    from ..evaluation.protocols import from_params
    from ..export import export_encoder

    p = stage_params(args)
    sampling = from_params(p.evaluate).sampling
    written = export_encoder(
        args.spec,
        args.format,
        Path(args.out),
        size=args.size or sampling.size,
        frames=args.frames or sampling.frames,
        fps=sampling.fps if args.frames is None else None,
        params=p,
        metrics_dir=Path(args.metrics_dir),
        root=Path.cwd(),
        seed=p.base.seed if args.seed is None else args.seed,
        encoder_only=args.encoder_only,
    )
    log.info("export: %s -> %s (%s)", args.spec, args.out, ", ".join(written))
    return 0


COMMAND = Command(
    "export",
    "write an encoder for transformers, safetensors or vjepa2's code, with a model card",
    add_arguments,
    cmd_export,
    set_example="evaluate.protocol=surgmotion",
)
