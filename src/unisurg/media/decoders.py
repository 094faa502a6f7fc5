"""The other video decoders behind :func:`~unisurg.media.video.open_video`'s interface.

``decoder`` settings (``evaluate.decoder``; ``docs/performance.md`` has the measurements behind the
default):

``decord``
    the default: the project's stack; PyAV takes over where decord fails on a file it opened.
``pyav``
    PyAV (FFmpeg through its own bundled libraries): decodes forward from the last position, so
    sorted requests (a frame store being built) decode every frame once.
``torchcodec``, ``torchcodec-cuda``
    PyTorch's decoder on the CPU, or on the GPU's NVDEC: exact seeks by frame index (also on
    variable-frame-rate files, where decord turns an index into a time with the average rate). It
    loads the system's FFmpeg shared libraries (``make`` installs Debian's); where they do not load,
    asking for it is an error that says so.
``auto``
    ``torchcodec`` where it loads, else ``decord``.

Every reader counts the frames it hands out (``frames_decoded``) and raises
:class:`~unisurg.media.base.VideoError` naming the file when it cannot open or decode one.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .base import VideoError, VideoMeta, decoder_message

log = logging.getLogger(__name__)

DECODERS = ("decord", "pyav", "torchcodec", "torchcodec-cuda", "auto")


def torchcodec_error() -> str | None:
    """Why torchcodec cannot decode here (None: it can): not installed, or FFmpeg's libraries missing."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads FFmpeg's shared libraries)
    except Exception as err:  # ImportError, or RuntimeError/OSError from the native loader
        return f"{type(err).__name__}: {str(err).strip().splitlines()[0][:200] if str(err).strip() else ''}"
    return None


def reader_for(path: str | os.PathLike[str], decoder: str):
    """A reader for ``path`` with ``decoder``: ``pyav`` or ``torchcodec[-cuda]`` (decord's reader and
    ``auto``'s choice live in :func:`~unisurg.media.video.open_video`)."""
    if decoder not in DECODERS:
        raise ValueError(f"decoder {decoder!r}: expected one of {', '.join(DECODERS)}")
    if decoder == "pyav":
        return PyAVReader(path)
    if decoder.startswith("torchcodec"):
        why = torchcodec_error()
        if why is not None:
            raise RuntimeError(
                f"decoder {decoder!r}: torchcodec cannot load here ({why}); install FFmpeg's shared libraries "
                "(make installs Debian's) or choose decoder: decord"
            )
        return TorchCodecReader(path, "cuda" if decoder.endswith("cuda") else "cpu")
    raise ValueError(f"decoder {decoder!r} is opened by unisurg.media.video.open_video")


class _Indexed:
    """What every reader reports once open: frame count ``_n``, rate ``_fps``, size ``_hw`` (H, W)."""

    _n: int
    _fps: float
    _hw: tuple[int, int]

    @property
    def fps(self) -> float:
        return self._fps

    @property
    def meta(self) -> VideoMeta:
        return VideoMeta(num_frames=self._n, fps=self._fps, width=self._hw[1], height=self._hw[0])

    def __len__(self) -> int:
        return self._n


class PyAVReader(_Indexed):
    """Frames by index with PyAV, decoding forward from where the last request stopped."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        import av

        self.path = Path(path)
        self.frames_decoded = 0
        try:
            with av.open(str(self.path)) as c:
                s = c.streams.video[0]
                self._fps = float(s.average_rate or s.guessed_rate or 0.0)
                self._n = int(s.frames) or 0
                self._hw = (s.codec_context.height, s.codec_context.width)
                if not self._n:  # no count in the container: count by decoding once
                    self._n = sum(1 for _ in c.decode(video=0))
        except (OSError, ValueError, IndexError) as err:  # av.error.FFmpegError derives from OSError/ValueError
            raise VideoError(f"{self.path}: cannot decode ({err})") from None
        self._container = None
        self._iter = None
        self._next = 0

    def _restart(self) -> None:
        import av

        if self._container is not None:
            self._container.close()
        self._container = av.open(str(self.path))
        self._iter, self._next = self._container.decode(video=0), 0

    def until_error(self, indices: np.ndarray | list[int]) -> tuple[dict[int, np.ndarray], str | None]:
        """The wanted frames that decode, decoding forward (restarting only to go back), and why
        decoding stopped before the last one (None: it did not)."""
        wanted = sorted({int(i) for i in indices})
        if self._iter is None or wanted[0] < self._next:
            self._restart()
        got: dict[int, np.ndarray] = {}
        want = set(wanted)
        try:
            while self._next <= wanted[-1]:
                frame = next(self._iter)
                if self._next in want:
                    got[self._next] = frame.to_ndarray(format="rgb24")
                self._next += 1
        except StopIteration:
            return got, None if len(got) == len(wanted) else f"{self.path}: the stream ends at frame {self._next}"
        except (OSError, ValueError) as err:  # av.error.FFmpegError: the data stops decoding here
            self._iter = None
            return got, f"{self.path}: decoding fails at frame {self._next} ({err})"
        return got, None

    def get_frames(self, indices: np.ndarray | list[int], strict: bool = False) -> np.ndarray:
        idx = np.clip(np.asarray(indices, np.int64), 0, max(self._n - 1, 0))
        wanted = sorted(set(idx.tolist()))
        got, why = self.until_error(wanted)
        if why is not None and (strict or not got):
            raise VideoError(why)
        if len(got) < len(wanted):
            if strict or not got:
                raise VideoError(f"{self.path}: the stream ends before frame {min(set(wanted) - got.keys())}")
            last = got[max(got)]
            got = {k: got.get(k, last) for k in wanted}
        self.frames_decoded += len(idx)
        return np.stack([got[int(i)] for i in idx])

    def decode_last(self) -> np.ndarray:
        return self.get_frames([self._n - 1], strict=True)

    def release(self) -> None:
        if self._container is not None:
            self._container.close()
        self._container = self._iter = None


class TorchCodecReader(_Indexed):
    """Frames by index with torchcodec (exact seeks), on the CPU or a CUDA device (NVDEC)."""

    def __init__(self, path: str | os.PathLike[str], device: str = "cpu") -> None:
        from torchcodec.decoders import VideoDecoder

        self.path = Path(path)
        self.frames_decoded = 0
        try:
            self._dec = VideoDecoder(str(self.path), device=device, seek_mode="exact")
            md = self._dec.metadata
            self._n, self._fps = int(md.num_frames or 0), float(md.average_fps or 0.0)
            self._hw = (int(md.height or 0), int(md.width or 0))
        except Exception as err:  # torchcodec raises RuntimeError/ValueError with FFmpeg's message
            raise VideoError(f"{self.path}: cannot decode ({decoder_message(err)})") from None

    def get_frames(self, indices: np.ndarray | list[int], strict: bool = False) -> np.ndarray:
        idx = np.clip(np.asarray(indices, np.int64), 0, max(self._n - 1, 0))
        try:
            batch = self._dec.get_frames_at(indices=idx.tolist())
        except Exception as err:  # a frame that does not decode: RuntimeError with FFmpeg's message
            raise VideoError(f"{self.path}: cannot decode frames ({decoder_message(err)})") from None
        self.frames_decoded += len(idx)
        return batch.data.permute(0, 2, 3, 1).cpu().numpy()  # (T, C, H, W) -> (T, H, W, C)

    def decode_last(self) -> np.ndarray:
        return self.get_frames([self._n - 1], strict=True)

    def release(self) -> None:
        """Nothing to reset: torchcodec keeps no growing buffers between requests."""
