"""Probe samples and clip decoding under the frozen protocol.

A temporal record (a video with a label timeline) yields one sample per labelled instant,
thinned to ``label_fps``; its clip is ``frames`` frames at ``fps`` ending at that instant.
A clip/skill record yields one sample whose frames span the whole video; dense records
yield one image, repeated over the clip's frames.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..benchmarks import Benchmark, FramesSource, ImageSource, Record, VideoSource
from ..media.video import clip_indices, open_video


@dataclass(frozen=True)
class Sample:
    record: int  # index into the benchmark's records
    t_end: float | None  # seconds; None = whole source
    label: np.ndarray  # () class id, (C,) multi-hot, () score, or empty for dense tasks


def make_samples(bench: Benchmark, records: list[Record], label_fps: float = 1.0) -> list[Sample]:
    out = []
    for i, r in enumerate(records):
        if bench.family.temporal:
            assert r.times is not None
            bins = np.floor(r.times * label_fps + 1e-9)
            first = np.ones(len(bins), bool)
            first[1:] = bins[1:] != bins[:-1]  # the first labelled instant of every 1/label_fps bin
            for k in np.nonzero(first)[0]:
                out.append(Sample(i, float(r.times[k]), r.labels[k]))
        elif not bench.family.dense:
            out.append(Sample(i, None, r.labels[0]))
        else:
            out.append(Sample(i, None, np.zeros(0)))
    return out


def _read_image(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise ValueError(f"{path}: cannot read image")
    return img[..., ::-1]


class ClipReader:
    """Decodes the clips of samples; keeps the last opened video to decode a video's samples together."""

    def __init__(self, frames: int, fps: float, size: int) -> None:
        self.frames, self.fps, self.size = frames, fps, size
        self._path: str | None = None
        self._reader = None

    def _video(self, path: str):
        if path != self._path:
            self._reader, self._path = open_video(path), path
        return self._reader

    def read(self, source, t_end: float | None) -> np.ndarray:
        """-> uint8 (frames, size, size, 3) RGB."""
        if isinstance(source, VideoSource):
            vr = self._video(source.path)
            n, native = len(vr), vr.fps
            if t_end is None:
                idx = np.linspace(0, n - 1, self.frames).round().astype(np.int64)
            else:
                end = min(int(round(t_end * native)), n - 1)
                idx = clip_indices(end, self.frames, native / self.fps)
            frames = vr.get_frames(idx)
        elif isinstance(source, FramesSource):
            n = len(source.paths)
            if t_end is None:
                idx = np.linspace(0, n - 1, self.frames).round().astype(np.int64)
            else:
                end = min(int(round(t_end * source.fps)), n - 1)
                # image sequences are often sparser than the probe rate: then step one image at a time
                idx = clip_indices(end, self.frames, max(source.fps / self.fps, 1.0))
            frames = np.stack([_read_image(source.paths[k]) for k in idx])
        elif isinstance(source, ImageSource):
            frames = np.repeat(_read_image(source.path)[None], self.frames, axis=0)
        else:
            raise TypeError(f"unknown source {source!r}")
        if frames.shape[1:3] != (self.size, self.size):
            frames = np.stack([cv2.resize(f, (self.size, self.size), interpolation=cv2.INTER_AREA) for f in frames])
        return frames
