"""Inspecting one video (a file, or a folder of frames) for curation: its facts, signatures, motion.

Every failure becomes a :class:`VideoInfo` with ``ok=False`` and a specific reason (quarantined by
:mod:`unisurg.curation.index`), never an exception: one bad file must not stop a curation run.
Two signatures: ``signature``, a 64-bit DCT hash of ``SIGNATURE_FRAMES`` frames at fixed fractions
of the video (two files are near duplicates when every pair of hashes is within ``NEAR_DUP_BITS``:
the deduplication of whole copies), and ``seconds``, the per-second codes of
:mod:`.signatures` that the leakage guard (:mod:`.matching`) matches trimmed, cropped and re-timed
copies with. Both come out of one decoding pass with the motion profile.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import cv2
import numpy as np

from ..io import sha256_file
from ..media.video import VideoError, open_video
from .signatures import PHASES, SCALES, SecondHashes, assemble, frame_codes, instants

NEAR_DUP_BITS = 10  # of 64; re-encoding/resizing flips a few bits, different content ~32
SIGNATURE_FRAMES = 4
MAX_FPS = 1000.0


@dataclass(frozen=True)
class VideoInfo:
    """What inspecting one file found: its facts and signature, or why it is quarantined."""

    path: str
    ok: bool
    reason: str = ""
    num_frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ""
    bytes: int = 0
    sha256: str = ""
    signature: tuple[int, ...] = ()
    motion: tuple[float, ...] = field(default=(), repr=False)  # per second, mean |frame difference|
    seconds: SecondHashes = field(default_factory=SecondHashes.empty, repr=False, compare=False)


def dct_hash(frame: np.ndarray) -> int:
    """64-bit perceptual hash: 8x8 low frequencies of the 32x32 grey image's DCT vs their median."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA)
    d = cv2.dct(g)[:8, :8].flatten()
    bits = d > np.median(d[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


SCAN_CHUNK = 64  # frames decoded per batch: bounds memory on long high-resolution videos


def _grey32(frame: np.ndarray) -> np.ndarray:
    return cv2.resize(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA)


def scan(vr, motion_step: int, held_out: bool = False) -> tuple[SecondHashes, tuple[float, ...]]:
    """One decoding pass over what curation needs per second: the codes of the frame at each whole
    second (:mod:`.signatures`; a held-out video at ``PHASES`` instants per second and every scale of
    ``SCALES``) and, if ``motion_step`` > 0, the motion profile: mean absolute difference (grey, 32x32,
    0-255) between frame t and t + motion_step, t one per ``round(fps)`` frames. Frames are decoded in
    sorted batches of ``SCAN_CHUNK``."""
    n, fps = len(vr), vr.fps
    grid = instants(n, fps, PHASES if held_out else 1)  # (P, T) frame indices, -1 past the end
    scales = SCALES if held_out else (1.0,)
    starts = np.arange(0, n - motion_step, max(int(round(fps)), 1)) if motion_step > 0 else np.zeros(0, np.int64)
    pairs = np.stack([starts, starts + motion_step], axis=1).reshape(-1)
    sec = grid[grid >= 0]
    wanted = np.unique(np.concatenate([sec, pairs]).astype(np.int64))
    codes: dict[int, tuple[np.ndarray, np.ndarray, bool]] = {}
    grey: dict[int, np.ndarray] = {}
    sec_set, pair_set = set(sec.tolist()), set(pairs.tolist())
    for lo in range(0, len(wanted), SCAN_CHUNK):
        idx = wanted[lo : lo + SCAN_CHUNK]
        for i, f in zip(idx.tolist(), vr.get_frames(idx)):
            if i in sec_set:
                codes[i] = frame_codes(f, scales)
            if i in pair_set:
                grey[i] = _grey32(f)
    seconds = assemble(grid, codes, len(scales))
    if not len(starts):
        return seconds, ()
    a = np.stack([grey[i] for i in starts.tolist()]).astype(np.float32)
    b = np.stack([grey[i + motion_step] for i in starts.tolist()]).astype(np.float32)
    return seconds, tuple(float(x) for x in np.abs(b - a).mean(axis=(1, 2)).round(4))


MAX_DURATION_S = 48 * 3600.0  # no surgical recording lasts two days: such metadata is corrupt


def container_check(path: str) -> tuple[str, str]:
    """(codec, problem) from the container, read with PyAV: specific reasons decord cannot give."""
    import av

    try:
        with av.open(path) as c:
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams}) or ["no streams"]
                return "", f"no video stream (container holds: {', '.join(kinds)})"
            return c.streams.video[0].codec_context.name, ""
    except (av.error.FFmpegError, OSError, ValueError) as err:
        return "", f"not a readable video container ({getattr(err, 'strerror', None) or err})"


