"""``unisurg``: every command in one parser (the console script, ``python -m unisurg``).

Here, and only here, all command modules are loaded: a DVC stage script builds its own command alone
(:func:`unisurg.cli.common.run_command`), so a new tool, or this module's help text, changes no
stage's dependencies.
"""

from __future__ import annotations

import argparse

from . import ablation, benchmarks, curate, distill, evaluate, export, features, pretrain, report, synth
from .common import build_parser as _build_parser
from .common import run

DESCRIPTION = """\
unisurg: the pipeline of the UniSurg surgical video foundation model.

Pipeline stages (what `dvc repro` runs, in order): synth, curate, pretrain, distill, evaluate,
report. Tools: benchmarks (list, layout, validate a download), features (embed whole videos),
export (to transformers, safetensors, vjepa2), ablation (version the ablation grid's results).
`unisurg COMMAND -h` explains a command.
"""

EPILOG = """\
first steps:
  unisurg benchmarks list
  unisurg benchmarks validate cholec80 --root /data/cholec80 --deep
  unisurg curate --sources my_sources.yaml --out data/curate
  unisurg features extract /data/videos --encoder data/pretrain/encoder.pt --out feats.parquet
  unisurg evaluate --benchmark cholec80 --root /data/cholec80 --encoder mine=vjepa:vit_large:/ckpt/vitl.pt
  unisurg export data/pretrain/encoder.pt --format transformers --out export/unisurg-hf

exit codes: 0 done, 1 a validation found problems, 2 a wrong value or file (the message says
which), 3 the curated index failed its quality gate.
"""

# in the order -h lists them: the pipeline's stages as `dvc repro` runs them, then the tools
COMMANDS = [
    synth.COMMAND,
    curate.COMMAND,
    pretrain.COMMAND,
    distill.COMMAND,
    evaluate.COMMAND,
    report.COMMAND,
    benchmarks.COMMAND,
    ablation.COMMAND,
    features.COMMAND,
    export.COMMAND,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``unisurg`` parser: every command."""
    return _build_parser(COMMANDS, DESCRIPTION, EPILOG)


def main(argv: list[str] | None = None) -> int:
    """``unisurg ARGV`` -> its exit code (``argv`` None: the process's arguments)."""
    return run(argv, COMMANDS, DESCRIPTION, EPILOG)
