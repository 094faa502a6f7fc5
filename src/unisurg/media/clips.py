"""Clip loading for pretraining and distillation: decode, resize, normalise; resumable sampling.

A clip is a row of the curated clip table (``clips.parquet``): ``path``, ``start_frame``,
``frame_step``, ``num_frames``. Batches are drawn by :class:`StepBatchSampler` as a pure
function of (seed, step), weighted by the table's ``weight`` column, so a run resumed at
step k sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
import pyarrow.parquet as pq
import torch
from torch.utils.data import Dataset

from .motion import camera_flow, field_saliency
from .video import VideoError, open_video

log = logging.getLogger(__name__)

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)


# x_norm = (x / 255 - mean) / std = x * SCALE - SHIFT, per channel, as (3, 1, 1, 1) tensors
_SCALE = torch.from_numpy(1.0 / (255.0 * IMAGENET_STD)).view(3, 1, 1, 1)
_SHIFT = torch.from_numpy(IMAGENET_MEAN / IMAGENET_STD).view(3, 1, 1, 1)
_SCALE_NP, _SHIFT_NP = _SCALE.numpy(), _SHIFT.numpy()


def resize_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 (T, H, W, 3) -> (T, size, size, 3), area interpolation (no-op at the right size)."""
    if frames.shape[1] != size or frames.shape[2] != size:
        frames = np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
    return frames


