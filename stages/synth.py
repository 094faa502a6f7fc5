"""DVC stage `synth`: a thin wrapper around `unisurg synth` (all logic lives in src/unisurg)."""

import sys

from unisurg.cli import main

if __name__ == "__main__":
    sys.exit(main(["synth", *sys.argv[1:]]))
