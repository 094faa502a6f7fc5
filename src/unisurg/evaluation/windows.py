"""Which frames each probe sample's clip is made of: a protocol's window rule, as frame references.

A window is an int64 array (T, 2) of (record, native frame index) pairs: the T frames of one
sample's clip, in clip order, each naming the record whose pixels it is (a window can span two
records: EgoSurgery's sessions of one video under the authors' recipe) and the frame in that
record's source (a video frame, an image of a folder; 0 for a single image).

Rules (``Sampling.window``):

``end`` (the ``mini`` protocol, the project's own)
    temporal samples: ``frames`` frames ``native/fps`` apart ending at the labelled frame, indices
    before the first frame repeating frame 0 (:func:`~unisurg.media.video.clip_indices`); image
    sequences sparser than ``fps`` step one image at a time. Clips and trials: ``frames`` frames
    spread evenly over the whole source.
``authors`` (the ``surgmotion`` protocol: the SurgMotion authors' data preparation and loader)
    temporal samples: a sample's *list* is the (up to) ``frames`` labelled 1-fps rows of its sequence
    that end at its own row, padded at the end with its own row to ``frames`` entries (their
    ``gen_clips.py`` with padding: the frames after the last real one repeat the labelled frame,
    never frame 0 before the start). Which ``frames`` of the list the clip holds is their loader's
    rule (:func:`authors_pick`): for a full list of 64 that is entries 0..61, 63, 63 — one frame
    dropped and the last repeated. The content of their per-sample lists is not in their public
    code beyond ``gen_clips.py``; ``docs/protocols.md`` says what is assumed.
    Clip classification: the list is every frame of the clip on the recipe's frame grid (the native
    rate unless ``AuthorsRecipe.clip_fps``), and the clip is a run of ``frames`` consecutive entries
    at a random offset (their loader's ``random_clip_sampling``, on for training *and* evaluation);
    here the offset is drawn from the seed, the sample and the draw (the training epoch, or a fixed
    draw for evaluation), so a run is reproducible. Trials (skill) keep the ``end`` rule: the authors
    do not evaluate them.
Images (dense tasks): the image repeated ``frames`` times, under both rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..benchmarks import Benchmark, FramesSource, ImageSource, Record
from ..benchmarks.families import Skill
from ..benchmarks.records import AuthorsRecipe
from ..media.video import clip_indices
from .protocols import Sampling
from .samples import Sample

EVAL_DRAW = -1  # the draw of an evaluation clip (training draws are the epochs 0, 1, ...)


@dataclass(frozen=True)
class SourceInfo:
    """What a window rule needs to know of a record's source: its frame count and native rate."""

    frames: int
    fps: float


