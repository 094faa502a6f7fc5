"""The deep check of ``Benchmark.validate``: every pixel file opens, and annotations fit their videos.

Reading annotations alone lets a text file named ``video01.mp4`` pass. The deep check opens each
video once (its frame count and frame rate, then a decode of its last frame: a damaged file often
opens from an intact index and fails only where its data breaks), reads each image and dense
target once, and compares each temporal record's last labelled instant with the duration of its
source. Files are cached by path, so records sharing a video open it once.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..media.video import VideoError, open_video
from .problems import Problems
from .records import FramesSource, ImageSource, Record, Source, VideoSource


@dataclass(frozen=True)
class Span:
    """How long a video or a frame sequence lasts."""

    frames: int
    fps: float
    kind: str  # "video" or "frame sequence", as messages name it

    @property
    def seconds(self) -> float:
        return self.frames / self.fps


def reason(err: Exception, path: str) -> str:
    """An exception's message without the ``<path>: `` prefix (the problem already names the file)."""
    text = str(err)
    return text[len(path) + 2 :] if text.startswith(f"{path}: ") else text


def overrun(times: np.ndarray, span: Span) -> str | None:
    """The problem with labelled instants ``times`` (s) running past the end of ``span``, if any.

    A label at ``t`` holds until the next labelled instant, so the last one may start up to one
    labelling interval (or one frame, for per-frame labels) before a rounded-up end: PitVis, for
    one, adds a trailing row at the next whole second.
    """
    last = float(np.max(times))
    steps = np.diff(np.unique(times))
    tolerance = max(1.0 / span.fps, float(np.median(steps)) if steps.size else 0.0)
    if last <= span.seconds + tolerance:
        return None
    return (
        f"annotations reach {last:.2f} s but the {span.kind} lasts {span.seconds:.2f} s "
        f"({span.frames} frames at {span.fps:g} fps): {last - span.seconds:.2f} s past its end"
    )


def video_span(path: str, problems: Problems) -> Span | None:
    """Open a video, check its frame count and rate and decode its last frame; None if it fails."""
    try:
        vr = open_video(path)
        if not len(vr):
            problems.add(path, None, "the video has no frames")
            return None
        if not (math.isfinite(vr.fps) and vr.fps > 0):
            problems.add(path, None, f"the video reports no usable frame rate ({vr.fps})")
            return None
        vr.decode_last()
    except VideoError as err:
        problems.add(path, None, reason(err, path))
        return None
    return Span(len(vr), vr.fps, "video")


def image_ok(path: str, problems: Problems) -> bool:
    """Whether cv2 decodes the image at ``path``; adds the problem if not."""
    import cv2  # deferred: `import unisurg.benchmarks` stays cheap

    try:
        size = os.path.getsize(path)
    except OSError as err:
        problems.add(path, None, f"missing image file ({err.strerror})")
        return False
    if cv2.imread(path, cv2.IMREAD_UNCHANGED) is None:
        problems.add(path, None, f"cv2 cannot decode this image ({size} bytes: not an image, or damaged)")
        return False
    return True


class PixelCheck:
    """Opens the files of records once each and collects their problems."""

    def __init__(self, problems: Problems, read_target: Callable[[str], np.ndarray] | None) -> None:
        self.problems = problems
        self.read_target = read_target
        self.videos: dict[str, Span | None] = {}
        self.images: dict[str, bool] = {}
        self.targets: dict[str, bool] = {}

    def record(self, r: Record) -> None:
        span = self.source(r.source)
        if span is not None and r.times is not None and r.times.size:
            problem = overrun(r.times, span)
            if problem is not None:
                where = r.source.path if isinstance(r.source, VideoSource) else os.path.dirname(r.source.paths[0])
                self.problems.add(where, None, problem)
        if r.target is not None:
            self.target(r.target)

    def source(self, src: Source) -> Span | None:
        if isinstance(src, VideoSource):
            if src.path not in self.videos:
                self.videos[src.path] = video_span(src.path, self.problems)
            return self.videos[src.path]
        if isinstance(src, FramesSource):
            for p in src.paths:  # every frame, so each missing or broken one is listed
                self.image(p)
            return Span(len(src.paths), src.fps, "frame sequence") if src.paths else None
        if isinstance(src, ImageSource):
            self.image(src.path)
            return None
        raise TypeError(f"unknown pixel source {type(src).__name__}")

    def image(self, path: str) -> None:
        if path not in self.images:
            self.images[path] = image_ok(path, self.problems)

    def target(self, path: str) -> None:
        if path in self.targets or self.read_target is None:
            return
        try:
            self.read_target(path)
            self.targets[path] = True
        except Exception as err:  # each benchmark's decoder fails its own way; every failure is reported
            self.problems.add(path, None, f"cannot decode the target ({type(err).__name__}: {reason(err, path)})")
            self.targets[path] = False

    def counts(self) -> dict[str, int]:
        """Files opened per kind (the report's ``checked``)."""
        return {"videos": len(self.videos), "images": len(self.images), "targets": len(self.targets)}


def check_pixels(
    records: list[Record], problems: Problems, read_target: Callable[[str], np.ndarray] | None = None
) -> dict[str, int]:
    """Open every video, image and dense target of ``records``; add a problem for each failure
    and each temporal record whose annotations outrun its source. Returns files opened per kind."""
    check = PixelCheck(problems, read_target)
    for r in records:
        check.record(r)
    return check.counts()
