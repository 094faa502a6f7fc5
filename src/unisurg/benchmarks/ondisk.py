"""The expected on-disk layout of a benchmark's download, declared next to its loader.

A user whose download does not validate needs to see what the loader looks for. Each benchmark
declares it as a :class:`DiskLayout`: path patterns relative to the dataset root, each with a
note on what the loader reads in those files. The patterns are checkable, not prose: ``<name>``
stands for one path component or part of one (a number, an id), ``{a,b}`` for one of the listed
alternatives; the tests check them against the synthetic corpus, which is written in the real
layouts.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

_PLACEHOLDER = re.compile(r"<[^<>/]+>")
_ALTERNATIVES = re.compile(r"\{([^{}/]+)\}")


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """A layout pattern -> the regex its relative paths fullmatch (``<x>`` never crosses a ``/``)."""
    out, pos = [], 0
    for m in re.finditer(f"{_PLACEHOLDER.pattern}|{_ALTERNATIVES.pattern}", pattern):
        out.append(re.escape(pattern[pos : m.start()]))
        if m.group(1) is None:  # a placeholder
            out.append("[^/]+")
        else:
            out.append("(?:" + "|".join(re.escape(a) for a in m.group(1).split(",")) + ")")
        pos = m.end()
    out.append(re.escape(pattern[pos:]))
    return re.compile("".join(out))


@dataclass(frozen=True)
class DiskLayout:
    """What a download looks like: ``folder`` (its usual name) holding files that match ``files``."""

    folder: str  # the download's usual folder name (any name works: the user passes the root)
    files: tuple[tuple[str, str], ...]  # (pattern relative to the root, what the loader reads there)

    @cached_property
    def _regexes(self) -> tuple[re.Pattern[str], ...]:
        return tuple(pattern_regex(p) for p, _ in self.files)

    def text(self) -> str:
        """The layout as a short tree: the folder, then one indented pattern per line with its note."""
        width = max(len(p) for p, _ in self.files)
        lines = [f"{self.folder}/"]
        lines += [f"  {p:<{width}}  {note}".rstrip() for p, note in self.files]
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    def matches(self, relpath: str) -> bool:
        """Whether a path relative to the root (``/``-separated) fits one of the patterns."""
        return any(r.fullmatch(relpath) for r in self._regexes)

    def unmatched(self, root: str | os.PathLike[str]) -> list[str]:
        """The patterns that no file under ``root`` matches (what a broken download lacks)."""
        root = Path(root)
        # one walk of the tree; every pattern is tested against it
        rel = [(Path(d) / f).relative_to(root).as_posix() for d, _, names in os.walk(root) for f in names]
        return [p for (p, _), r in zip(self.files, self._regexes) if not any(r.fullmatch(x) for x in rel)]