def authors_pick(length: int, frames: int, step: int = 1, rng: np.random.Generator | None = None) -> np.ndarray:
    """Positions in a list of ``length`` frames that the authors' loader (``video_surgical.py``,
    ``load_frames_from_txt``, one segment, overlap allowed) feeds as a clip of ``frames`` frames
    taken every ``step`` entries.

    A list longer than ``frames * step``: a run ending at a random ``end`` in [clip, length) (NumPy's
    ``randint``: the last entry is never reached), ``frames`` positions spread by ``linspace`` over
    [end - clip, end - 1]. Otherwise ``linspace(0, length - 1, (length - 1) // step)`` truncated to
    integers, padded with ``length - 1`` — for a list of exactly ``frames`` entries this drops entry
    ``frames - 2`` and repeats the last one.
    """
    clip = min(frames * step, length)
    if length > clip:
        if rng is None:
            raise ValueError("a list longer than the clip is cut at a random offset: pass rng")
        end = int(rng.integers(clip, length))
        idx = np.linspace(end - clip, end - 1, frames).astype(np.int64)
        return np.clip(idx, end - clip, end - 1)
    last = length - 1
    idx = np.linspace(0, last, last // step).astype(np.int64)
    return np.concatenate([idx, np.full(frames - len(idx), last, np.int64)])


class WindowPlan:
    """Every sample's clip under one protocol's :class:`Sampling` as frame references (module docstring).

    ``info[r]``: the frame count and native rate of record r's source. ``random``: whether a sample's
    clip depends on its draw (clip benchmarks under the authors' rule)."""

    def __init__(
        self,
        bench: Benchmark,
        records: Sequence[Record],
        samples: Sequence[Sample],
        sampling: Sampling,
        info: Sequence[SourceInfo],
        seed: int,
        recipe: AuthorsRecipe | None = None,
    ) -> None:
        self.records, self.samples, self.sampling, self.info, self.seed = records, samples, sampling, info, seed
        self.recipe = recipe or AuthorsRecipe()
        fam = bench.family
        self.authors = sampling.window == "authors"
        self.kind = (
            "image" if fam.dense else "temporal" if fam.temporal else "trial" if isinstance(fam, Skill) else "clip"
        )
        self.random = self.authors and self.kind == "clip"
        self._seq = self._sequences() if self.authors and self.kind == "temporal" else None

    # ------------------------------------------------------------------ frames of one instant

    def frame_at(self, r: int, t: float) -> int:
        """The native frame of record r shown at ``t`` seconds (the last frame past the end)."""
        info = self.info[r]
        return min(int(round(t * info.fps)), info.frames - 1)

    def _sequences(self) -> tuple[list[np.ndarray], np.ndarray]:
        """Authors' rule: every sequence's (record, frame) rows in order (n, 2), and each sample's
        (sequence, position) (S, 2); a sample's list is computed when asked (:meth:`window`)."""
        by_seq: dict[object, list[int]] = {}
        for i, s in enumerate(self.samples):
            key = self.records[s.record].video if self.recipe.sequence == "group" else s.record
            by_seq.setdefault(key, []).append(i)
        seqs, pos = [], np.zeros((len(self.samples), 2), np.int64)
        for k, members in enumerate(by_seq.values()):
            members.sort(key=lambda i: (self.records[self.samples[i].record].id, self.samples[i].t_end))
            rows = [
                (self.samples[i].record, self.frame_at(self.samples[i].record, self.samples[i].t_end)) for i in members
            ]
            seqs.append(np.array(rows, np.int64).reshape(-1, 2))
            pos[members] = np.stack([np.full(len(members), k), np.arange(len(members))], axis=1)
        return seqs, pos

    def _clip_list(self, r: int) -> np.ndarray:
        """Authors' rule: native frames of record r's clip on the recipe's grid (all, at the native rate)."""
        info, fps = self.info[r], self.recipe.clip_fps
        if fps is None or fps >= info.fps:
            return np.arange(info.frames, dtype=np.int64)
        count = int(np.floor((info.frames - 1) * fps / info.fps + 1e-9)) + 1
        return np.minimum(np.round(np.arange(count) * info.fps / fps).astype(np.int64), info.frames - 1)

    # ------------------------------------------------------------------ windows

    def window(self, i: int, draw: int = EVAL_DRAW) -> np.ndarray:
        """Sample i's clip as (T, 2) (record, native frame); ``draw``: a training epoch, or EVAL_DRAW."""
        s, T = self.samples[i], self.sampling.frames
        r = s.record
        if self.kind == "image":
            return np.tile(np.array([[r, 0]], np.int64), (T, 1))
        if self._seq is not None:
            k, p = self._seq[1][i]
            lst = self._seq[0][k][max(0, p - T + 1) : p + 1]
            lst = np.concatenate([lst, np.repeat(lst[-1:], T - len(lst), axis=0)])  # padded at the end
            return lst[authors_pick(T, T)]
        info, src = self.info[r], self.records[r].source
        if self.random:
            lst = self._clip_list(r)
            key = (self.seed, i, 0) if draw == EVAL_DRAW else (self.seed, i, 1, draw)
            idx = lst[authors_pick(len(lst), T, 1, np.random.default_rng(key))]
        elif s.t_end is None:  # clips and trials: spread over the whole source
            idx = np.linspace(0, info.frames - 1, T).round().astype(np.int64)
        else:
            end = self.frame_at(r, s.t_end)
            # image sequences are often sparser than the probe rate: then step one image at a time
            step = (
                max(info.fps / self.sampling.fps, 1.0)
                if isinstance(src, FramesSource)
                else info.fps / self.sampling.fps
            )
            idx = clip_indices(end, T, step)
        return np.stack([np.full(T, r, np.int64), idx], axis=1)

    def whole_list(self, i: int) -> np.ndarray:
        """Every frame any draw of sample i's clip can read, as (L, 2) (record, native frame)."""
        r = self.samples[i].record
        lst = self._clip_list(r) if self.random else self.window(i)[:, 1]
        return np.stack([np.full(len(lst), r, np.int64), lst], axis=1)

    def needed(self) -> dict[int, np.ndarray]:
        """Record -> the sorted native frames any window of any draw reads (what a frame store keeps)."""
        out: dict[int, set[int]] = {}
        for i, s in enumerate(self.samples):
            if self.random:
                out.setdefault(s.record, set()).update(self._clip_list(s.record).tolist())
                continue
            w = self.window(i)
            for r in np.unique(w[:, 0]):
                out.setdefault(int(r), set()).update(w[w[:, 0] == r, 1].tolist())
        return {r: np.array(sorted(v), np.int64) for r, v in sorted(out.items())}


def source_info(record: Record, open_video) -> SourceInfo:
    """Frame count and native rate of a record's source (``open_video``: the media reader factory)."""
    src = record.source
    if isinstance(src, ImageSource):
        return SourceInfo(1, 1.0)
    if isinstance(src, FramesSource):
        return SourceInfo(len(src.paths), src.fps)
    vr = open_video(src.path)
    return SourceInfo(len(vr), vr.fps)
