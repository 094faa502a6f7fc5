"""Parsing helpers shared by the loaders, with one wording for each problem.

:func:`read_frame_labels` is the one parser of frame-indexed label files (a row per labelled
frame: Cholec80, M2CAI16, AutoLaparo, HeiChole, PmLR50, PitVis, EgoSurgery). A loader states
its file's layout (:class:`LabelFile`), how its frame column reads (:class:`FrameNumbers`,
:class:`ImageStems`) and how its label column reads (:class:`ClassNames`, :class:`ClassIds`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from .problems import Problems


def read_lines(path: Path, problems: Problems) -> list[str] | None:
    """Lines of a text file without line endings (tolerates CRLF and a UTF-8 BOM)."""
    try:
        raw = path.read_bytes()
    except OSError as err:
        problems.add(path, None, f"cannot read ({err.strerror})")
        return None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        problems.add(path, None, f"not UTF-8 text (byte {err.start})")
        return None
    lines = text.splitlines()
    if not any(ln.strip() for ln in lines):
        problems.add(path, None, "file is empty")
        return None
    return lines


def split_fields(line: str, sep: str | None) -> list[str]:
    return line.split(sep) if sep else line.split()


def check_header(path: Path, line: str, expected: list[str], problems: Problems, sep: str | None) -> bool:
    got = [c.strip() for c in split_fields(line, sep)]
    if [g.lower() for g in got] != [e.lower() for e in expected]:
        problems.add(path, 1, f"expected header {expected!r}, found {got!r}")
        return False
    return True


def parse_int(path: Path, lineno: int, text: str, what: str, problems: Problems) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        problems.add(path, lineno, f"{what} {text.strip()!r} is not an integer")
        return None


def describe_ids(ids: Iterable[int]) -> str:
    """Sorted ids as runs: [-1, 1, 2, 3] -> "-1, 1..3"."""
    runs: list[list[int]] = []
    for i in sorted(set(ids)):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(f"{a}" if a == b else f"{a}..{b}" for a, b in runs)


def id_problem(what: str, value: int, ids: Iterable[int]) -> str:
    """The one wording of an id outside the ids a file may use."""
    return f"{what} {value} is not one of {describe_ids(ids)}"


def find_files(root: Path, pattern: str) -> list[Path]:
    """Sorted recursive glob (deterministic across filesystems)."""
    return sorted(root.glob(pattern))


def find_casefold(root: Path, name: str) -> Path | None:
    """Find a file named ``name`` anywhere under ``root``, ignoring case (HeiChole copies differ)."""
    target = name.casefold()
    for p in sorted(root.rglob("*")):
        if p.name.casefold() == target:
            return p
    return None


def timeline_from_frames(frames: np.ndarray, labels: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame-indexed labels -> (times in seconds, labels), sorted by time."""
    order = np.argsort(frames, kind="stable")
    return frames[order].astype(np.float64) / fps, labels[order]


# --------------------------------------------------------------------------- frame-indexed label files

_SEPARATED = {"\t": "tab-separated", ",": "comma-separated", None: "whitespace-separated"}


@dataclass(frozen=True)
class LabelFile:
    """The layout of a frame-indexed label file: an optional header, then one labelled frame per row."""

    sep: str | None = None  # field separator; None: runs of whitespace
    header: tuple[str, ...] | None = None  # the header row, compared case-insensitively; None: no header
    skip_header: bool = False  # the first row is a header nobody reads (PmLR50): skipped unchecked
    columns: int = 2  # fields per row
    frame: int = 0  # column of the frame
    label: int = 1  # column of the label

    def describe(self) -> str:
        return _SEPARATED.get(self.sep, f"{self.sep!r}-separated")


class Column(Protocol):
    """Reads one field of a row: the value, or None after adding the row's problem."""

    word: str  # what messages call the column

    def __call__(self, text: str, path: Path, line: int, problems: Problems) -> object | None: ...


@dataclass(frozen=True)
class FrameNumbers:
    """Integer frame numbers (or seconds), ``first``-based; ``count`` frames exist, if known."""

    word: str = "frame"
    first: int = 0
    count: int | None = None

    def __call__(self, text: str, path: Path, line: int, problems: Problems) -> int | None:
        f = parse_int(path, line, text, self.word, problems)
        if f is None:
            return None
        if f < self.first:
            problems.add(path, line, f"{self.word} {f} is before the first frame {self.first}")
            return None
        if self.count is not None and f >= self.first + self.count:
            problems.add(path, line, f"{self.word} {f} has no image (the video has {self.count} images)")
            return None
        return f


@dataclass(frozen=True)
class ImageStems:
    """Frames named by image: the field is a file stem that must exist as ``folder/<stem><ext>``."""

    folder: Path
    ext: str = ".jpg"
    word: str = "frame"

    def __call__(self, text: str, path: Path, line: int, problems: Problems) -> str | None:
        stem = text.strip()
        if not (self.folder / f"{stem}{self.ext}").exists():
            problems.add(path, line, f"image {stem}{self.ext} missing")
            return None
        return stem


@dataclass(frozen=True)
class ClassNames:
    """Class names (matched ignoring case) -> their index in ``names``."""

    names: tuple[str, ...]
    word: str = "phase"
    _index: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {n.casefold(): i for i, n in enumerate(self.names)})

    def __call__(self, text: str, path: Path, line: int, problems: Problems) -> int | None:
        name = text.strip()
        if name.casefold() not in self._index:
            problems.add(path, line, f"unknown {self.word} {name!r}")
            return None
        return self._index[name.casefold()]


@dataclass(frozen=True)
class ClassIds:
    """Integer ids as written in the file -> class ids (``ids``: file id -> class id)."""

    ids: dict[int, int]
    word: str = "phase id"

    @classmethod
    def counting(cls, n: int, first: int = 0, word: str = "phase id") -> ClassIds:
        """Ids ``first .. first + n - 1`` for classes 0 .. n - 1."""
        return cls({first + k: k for k in range(n)}, word)

    def __call__(self, text: str, path: Path, line: int, problems: Problems) -> int | None:
        v = parse_int(path, line, text, self.word, problems)
        if v is None:
            return None
        if v not in self.ids:
            problems.add(path, line, id_problem(self.word, v, self.ids))
            return None
        return self.ids[v]


def read_frame_labels(
    path: Path, layout: LabelFile, frame: Column, label: Column, problems: Problems
) -> tuple[list, list[int]] | None:
    """Parse a frame-indexed label file -> (frames, class ids) in file order, or None if it has none.

    Every malformed row is reported with its file and line and skipped (a row may report both
    its frame and its label); a frame listed again is reported and its first row kept.
    """
    lines = read_lines(path, problems)
    if lines is None:
        return None
    start = 0
    if layout.header is not None:
        if not layout.skip_header and not check_header(path, lines[0], list(layout.header), problems, layout.sep):
            return None
        start = 1
    frames, labels, seen = [], [], set()
    for ln, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        parts = split_fields(line, layout.sep)
        if len(parts) != layout.columns:
            problems.add(path, ln, f"expected {layout.columns} {layout.describe()} fields, found {len(parts)}")
            continue
        f = frame(parts[layout.frame], path, ln, problems)
        c = label(parts[layout.label], path, ln, problems)
        if f is None or c is None:
            continue
        if f in seen:
            problems.add(path, ln, f"{frame.word} {f} listed twice")
            continue
        seen.add(f)
        frames.append(f)
        labels.append(c)
    if not frames:
        problems.add(path, None, "no labelled frames")
        return None
    return frames, labels
