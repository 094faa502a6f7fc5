"""Video I/O behind a small interface: decord for reading, PyAV (libx264) for writing.

decord is fast (one batched ``get_batch`` per clip) but brittle: it can crash on tiny or
corrupt files and misreport variable-frame-rate videos. Every open therefore goes through
:func:`open_video`, which turns decoder failures into :class:`VideoError` with the path,
and the rest of the code only sees :class:`VideoReader` (so PyAV or torchcodec can stand
in where decord has no wheel).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .base import VideoError, VideoMeta, decoder_message

__all__ = ["VideoError", "VideoMeta", "VideoReader", "VideoWriter", "decoder_message", "open_video", "pyav_frames"]

log = logging.getLogger(__name__)

# Files below this size cannot hold a decodable frame; decord may crash on them (V-JEPA skips <1 KB).
MIN_VIDEO_BYTES = 1024


class VideoReader:
    """Random-access reader over one video file (decord backend).

    Opening reads the index only (frame count, frame rate); the frame size is known after the
    first decode (``meta`` decodes frame 0 if nothing was decoded yet), so a training loader
    that opens a file per clip pays for exactly the frames it asks for.
    """

    def __init__(self, path: str | os.PathLike[str], num_threads: int = 1) -> None:
        import decord  # deferred: decord loads native libraries

        self.frames_decoded = 0  # frames handed out by get_frames (what redundancy checks count)

        self.path = Path(path)
        try:
            size = self.path.stat().st_size
        except OSError as err:
            raise VideoError(f"{self.path}: cannot stat ({err.strerror})") from None
        if size < MIN_VIDEO_BYTES:
            raise VideoError(f"{self.path}: file too small to be a video ({size} bytes)")
        try:
            self._vr = decord.VideoReader(str(self.path), ctx=decord.cpu(0), num_threads=num_threads)
            self._n = len(self._vr)
            self._fps = float(self._vr.get_avg_fps())
        except Exception as err:  # decord raises DECORDError / RuntimeError with C++ messages
            raise VideoError(f"{self.path}: cannot decode ({decoder_message(err)})") from None
        self._hw: tuple[int, int] | None = None
        self._use_pyav = False

    @property
    def meta(self) -> VideoMeta:
        if self._hw is None:
            self._hw = self.get_frames([0]).shape[1:3] if self._n else (0, 0)
        return VideoMeta(num_frames=self._n, fps=self._fps, width=int(self._hw[1]), height=int(self._hw[0]))

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return self._n

    def get_frames(self, indices: np.ndarray | list[int], strict: bool = False, fallback: bool = True) -> np.ndarray:
        """Decode frames at ``indices`` in one batched call -> uint8 array (T, H, W, 3), RGB.

        If decord fails on a file it opened (it cannot copy frames whose width needs row
        padding, e.g. 48 or 17 pixels wide), PyAV decodes the same frames instead. ``strict``: a
        frame the stream cannot deliver (a file that stops decoding part-way) is a VideoError, not a
        repeat of the last frame decoded. ``fallback`` False: decord's failure is the VideoError (the
        caller decodes on with a reader of its own, :class:`~unisurg.media.decoders.PyAVReader`).
        """
        idx = np.clip(np.asarray(indices, dtype=np.int64), 0, max(len(self) - 1, 0))
        if not self._use_pyav:
            try:
                frames = self._vr.get_batch(idx.tolist()).asnumpy()
            except Exception as err:  # decord raises DECORDError with C++ messages
                if not fallback:
                    raise VideoError(f"{self.path}: decord failed ({decoder_message(err)})") from None
                log.warning("%s: decord failed (%s); decoding with PyAV", self.path, decoder_message(err))
                self._use_pyav = True
        if self._use_pyav:
            frames = pyav_frames(self.path, idx, strict=strict)
        if self._hw is None and len(frames):
            self._hw = frames.shape[1:3]
        self.frames_decoded += len(frames)
        return frames

    def decode_last(self) -> np.ndarray:
        """Decode the last frame the index lists -> (1, H, W, 3); raise VideoError if no decoder reaches it.

        A damaged file often opens (its index is intact) and fails only where its data breaks, so
        checking a download decodes the end. Unlike :meth:`get_frames`, a PyAV stream that ends early
        is an error here, not a reason to repeat the last frame it decoded.
        """
        if not self._n:
            raise VideoError(f"{self.path}: the index lists no frames")
        last = self._n - 1
        try:
            return self._vr.get_batch([last]).asnumpy()
        except Exception as err:  # decord raises DECORDError with C++ messages; PyAV gets the last word
            log.debug("%s: decord cannot decode frame %d (%s); trying PyAV", self.path, last, decoder_message(err))
        return pyav_frames(self.path, np.array([last]), strict=True)

    def release(self) -> None:
        """Reset decoder state (decord's buffers grow in long-lived readers; call between long uses)."""
        self._vr.seek(0)


def pyav_frames(path: str | os.PathLike[str], indices: np.ndarray, strict: bool = False) -> np.ndarray:
    """Decode the frames at ``indices`` (sorted or not) sequentially with PyAV -> (T, H, W, 3) RGB.

    ``strict``: a wanted frame past the end of the decodable stream raises VideoError instead of
    repeating the last frame decoded.
    """
    import av

    wanted = {int(i) for i in indices}
    last = max(wanted)
    got: dict[int, np.ndarray] = {}
    decoded = 0
    try:
        with av.open(str(path)) as container:
            for k, frame in enumerate(container.decode(video=0)):
                decoded = k + 1
                if k in wanted:
                    got[k] = frame.to_ndarray(format="rgb24")
                if k >= last:
                    break
    except (OSError, ValueError) as err:  # av.error.FFmpegError derives from OSError/ValueError
        raise VideoError(f"{path}: PyAV decode failed: {err}") from None
    if strict and len(got) < len(wanted):
        missing = min(wanted - got.keys())
        raise VideoError(f"{path}: the stream ends before frame {missing} (PyAV decoded {decoded} frames)")
    if not got:
        raise VideoError(f"{path}: PyAV decoded no frames")
    fallback = got[max(got)]  # frames past a truncated end repeat the last decodable one
    return np.stack([got.get(int(i), fallback) for i in indices])


def open_video(
    path: str | os.PathLike[str], num_threads: int = 1, fps: float = 1.0, decoder: str = "decord"
) -> VideoReader:
    """A reader for a video file, or for a folder of images (one per frame, at ``fps``: images carry
    no rate) through the same interface (:class:`~unisurg.media.frames.FrameFolderReader`).
    ``decoder``: ``decord`` (PyAV where decord fails), ``pyav``, or ``torchcodec``/``auto``
    (:mod:`.decoders`)."""
    if Path(path).is_dir():
        from .frames import FrameFolderReader

        return FrameFolderReader(path, fps)  # type: ignore[return-value]
    if decoder != "decord":
        from .decoders import reader_for, torchcodec_error

        if decoder == "auto":
            decoder = "torchcodec" if torchcodec_error() is None else "decord"
        if decoder != "decord":
            return reader_for(path, decoder)
    return VideoReader(path, num_threads=num_threads)


# File suffixes treated as video when a directory is searched (`unisurg features extract DIR`).
VIDEO_EXTENSIONS = frozenset({".mp4", ".m4v", ".mov", ".avi", ".mkv", ".webm", ".mpg", ".mpeg"})


def clip_indices(end_frame: int, num_frames: int, step: float) -> np.ndarray:
    """Indices of ``num_frames`` frames spaced ``step`` native frames apart, ending at ``end_frame``.

    Indices before the first frame are clamped to 0 (the clip is padded by repeating frame 0),
    which is how the frozen-probe protocol handles labels near the start of a video.
    """
    offsets = np.arange(num_frames - 1, -1, -1, dtype=np.float64) * step
    return np.maximum(np.round(end_frame - offsets).astype(np.int64), 0)


class VideoWriter:
    """H.264 (yuv420p) writer via PyAV: the same frames give the same bytes, run after run and on every CPU.

    Two steps of a plain PyAV encode depend on the processor, and both are replaced here:

    - RGB -> YUV 4:2:0: PyAV hands RGB frames to FFmpeg's swscale, whose SIMD paths (chosen by
      the CPU's features) round differently from its C code; with FFmpeg's SIMD disabled the
      same frames gave different files. :meth:`yuv420p` converts in exact integer arithmetic.
    - x264 analysis: some of x264's assembly (e.g. the 9-mode intra search) picks different
      modes than its C code, so ``asm=0`` changed the bytes. x264's ``cpu-independent`` option
      keeps to the canonical algorithms; with it, x264's assembly and its C code give the same
      bytes (tests/test_synth.py checks it).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        fps: float,
        width: int,
        height: int,
        codec: str = "libx264",
        crf: int = 23,
        container: str | None = None,
        gop: int = 25,
        x264_asm: bool = True,  # False: x264's plain C code (slower; tests compare it with the assembly)
    ) -> None:
        from fractions import Fraction

        import av

        self.path = Path(path)
        if width % 2 or height % 2:
            raise ValueError(f"{self.path}: yuv420p needs an even width and height, got {width}x{height}")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._out = av.open(str(self.path), mode="w", format=container)
        rate = Fraction(fps).limit_denominator(1001)
        self._stream = self._out.add_stream(codec, rate=rate)
        self._stream.width, self._stream.height = width, height
        self._stream.codec_context.time_base = 1 / rate
        self._next_pts = 0
        self._stream.pix_fmt = "yuv420p"
        # DVC needs byte-identical files for identical inputs. x264's macroblock-tree rate
        # control with lookahead produced run-to-run different bitstreams here (same frames,
        # same process); single-threaded x264 without mbtree/lookahead is reproducible
        # (tests/test_video.py checks it). cpu-independent: see the class docstring.
        self._stream.thread_count = 1
        if codec == "libx264":
            # keyframe every ``gop`` frames (~1 s): random access to a clip decodes at most one
            # GOP before it instead of the whole video (x264's default is one keyframe per 250 frames)
            self._stream.options = {
                "crf": str(crf),
                "preset": "veryfast",
                "threads": "1",
                "x264-params": f"threads=1:lookahead-threads=1:sync-lookahead=0:mbtree=0:rc-lookahead=0:keyint={gop}"
                f":min-keyint={gop}:scenecut=0:cpu-independent=1" + ("" if x264_asm else ":asm=0"),
            }

    @staticmethod
    def yuv420p(frame_rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 RGB -> (3H/2, W) uint8 planar YUV 4:2:0 (Y, then U, then V), BT.601 limited range.

        What swscale does by default, in exact integer arithmetic (16-bit fixed-point matrix) so that
        every CPU gives the same bytes: BT.601 with 16..235 luma; each chroma sample averages a
        horizontal pair of pixels and weighs rows 2j-1, 2j, 2j+1, 2j+2 by 1, 3, 3, 1 (swscale's
        bilinear 2:1 filter; edge rows repeated).
        """
        h, w, _ = frame_rgb.shape
        r, g, b = np.moveaxis(frame_rgb, 2, 0).astype(np.int32)  # contiguous (H, W) planes; all sums < 2**31
        y = 16829 * r
        y += 33039 * g
        y += 6416 * b
        y += (16 << 16) + (1 << 15)
        y >>= 16  # (H, W) in 16..235

        def chroma_sum(c: np.ndarray) -> np.ndarray:  # (H, W) -> (H/2, W/2), 16 x the weighted mean
            pairs = c[:, 0::2] + c[:, 1::2]  # (H, W/2)
            p = np.concatenate([pairs[:1], pairs, pairs[-1:]])  # (H+2, W/2): p[i] = pairs[i - 1], clamped
            return p[0:h:2] + p[3 : h + 2 : 2] + 3 * (p[1 : h + 1 : 2] + p[2 : h + 2 : 2])

        rs, gs, bs = chroma_sum(r), chroma_sum(g), chroma_sum(b)
        u = (-9714 * rs - 19070 * gs + 28784 * bs + ((128 << 20) + (1 << 19))) >> 20  # 16..240
        v = (28784 * rs - 24103 * gs - 4681 * bs + ((128 << 20) + (1 << 19))) >> 20  # 16..240
        out = np.empty(h * w * 3 // 2, np.uint8)
        n, q = h * w, h * w // 4
        out[:n], out[n : n + q], out[n + q :] = y.ravel(), u.ravel(), v.ravel()
        return out.reshape(h * 3 // 2, w)

    def write(self, frame_rgb: np.ndarray) -> None:
        import av

        frame = av.VideoFrame.from_ndarray(self.yuv420p(np.asarray(frame_rgb)), format="yuv420p")
        # Explicit timestamps (x264's rate control reads them).
        frame.pts = self._next_pts
        frame.time_base = self._stream.codec_context.time_base
        self._next_pts += 1
        for packet in self._stream.encode(frame):
            self._out.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._out.mux(packet)
        self._out.close()

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
