"""`unisurg export` as a DVC stage command (ablation/dvc.yaml's random teacher): a thin wrapper, like the
other stage scripts, so that the stage loads the export command's code alone, not every command's."""

import sys

from unisurg.cli import export
from unisurg.cli.common import run_command

if __name__ == "__main__":
    sys.exit(run_command(export.COMMAND, sys.argv[1:]))
