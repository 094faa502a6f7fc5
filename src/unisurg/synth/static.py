"""Single-image scenes with dense ground truth: endoscopic depth and polyp segmentation.

Depth drives the shading (an endoscope's light sits at the camera, so brightness falls
off with the square of the distance and with surface slant), so depth is genuinely
inferable from the image, as in SCARED and C3VD. Polyps are domes on the mucosa with
their own colour; the mask is the dome's footprint.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .scene import fractal_noise


@dataclass(frozen=True)
class DenseFrame:
    rgb: np.ndarray  # (H, W, 3) uint8
    depth_mm: np.ndarray  # (H, W) float32, > 0
    mask: np.ndarray  # (H, W) uint8 {0, 1} polyp footprint


class DenseScene:
    """A static 3D scene (surface or colon lumen) viewed by a slowly moving camera."""

    def __init__(
        self,
        kind: str,
        size: int,
        seed: int,
        polyps: int = 0,
        tissue: tuple[tuple[int, int, int], tuple[int, int, int]] = ((200, 105, 95), (245, 170, 150)),
    ):
        if kind not in ("surface", "lumen"):
            raise ValueError(f"kind must be 'surface' or 'lumen', got {kind!r}")
        self.kind, self.size = kind, size
        rng = np.random.default_rng(seed)
        self.seed = seed
        w = 2 * size  # the camera window pans over a larger canvas
        self.albedo = self._albedo(rng, w, tissue)
        self.bumps = fractal_noise(rng, w, 5, octaves=2) - 0.5
        self.lumen_c = rng.uniform(0.35, 0.65, 2) * w
        self.fold_period = float(rng.uniform(9, 16))  # mm between haustral folds
        self.base = float(rng.uniform(50, 90))  # mm, surface distance
        self.tilt = rng.uniform(-0.25, 0.25, 2)
        self.polyps = []
        for _ in range(polyps):
            c = rng.uniform(0.65, 1.35, 2) * size
            r = float(rng.uniform(0.07, 0.16) * size)
            self.polyps.append((c, r, float(rng.uniform(0.7, 1.4)), rng.uniform(0, 2 * np.pi, 3)))

    @staticmethod
    def _albedo(rng: np.random.Generator, w: int, tissue) -> np.ndarray:
        n = fractal_noise(rng, w, 12)[..., None]
        a = np.array(tissue[0], np.float32) * (1 - n) + np.array(tissue[1], np.float32) * n
        for _ in range(8):
            pts = np.cumsum(rng.normal(0, w / 16, (6, 2)), axis=0) + rng.uniform(0, w, 2)
            cv2.polylines(
                a, [pts.astype(np.int32)], False, tuple(float(v) for v in np.array(tissue[0]) * 0.5), 1, cv2.LINE_AA
            )
        return a / 255.0

    def render(self, t: float = 0.0) -> DenseFrame:
        """The view at time ``t`` (seconds): the camera drifts and moves closer/further."""
        s = self.size
        off = (0.5 * s + 0.2 * s * np.array([np.sin(0.3 * t), np.cos(0.23 * t)])).astype(int)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        bumps = self.bumps[off[1] : off[1] + s, off[0] : off[0] + s]
        if self.kind == "surface":
            depth = self.base * (1 + 0.1 * np.sin(0.4 * t)) + 40 * (
                self.tilt[0] * (xx / s - 0.5) + self.tilt[1] * (yy / s - 0.5)
            )
            depth = depth + 12.0 * bumps
        else:
            # Looking down a tube: the wall is near at the border and far at the lumen centre.
            cx, cy = self.lumen_c - off
            r = np.sqrt((xx - cx) ** 2 + (yy - cy) ** 2) / s
            depth = 6.0 + 85.0 * np.exp(-3.2 * r)
            depth = depth + 2.5 * np.sin(2 * np.pi * depth / self.fold_period) + 3.0 * bumps
        mask = np.zeros((s, s), np.uint8)
        polyp_tone = np.zeros((s, s), np.float32)
        for c, r, h, ph in self.polyps:
            px, py = c - off
            ang = np.arctan2(yy - py, xx - px)
            # irregular outline: the radius wobbles with angle
            rr = r * (1 + 0.15 * np.sin(3 * ang + ph[0]) + 0.08 * np.sin(5 * ang + ph[1]))
            d = np.sqrt((xx - px) ** 2 + (yy - py) ** 2) / np.maximum(rr, 1e-3)
            dome = np.clip(1 - d**2, 0, None)
            inside = d < 1
            mask |= inside.astype(np.uint8)
            depth = depth - h * 0.25 * depth * np.sqrt(dome)  # the polyp protrudes towards the camera
            polyp_tone = np.maximum(polyp_tone, inside * (0.6 + 0.4 * np.sqrt(dome)))
        depth = np.maximum(depth, 2.0).astype(np.float32)
        # Shading: normals from the depth gradient, light at the camera, 1/d^2 falloff.
        dzdx = cv2.Sobel(depth, cv2.CV_32F, 1, 0, ksize=3) / 8.0
        dzdy = cv2.Sobel(depth, cv2.CV_32F, 0, 1, ksize=3) / 8.0
        ndotl = 1.0 / np.sqrt(1 + (dzdx * 0.8) ** 2 + (dzdy * 0.8) ** 2)
        falloff = (
            np.clip((25.0 / depth) ** 2, 0, 1.6)
            if self.kind == "lumen"
            else 0.75 * np.clip((self.base / depth) ** 2, 0, 1.3)
        )
        albedo = self.albedo[off[1] : off[1] + s, off[0] : off[0] + s].copy()
        albedo = albedo * (1 - polyp_tone[..., None] * 0.35) + polyp_tone[..., None] * 0.35 * np.array(
            [0.95, 0.55, 0.5], np.float32
        )
        spec = np.clip((ndotl - 0.985) * 40, 0, 1) * (falloff > 0.5)
        img = albedo * (0.15 + 0.85 * (ndotl * falloff)[..., None]) + spec[..., None] * 0.8
        noise = np.random.default_rng((self.seed, int(round(t * 1000)))).normal(0, 0.01, img.shape)
        img = img + noise.astype(np.float32)
        rgb = np.clip(img * 255, 0, 255).astype(np.uint8)
        return DenseFrame(rgb, depth, mask)
