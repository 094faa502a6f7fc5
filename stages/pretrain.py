"""DVC stage `pretrain`: a thin wrapper around `unisurg pretrain` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["pretrain", *sys.argv[1:]]))
