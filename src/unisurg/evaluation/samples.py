"""Probe samples: one per labelled instant (thinned to ``label_fps``), clip, trial or image.

A temporal record (a video with a label timeline) yields one sample per labelled instant, the
first of every 1/``label_fps`` seconds (its time is the clip's end; its label the first or, with
``label_at="last"``, the last instant of that bin); a clip/skill record yields one sample whose
frames span the whole source; a dense record yields one image. Which frames a sample's clip holds is
the protocol's window rule (:mod:`.windows`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..benchmarks import Benchmark, Record


@dataclass(frozen=True)
class Sample:
    record: int  # index into the benchmark's records
    t_end: float | None  # seconds; None = whole source
    label: np.ndarray  # () class id, (C,) multi-hot, () score, or empty for dense tasks


def make_samples(
    bench: Benchmark, records: list[Record], label_fps: float = 1.0, label_at: Literal["first", "last"] = "first"
) -> list[Sample]:
    out = []
    for i, r in enumerate(records):
        if bench.family.temporal:
            assert r.times is not None
            bins = np.floor(r.times * label_fps + 1e-9)
            first = np.ones(len(bins), bool)
            first[1:] = bins[1:] != bins[:-1]  # the first labelled instant of every 1/label_fps bin
            starts = np.nonzero(first)[0]
            ends = np.r_[starts[1:], len(bins)] - 1  # the last instant of the same bin
            for k, last in zip(starts, ends):
                out.append(Sample(i, float(r.times[k]), r.labels[last if label_at == "last" else k]))
        elif not bench.family.dense:
            out.append(Sample(i, None, r.labels[0]))
        else:
            out.append(Sample(i, None, np.zeros(0)))
    return out


def drop_instants(records: list[Record], classes: Collection[int]) -> list[Record]:
    """Temporal records without the labelled instants whose class is in ``classes`` (records left with
    no instant are dropped): what is neither trained on nor inside any window."""
    if not classes:
        return records
    out = []
    for r in records:
        keep = ~np.isin(np.asarray(r.labels), list(classes))
        if keep.any():
            out.append(dataclasses.replace(r, labels=r.labels[keep], times=r.times[keep]))
    return out
