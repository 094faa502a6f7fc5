"""``python -m unisurg`` = the ``unisurg`` command (``torchrun -m unisurg ...`` launches it on several ranks)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
