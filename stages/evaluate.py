"""DVC stage `evaluate`: a thin wrapper around `unisurg evaluate` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["evaluate", *sys.argv[1:]]))
