"""Malformed input is reported, not swallowed.

A loader adds every problem it meets to :class:`Problems` with its file and line and keeps
going. ``Benchmark.load`` raises :class:`AnnotationError` listing all of them;
``Benchmark.validate`` returns them, so a user sees every problem of a download at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import UsageError


class AnnotationError(UsageError):
    """A dataset's files are malformed; the message lists every problem with file and line."""


@dataclass(frozen=True)
class Problem:
    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else self.path
        return f"{where}: {self.message}"


class Problems:
    """Collects problems while a loader keeps going; raise at the end if any were found."""

    def __init__(self) -> None:
        self.items: list[Problem] = []

    def add(self, path: str | os.PathLike[str], line: int | None, message: str) -> None:
        self.items.append(Problem(str(path), line, message))

    def __bool__(self) -> bool:
        return bool(self.items)

    def raise_if_any(self, benchmark: str) -> None:
        if self.items:
            shown = "\n".join(f"  {p}" for p in self.items[:50])
            more = f"\n  ... and {len(self.items) - 50} more" if len(self.items) > 50 else ""
            raise AnnotationError(f"{benchmark}: {len(self.items)} problem(s) in the dataset files:\n{shown}{more}")
