"""``python -m unisurg.cli`` = the ``unisurg`` command."""

import sys

from .app import main

if __name__ == "__main__":
    sys.exit(main())
