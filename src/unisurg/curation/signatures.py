"""Per-second perceptual signatures of a video: what lets curation recognise an edited copy.

Public pretraining collections re-host benchmark videos trimmed, with black borders removed,
cropped, re-encoded, re-timed or as extracted 1-fps frames. A signature of a few frames at fixed
fractions of a file survives none of the first three. Here every second ``k`` of a video (the frame
shown at ``t = k`` s: the frame a 1-fps export holds) gets three codes, all computed after the
black borders are cut away (the bounding box of rows and columns brighter than ``BLACK``):

- ``hash``: 64-bit DCT hash (:func:`~unisurg.curation.inspection.dct_hash`) of the border-free frame;
- ``crop``: the same hash of its central ``CENTRE`` fraction (what survives an edge crop, a burnt-in
  time stamp or a logo in a corner);
- ``code``: 15 bits, the signs of the 4x4 lowest DCT frequencies against their median: coarse enough
  that a re-encode, an 85 % crop or a half-second shift often leaves it intact, so that the candidate
  search of :mod:`.matching` can look copies up by exact keys.

A second whose frame is (nearly) uniform (a black or white screen: the same in every video) is
marked invalid; it never makes two videos match.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

BLACK = 20.0  # grey level (0-255): a row/column whose mean is darker is letterbox/endoscope border
CENTRE = 0.6  # fraction of the border-free frame kept by the centre crop (per side)
MIN_STD = 3.0  # grey-level std (32x32) below which a frame is uniform and carries no identity
CODE_BITS = 15


@dataclass(frozen=True)
class SecondHashes:
    """Codes of seconds 0..n-1 of one video: (n,) arrays; ``valid`` False for uniform frames."""

    hash: np.ndarray  # (n,) uint64
    crop: np.ndarray  # (n,) uint64
    code: np.ndarray  # (n,) uint16
    valid: np.ndarray  # (n,) bool

    def __len__(self) -> int:
        return len(self.hash)

    @classmethod
    def empty(cls) -> SecondHashes:
        return cls(np.zeros(0, np.uint64), np.zeros(0, np.uint64), np.zeros(0, np.uint16), np.zeros(0, bool))

    @classmethod
    def stack(cls, rows: list[tuple[int, int, int, bool]]) -> SecondHashes:
        if not rows:
            return cls.empty()
        h, c, k, v = zip(*rows)
        return cls(np.array(h, np.uint64), np.array(c, np.uint64), np.array(k, np.uint16), np.array(v, bool))


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


def _dct32(grey: np.ndarray) -> np.ndarray:
    return cv2.dct(cv2.resize(grey, (32, 32), interpolation=cv2.INTER_AREA))


def _bits(values: np.ndarray, ref: float) -> int:
    return int(sum(1 << i for i, b in enumerate(values > ref) if b))


def second_codes(frame: np.ndarray) -> tuple[int, int, int, bool]:
    """(hash, crop, code, valid) of one RGB frame (H, W, 3) uint8."""
    grey = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    t, b, l, r = border_box(grey)
    inner = grey[t:b, l:r]
    d = _dct32(inner)
    small = cv2.resize(inner, (32, 32), interpolation=cv2.INTER_AREA)
    low = d[:8, :8].flatten()
    full = _bits(low, float(np.median(low[1:])))
    ac = d[:4, :4].flatten()[1:]  # 15 lowest frequencies without the mean (DC)
    code = _bits(ac, float(np.median(ac)))
    ih, iw = inner.shape
    mh, mw = int(round(ih * (1 - CENTRE) / 2)), int(round(iw * (1 - CENTRE) / 2))
    dc = _dct32(inner[mh : ih - mh, mw : iw - mw])[:8, :8].flatten()
    crop = _bits(dc, float(np.median(dc[1:])))
    return full, crop, code, bool(small.std() >= MIN_STD)


def second_frames(num_frames: int, fps: float) -> np.ndarray:
    """Index of the frame shown at each whole second ``t = 0, 1, ...`` -> (n_seconds,) int64."""
    if num_frames <= 0 or fps <= 0:
        return np.zeros(0, np.int64)
    seconds = np.arange(int(np.floor((num_frames - 1) / fps + 1e-9)) + 1)
    return np.minimum(np.round(seconds * fps).astype(np.int64), num_frames - 1)