def to_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) RGB -> normalised float (3, T, size, size) (ImageNet mean/std)."""
    frames = resize_frames(frames, size)
    # In NumPy, not torch: called per clip between decodes, a torch op wakes torch's OpenMP pool each
    # time (~2 ms per op while the decoder's threads run, ~10 % of an evaluation on 2 cores). The
    # same float32 operations in the same order: bit-identical to x.float().mul_(SCALE).sub_(SHIFT).
    x = np.empty((3, *frames.shape[:3]), dtype=np.float32)
    np.copyto(x, frames.transpose(3, 0, 1, 2))  # one pass: channel-first and float (exact for uint8)
    x *= _SCALE_NP
    x -= _SHIFT_NP
    return torch.from_numpy(x)


def to_uint8_tensor(frames: np.ndarray, size: int) -> torch.Tensor:
    """uint8 (T, H, W, 3) RGB -> uint8 (3, T, size, size): what the training loaders ship (4x fewer
    bytes through DataLoader queues and host-to-device copies than float32)."""
    return torch.from_numpy(resize_frames(frames, size)).permute(3, 0, 1, 2).contiguous()


def normalize_batch(x: torch.Tensor) -> torch.Tensor:
    """uint8 (B, 3, T, H, W) on any device -> normalised float32 (ImageNet mean/std), on that device."""
    scale, shift = _SCALE.to(x.device), _SHIFT.to(x.device)
    return x.float().mul_(scale).sub_(shift)


@dataclass(frozen=True)
class Augment:
    """V-JEPA's pretraining augmentation of a clip: one random resized crop for all its frames
    (area fraction in ``scale``, aspect ratio w/h log-uniform in ``aspect_ratio``, as torchvision's
    ``RandomResizedCrop`` and vjepa2's video transforms), resized to the clip size, then a
    horizontal flip with probability 1/2. Every draw comes from ``seed`` and the sample's key
    (step, slot in the global batch): a resumed or multi-process run sees the same crops."""

    seed: int
    scale: tuple[float, float] = (0.3, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.35)
    crop: bool = True
    flip: bool = True

    def box(self, rng: np.random.Generator, height: int, width: int) -> tuple[int, int, int, int]:
        """(top, left, h, w) of the crop in a (height, width) frame."""
        area = height * width
        lo, hi = math.log(self.aspect_ratio[0]), math.log(self.aspect_ratio[1])
        for _ in range(10):
            target = area * rng.uniform(*self.scale)
            ar = math.exp(rng.uniform(lo, hi))
            w, h = round(math.sqrt(target * ar)), round(math.sqrt(target / ar))
            if 0 < w <= width and 0 < h <= height:
                return int(rng.integers(0, height - h + 1)), int(rng.integers(0, width - w + 1)), h, w
        # the ranges do not fit this frame: the largest centred crop within the aspect range
        ar = min(max(width / height, self.aspect_ratio[0]), self.aspect_ratio[1])
        w, h = (round(height * ar), height) if width / height > ar else (width, round(width / ar))
        return (height - h) // 2, (width - w) // 2, h, w

    def draw(self, height: int, width: int, step: int, slot: int) -> tuple[tuple[int, int, int, int] | None, bool]:
        """The view of sample (step, slot) in a (height, width) clip -> (crop box or None, flip)."""
        rng = np.random.default_rng((self.seed, step, slot))
        box = self.box(rng, height, width) if self.crop else None
        return box, bool(self.flip and rng.random() < 0.5)

    @staticmethod
    def apply(frames: np.ndarray, size: int, box: tuple[int, int, int, int] | None, flip: bool) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3): crop ``box`` (or all), resize, mirror if ``flip``."""
        if box is not None:
            top, left, h, w = box
            frames = frames[:, top : top + h, left : left + w]
            interp = cv2.INTER_AREA if h >= size and w >= size else cv2.INTER_LINEAR
            frames = np.stack([cv2.resize(np.ascontiguousarray(f), (size, size), interpolation=interp) for f in frames])
        else:
            frames = resize_frames(frames, size)
        if flip:
            frames = np.ascontiguousarray(frames[:, :, ::-1])
        return frames

    def __call__(self, frames: np.ndarray, size: int, step: int, slot: int) -> np.ndarray:
        """uint8 (T, H, W, 3) -> uint8 (T, size, size, 3), augmented."""
        return self.apply(frames, size, *self.draw(frames.shape[1], frames.shape[2], step, slot))


class ClipTable(Dataset):
    """Clips of the curated index -> {"clip": uint8 (3, T, S, S)} (+ "motion": (N,) flow saliency).

    Clips stay uint8 until :func:`normalize_batch` on the training device. An item is a row
    number, or (row, step, slot) from a keyed :class:`StepBatchSampler`: with ``augment``, the
    key seeds that sample's augmentation (motion saliency is that of the augmented view); a bare
    row number is never augmented (probes, timing batches).

    The optical flow behind the saliency is computed once per clip (:func:`camera_flow`, on the
    whole un-augmented clip) and kept, up to ``flow_cache_mb`` per loader process; each draw of the
    clip then only resamples it to its view. A kept field and a recomputed one are the same array, so
    what the cache holds never changes a result (resumed runs, any number of workers).

    Unreadable clips are replaced by the next readable one (logged), never fatal.
    """

    COLUMNS = ("clip_id", "path", "start_frame", "frame_step", "num_frames", "weight")

    def __init__(
        self,
        parquet_path: str,
        frames: int,
        size: int,
        flow: tuple[int, int] | None = None,
        augment: Augment | None = None,
        flow_cache_mb: float = 0.0,
    ) -> None:
        """``flow`` = (tubelet, patch): also return camera-compensated optical-flow saliency per tubelet."""
        table = pq.read_table(parquet_path, columns=list(self.COLUMNS))
        cols = table.to_pydict()
        self.paths = cols["path"]
        self.start = np.asarray(cols["start_frame"], np.int64)
        self.step = np.asarray(cols["frame_step"], np.int64)
        self.weight = np.asarray(cols["weight"], np.float64)
        self.frames, self.size, self.flow, self.augment = frames, size, flow, augment
        self.flow_cache_bytes = int(flow_cache_mb * 2**20)
        self._fields: dict[int, np.ndarray] = {}  # row -> camera_flow of the clip (this process's)
        self._field_bytes = 0
        self.flow_computed = 0  # fields computed by this process (cache misses)
        if not len(self.paths):
            raise ValueError(f"{parquet_path}: the clip table is empty")

    def __len__(self) -> int:
        return len(self.paths)

    def decode(self, i: int) -> np.ndarray:
        idx = self.start[i] + np.arange(self.frames) * self.step[i]
        return open_video(self.paths[i]).get_frames(idx)

    def field(self, i: int, frames: np.ndarray) -> np.ndarray:
        """The camera flow of clip ``i`` (decoded ``frames``), from the cache or computed and kept if it fits."""
        f = self._fields.get(i)
        if f is None:
            f = camera_flow(frames, self.size)
            self.flow_computed += 1
            if self._field_bytes + f.nbytes <= self.flow_cache_bytes:
                self._fields[i] = f
                self._field_bytes += f.nbytes
        return f

    def __getitem__(self, item: int | tuple[int, int, int]) -> dict[str, torch.Tensor]:
        i, key = (item[0], item[1:]) if isinstance(item, tuple) else (item, None)
        for k in range(len(self)):
            j = (i + k) % len(self)
            try:
                frames = self.decode(j)
            except VideoError as err:
                log.warning("skipping unreadable clip %d: %s", j, err)
                continue
            height, width = frames.shape[1:3]
            box, flip = None, False
            if self.augment is not None and key is not None:
                box, flip = self.augment.draw(height, width, *key)
            view_frames = Augment.apply(frames, self.size, box, flip) if box is not None or flip else frames
            out = {"clip": to_uint8_tensor(view_frames, self.size)}
            if self.flow is not None:
                view = None
                if box is not None:  # the crop in pixels of the field's size x size grid over the frame
                    top, left, h, w = box
                    sy, sx = self.size / height, self.size / width
                    view = (top * sy, left * sx, h * sy, w * sx)
                m = field_saliency(self.field(j, frames), self.flow[0], self.flow[1], self.size, view, flip)
                out["motion"] = torch.from_numpy(m)
            return out
        raise RuntimeError("no readable clip in the table")


class StepBatchSampler:
    """Yields the index batches of steps [start, total): batch k = f(seed, k), weighted by ``weights``.

    With ``world`` > 1 each process yields its contiguous slice of the global batch, so the
    union over processes is exactly the single-process batch. ``keyed``: yield (index, step, slot)
    items, slot = the sample's place in the global batch, so that :class:`ClipTable` can seed the
    sample's augmentation.
    """

    def __init__(
        self,
        weights: np.ndarray,
        batch_size: int,
        seed: int,
        start: int,
        total: int,
        rank: int = 0,
        world: int = 1,
        keyed: bool = False,
    ) -> None:
        if batch_size % world:
            raise ValueError(f"global batch {batch_size} is not divisible by {world} processes")
        p = np.asarray(weights, np.float64)
        self.p = p / p.sum()
        self.batch_size, self.seed, self.start, self.total = batch_size, seed, start, total
        self.rank, self.world, self.keyed = rank, world, keyed

    def batch(self, step: int) -> list[int]:
        """The global batch of ``step`` (clip indices)."""
        rng = np.random.default_rng((self.seed, step))
        # with replacement: each draw follows the weights exactly. Without it (numpy draws the batch's
        # clips one after another, renormalising), the draws drift toward uniform over clips, and a
        # source with few clips got less than its share (the bias `balance: source` exists to remove)
        return rng.choice(len(self.p), size=self.batch_size, replace=True, p=self.p).tolist()

    def local_slice(self) -> slice:
        per = self.batch_size // self.world
        return slice(self.rank * per, (self.rank + 1) * per)

    def __iter__(self) -> Iterator[list[int]]:
        local = self.local_slice()
        for step in range(self.start, self.total):
            batch = self.batch(step)[local]
            if self.keyed:
                batch = [(i, step, slot) for slot, i in zip(range(local.start, local.stop), batch)]
            yield batch

    def __len__(self) -> int:
        return max(self.total - self.start, 0)
