"""Motion saliency of a clip: how much each tubelet moves, independent of any model.

Used by motion-guided latent prediction (:mod:`unisurg.training.objectives`) to weight the loss
and place masks, and computed where the clip is decoded (:class:`unisurg.media.clips.ClipTable`),
so that data loading never depends on a training module. Shapes: B clips, N = T'H'W' tubelets
(t-major), T frames of H x W pixels.
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


def flow_saliency(frames: np.ndarray, tubelet: int, patch: int, size: int) -> np.ndarray:
    """Camera-compensated optical-flow magnitude per tubelet.

    frames: uint8 (T, H, W, 3) RGB (any size; flow is computed at ``size`` x ``size``) -> (N,)
    float32 with N = (T / tubelet) * (size / patch)^2. Uses OpenCV Farnebäck between
    consecutive frames; each flow field's median vector (the camera's pan/shake) is removed
    so that moving instruments and tissue stand out from camera motion.
    """
    grey = [cv2.cvtColor(cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY) for f in frames]
    mags = np.zeros((len(frames), size, size), np.float32)
    for t in range(1, len(frames)):
        flow = cv2.calcOpticalFlowFarneback(grey[t - 1], grey[t], None, 0.5, 2, 9, 2, 5, 1.1, 0)  # (H, W, 2)
        flow -= np.median(flow.reshape(-1, 2), axis=0)
        mags[t] = np.linalg.norm(flow, axis=-1)
    mags[0] = mags[1] if len(frames) > 1 else 0.0
    T = len(frames)
    m = mags.reshape(T // tubelet, tubelet, size // patch, patch, size // patch, patch).mean(axis=(1, 3, 5))
    return m.reshape(-1).astype(np.float32)


def normalize_saliency(m: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """m̂ = m / mean(m) per clip: (B, N) -> (B, N), mean 1 per row (all-static clips stay all-1)."""
    mean = m.mean(dim=1, keepdim=True)
    return torch.where(mean > eps, m / mean.clamp_min(eps), torch.ones_like(m))
