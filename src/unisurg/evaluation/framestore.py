"""Frames decoded once per record: a file of uint8 rows under the cache, read back by positioned reads.

A probe sample's clip is a window of frames (:mod:`.windows`); windows of neighbouring labelled
seconds share all but one frame (64 of 64 under the paper's protocol), so decoding each window
afresh decodes every frame ~64 times. Instead every record's source (a video, an image sequence,
an image) is decoded once, in order, at the frames some window needs (:meth:`WindowPlan.needed`),
resized to the protocol's storage geometry, and written as rows ``(n, H, W, 3)`` uint8 to
``<cache>/frames/<key>.u8`` with a JSON sidecar (``<key>.json``, written last: the entry is whole
when it exists). The key hashes the source files (paths, sizes, modification times, a video's first
and last MiB), the frames, the geometry and the decoder, so a regenerated file or other settings never
reuse an entry.

Reads use ``os.pread`` on the file, not a memory map: mapped pages count towards a process's
resident memory until the kernel needs them back, which would make a long evaluation look like it
grows; positioned reads leave the pages to the kernel's page cache.

Bad input never ends a run: a video that stops decoding part-way keeps the rows decoded before the
failure, and the rows after it are recorded as missing with the decoder's reason; an unreadable
image is one missing row. Windows that need a missing row are skipped by the harness, which says
why in the log and counts them in the results. Every chunk of rows carries a CRC-32: an entry
whose file is truncated, resized or altered (a full disk, a partial copy, bit rot) fails
:meth:`FrameStore.open`'s check, is logged and rebuilt.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import zlib
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..benchmarks import FramesSource, ImageSource, Record
from ..io import atomic_path, atomic_write_text
from ..media.decoders import PyAVReader
from ..media.video import VideoError, VideoReader, open_video

log = logging.getLogger(__name__)

STORE_VERSION = 1
CHUNK = 64  # rows decoded per call and covered by one checksum
STAMP_BYTES = 2**20  # a video's first and last MiB are part of its stamp


@dataclass(frozen=True)
class Geometry:
    """How a store keeps frames: ``width`` pixels wide and ``height`` high, or, with ``height`` None,
    the source's aspect ratio at that width (the authors' ``ffmpeg -vf scale=512:-1``)."""

    width: int
    height: int | None = None

    def shape(self, h: int, w: int) -> tuple[int, int]:
        return (self.height or max(1, int(round(self.width * h / w))), self.width)

    def fit(self, frame: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
        """uint8 (h, w, 3) -> (H, W, 3), area interpolation (no-op at the right size)."""
        if frame.shape[:2] == shape:
            return frame
        return cv2.resize(frame, (shape[1], shape[0]), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class StoreMeta:
    """The sidecar of an entry: the native frames its rows hold and what went wrong, if anything."""

    key: str
    frames: list[int]  # native frame of every row, sorted
    shape: tuple[int, int]  # (H, W) of every row
    missing: list[tuple[int, int]]  # [start, stop) row ranges that could not be decoded (zeros in the file)
    error: str | None  # the decoder's reason for the first missing row
    crc: list[int]  # CRC-32 of every CHUNK rows of the file
    decoded: int  # frames the reader returned while building (the redundancy check counts them)
    version: int = STORE_VERSION


def source_stamp(source) -> str:
    """What a source's pixels are: every file's path, size and modification time, and for a video also a
    hash of its first and last MiB (a replaced or partly copied file with the same name, size and time is
    another entry); image sequences are stamped by their files' sizes and times only (thousands of files)."""
    paths = source.paths if isinstance(source, FramesSource) else (source.path,)
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append(f"{p}|{st.st_size}|{st.st_mtime_ns}")
    if not isinstance(source, FramesSource | ImageSource):
        h = hashlib.sha256()
        with open(source.path, "rb") as fh:
            h.update(fh.read(STAMP_BYTES))
            fh.seek(max(os.fstat(fh.fileno()).st_size - STAMP_BYTES, 0))
            h.update(fh.read(STAMP_BYTES))
        parts.append(h.hexdigest())
    return "\n".join(parts)


