"""DVC stage `report`: a thin wrapper around `unisurg report` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["report", *sys.argv[1:]]))