def _folder_bytes(path: str) -> int:
    from ..media.frames import list_frames

    return sum(p.stat().st_size for p in list_frames(path))


def inspect_video(path: str, motion_step: int = 0, fps: float | None = None, held_out: bool = False) -> VideoInfo:
    """Inspect one file, or one folder of frames when ``fps`` is given (``kind: frames`` sources: the
    images, sorted by name, are the frames at ``fps``). ``held_out``: a benchmark's val/test video, hashed
    finely enough to recognise edited copies of it (:func:`scan`). Any failure becomes
    ``VideoInfo(ok=False, reason=...)``, never an exception."""
    try:
        if fps is not None:
            if not os.path.isdir(path):
                return VideoInfo(path, False, "not a folder of frames")
            size, codec = _folder_bytes(path), "frames"
        elif not os.path.isfile(path):
            return VideoInfo(path, False, "not a regular file (pipe, socket or device)")
        else:
            size = os.path.getsize(path)
            if size == 0:
                return VideoInfo(path, False, "empty file (0 bytes)", bytes=0)
            codec, problem = container_check(path)
            if problem:
                return VideoInfo(path, False, problem, bytes=size)
        vr = open_video(path, fps=fps or 1.0)
        meta = vr.meta
        if meta.num_frames <= 0:
            return VideoInfo(path, False, "no decodable frames", bytes=size)
        if not (1.0 <= meta.fps <= MAX_FPS):
            return VideoInfo(path, False, f"implausible frame rate {meta.fps:g}", bytes=size)
        if meta.duration_s > MAX_DURATION_S:
            return VideoInfo(path, False, f"implausible duration {meta.duration_s / 3600:.0f} h", bytes=size)
        if meta.width < 16 or meta.height < 16:
            return VideoInfo(path, False, f"implausible size {meta.width}x{meta.height}", bytes=size)
        # the last frame too: a file truncated mid-stream fails here, not in the training loop
        idx = np.r_[np.linspace(0.1, 0.9, SIGNATURE_FRAMES) * (meta.num_frames - 1), meta.num_frames - 1]
        frames = vr.get_frames(idx.round().astype(np.int64))
        sig = tuple(dct_hash(f) for f in frames[:SIGNATURE_FRAMES])
        seconds, motion = scan(vr, motion_step, held_out)
        return VideoInfo(
            path,
            True,
            "",
            meta.num_frames,
            meta.fps,
            meta.width,
            meta.height,
            codec,
            size,
            sha256_file(path) if fps is None else folder_digest(vr.frames),
            sig,
            motion,
            seconds,
        )
    except VideoError as err:
        return VideoInfo(path, False, f"unreadable video: {err}", bytes=_size(path))
    except OSError as err:
        return VideoInfo(path, False, f"cannot read file ({err.strerror or err})", bytes=_size(path))


def folder_digest(frames: list) -> str:
    """sha256 over a frame folder: each image's name and content digest, in frame order (a renamed
    or re-ordered folder is a different video; identical folders anywhere are exact duplicates)."""
    import hashlib

    h = hashlib.sha256()
    for p in frames:
        h.update(f"{p.name}\0{sha256_file(p)}\n".encode())
    return h.hexdigest()


def _size(path: str) -> int:
    try:
        return _folder_bytes(path) if os.path.isdir(path) else os.path.getsize(path)
    except (OSError, VideoError):
        return 0


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def near_duplicate(sa: tuple[int, ...], sb: tuple[int, ...], bits: int = NEAR_DUP_BITS) -> bool:
    return len(sa) == len(sb) > 0 and all(hamming(x, y) <= bits for x, y in zip(sa, sb))
