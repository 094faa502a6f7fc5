"""DVC stage `curate`: a thin wrapper around `unisurg curate` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["curate", *sys.argv[1:]]))
