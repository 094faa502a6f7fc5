"""A benchmark is one declaration: how to read it, what it predicts, how it is scored.

Everything the harness, the metrics, the synthetic writers and the report need to know about
a benchmark lives on its :class:`Benchmark`: its place in the paper's suite, its task family
(with the family's facts: ignored classes, depth cap, relaxed-boundary jumps, ...), classes,
metric and direction, split rule, folds, loader, target decoder and the on-disk layout the
loader expects.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .families import Family
from .ondisk import DiskLayout
from .problems import AnnotationError, Problems
from .records import SPLITS, AuthorsRecipe, IdSplit, Record


@dataclass(frozen=True, kw_only=True)
class Benchmark:
    """A benchmark of the suite (or one added to it)."""

    number: int | None  # place in the paper's UniSurg-17 table (1..17); None: outside the suite
    name: str  # registry key, e.g. "cholec80"
    title: str  # display name, e.g. "Cholec80"
    family: Family  # the task family and its facts, e.g. Phase(relaxed_jumps=...)
    classes: tuple[str, ...]  # class names in label-id order (empty for regression/depth)
    metric: str  # primary metric reported in the benchmark table
    higher_is_better: bool
    loader: Callable[[Path, Problems], list[Record]]
    description: str = ""
    split: IdSplit | None = None  # the split as id tables, where the dataset publishes it so
    folds: int = 0  # >0: k-fold cross-validation over Record.fold instead of fixed splits
    read_target: Callable[[str], np.ndarray] | None = None  # dense: target file -> mask / depth (H, W)
    disk_layout: DiskLayout | None = None  # the real download's files, shown when a root does not validate
    authors: AuthorsRecipe | None = None  # the SurgMotion authors' preparation, where they evaluate it

    @property
    def task(self) -> str:
        """The task family's name, as written in results ("phase", "multilabel", "clip", ...)."""
        return self.family.name

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def layout(self) -> str:
        """The expected on-disk layout as a short tree ("" where the declaration gives none)."""
        return self.disk_layout.text() if self.disk_layout is not None else ""

    def load(self, root: str | os.PathLike[str]) -> list[Record]:
        """Read the dataset under ``root``; raise AnnotationError listing every problem."""
        problems = Problems()
        records = self.loader(Path(root), problems)
        problems.raise_if_any(self.title)
        return records

    def validate(self, root: str | os.PathLike[str], deep: bool = False) -> ValidationReport:
        """Read the dataset under ``root`` without stopping at problems; summarise it.

        ``deep``: also open every video, image and dense target the records name, and check that
        each temporal record's annotations end within its video (:mod:`.deep`); slow on a full
        download, since every file is read.
        """
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
        checked = {}
        if deep:
            from .deep import check_pixels  # deferred: it imports the video stack (decord, PyAV)

            checked = check_pixels(records, problems, self.read_target)
        return ValidationReport.build(self, records, problems, checked)


@dataclass
class ValidationReport:
    benchmark: str
    counts: dict[str, int]  # records per split
    groups: dict[str, int]  # videos per split
    class_counts: dict[str, int]  # labelled instants per class name (classification tasks)
    problems: list[str] = field(default_factory=list)
    checked: dict[str, int] = field(default_factory=dict)  # deep only: files opened per kind ("videos", ...)

    @property
    def ok(self) -> bool:
        return not self.problems

    @classmethod
    def build(
        cls, bench: Benchmark, records: list[Record], problems: Problems, checked: dict[str, int] | None = None
    ) -> ValidationReport:
        # Cross-validated benchmarks are summarised per fold, the others per split.
        keys = [f"fold{k}" for k in range(bench.folds)] if bench.folds else list(SPLITS)
        counts = {s: 0 for s in keys}
        groups: dict[str, set[str]] = {s: set() for s in keys}
        class_counts: dict[str, int] = {}
        for r in records:
            key = f"fold{r.fold}" if bench.folds else r.split
            counts[key] += 1
            groups[key].add(r.video)
            if bench.family.class_labels and r.labels.size:
                ids, n = np.unique(r.labels.astype(np.int64), return_counts=True)
                for i, k in zip(ids.tolist(), n.tolist()):
                    name = bench.classes[i] if 0 <= i < bench.num_classes else str(i)
                    class_counts[name] = class_counts.get(name, 0) + k
        for s in keys:
            if counts[s] == 0:
                problems.add("-", None, f"{s} is empty")
        return cls(
            bench.title,
            counts,
            {s: len(g) for s, g in groups.items()},
            class_counts,
            [str(p) for p in problems.items],
            dict(checked or {}),
        )