def store_key(record: Record, frames: np.ndarray, geometry: Geometry, decoder: str) -> str:
    """What an entry depends on: the source (:func:`source_stamp`), the frames, geometry and decoder."""
    h = hashlib.sha256()
    h.update(json.dumps([STORE_VERSION, dataclasses.asdict(geometry), decoder]).encode())
    h.update(source_stamp(record.source).encode())
    h.update(np.ascontiguousarray(frames, np.int64).tobytes())
    return h.hexdigest()


class FrameStore:
    """One record's decoded frames (module docstring); rows are read by native frame."""

    def __init__(self, path: Path, meta: StoreMeta) -> None:
        self.path, self.meta = path, meta
        self.frames = np.asarray(meta.frames, np.int64)
        self.row_bytes = meta.shape[0] * meta.shape[1] * 3
        self.ok = np.ones(len(self.frames), bool)
        for a, b in meta.missing:
            self.ok[a:b] = False
        self._fd: int | None = None
        self._pid = -1

    @classmethod
    def load(cls, directory: Path, key: str) -> FrameStore:
        """The entry ``key`` as its sidecar describes it, unchecked (:meth:`open` checks)."""
        meta = StoreMeta(**json.loads((directory / f"{key[:40]}.json").read_text()))
        meta = dataclasses.replace(meta, shape=tuple(meta.shape), missing=[tuple(m) for m in meta.missing])
        return cls(directory / f"{key[:40]}.u8", meta)

    @classmethod
    def open(cls, directory: Path, key: str) -> FrameStore | None:
        """The entry ``key`` if it is whole and its checksums hold; None (logged) if absent or damaged."""
        data = directory / f"{key[:40]}.u8"
        if not (directory / f"{key[:40]}.json").exists():
            return None
        try:
            store = cls.load(directory, key)
            problem = store._check(key)
        except (OSError, ValueError, TypeError) as err:
            problem = f"unreadable sidecar ({err})"
        if problem is None:
            return store
        log.warning("frame store %s is damaged (%s): rebuilding it", data, problem)
        return None

    def _check(self, key: str) -> str | None:
        if self.meta.key != key or self.meta.version != STORE_VERSION:
            return "written for other settings"
        size = self.path.stat().st_size
        if size != len(self.frames) * self.row_bytes:
            return f"{size} bytes where {len(self.frames)} rows take {len(self.frames) * self.row_bytes}"
        with open(self.path, "rb") as fh:
            for k, want in enumerate(self.meta.crc):
                if zlib.crc32(fh.read(CHUNK * self.row_bytes)) != want:
                    return f"checksum of rows {k * CHUNK}..{(k + 1) * CHUNK - 1} differs"
        return None

    def rows(self, frames: np.ndarray) -> np.ndarray:
        """Row of every native frame in ``frames`` (each must be one the store was built for)."""
        pos = np.searchsorted(self.frames, frames)
        if (pos >= len(self.frames)).any() or (self.frames[np.minimum(pos, len(self.frames) - 1)] != frames).any():
            raise KeyError(
                f"{self.path}: frames {sorted(set(frames.tolist()) - set(self.frames.tolist()))[:5]} not stored"
            )
        return pos

    def usable(self, frames: np.ndarray) -> bool:
        return bool(self.ok[self.rows(frames)].all())

    def read(self, frames: np.ndarray) -> np.ndarray:
        """uint8 (len(frames), H, W, 3) of native ``frames``, in the order given."""
        if self._fd is None or self._pid != os.getpid():  # a DataLoader worker opens its own descriptor
            self._fd, self._pid = os.open(self.path, os.O_RDONLY), os.getpid()
        rows = self.rows(np.asarray(frames, np.int64))
        out = np.empty((len(rows), *self.meta.shape, 3), np.uint8)
        flat = out.reshape(len(rows), -1)
        start = 0
        while start < len(rows):  # one read per run of consecutive rows
            stop = start + 1
            while stop < len(rows) and rows[stop] == rows[stop - 1] + 1:
                stop += 1
            buf = os.pread(self._fd, (stop - start) * self.row_bytes, int(rows[start]) * self.row_bytes)
            flat[start:stop] = np.frombuffer(buf, np.uint8).reshape(stop - start, -1)
            start = stop
        return out

    def close(self) -> None:
        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)
        self._fd = None

    def __getstate__(self) -> dict:  # sent to DataLoader workers without the parent's descriptor
        return {**self.__dict__, "_fd": None, "_pid": -1}


