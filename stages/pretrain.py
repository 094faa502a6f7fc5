"""DVC stage `pretrain`: a thin wrapper around `unisurg pretrain` (all logic lives in src/unisurg).

It builds the `pretrain` command alone, with the usage, help, errors and exit codes of `unisurg pretrain`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import pretrain
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(pretrain.COMMAND, sys.argv[1:]))
