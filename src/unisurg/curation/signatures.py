"""Per-second perceptual signatures of a video: what lets curation recognise an edited copy.

Public pretraining collections re-host benchmark videos trimmed, with black borders removed,
cropped, re-encoded, re-timed or as extracted 1-fps frames. A signature of a few frames at fixed
fractions of a file survives none of the first three. Here the frame shown at each whole second
``t = k`` s (the frame a 1-fps export holds) is hashed after its black borders are cut away (the
bounding box of rows and columns brighter than ``BLACK``):

- ``hash`` (S,): a 63-bit DCT hash (the 8x8 lowest frequencies of the 32x32 grey image but the mean,
  each against their median) of the border-free frame's central crop at each of ``SCALES``. Scale 1.0
  is the whole border-free frame; the smaller ones are what a cropped copy shows: an 85 % centre crop
  resized back *is* the original's central 85 %, so a copy matches at one scale instead of being
  15 % off at every one (measured: a global hash cannot absorb a 15 % zoom, see reports/perf.md);
- ``code`` (S,): 15 bits, the 4x4 lowest frequencies but the mean against their median: coarse enough
  that a copy often leaves it intact, the exact key of the candidate search (:mod:`.matching`).

Held-out videos (those copies are searched *of*) are hashed at ``PHASES`` instants per second
(``t = k + p / PHASES``): a copy trimmed at a fractional second shows its seconds a fraction of a
second off the original's, and a quarter-second grid leaves at most 1/8 s. Every other video is hashed
once per second at scale 1.0 only. A second whose frame is (nearly) uniform (a black screen: the same in
every video) is marked invalid; it never makes two videos match.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLACK = 20.0  # grey level (0-255): a row/column whose mean is darker is letterbox/endoscope border
SCALES = (1.0, 0.92, 0.85, 0.78, 0.7)  # central crops of the border-free frame hashed for held-out videos
PHASES = 4  # instants per second hashed for held-out videos
MIN_STD = 3.0  # grey-level std (32x32) below which a frame is uniform and carries no identity
HASH_BITS = 63
CODE_BITS = 15


@dataclass(frozen=True)
class SecondHashes:
    """The codes of one video: ``hash``/``code`` (P, T, S) at phases x seconds x scales, ``valid`` (P, T).

    P = S = 1 for a video hashed once per second at scale 1.0; a held-out video has P = ``PHASES``,
    S = ``len(SCALES)``. Phase p of second t is the frame at ``t + p / P`` seconds (invalid past the end).
    """

    hash: np.ndarray  # (P, T, S) uint64
    code: np.ndarray  # (P, T, S) uint16
    valid: np.ndarray  # (P, T) bool

    @property
    def seconds(self) -> int:
        return self.hash.shape[1]

    def __len__(self) -> int:
        return self.seconds

    @classmethod
    def empty(cls) -> SecondHashes:
        return cls(np.zeros((1, 0, 1), np.uint64), np.zeros((1, 0, 1), np.uint16), np.zeros((1, 0), bool))

    def whole_seconds(self) -> SecondHashes:
        """Phase 0 at scale 1.0: what a video hashed once per second holds."""
        return SecondHashes(self.hash[:1, :, :1], self.code[:1, :, :1], self.valid[:1])


def border_box(grey: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right) of the part of ``grey`` (H, W) inside its dark borders: the first and
    last rows/columns whose mean is brighter than ``BLACK``. The whole frame when that box would be
    implausibly small (a dark scene, not a border)."""
    h, w = grey.shape
    rows = np.flatnonzero(grey.mean(axis=1) > BLACK)
    cols = np.flatnonzero(grey.mean(axis=0) > BLACK)
    if len(rows) < h // 4 or len(cols) < w // 4:
        return 0, h, 0, w
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def _pack(bits: np.ndarray) -> int:
    return int(np.sum(bits.astype(np.uint64) << np.arange(len(bits), dtype=np.uint64)))


def frame_codes(frame: np.ndarray, scales: tuple[float, ...] = (1.0,)) -> tuple[np.ndarray, np.ndarray, bool]:
    """One RGB frame (H, W, 3) uint8 -> (hash (S,) uint64, code (S,) uint16, valid)."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    top, bottom, left, right = border_box(grey)
    inner = grey[top:bottom, left:right]
    ih, iw = inner.shape
    hashes, codes = [], []
    for s in scales:
        mh, mw = int(round(ih * (1 - s) / 2)), int(round(iw * (1 - s) / 2))
        small = cv2.resize(inner[mh : ih - mh, mw : iw - mw], (32, 32), interpolation=cv2.INTER_AREA)
        d = cv2.dct(small)
        ac = d[:8, :8].flatten()[1:]  # (63,) without the mean
        hashes.append(_pack(ac > np.median(ac)))
        low = d[:4, :4].flatten()[1:]  # (15,)
        codes.append(_pack(low > np.median(low)))
        if s == scales[0]:
            valid = bool(small.std() >= MIN_STD)
    return np.array(hashes, np.uint64), np.array(codes, np.uint16), valid


def instants(num_frames: int, fps: float, phases: int = 1) -> np.ndarray:
    """Frame index shown at ``t = k + p / phases`` -> (phases, seconds) int64; -1 past the last frame."""
    if num_frames <= 0 or fps <= 0:
        return np.zeros((phases, 0), np.int64)
    n_sec = int(np.floor((num_frames - 1) / fps + 1e-9)) + 1
    t = np.arange(n_sec)[None, :] + np.arange(phases)[:, None] / phases
    idx = np.round(t * fps).astype(np.int64)
    return np.where(idx <= num_frames - 1, idx, -1)


def assemble(idx: np.ndarray, codes: dict[int, tuple[np.ndarray, np.ndarray, bool]], scales: int) -> SecondHashes:
    """SecondHashes from the frame index grid of :func:`instants` and each decoded frame's codes."""
    p, t = idx.shape
    h = np.zeros((p, t, scales), np.uint64)
    c = np.zeros((p, t, scales), np.uint16)
    v = np.zeros((p, t), bool)
    for (i, j), f in np.ndenumerate(idx):
        if f >= 0:
            h[i, j], c[i, j], v[i, j] = codes[int(f)]
    return SecondHashes(h, c, v)