def _read_image(path: str) -> np.ndarray:
    img = cv2.imread(path, cv2.IMREAD_COLOR)
    if img is None:
        raise VideoError(f"{path}: cannot read image")
    return img[..., ::-1]


class _Decoder:
    """Decodes the wanted native frames of one source, chunk by chunk. An image that cannot be read
    is one missing frame; a video is not read past the first frame that does not decode."""

    def __init__(self, record: Record, decoder: str) -> None:
        self.src, self.decoder = record.source, decoder
        self.decoded = 0  # frames the reader returned
        self.error: str | None = None  # the first reason a frame is missing
        self._vr = None
        self._dead = False

    def _fail(self, why: str) -> None:
        self.error = self.error or why

    def chunk(self, frames: np.ndarray) -> list[np.ndarray | None]:
        """Each of ``frames`` decoded (RGB uint8), or None where it could not be."""
        if isinstance(self.src, ImageSource | FramesSource):
            out: list[np.ndarray | None] = []
            for k in frames:
                try:
                    out.append(
                        _read_image(self.src.path if isinstance(self.src, ImageSource) else self.src.paths[int(k)])
                    )
                    self.decoded += 1
                except VideoError as err:
                    self._fail(str(err))
                    out.append(None)
            return out
        if self._dead:
            return [None] * len(frames)
        try:
            if self._vr is None:
                self._vr = open_video(self.src.path, decoder=self.decoder)
            if isinstance(self._vr, PyAVReader):
                got_by, why = self._vr.until_error(frames)
            else:
                # decord's own PyAV fallback decodes from the start at every call: decode on with ours instead
                kw = {"fallback": False} if isinstance(self._vr, VideoReader) else {}
                got = list(self._vr.get_frames(frames, strict=True, **kw))
                self.decoded += len(got)
                return got
        except VideoError as err:
            if self._vr is None:  # the file does not even open
                self._fail(str(err))
                self._dead = True
                return [None] * len(frames)
            # decoding failed within this chunk: PyAV decodes forward to the failure, keeping what came before
            try:
                self._vr = PyAVReader(self.src.path)
                got_by, why = self._vr.until_error(frames)
            except VideoError as again:
                got_by, why = {}, f"{err}; {again}"
        self.decoded += len(got_by)
        if why is not None:
            self._fail(why)
            self._dead = True
        return [got_by.get(int(k)) for k in frames]


def build_store(
    record: Record, frames: np.ndarray, geometry: Geometry, directory: Path, key: str, decoder: str
) -> StoreMeta:
    """Decode ``frames`` (sorted native indices) of ``record`` into the entry ``key`` (module docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    dec = _Decoder(record, decoder)
    shape, crc, missing, pending = None, [], [], []  # pending: chunks that decoded nothing before the first frame

    def write(fh, got: list[np.ndarray | None], start: int) -> None:
        rows = np.zeros((len(got), *shape, 3), np.uint8)
        for j, f in enumerate(got):
            if f is None:
                missing.append((start + j, start + j + 1))
            else:
                rows[j] = geometry.fit(f, shape)
        fh.write(rows.tobytes())
        crc.append(zlib.crc32(rows.tobytes()))

    with atomic_path(directory / f"{key[:40]}.u8") as tmp, open(tmp, "wb") as fh:
        for start in range(0, len(frames), CHUNK):
            got = dec.chunk(frames[start : start + CHUNK])
            first = next((f for f in got if f is not None), None)
            if shape is None and first is None and start + CHUNK < len(frames):
                pending.append((start, got))  # the row size is known from the first decoded frame
                continue
            if shape is None:  # (a square of the storage width if no frame ever decodes)
                shape = geometry.shape(*first.shape[:2]) if first is not None else geometry.shape(1, 1)
                for p_start, p_got in pending:
                    write(fh, p_got, p_start)
            write(fh, got, start)
    meta = StoreMeta(key, frames.tolist(), tuple(shape), _merge(missing), dec.error, crc, dec.decoded)
    atomic_write_text(directory / f"{key[:40]}.json", json.dumps(dataclasses.asdict(meta)))
    return meta


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(b, out[-1][1]))
        else:
            out.append((a, b))
    return out
