"""DVC stage `distill`: a thin wrapper around `unisurg distill` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["distill", *sys.argv[1:]]))
