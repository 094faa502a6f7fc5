"""Probe clips as a torch Dataset over the frame stores: the evaluation view or a training draw.

Item ``(i, draw)``: sample i's window (:meth:`WindowPlan.window`) read from the frame stores,
turned into the protocol's field of view, and, for a training draw of an augmenting protocol,
augmented (:mod:`.augment`). Clips leave the workers as uint8 (3, T, S, S) — 4x fewer bytes through
the DataLoader's queues and the host-to-device copy than float32 — and are normalised on the device
(:func:`~unisurg.media.clips.normalize_batch`), where the erasing noise is added.

Field of view (``Sampling``): frames are kept at the store's geometry; with ``source_width`` they are
first squashed to ``source_width``² (bicubic: the authors' loader resizes every frame to 512x512),
then resized to ``Sampling.resize`` (bilinear: vjepa2's eval ``Resize``) and centre-cropped to
``size``. Dense tasks are never cropped (their targets cover the whole image) and never augmented
(the geometric operations would move the targets).
"""

from __future__ import annotations

from collections.abc import Iterable

import cv2
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .augment import augment_clip
from .framestore import FrameStore
from .protocols import ClipAugment, Sampling
from .windows import EVAL_DRAW, WindowPlan


def _resize(frames: np.ndarray, side: int, interpolation: int) -> np.ndarray:
    if frames.shape[1:3] == (side, side):
        return frames
    return np.stack([cv2.resize(f, (side, side), interpolation=interpolation) for f in frames])


def eval_view(frames: np.ndarray, sampling: Sampling, dense: bool) -> np.ndarray:
    """uint8 (T, H, W, 3) from a store -> (T, size, size, 3): the protocol's field of view."""
    if sampling.source_width:
        frames = _resize(frames, sampling.source_width, cv2.INTER_CUBIC)
    side = sampling.size if dense else sampling.resize
    frames = _resize(frames, side, cv2.INTER_LINEAR)
    off = (side - sampling.size) // 2
    return frames[:, off : off + sampling.size, off : off + sampling.size]


def target_map(path: str, read_target, size: int) -> np.ndarray:
    """A dense target file -> float32 (size, size), nearest-neighbour (what the heads learn)."""
    return cv2.resize(read_target(path).astype(np.float32), (size, size), interpolation=cv2.INTER_NEAREST)


class ClipSet(Dataset):
    """``(i, draw)`` -> {"clip": uint8 (3, T, S, S), "erase": int64 (4,), "key": int64 (4,), "index": i}.
    Samples whose window reads a missing frame (``usable`` False) give a zero clip: they are in no
    split, only in extraction's batches."""

    def __init__(
        self,
        plan: WindowPlan,
        stores: dict[int, FrameStore],
        usable: np.ndarray,
        augment: ClipAugment | None = None,
        dense: bool = False,
    ) -> None:
        self.plan, self.stores, self.usable = plan, stores, usable
        self.sampling = plan.sampling
        self.augment = None if dense else augment
        self.dense = dense

    def __len__(self) -> int:
        return len(self.plan.samples)

    def frames(self, i: int, draw: int) -> np.ndarray:
        """uint8 (T, H, W, 3): sample i's window (draw ``draw``) as the stores keep it."""
        w = self.plan.window(i, draw)
        recs = np.unique(w[:, 0])
        if len(recs) == 1:
            return self.stores[int(recs[0])].read(w[:, 1])
        parts = [self.stores[int(r)].read(w[w[:, 0] == r, 1]) for r in recs]  # a window over two records
        shape = max((p.shape[1:] for p in parts), key=lambda s: s[0] * s[1])
        order = np.concatenate([np.nonzero(w[:, 0] == r)[0] for r in recs])
        out = np.empty((len(w), *shape), np.uint8)
        out[order] = np.concatenate([_resize_to(p, shape) for p in parts])
        return out

    def __getitem__(self, item: tuple[int, int]) -> dict[str, torch.Tensor]:
        i, draw = item
        S, T = self.sampling.size, self.sampling.frames
        key = np.array([self.plan.seed, i, 1 if draw != EVAL_DRAW else 0, max(draw, 0)], np.int64)
        box = np.array([-1, -1, 0, 0], np.int64)
        if not self.usable[i]:
            clip = np.zeros((T, S, S, 3), np.uint8)
        elif self.augment is not None and draw != EVAL_DRAW:
            frames = self.frames(i, draw)
            if self.sampling.source_width:
                frames = _resize(frames, self.sampling.source_width, cv2.INTER_CUBIC)
            clip, box = augment_clip(frames, S, self.augment, tuple(key.tolist()))
        else:
            clip = eval_view(self.frames(i, draw), self.sampling, self.dense)
        return {
            "clip": torch.from_numpy(np.ascontiguousarray(clip)).permute(3, 0, 1, 2).contiguous(),
            "erase": torch.from_numpy(box),
            "key": torch.from_numpy(key),
            "index": torch.tensor(i),
        }


def _resize_to(frames: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    if frames.shape[1:] == shape:
        return frames
    return np.stack([cv2.resize(f, (shape[1], shape[0]), interpolation=cv2.INTER_AREA) for f in frames])


def clip_loader(clips: ClipSet, batches: Iterable[list[tuple[int, int]]], workers: int, pin: bool) -> DataLoader:
    """Batches of ``clips`` in the given order (lists of (sample, draw)), prepared by ``workers``
    processes (0: here; read from the frame stores, resized, augmented) with two batches prefetched per
    worker, pinned for a GPU."""
    return DataLoader(
        clips,
        batch_sampler=list(batches),
        num_workers=workers,
        pin_memory=pin,
        prefetch_factor=2 if workers else None,
        persistent_workers=False,
    )
