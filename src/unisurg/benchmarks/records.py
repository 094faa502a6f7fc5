"""What a loader returns: labelled records, where their pixels come from, and split rules.

A loader reads a dataset's **real on-disk layout** and returns :class:`Record` s: one per
video (with a label timeline), per clip, or per image. Splits follow the dataset's official
rule; where that rule is a table of video ids, it is declared once as an :class:`IdSplit`
that the loader applies and the synthetic writer reads back.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

Split = Literal["train", "val", "test"]
SPLITS: tuple[Split, ...] = ("train", "val", "test")


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


# --------------------------------------------------------------------------- split rules


@dataclass(frozen=True)
class IdSplit:
    """A split given as tables of video ids (numbers or names), in the dataset's published order.

    ``of(id)`` is the split whose table lists ``id``, else ``default`` (None: the id belongs to no
    split, which a loader reports). The synthetic writers render the first ids of each table, so
    the mini corpus falls under the same rule as a real download.
    """

    train: tuple[Hashable, ...] = ()
    val: tuple[Hashable, ...] = ()
    test: tuple[Hashable, ...] = ()
    default: Split | None = None

    def of(self, key: Hashable) -> Split | None:
        return next((s for s in SPLITS if key in self.ids(s)), self.default)

    def ids(self, split: Split) -> tuple[Hashable, ...]:
        return {"train": self.train, "val": self.val, "test": self.test}[split]

    def table(self) -> dict[str, list]:
        """split -> list of ids (what the synthetic writers pick from)."""
        return {s: list(self.ids(s)) for s in SPLITS}


def carve_val(ids: Iterable[str], fraction: float = 0.2) -> set[str]:
    """Deterministic validation subset of training ids: the last ``fraction`` in sorted order.

    Used where a benchmark defines only train/test; the probe needs a validation split to
    select its head, and taking it from the training ids keeps the test set untouched.
    """
    ids = sorted(set(ids))
    k = int(np.ceil(len(ids) * fraction)) if len(ids) > 1 else 0
    return set(ids[len(ids) - k :]) if k else set()


# --------------------------------------------------------------------------- the authors' preparation


def carve_val_by_class(records: list[Record], fraction: float = 0.2) -> set[str]:
    """Deterministic, label-balanced validation subset of one-label records (clips): of each class's
    records in id order, the last ``fraction`` (at least one where a class has two or more)."""
    by_class: dict[int, list[str]] = {}
    for r in records:
        by_class.setdefault(int(np.asarray(r.labels).ravel()[0]), []).append(r.id)
    out: set[str] = set()
    for ids in by_class.values():
        out |= carve_val(ids, fraction)
    return out


@dataclass(frozen=True)
class AuthorsRecipe:
    """How the SurgMotion authors' preparation scripts turn a benchmark into probe samples, where it
    differs from the benchmark's loader (applied under a protocol with ``recipe: authors``;
    ``docs/protocols.md`` lists each benchmark's facts and the script they come from).

    - ``split``: the authors' split of every record (``train``/``val``/``test``; ``val`` only where the
      dataset's official validation split exists and the authors leave it unused), or None for the
      loader's. Their configs train on all of their training split and choose heads on the test split;
      with heads chosen on a held-out split (``select_on: val``) and no official one, validation is
      carved from their training split (:func:`carve_val`, or :func:`carve_val_by_class` for clips).
    - ``label_at``: which labelled instant of a second labels it (``last``: M2CAI16's script keeps the
      last annotated frame of each second).
    - ``drop_ignored``: instants whose true class the family ignores in scoring are removed before
      sampling, so they are neither trained on nor inside any window (PitVis: background, steps 11, 13).
    - ``sequence``: the windows of temporal samples run over one record's instants (``record``) or over
      all records of a group in id order (``group``: EgoSurgery's sessions of one video).
    - ``clip_fps``: clip benchmarks, the frame rate of the clip's frame list (None: the native rate).
    """

    split: Callable[[list[Record]], list[Split]] | None = None
    label_at: Literal["first", "last"] = "first"
    drop_ignored: bool = False
    sequence: Literal["record", "group"] = "record"
    clip_fps: float | None = None

    def apply(self, records: list[Record], select_on: Literal["val", "test"], clips: bool) -> list[Record]:
        """``records`` re-split as the authors split them (no folds: one round); validation carved from
        their training split when heads are chosen on a held-out one and none is official."""
        if self.split is None:
            return records
        splits = self.split(records)
        out = [dataclasses.replace(r, split=s, fold=None) for r, s in zip(records, splits, strict=True)]
        if select_on == "val" and "val" not in splits:
            train = [r for r in out if r.split == "train"]
            val = carve_val_by_class(train) if clips else carve_val(r.video for r in train)
            key = (lambda r: r.id) if clips else (lambda r: r.video)
            out = [dataclasses.replace(r, split="val") if r.split == "train" and key(r) in val else r for r in out]
        return out


def by_test_ids(test: Callable[[Record], bool]) -> Callable[[list[Record]], list[Split]]:
    """A two-way split: the records ``test`` accepts are the test split, every other record trains."""
    return lambda records: ["test" if test(r) else "train" for r in records]
