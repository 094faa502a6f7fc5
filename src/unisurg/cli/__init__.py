"""The ``unisurg`` command line: one sub-command per pipeline stage, plus benchmark tools.

One module per command; what the commands share is in :mod:`.common`, and :mod:`.app` assembles them
into ``unisurg``. Each stage command parses the parameters once (strictly), calls the library, and
writes its outputs and the resolved parameters it used into its output folder. ``stages/*.py`` (the
DVC stages) run their own command alone, so each stage depends on its command's code, not on every
command's.

This file stays small and loads no command: Python runs it on any import of the package, so it is a
dependency of every stage in dvc.yaml. A new command or tool changes app.py, never this file.
"""

from __future__ import annotations

import argparse

from .common import configure_logging, guarded

__all__ = ["build_parser", "configure_logging", "guarded", "main"]


def main(argv: list[str] | None = None) -> int:
    """``unisurg ARGV`` -> its exit code (the console script): see :func:`unisurg.cli.app.main`."""
    from .app import main as run_all  # here, not at the top: a stage script must not load every command

    return run_all(argv)


def build_parser() -> argparse.ArgumentParser:
    """The ``unisurg`` parser with every command: see :func:`unisurg.cli.app.build_parser`."""
    from .app import build_parser as build_all

    return build_all()
