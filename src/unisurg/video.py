"""Video I/O behind a small interface: decord for reading, PyAV (libx264) for writing.

decord is fast (one batched ``get_batch`` per clip) but brittle: it can crash on tiny or
corrupt files and misreport variable-frame-rate videos. Every open therefore goes through
:func:`open_video`, which turns decoder failures into :class:`VideoError` with the path,
and the rest of the code only sees :class:`VideoReader` (so PyAV or torchcodec can stand
in where decord has no wheel).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Files below this size cannot hold a decodable frame; decord may crash on them (V-JEPA skips <1 KB).
MIN_VIDEO_BYTES = 1024


class VideoError(RuntimeError):
    """A video could not be opened or decoded; the message names the file and the reason."""


@dataclass(frozen=True)
class VideoMeta:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0


class VideoReader:
    """Random-access reader over one video file (decord backend)."""

    def __init__(self, path: str | os.PathLike[str], num_threads: int = 1) -> None:
        import decord  # deferred: decord loads native libraries

        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as err:
            raise VideoError(f"{self.path}: cannot stat ({err.strerror})") from None
        if size < MIN_VIDEO_BYTES:
            raise VideoError(f"{self.path}: file too small to be a video ({size} bytes)")
        try:
            self._vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=num_threads)
            n = len(self._vr)
            fps = float(self._vr.get_avg_fps())
            h, w = self._vr[0].shape[:2] if n else (0, 0)
            self._vr.seek(0)
        except VideoError:
            raise
        except Exception as err:  # decord raises DECORDError / RuntimeError with C++ messages
            raise VideoError(f"{self.path}: cannot decode ({type(err).__name__}: {err})") from None
        self.meta = VideoMeta(num_frames=n, fps=fps, width=int(w), height=int(h))

    def __len__(self) -> int:
        return self.meta.num_frames

    def get_frames(self, indices: np.ndarray | list[int]) -> np.ndarray:
        """Decode frames at ``indices`` in one batched call -> uint8 array (T, H, W, 3), RGB."""
        idx = np.clip(np.asarray(indices, dtype=np.int64), 0, max(len(self) - 1, 0))
        try:
            frames = self._vr.get_batch(idx.tolist()).asnumpy()
            self._vr.seek(0)  # releases decoder state; limits decord's known memory growth
        except Exception as err:
            raise VideoError(f"{self.path}: decode failed at frames {idx[:4].tolist()}...: {err}") from None
        return frames


def open_video(path: str | os.PathLike[str], num_threads: int = 1) -> VideoReader:
    return VideoReader(path, num_threads=num_threads)


def clip_indices(end_frame: int, num_frames: int, step: float) -> np.ndarray:
    """Indices of ``num_frames`` frames spaced ``step`` native frames apart, ending at ``end_frame``.

    Indices before the first frame are clamped to 0 (the clip is padded by repeating frame 0),
    which is how the frozen-probe protocol handles labels near the start of a video.
    """
    offsets = np.arange(num_frames - 1, -1, -1, dtype=np.float64) * step
    return np.maximum(np.round(end_frame - offsets).astype(np.int64), 0)


class VideoWriter:
    """H.264 (yuv420p) writer via PyAV; deterministic for identical frames (single-threaded x264)."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int = 23,
        container: str | None = None,
    ) -> None:
        import av
        from fractions import Fraction

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(self.path), mode="w", format=container)
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._out.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            self._stream.options = {"crf": str(crf), "preset": "veryfast"}
        # One thread: multi-threaded x264 is deterministic too, but one thread also keeps the
        # renderer (which owns the other core) from being starved.
        self._stream.thread_count = 1

    def write(self, frame_rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame_rgb), format="rgb24")
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()

    def __enter__(self) -> "VideoWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
