"""DVC stage `report`: a thin wrapper around `unisurg report` (all logic lives in src/unisurg).

It builds the `report` command alone, with the usage, help, errors and exit codes of `unisurg report`:
the stage loads only its own command's code, not every command's (dvc.yaml lists which).
"""

import sys

from unisurg.cli import report
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(report.COMMAND, sys.argv[1:]))
