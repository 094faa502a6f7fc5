"""The probe-training augmentation of the SurgMotion authors' evaluation, drawn reproducibly.

Their ``eval.py`` trains the probes on clips from ``make_transforms(training=True,
auto_augment=True, random_resize_scale=(0.08, 1.0), random_resize_aspect_ratio=(0.75, 4/3),
reprob=0.25, random_horizontal_flip=False)`` (vjepa2's video transforms). Per clip, in their order:

1. RandAugment ``rand-m7-n4-mstd0.5-inc1`` (timm's RandAugment as vjepa2 copies it, with the *same*
   operations and magnitudes applied to every frame of the clip): 4 operations drawn with
   replacement from the 15 "increasing" ones; each is applied with probability 1/2 at a magnitude
   drawn from N(7, 0.5) clipped to [0, 10]; signed operations are negated with probability 1/2;
   geometric ones resample bicubically and fill with grey (128);
2. a RandomResizedCrop of the whole clip (one box for all frames): area fraction in (0.08, 1),
   aspect ratio log-uniform in (3/4, 4/3), resized to the clip size bilinearly;
3. RandomErasing with probability 1/4 (vjepa2's ``cube`` mode: one box for all frames, area
   fraction in (0.02, 1/3), aspect log-uniform in (0.3, 1/0.3), filled with per-pixel standard
   normal noise in the normalised space, fresh for every frame).

Their draws come from Python's and NumPy's global generators (different in every worker); here
every draw comes from a NumPy generator keyed by (seed, sample, epoch), so a resumed run, any number
of workers and any number of ranks see the same clips. The erasing box is drawn here and applied
after normalisation on the device (:func:`erase`), where the noise is drawn from the same key.
Resampling is done on uint8 frames with OpenCV and PIL (theirs on float tensors): pixels differ in
the last bits, not in the operations.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable

import cv2
import numpy as np
import torch
from PIL import Image, ImageEnhance, ImageOps

from ..media.clips import Augment
from .protocols import ClipAugment

MAX_LEVEL = 10.0
FILL = (128, 128, 128)
TRANSLATE_PCT = 0.45


def _signed(v: float, rng: np.random.Generator) -> float:
    return -v if rng.random() > 0.5 else v


def _affine(matrix: tuple) -> Callable:
    return lambda img: img.transform(img.size, Image.AFFINE, matrix, resample=Image.BICUBIC, fillcolor=FILL)


def _solarize_add(add: int, thresh: int = 128) -> Callable:
    lut = [min(255, i + add) if i < thresh else i for i in range(256)] * 3
    return lambda img: img.point(lut)


def _enhance(kind) -> Callable[[float], Callable]:
    return lambda f: lambda img: kind(img).enhance(f)


# name -> (magnitude, rng, frame size) -> the operation on one PIL frame, the same for every frame
OPS: dict[str, Callable[[float, np.random.Generator, tuple[int, int]], Callable]] = {
    "AutoContrast": lambda m, rng, wh: ImageOps.autocontrast,
    "Equalize": lambda m, rng, wh: ImageOps.equalize,
    "Invert": lambda m, rng, wh: ImageOps.invert,
    "Rotate": lambda m, rng, wh: (lambda d: lambda img: img.rotate(d, resample=Image.BICUBIC, fillcolor=FILL))(
        _signed(m / MAX_LEVEL * 30.0, rng)
    ),
    "PosterizeIncreasing": lambda m, rng, wh: (lambda b: lambda img: img if b >= 8 else ImageOps.posterize(img, b))(
        4 - int(m / MAX_LEVEL * 4)
    ),
    "SolarizeIncreasing": lambda m, rng, wh: (lambda t: lambda img: ImageOps.solarize(img, t))(
        256 - int(m / MAX_LEVEL * 256)
    ),
    "SolarizeAdd": lambda m, rng, wh: _solarize_add(int(m / MAX_LEVEL * 110)),
    "ColorIncreasing": lambda m, rng, wh: _enhance(ImageEnhance.Color)(1.0 + _signed(m / MAX_LEVEL * 0.9, rng)),
    "ContrastIncreasing": lambda m, rng, wh: _enhance(ImageEnhance.Contrast)(1.0 + _signed(m / MAX_LEVEL * 0.9, rng)),
    "BrightnessIncreasing": lambda m, rng, wh: _enhance(ImageEnhance.Brightness)(
        1.0 + _signed(m / MAX_LEVEL * 0.9, rng)
    ),
    "SharpnessIncreasing": lambda m, rng, wh: _enhance(ImageEnhance.Sharpness)(1.0 + _signed(m / MAX_LEVEL * 0.9, rng)),
    "ShearX": lambda m, rng, wh: _affine((1, _signed(m / MAX_LEVEL * 0.3, rng), 0, 0, 1, 0)),
    "ShearY": lambda m, rng, wh: _affine((1, 0, 0, _signed(m / MAX_LEVEL * 0.3, rng), 1, 0)),
    "TranslateXRel": lambda m, rng, wh: _affine((1, 0, _signed(m / MAX_LEVEL * TRANSLATE_PCT, rng) * wh[0], 0, 1, 0)),
    "TranslateYRel": lambda m, rng, wh: _affine((1, 0, 0, 0, 1, _signed(m / MAX_LEVEL * TRANSLATE_PCT, rng) * wh[1])),
}


def parse_rand_augment(spec: str) -> tuple[float, int, float]:
    """``rand-m7-n4-mstd0.5-inc1`` -> (magnitude, operations, magnitude std); only the increasing set."""
    fields = dict(re.findall(r"-(mstd|inc|m|n)([\d.]+)", spec))
    if not spec.startswith("rand") or fields.get("inc") != "1":
        raise ValueError(f"RandAugment {spec!r}: only 'rand-...-inc1' (the increasing operations) is implemented")
    return float(fields.get("m", MAX_LEVEL)), int(fields.get("n", 2)), float(fields.get("mstd", 0.0))


def rand_augment(frames: np.ndarray, spec: str, rng: np.random.Generator) -> np.ndarray:
    """uint8 (T, H, W, 3) -> the clip with one RandAugment draw applied to every frame."""
    magnitude, n, std = parse_rand_augment(spec)
    names = list(OPS)
    ops = []
    for k in rng.choice(len(names), size=n, replace=True):
        if rng.random() > 0.5:  # each operation applies with probability 1/2
            continue
        m = min(MAX_LEVEL, max(0.0, rng.normal(magnitude, std) if std > 0 else magnitude))
        ops.append(OPS[names[k]](m, rng, (frames.shape[2], frames.shape[1])))
    if not ops:
        return frames
    out = np.empty_like(frames)
    for t, f in enumerate(frames):
        img = Image.fromarray(f)
        for op in ops:
            img = op(img)
        out[t] = np.asarray(img)
    return out


def erase_box(aug: ClipAugment, size: int, rng: np.random.Generator) -> np.ndarray:
    """RandomErasing's box (top, left, h, w) on a ``size``² clip, or (-1, -1, 0, 0) for none."""
    if rng.random() > aug.erase:
        return np.array([-1, -1, 0, 0], np.int64)
    lo, hi = math.log(0.3), math.log(1 / 0.3)
    for _ in range(100):
        area = rng.uniform(0.02, 1 / 3) * size * size
        ar = math.exp(rng.uniform(lo, hi))
        h, w = int(round(math.sqrt(area * ar))), int(round(math.sqrt(area / ar)))
        if w < size and h < size:
            return np.array([rng.integers(0, size - h + 1), rng.integers(0, size - w + 1), h, w], np.int64)
    return np.array([-1, -1, 0, 0], np.int64)


