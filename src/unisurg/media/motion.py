"""Motion saliency of a clip: how much each tubelet moves, independent of any model.

Used by motion-guided latent prediction (:mod:`unisurg.training.objectives`) to weight the loss
and place masks, and computed where the clip is decoded (:class:`unisurg.media.clips.ClipTable`),
so that data loading never depends on a training module. The optical flow is a property of the clip,
not of its augmented view: :func:`camera_flow` runs once per clip (the loader keeps it), and
:func:`field_saliency` derives each augmented view's saliency from it in well under a millisecond.
Shapes: B clips, N = T'H'W' tubelets (t-major), T frames of H x W pixels.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
import torch.nn.functional as F


def framediff_saliency(x: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """Cheap motion proxy. x (B, C, T, H, W) -> m (B, N): mean |x_{t} − x_{t−1}| per tubelet."""
    d = (x[:, :, 1:] - x[:, :, :-1]).abs().mean(dim=1)  # (B, T-1, H, W)
    d = torch.cat([d[:, :1], d], dim=1)  # frame 0 reuses the first difference -> (B, T, H, W)
    m = F.avg_pool3d(d.unsqueeze(1), kernel_size=(tubelet, patch, patch)).squeeze(1)  # (B, T', H', W')
    return m.flatten(1)


FLOW_UNIT = 1 / 256  # pixels per unit of a stored flow field (int16: up to ±128 px)


def camera_flow(frames: np.ndarray, size: int) -> np.ndarray:
    """Camera-compensated optical flow of a clip: the expensive, augmentation-free part of the saliency.

    frames: uint8 (T, H, W, 3) RGB (any size) -> int16 (size, size, T, 2), (dx, dy) in 1/256 pixels
    (:data:`FLOW_UNIT`) of the ``size`` x ``size`` grid over the whole frame; time and vector
    components last, so that one multi-channel warp resamples the whole clip. OpenCV Farnebäck between
    consecutive frames; each field's median vector (the camera's pan/shake, estimated on the whole
    frame) is removed so that moving instruments and tissue stand out from camera motion. Frame 0
    repeats frame 1's field.
    Fixed point, not float16: the same 256 KB per 16-frame clip at 64 px (a loader can keep every
    clip's field in memory), finer than float16 above 2 px, and NumPy widens int16 ~4x faster.
    """
    grey = [cv2.cvtColor(cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for f in frames]
    field = np.zeros((size, size, len(frames), 2), np.float32)
    for t in range(1, len(frames)):
        flow = cv2.calcOpticalFlowFarneback(grey[t - 1], grey[t], None, 0.5, 2, 9, 2, 5, 1.1, 0)  # (H, W, 2)
        field[:, :, t] = flow - np.median(flow.reshape(-1, 2), axis=0)
    if len(frames) > 1:
        field[:, :, 0] = field[:, :, 1]
    return np.round(np.clip(field / FLOW_UNIT, -32767, 32767)).astype(np.int16)


def field_saliency(
    field: np.ndarray,
    tubelet: int,
    patch: int,
    size: int,
    box: tuple[float, float, float, float] | None = None,
    flip: bool = False,
) -> np.ndarray:
    """Motion saliency per tubelet of a (cropped, flipped) view of a clip, from its :func:`camera_flow`.

    field: int16 (F, F, T, 2) -> (N,) float32, N = (T / tubelet) * (size / patch)^2: the mean flow magnitude
    per tubelet, in pixels of the ``size`` x ``size`` view. ``box`` = (top, left, h, w) of the view in
    field pixels (the augmentation's crop, rescaled to the field): the field is resampled bilinearly to
    the view's grid and each displacement rescaled to the view's pixels (x by size / w, y by size / h,
    so an anisotropic crop scales the axes apart). ``flip``: the view is mirrored left-right (the
    magnitudes mirror; a sign flip of dx does not change them). With no box the view is the whole frame.
    """
    F, T = field.shape[0], field.shape[2]
    top, left, h, w = box if box is not None else (0.0, 0.0, float(F), float(F))
    sx, sy = w / size, h / size  # field pixels per view pixel
    f = np.multiply(field.reshape(F, F, 2 * T), np.float32(FLOW_UNIT), dtype=np.float32)  # channels (t, xy)
    if not (F == size and box is None):
        # view pixel centre (j + 0.5) maps to field coordinate left + (j + 0.5) * sx - 0.5 (likewise in y)
        warp = np.array([[sx, 0.0, left + 0.5 * sx - 0.5], [0.0, sy, top + 0.5 * sy - 0.5]], np.float64)
        f = cv2.warpAffine(
            f, warp, (size, size), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE
        )
    f = f.reshape(size, size, T, 2)
    mags = np.sqrt(np.square(f[..., 0] / sx) + np.square(f[..., 1] / sy))  # (size, size, T), view pixels
    # mean per patch: an area resize by the integer factor `patch` (one call for all T channels)
    g = size // patch
    m = cv2.resize(mags, (g, g), interpolation=cv2.INTER_AREA).reshape(g, g, T // tubelet, tubelet).mean(axis=3)
    if flip:  # mirroring commutes with the pooling (size is a multiple of patch)
        m = m[:, ::-1]
    return np.ascontiguousarray(m.transpose(2, 0, 1), dtype=np.float32).reshape(-1)  # (T', H', W') t-major


def flow_saliency(frames: np.ndarray, tubelet: int, patch: int, size: int) -> np.ndarray:
    """Camera-compensated optical-flow magnitude per tubelet of a whole clip.

    frames: uint8 (T, H, W, 3) RGB (any size; flow is computed at ``size`` x ``size``) -> (N,)
    float32 with N = (T / tubelet) * (size / patch)^2: :func:`field_saliency` of :func:`camera_flow`.
    """
    return field_saliency(camera_flow(frames, size), tubelet, patch, size)


def normalize_saliency(m: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """m̂ = m / mean(m) per clip: (B, N) -> (B, N), mean 1 per row (all-static clips stay all-1)."""
    mean = m.mean(dim=1, keepdim=True)
    return torch.where(mean > eps, m / mean.clamp_min(eps), torch.ones_like(m))
