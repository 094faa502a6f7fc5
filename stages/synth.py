"""DVC stage `synth`: a thin wrapper around `unisurg synth` (all logic lives in src/unisurg).

It builds the `synth` command alone, with the usage, help, errors and exit codes of `unisurg synth`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import synth
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(synth.COMMAND, sys.argv[1:]))
