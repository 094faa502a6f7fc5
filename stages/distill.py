"""DVC stage `distill`: a thin wrapper around `unisurg distill` (all logic lives in src/unisurg).

It builds the `distill` command alone, with the usage, help, errors and exit codes of `unisurg distill`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import distill
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(distill.COMMAND, sys.argv[1:]))
