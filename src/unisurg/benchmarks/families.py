"""Task families: what a benchmark predicts, and the facts its official scoring needs.

A benchmark declares one family object (``Phase(relaxed_jumps=...)``, ``Depth(max_depth=100.0)``,
...). The families hold facts only; how a family is trained and scored (head size, loss,
scorer) lives with the evaluation harness (:mod:`unisurg.evaluation.tasks`), which dispatches
on the family's type and never on a benchmark's name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

# Two groups of 0-based phase ids: phases in the first may be predicted two phases *ahead* near
# their end, phases in the second two phases ahead or *behind* (the relaxed-boundary scripts).
Jumps = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass(frozen=True)
class Family:
    """Base of the task families. ``name`` is the task as written in every result file."""

    name: ClassVar[str]
    title: ClassVar[str]  # as the report's tables name the family
    temporal: ClassVar[bool] = False  # records carry a label timeline: one sample per labelled instant
    dense: ClassVar[bool] = False  # per-pixel targets read from files, one image per sample
    class_labels: ClassVar[bool] = False  # every label is one class id


@dataclass(frozen=True)
class Phase(Family):
    """One class per labelled instant of a video (phase or step recognition), scored per video."""

    name: ClassVar[str] = "phase"
    title: ClassVar[str] = "phase / step"
    temporal: ClassVar[bool] = True
    class_labels: ClassVar[bool] = True

    # Class ids whose instants are left out of the score (PitVis: background, steps 11 and 13).
    ignore: frozenset[int] = frozenset()
    # Per-video score (macro F1 with zero_division=1 over the classes present + edit score) / 2
    # (PitVis-2023's step metric) instead of accuracy and macro precision/recall/Jaccard/F1.
    edit_score: bool = False
    # A secondary relaxed-boundary variant, as the Cholec80 / M2CAI16 challenge scripts compute it.
    relaxed_jumps: Jumps | None = None


@dataclass(frozen=True)
class Triplets(Family):
    """Multi-label <instrument, verb, target> recognition at labelled instants; video-wise AP."""

    name: ClassVar[str] = "multilabel"
    title: ClassVar[str] = "action triplets"
    temporal: ClassVar[bool] = True

    # triplet id -> (instrument, verb, target) ids: component APs (I, V, T, IV, IT) pool over these
    ivt: tuple[tuple[int, int, int], ...]


@dataclass(frozen=True)
class ClipClassification(Family):
    """One class per clip (action, diagnosis), sampled over the whole video; scored over all clips."""

    name: ClassVar[str] = "clip"
    title: ClassVar[str] = "clip classification"
    class_labels: ClassVar[bool] = True


@dataclass(frozen=True)
class Skill(Family):
    """One score per trial (regression), sampled over the whole video; Spearman rho and MAE."""

    name: ClassVar[str] = "skill"
    title: ClassVar[str] = "skill"


@dataclass(frozen=True)
class Segmentation(Family):
    """Binary masks per image; Dice and IoU per image, then the mean."""

    name: ClassVar[str] = "segmentation"
    title: ClassVar[str] = "segmentation"
    dense: ClassVar[bool] = True


@dataclass(frozen=True)
class Depth(Family):
    """Depth maps (mm) per image; median-scaled metrics over the pixels with 1e-3 < gt < max_depth."""

    name: ClassVar[str] = "depth"
    title: ClassVar[str] = "depth"
    dense: ClassVar[bool] = True

    max_depth: float  # mm: the dataset's valid range (C3VD 100, SCARED 150)


# In the order the report lists the families.
FAMILIES: tuple[type[Family], ...] = (Phase, Triplets, ClipClassification, Skill, Segmentation, Depth)
