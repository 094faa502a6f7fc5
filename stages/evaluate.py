"""DVC stage `evaluate`: a thin wrapper around `unisurg evaluate` (all logic lives in src/unisurg).

It builds the `evaluate` command alone, with the usage, help, errors and exit codes of `unisurg evaluate`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import evaluate
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(evaluate.COMMAND, sys.argv[1:]))
