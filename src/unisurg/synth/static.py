"""Single-image scenes with dense ground truth: endoscopic depth and polyp segmentation.

Depth drives the shading (an endoscope's light sits at the camera, so brightness falls
off with the square of the distance and with surface slant), so depth is genuinely
inferable from the image, as in SCARED and C3VD. Polyps are domes on the mucosa with
their own colour; the mask is the dome's footprint.

Transcendental functions use :mod:`.scene`'s CPU-independent ``stable_sin``/``stable_exp`` and the
Sobel gradient is written out in NumPy, so images and depth maps are bit-identical on every
processor; see :mod:`.scene` for why NumPy's and OpenCV's own functions are not.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .scene import fractal_noise, stable_cos, stable_exp, stable_sin


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
        off = (0.5 * s + 0.2 * s * np.array([stable_sin(0.3 * t), stable_cos(0.23 * t)])).astype(int)
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        bumps = self.bumps[off[1] : off[1] + s, off[0] : off[0] + s]
        if self.kind == "surface":
            depth = self.base * (1 + 0.1 * float(stable_sin(0.4 * t))) + 40 * (
                self.tilt[0] * (xx / s - 0.5) + self.tilt[1] * (yy / s - 0.5)
            )
            depth = depth + 12.0 * bumps
        else:
            # Looking down a tube: the wall is near at the border and far at the lumen centre.
            cx, cy = self.lumen_c - off
            r = np.sqrt(np.square(xx - cx) + np.square(yy - cy)) / s
            depth = 6.0 + 85.0 * stable_exp(-3.2 * r)
            depth = depth + 2.5 * stable_sin(2 * np.pi * depth / self.fold_period) + 3.0 * bumps
        mask = np.zeros((s, s), np.uint8)
        polyp_tone = np.zeros((s, s), np.float32)
        for c, r, h, ph in self.polyps:
            px, py = c - off
            dx, dy = xx - px, yy - py
            dist = np.sqrt(dx * dx + dy * dy)
            # irregular outline: the radius wobbles with the angle a around the centre,
            # r(a) = r (1 + 0.15 sin(3a + ph0) + 0.08 sin(5a + ph1))
            s3, s5 = _sin_harmonics(dx, dy, dist, ph[0], ph[1])
            rr = r * (1 + 0.15 * s3 + 0.08 * s5)
            d = dist / np.maximum(rr, 1e-3)
            dome = np.clip(1 - d * d, 0, None)
            inside = d < 1
            mask |= inside.astype(np.uint8)
            depth = depth - h * 0.25 * depth * np.sqrt(dome)  # the polyp protrudes towards the camera
            polyp_tone = np.maximum(polyp_tone, inside * (0.6 + 0.4 * np.sqrt(dome)))
        depth = np.maximum(depth, 2.0).astype(np.float32)
        # Shading: normals from the depth gradient, light at the camera, 1/d^2 falloff.
        dzdx, dzdy = _sobel(depth)
        ndotl = 1.0 / np.sqrt(1 + np.square(dzdx * 0.8) + np.square(dzdy * 0.8))
        falloff = (
            np.clip(np.square(25.0 / depth), 0, 1.6)
            if self.kind == "lumen"
            else 0.75 * np.clip(np.square(self.base / depth), 0, 1.3)
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


def _sin_harmonics(
    dx: np.ndarray, dy: np.ndarray, dist: np.ndarray, ph3: float, ph5: float
) -> tuple[np.ndarray, np.ndarray]:
    """(sin(3a + ph3), sin(5a + ph5)) where a is the angle of (dx, dy), without arctan2 (libm/SIMD dependent).

    cos(n a) + i sin(n a) = ((dx + i dy) / dist)**n by complex multiplication; a = 0 at the centre.
    """
    safe = np.maximum(dist, 1e-12)
    c1 = np.where(dist > 0, dx / safe, 1.0)
    s1 = np.where(dist > 0, dy / safe, 0.0)
    c2, s2 = c1 * c1 - s1 * s1, 2 * s1 * c1
    c3, s3 = c2 * c1 - s2 * s1, s2 * c1 + c2 * s1
    c5, s5 = c3 * c2 - s3 * s2, s3 * c2 + c3 * s2
    sin3 = s3 * float(stable_cos(ph3)) + c3 * float(stable_sin(ph3))
    return sin3, s5 * float(stable_cos(ph5)) + c5 * float(stable_sin(ph5))


def _sobel(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d/dx, d/dy) of a 2-D float32 array: cv2.Sobel(ksize=3) / 8 with its reflect-101 border.

    Written out in NumPy: cv2.Sobel runs SIMD/IPP kernels chosen by the CPU, whose last bits differ.
    """
    p = np.pad(a, 1, mode="reflect")  # (H+2, W+2)
    dx = p[:, 2:] - p[:, :-2]  # (H+2, W): central difference along x, then [1, 2, 1] down the rows
    dy = p[2:, :] - p[:-2, :]  # (H, W+2): along y, then [1, 2, 1] across the columns
    gx = (dx[:-2] + dx[2:] + 2 * dx[1:-1]) / 8
    gy = (dy[:, :-2] + dy[:, 2:] + 2 * dy[:, 1:-1]) / 8
    return gx.astype(np.float32), gy.astype(np.float32)
