"""What a loader returns: labelled records, where their pixels come from, and split rules.

A loader reads a dataset's **real on-disk layout** and returns :class:`Record` s: one per
video (with a label timeline), per clip, or per image. Splits follow the dataset's official
rule; where that rule is a table of video ids, it is declared once as an :class:`IdSplit`
that the loader applies and the synthetic writer reads back.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
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
