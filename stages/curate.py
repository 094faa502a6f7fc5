"""DVC stage `curate`: a thin wrapper around `unisurg curate` (all logic lives in src/unisurg).

It builds the `curate` command alone, with the usage, help, errors and exit codes of `unisurg curate`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import curate
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(curate.COMMAND, sys.argv[1:]))