def augment_clip(
    frames: np.ndarray, size: int, aug: ClipAugment, key: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (T, H, W, 3) at the loader's resolution -> (uint8 (T, size, size, 3), erase box (4,)) for
    the draw ``key`` (module docstring, steps 1-2; step 3's box for :func:`erase`)."""
    rng = np.random.default_rng(key)
    frames = rand_augment(frames, aug.rand_augment, rng)
    crop = Augment(seed=0, scale=aug.scale, aspect_ratio=aug.ratio, crop=True, flip=False)
    top, left, h, w = crop.box(rng, frames.shape[1], frames.shape[2])
    out = np.stack(
        [
            cv2.resize(
                np.ascontiguousarray(f[top : top + h, left : left + w]), (size, size), interpolation=cv2.INTER_LINEAR
            )
            for f in frames
        ]
    )
    if aug.flip and rng.random() < 0.5:
        out = np.ascontiguousarray(out[:, :, ::-1])
    return out, erase_box(aug, size, rng)


def erase(x: torch.Tensor, boxes: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
    """Fill each clip's erasing box with standard normal noise, in place: x (B, 3, T, S, S) normalised,
    boxes (B, 4) (top, left, h, w; top -1: none), keys (B, k) int64 seeding each clip's noise."""
    for b in range(x.size(0)):
        top, left, h, w = (int(v) for v in boxes[b])
        if top < 0:
            continue
        g = torch.Generator().manual_seed(int(np.random.default_rng(keys[b].tolist()).integers(2**62)))
        noise = torch.randn((x.size(1), x.size(2), h, w), generator=g)  # (3, T, h, w): fresh per frame
        x[b, :, :, top : top + h, left : left + w] = noise.to(x.device, x.dtype)
    return x
