"""Benchmark records, the problem collector, and the registry shared by all 17 loaders.

A loader reads a dataset's **real on-disk layout** and returns :class:`Record` s: one per
video (with a label timeline), per clip, or per image. It never assumes a numeric order
that the files do not state: classes are keyed by the names (or ids) found in the files.

Malformed input is reported, not swallowed: every problem is added to :class:`Problems`
with its file and line. ``load`` raises :class:`AnnotationError` listing all of them;
``validate`` returns them so a user sees every problem of a download at once.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

Task = Literal["phase", "multilabel", "clip", "skill", "segmentation", "depth"]
Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


class AnnotationError(ValueError):
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


# --------------------------------------------------------------------------- pixel sources


@dataclass(frozen=True)
class VideoSource:
    """A video file; clips are decoded from it."""

    path: str


@dataclass(frozen=True)
class FramesSource:
    """An ordered image sequence (one file per frame) at ``fps`` frames per second."""

    paths: tuple[str, ...]
    fps: float


@dataclass(frozen=True)
class ImageSource:
    path: str


Source = VideoSource | FramesSource | ImageSource


@dataclass(frozen=True)
class Record:
    """One labelled unit of a benchmark.

    - temporal tasks (phase, multilabel): ``times`` (n,) seconds of the labelled instants and
      ``labels`` (n,) class ids or (n, C) multi-hot;
    - clip/skill: ``labels`` has one entry (class id or score) and ``times`` is None: the clip
      is sampled over the whole source;
    - dense tasks: ``target`` is the mask/depth file, ``labels`` is empty.
    ``group`` is the video a record belongs to: metrics are computed per group, then averaged.
    """

    id: str
    split: Split
    source: Source
    labels: np.ndarray
    times: np.ndarray | None = None
    target: str | None = None
    group: str = ""
    fold: int | None = None  # cross-validated benchmarks (JIGSAWS, SurgicalActions160)

    @property
    def video(self) -> str:
        return self.group or self.id


@dataclass(frozen=True)
class Benchmark:
    """A registered benchmark: how to read it, what it predicts, how it is scored."""

    name: str  # registry key, e.g. "cholec80"
    title: str  # display name, e.g. "Cholec80"
    task: Task
    classes: tuple[str, ...]  # class names in label-id order (empty for regression/depth)
    metric: str  # primary metric reported in the benchmark table
    higher_is_better: bool
    loader: Callable[[Path, Problems], list[Record]]
    description: str = ""
    folds: int = 0  # >0: k-fold cross-validation over Record.fold instead of fixed splits

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def load(self, root: str | os.PathLike[str]) -> list[Record]:
        """Read the dataset under ``root``; raise AnnotationError listing every problem."""
        problems = Problems()
        records = self.loader(Path(root), problems)
        problems.raise_if_any(self.title)
        return records

    def validate(self, root: str | os.PathLike[str]) -> ValidationReport:
        """Read the dataset under ``root`` without stopping at problems; summarise it."""
        problems = Problems()
        root = Path(root)
        if not root.is_dir():
            problems.add(root, None, "dataset root is not a directory")
            records: list[Record] = []
        else:
            try:
                records = self.loader(root, problems)
            except AnnotationError as err:  # a loader gave up on a structural problem
                problems.add(root, None, str(err))
                records = []
        return ValidationReport.build(self, records, problems)


@dataclass
class ValidationReport:
    benchmark: str
    counts: dict[str, int]  # records per split
    groups: dict[str, int]  # videos per split
    class_counts: dict[str, int]  # labelled instants per class name (classification tasks)
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    @classmethod
    def build(cls, bench: Benchmark, records: list[Record], problems: Problems) -> ValidationReport:
        # Cross-validated benchmarks are summarised per fold, the others per split.
        keys = [f"fold{k}" for k in range(bench.folds)] if bench.folds else list(SPLITS)
        counts = {s: 0 for s in keys}
        groups: dict[str, set[str]] = {s: set() for s in keys}
        class_counts: dict[str, int] = {}
        for r in records:
            key = f"fold{r.fold}" if bench.folds else r.split
            counts[key] += 1
            groups[key].add(r.video)
            if bench.task in ("phase", "clip") and r.labels.size:
                ids, n = np.unique(r.labels.astype(np.int64), return_counts=True)
                for i, k in zip(ids.tolist(), n.tolist()):
                    name = bench.classes[i] if 0 <= i < bench.num_classes else str(i)
                    class_counts[name] = class_counts.get(name, 0) + k
        for s in keys:
            if counts[s] == 0:
                problems.add("-", None, f"{s} is empty")
        return cls(
            bench.title, counts, {s: len(g) for s, g in groups.items()}, class_counts, [str(p) for p in problems.items]
        )


# --------------------------------------------------------------------------- registry

_REGISTRY: dict[str, Benchmark] = {}


def register(bench: Benchmark) -> Benchmark:
    if bench.name in _REGISTRY:
        raise ValueError(f"benchmark {bench.name!r} registered twice")
    _REGISTRY[bench.name] = bench
    return bench


def get_benchmark(name: str) -> Benchmark:
    _ensure_loaded()
    try:
        return _REGISTRY[name.lower()]
    except KeyError:
        raise KeyError(f"unknown benchmark {name!r}; known: {', '.join(_REGISTRY)}") from None


# The paper's numbering of the UniSurg-17 suite (benchmarks.md): tables follow this order.
SUITE_ORDER = (
    "cholec80",
    "m2cai16",
    "autolaparo",
    "heichole",
    "multibypass140",
    "pitvis",
    "egosurgery",
    "pmlr50",
    "ophnet2024",
    "surgicalactions160",
    "polypdiag",
    "cholect50",
    "jigsaws",
    "cvc12k",
    "kvasirseg",
    "c3vd",
    "scared",
)


def list_benchmarks() -> list[Benchmark]:
    """Registered benchmarks, the 17 of the suite first in the paper's order."""
    _ensure_loaded()
    rank = {n: i for i, n in enumerate(SUITE_ORDER)}
    return sorted(_REGISTRY.values(), key=lambda b: (rank.get(b.name, len(rank)), b.name))


def _ensure_loaded() -> None:
    # The loader modules register themselves on import; importing them here (not at package
    # import) keeps `import unisurg.benchmarks.base` cheap and free of side effects.
    from . import clips, dense, phase, triplets  # noqa: F401  (registration order does not matter)


# --------------------------------------------------------------------------- parsing helpers


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


def check_header(path: Path, line: str, expected: list[str], problems: Problems, sep: str | None) -> bool:
    got = [c.strip() for c in (line.split(sep) if sep else line.split())]
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


def carve_val(ids: Iterable[str], fraction: float = 0.2) -> set[str]:
    """Deterministic validation subset of training ids: the last ``fraction`` in sorted order.

    Used where a benchmark defines only train/test; the probe needs a validation split to
    select its head, and taking it from the training ids keeps the test set untouched.
    """
    ids = sorted(set(ids))
    k = int(np.ceil(len(ids) * fraction)) if len(ids) > 1 else 0
    return set(ids[len(ids) - k :]) if k else set()


def timeline_from_frames(frames: np.ndarray, labels: np.ndarray, fps: float) -> tuple[np.ndarray, np.ndarray]:
    """Frame-indexed labels -> (times in seconds, labels), sorted by time."""
    order = np.argsort(frames, kind="stable")
    return frames[order].astype(np.float64) / fps, labels[order]
