"""Procedural surgical scene renderer: tissue, instruments, and label-free nuisance.

A video is a :class:`ScenePlan`: a camera looking at a textured tissue "world" with a few
anatomical *target* structures, instrument :class:`Track` s whose tip kinematics perform
verbs on those targets, and nuisance that carries no label (smoke, specular highlights,
a flowing fluid pool, camera shake, sensor noise). Labels are derived from the plan, never
from pixels, so ground truth is exact.

The split between *semantic* content (instrument shape/colour, verb motion pattern, target)
and *nuisance* is deliberate: UniSurg's argument is that latent prediction learns the
former while pixel reconstruction spends capacity on the latter, and the corpus lets us
measure that.

Coordinates: the world is a ``(W, W)`` canvas with ``W = 2 * size``; the camera shows a
``(size, size)`` window whose top-left corner moves over time. Points are ``(x, y)`` floats.

Same bytes on every CPU: NumPy's ``sin``/``cos``/``exp`` (SIMD kernels chosen per CPU, or
glibc's FMA / non-FMA variants), ``np.convolve`` (OpenBLAS kernels chosen per CPU) and OpenCV's
``resize``/``GaussianBlur``/``Sobel`` (SIMD and IPP kernels chosen per CPU) return last-bit
different values on different processors, and one flipped bit can change a pixel and so a file's
hash. The renderer therefore computes those with the helpers below, which use only IEEE-754
``+ - * /``, ``sqrt``, ``rint`` and ``ldexp`` element by element — operations whose results are
exactly specified, whatever the vector width. OpenCV is used only for drawing (fixed-point code
that is not dispatched by CPU feature).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np

# --------------------------------------------------------------------------- appearance


@dataclass(frozen=True)
class Look:
    """Appearance of one video source (an imaging setup in one anatomical region)."""

    name: str
    region: str
    tissue: tuple[tuple[int, int, int], tuple[int, int, int]]  # two RGB tones blended by texture
    texture_cells: int = 12  # texture noise grid cells across the world (more = finer)
    vessels: int = 6  # dark vessel polylines drawn into the tissue
    vignette: float = 0.55  # light falloff towards the border (0 = flat lighting)
    brightness: float = 1.0
    pan: float = 0.15  # camera pan amplitude as a fraction of the frame size
    shake: float = 1.5  # camera-shake amplitude in pixels during shake episodes
    smoke_per_min: float = 3.0  # expected smoke events per minute
    speculars: int = 6  # specular highlight spots on the tissue
    fluid: float = 0.5  # probability that a flowing fluid pool is present
    circular_fov: bool = False  # endoscope/microscope circular field of view (black corners)


# Instruments: (name, tip RGB, tip kind). The tip colour and shape are the semantic cue for
# "which instrument"; the shaft is the same metallic grey for all.
TOOL_STYLES: dict[str, tuple[tuple[int, int, int], str]] = {
    "grasper": ((60, 200, 80), "jaw"),
    "bipolar": ((70, 110, 230), "jaw"),
    "hook": ((230, 230, 60), "hook"),
    "scissors": ((230, 120, 40), "blade"),
    "clipper": ((200, 60, 200), "jaw"),
    "irrigator": ((60, 220, 220), "tube"),
    "specimen_bag": ((245, 245, 245), "bag"),
    "suction": ((150, 90, 40), "tube"),
    "needle_driver": ((110, 60, 170), "jaw"),
    "forceps": ((40, 140, 120), "jaw"),
    "knife": ((250, 170, 170), "blade"),
    "phaco": ((250, 210, 120), "probe"),
    "curette": ((120, 200, 250), "hook"),
    "drill": ((255, 90, 120), "burr"),
    "snare": ((170, 230, 100), "loop"),
    "trocar": ((90, 90, 200), "probe"),
}

SHAFT_RGB = (168, 170, 176)


@dataclass
class Track:
    """One instrument instance: per-frame tip position, jaw opening and effects, over [start, end)."""

    tool: str
    start: int
    end: int
    entry: np.ndarray  # (2,) world point where the shaft enters (off-screen)
    tip: np.ndarray  # (end-start, 2) world tip positions
    jaw: np.ndarray  # (end-start,) jaw opening in [0, 1]
    glow: np.ndarray  # (end-start,) energy glow in [0, 1] (coagulation)
    active: np.ndarray  # (end-start,) bool: the verb is being performed (vs entering/leaving)
    verb: str = "null_verb"
    target: str = "null_target"
    stream: bool = False  # irrigation stream from the tip
    bag: float = 0.0  # specimen bag radius (pixels) when packing

    def covers(self, t: int) -> bool:
        return self.start <= t < self.end


@dataclass(frozen=True)
class Target:
    """An anatomical structure painted into the world at ``center`` with radii ``axes``."""

    name: str
    center: tuple[float, float]
    axes: tuple[float, float]
    rgb: tuple[int, int, int]


@dataclass
class ScenePlan:
    look: Look
    size: int
    fps: float
    num_frames: int
    seed: int
    targets: list[Target] = field(default_factory=list)
    layout_key: str = ""  # the procedure: fixes anatomy layout and instrument ports across cases
    tracks: list[Track] = field(default_factory=list)
    smoke: list[tuple[int, int]] = field(default_factory=list)  # (start, end) frames of smoke events
    shake: list[tuple[int, int]] = field(default_factory=list)  # (start, end) frames of camera shake
    fluid: bool = False

    def target(self, name: str) -> Target:
        for t in self.targets:
            if t.name == name:
                return t
        raise KeyError(name)


# --------------------------------------------------------------------------- CPU-independent numerics
# Polynomial sin/cos/exp and filters written as shifted adds: bit-identical on every CPU (see the
# module docstring). Accuracy is ~1 ulp, far below what a uint8 pixel can show; exactness across
# machines is the point. Inputs are float64; results are float64 (a NumPy scalar for a scalar).

_TWO_OVER_PI = 6.36619772367581382433e-01
_PIO2_HI = 1.57079632673412561417e00  # pi/2 to 33 bits: k * _PIO2_HI is exact for |k| < 2**20 (fdlibm)
_PIO2_LO = 6.07710050650619224932e-11  # pi/2 - _PIO2_HI
_SIN_POLY = (
    -1.66666666666666324348e-01,
    8.33333333332248946124e-03,
    -1.98412698298579493134e-04,
    2.75573137070700676789e-06,
    -2.50507602534068634195e-08,
    1.58969099521155010221e-10,
)  # fdlibm __kernel_sin on [-pi/4, pi/4]
_COS_POLY = (
    4.16666666666666019037e-02,
    -1.38888888888741095749e-03,
    2.48015872894767294178e-05,
    -2.75573143513906633035e-07,
    2.08757232129817482790e-09,
    -1.13596475577881948265e-11,
)  # fdlibm __kernel_cos on [-pi/4, pi/4]
_INV_LN2 = 1.44269504088896338700e00
_LN2_HI = 6.93147180369123816490e-01  # ln 2 to 32 bits: k * _LN2_HI is exact for the k used here
_LN2_LO = 1.90821492927058770002e-10
_EXP_POLY = tuple(1.0 / math.factorial(n) for n in range(14))  # Taylor series, |r| <= ln(2)/2


def _horner(x: np.ndarray, coeffs: tuple[float, ...]) -> np.ndarray:
    """sum_i coeffs[i] * x**i, evaluated as separate multiplies and adds (never fused)."""
    p = np.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        p *= x  # in place: the same roundings as p = p * x + c, without temporaries
        p += c
    return p


def _sin_cos_quadrant(x) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x = k * pi/2 + r with |r| <= pi/4 -> (sin r, cos r, k mod 4)."""
    x = np.asarray(x, np.float64)
    k = np.rint(x * _TWO_OVER_PI)
    if np.abs(k).max(initial=0) > 2**20:
        raise ValueError("stable_sin/stable_cos: |x| above 1.6e6 is outside the exact argument reduction")
    r = (x - k * _PIO2_HI) - k * _PIO2_LO
    z = r * r
    sin_r = _horner(z, _SIN_POLY)
    sin_r *= r * z
    sin_r += r
    cos_r = _horner(z, _COS_POLY)
    cos_r *= z * z
    cos_r += 1.0 - 0.5 * z
    return sin_r, cos_r, k.astype(np.int64) & 3


def stable_sin(x) -> np.ndarray:
    """sin(x), bit-identical on every CPU (|x| <= 1.6e6)."""
    s, c, q = _sin_cos_quadrant(x)
    # quadrants 0..3: s, c, -s, -c
    return (np.where(q & 1, c, s) * np.where(q & 2, -1.0, 1.0))[()]


def stable_cos(x) -> np.ndarray:
    """cos(x), bit-identical on every CPU (|x| <= 1.6e6)."""
    s, c, q = _sin_cos_quadrant(x)
    # quadrants 0..3: c, -s, -c, s
    return (np.where(q & 1, s, c) * np.where((q + 1) & 2, -1.0, 1.0))[()]


def stable_exp(x) -> np.ndarray:
    """exp(x), bit-identical on every CPU (|x| <= 700): 2**k * Taylor(r), x = k ln 2 + r."""
    x = np.asarray(x, np.float64)
    if np.any(np.abs(x) > 700):
        raise ValueError("stable_exp: |x| > 700 over- or underflows")
    k = np.rint(x * _INV_LN2)
    r = (x - k * _LN2_HI) - k * _LN2_LO
    two_k = ((k.astype(np.int64) + 1023) << 52).view(np.float64)  # 2**k from its bits (|k| <= 1010: normal)
    return (_horner(r, _EXP_POLY) * two_k)[()]  # exact: a power-of-two scaling


def correlate_axis(a: np.ndarray, kernel, axis: int, mode: str = "reflect") -> np.ndarray:
    """out[i] = sum_j kernel[j] * a[i + j - len(kernel) // 2] along ``axis`` -> float64, shape of ``a``.

    Borders follow ``np.pad(mode=...)`` ("reflect" is OpenCV's default BORDER_REFLECT_101,
    "constant" zero padding). The taps are added one after another in a fixed order: np.convolve,
    matrix products and cv2.filter2D instead go through BLAS or OpenCV kernels picked by the
    CPU's SIMD features, whose summation order (and so last bits) differs between processors.
    """
    kernel = [float(w) for w in kernel]
    r = len(kernel) // 2
    a = np.moveaxis(np.asarray(a, np.float64), axis, 0)
    p = np.pad(a, [(r, len(kernel) - 1 - r)] + [(0, 0)] * (a.ndim - 1), mode=mode)
    out, tap = np.zeros_like(a), np.empty_like(a)
    for j, w in enumerate(kernel):
        if w != 0.0:
            out += np.multiply(p[j : j + a.shape[0]], w, out=tap)
    return np.moveaxis(out, 0, axis)


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Separable Gaussian blur of a 2-D array (radius 4 sigma, as cv2.GaussianBlur for float) -> float64."""
    radius = max(int(round(4 * sigma)), 1)
    x = np.arange(-radius, radius + 1) / sigma
    w = stable_exp(-0.5 * x * x)
    w = w / w.sum()
    return correlate_axis(correlate_axis(img, w, 0), w, 1)


def _cubic_taps(n_in: int, n_out: int, n_keep: int) -> tuple[np.ndarray, np.ndarray]:
    """Source indices and weights, both (4, n_keep), of the first ``n_keep`` of ``n_out`` bicubic samples.

    Half-pixel centres, Keys kernel with a = -0.75 and replicated borders: cv2.INTER_CUBIC's recipe.
    """
    fx = (np.arange(n_keep) + 0.5) * (n_in / n_out) - 0.5
    ix = np.floor(fx)
    t = fx - ix
    a = -0.75
    w0 = ((a * (t + 1) - 5 * a) * (t + 1) + 8 * a) * (t + 1) - 4 * a
    w1 = ((a + 2) * t - (a + 3)) * t * t + 1
    w2 = ((a + 2) * (1 - t) - (a + 3)) * (1 - t) * (1 - t) + 1
    w3 = 1 - w0 - w1 - w2
    idx = np.clip(ix.astype(np.int64)[None, :] + np.arange(-1, 3)[:, None], 0, n_in - 1)
    return idx, np.stack([w0, w1, w2, w3])


def cubic_upsample(grid: np.ndarray, n_out: int, n_keep: int) -> np.ndarray:
    """The top-left (n_keep, n_keep) corner of ``grid`` resized bicubically to (n_out, n_out) -> float32.

    float32 like cv2.resize on float32 input (and half the memory traffic of float64).
    """
    ri, rw = _cubic_taps(grid.shape[0], n_out, n_keep)
    ci, cw = _cubic_taps(grid.shape[1], n_out, n_keep)
    rw, cw = rw.astype(np.float32), cw.astype(np.float32)
    g = np.asarray(grid, np.float32)
    rows = np.zeros((n_keep, g.shape[1]), np.float32)  # (n_keep, n_in): rows interpolated first
    for j in range(4):
        rows += rw[j][:, None] * g[ri[j]]
    cols = np.ascontiguousarray(rows.T)  # (n_in, n_keep): gathering whole rows is fast
    out = np.zeros((n_keep, n_keep), np.float32)  # (x, y) until the final transpose
    for j in range(4):
        out += cw[j][:, None] * cols[ci[j]]
    return out.T


# --------------------------------------------------------------------------- noise helpers


def smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Band-limited noise in [0, 1], shape (size, size): random grid upsampled bicubically."""
    grid = rng.random((cells + 3, cells + 3), dtype=np.float32)
    up = cubic_upsample(grid, size + 3 * size // cells, size)
    lo, hi = float(up.min()), float(up.max())
    return (up - lo) / max(hi - lo, 1e-6)


def fractal_noise(rng: np.random.Generator, size: int, cells: int, octaves: int = 3) -> np.ndarray:
    out = np.zeros((size, size), np.float32)
    amp, total = 1.0, 0.0
    for o in range(octaves):
        out += amp * smooth_noise(rng, size, cells * 2**o)
        total += amp
        amp *= 0.5
    return out / total


def smooth_walk(rng: np.random.Generator, n: int, sigma_frames: float) -> np.ndarray:
    """Zero-mean smooth random signal with unit standard deviation, shape (n,)."""
    x = rng.standard_normal(n + 64).astype(np.float32)
    k = max(int(3 * sigma_frames), 1)
    z = np.arange(-k, k + 1) / max(sigma_frames, 1e-3)
    kernel = stable_exp(-0.5 * z * z)
    y = correlate_axis(x, kernel / kernel.sum(), 0, mode="constant")[32 : 32 + n]
    return ((y - y.mean()) / max(float(y.std()), 1e-6)).astype(np.float32)


# --------------------------------------------------------------------------- renderer


class SceneRenderer:
    """Renders the frames of one :class:`ScenePlan`; precomputes everything that does not move."""

    def __init__(self, plan: ScenePlan) -> None:
        self.plan = plan
        s = plan.size
        self.world_size = w = 2 * s
        rng = np.random.default_rng(plan.seed)
        look = plan.look

        # Tissue: two tones blended by fractal noise, darker vessels, then the targets.
        n = fractal_noise(rng, w, look.texture_cells)[..., None]
        c0 = np.array(look.tissue[0], np.float32)
        c1 = np.array(look.tissue[1], np.float32)
        world = c0 * (1 - n) + c1 * n
        vessel_rgb = tuple(float(v) for v in (c0 * 0.45))
        for _ in range(look.vessels):
            pts = np.cumsum(rng.normal(0, w / 14, (6, 2)), axis=0) + rng.uniform(0, w, 2)
            cv2.polylines(world, [pts.astype(np.int32)], False, vessel_rgb, int(rng.integers(1, 3)), cv2.LINE_AA)
        for tgt in plan.targets:
            mask = np.zeros((w, w), np.float32)
            cv2.ellipse(
                mask,
                (int(tgt.center[0]), int(tgt.center[1])),
                (int(tgt.axes[0]), int(tgt.axes[1])),
                float(rng.uniform(0, 180)),
                0,
                360,
                1.0,
                -1,
                cv2.LINE_AA,
            )
            mask = gaussian_blur(mask, 1.5).astype(np.float32)[..., None]
            tex = 0.8 + 0.4 * smooth_noise(rng, w, look.texture_cells * 3)[..., None]
            world = world * (1 - mask) + (np.array(tgt.rgb, np.float32) * tex) * mask
        self.world = world.astype(np.float32)

        # Lighting: radial falloff (endoscope light) and optional circular field of view.
        yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
        r2 = ((xx - s / 2) ** 2 + (yy - s / 2) ** 2) / (s / 2) ** 2
        light = look.brightness * (1.0 - look.vignette * np.clip(r2, 0, 2) * 0.5)
        if look.circular_fov:
            light *= np.clip((1.05 - np.sqrt(r2)) * 12, 0, 1)
        self.light = light[..., None].astype(np.float32)

        # Camera path: slow pan (a few cycles per minute) plus shake episodes.
        t = np.arange(plan.num_frames) / plan.fps
        amp = look.pan * s
        ph = rng.uniform(0, 2 * np.pi, 2)
        cx = s / 2 + amp * stable_sin(2 * np.pi * 0.05 * t + ph[0])
        cy = s / 2 + amp * stable_cos(2 * np.pi * 0.037 * t + ph[1])
        shake = np.zeros(plan.num_frames, np.float32)
        for a, b in plan.shake:
            shake[a:b] = 1.0
        jx = look.shake * shake * smooth_walk(rng, plan.num_frames, 0.8)
        jy = look.shake * shake * smooth_walk(rng, plan.num_frames, 0.8)
        self.cam = np.stack([cx + jx, cy + jy], axis=1)  # (T, 2) world coords of the view's top-left

        # Nuisance fields.
        # Smoke drifts upwards: a field twice the world's height, read at a moving row offset.
        self.smoke_field = fractal_noise(rng, 2 * w, 12)[:, :w]  # (2W, W), seamless
        self.smoke_alpha = np.zeros(plan.num_frames, np.float32)
        for a, b in plan.smoke:
            puff = 0.65 * stable_sin(np.pi * np.arange(b - a) / max(b - a, 1))
            self.smoke_alpha[a:b] = np.maximum(self.smoke_alpha[a:b], puff)
        self.speculars = [
            (rng.uniform(s / 2, 3 * s / 2, 2), float(rng.uniform(0.8, 2.5)), float(rng.uniform(0, 2 * np.pi)))
            for _ in range(look.speculars)
        ]
        self.flicker, self.burr_spin, self.stream_len = _oscillations(plan.num_frames, [p for *_, p in self.speculars])
        self.fluid_mask = None
        if plan.fluid:
            m = np.zeros((w, w), np.float32)
            c = rng.uniform(0.7 * s, 1.3 * s, 2)
            cv2.ellipse(
                m, (int(c[0]), int(c[1])), (int(s * 0.25), int(s * 0.12)), float(rng.uniform(0, 180)), 0, 360, 1.0, -1
            )
            self.fluid_mask = (gaussian_blur(m, 3.0) * 0.75).astype(np.float32)[..., None]
            self.fluid_tex = fractal_noise(rng, w, 10)
            self.fluid_velocity = rng.uniform(-1.0, 1.0, 2) * 1.2
        self.noise_bank = rng.normal(0, 2.5, (4, s, s, 1)).astype(np.float32)

    # ..................................................................... per frame
    def frame(self, t: int) -> np.ndarray:
        """Render frame ``t`` -> uint8 (size, size, 3) RGB."""
        p, s = self.plan, self.plan.size
        lim = self.world_size - s
        ox, oy = np.clip(self.cam[t], 0, lim)
        x0, y0 = int(round(ox)), int(round(oy))
        img = self.world[y0 : y0 + s, x0 : x0 + s].copy()

        if self.fluid_mask is not None:
            # A pool of blood whose surface texture flows: motion without semantics.
            sx, sy = (self.fluid_velocity * t).astype(np.int64) % self.world_size
            tex = np.roll(self.fluid_tex, (int(sy), int(sx)), axis=(0, 1))[y0 : y0 + s, x0 : x0 + s, None]
            blood = np.array([120, 10, 16], np.float32) + 70 * tex
            m = self.fluid_mask[y0 : y0 + s, x0 : x0 + s]
            img = img * (1 - m) + blood * m

        for tgt_track in p.tracks:
            if tgt_track.covers(t):
                self._draw_track(img, tgt_track, t - tgt_track.start, np.array([ox, oy], np.float32))

        img *= self.light
        for i, (pos, radius, _) in enumerate(self.speculars):
            q = pos - (ox, oy)
            if 0 <= q[0] < s and 0 <= q[1] < s:
                flick = float(self.flicker[t, i])
                cv2.circle(img, (int(q[0]), int(q[1])), max(int(radius * flick), 1), (255, 255, 250), -1, cv2.LINE_AA)

        a = float(self.smoke_alpha[t])
        if a > 0:
            drift = int(t * 0.7) % self.world_size
            f = self.smoke_field[y0 + drift : y0 + drift + s, x0 : x0 + s, None]
            alpha = np.clip(a * (0.4 + f), 0, 0.9)
            img = img * (1 - alpha) + np.float32(225) * alpha

        img += self.noise_bank[t % len(self.noise_bank)]
        return np.clip(img, 0, 255).astype(np.uint8)

    def _draw_track(self, img: np.ndarray, tr: Track, k: int, cam: np.ndarray) -> None:
        rgb, kind = TOOL_STYLES[tr.tool]
        tip = tr.tip[k] - cam
        entry = tr.entry - cam
        u = tip - entry
        u /= max(_length(u), 1e-6)  # unit vector along the shaft, towards the tip
        nrm = np.array([-u[1], u[0]], np.float32)
        s = self.plan.size
        width = max(int(s / 16), 2)
        L = s * 0.14  # tip length
        base = tip - u * L
        cv2.line(img, _pt(entry), _pt(base), (110, 112, 118), width + 2, cv2.LINE_AA)
        cv2.line(img, _pt(entry), _pt(base), SHAFT_RGB, width, cv2.LINE_AA)
        # a coloured band near the tip identifies the instrument even when the jaws are closed
        band = base - u * (s * 0.06)
        cv2.line(img, _pt(band), _pt(base), rgb, width, cv2.LINE_AA)
        jaw = float(tr.jaw[k])
        if kind in ("jaw", "blade"):
            spread = (0.15 + 0.55 * jaw) if kind == "jaw" else (0.05 + 0.35 * jaw)
            half = width * (0.6 if kind == "jaw" else 0.35)
            for sign in (-1.0, 1.0):
                d = u + sign * spread * nrm
                d /= _length(d)
                jn = np.array([-d[1], d[0]], np.float32)
                poly = np.stack([base + jn * half, base - jn * half, base + d * L])
                cv2.fillConvexPoly(img, poly.astype(np.int32), rgb, cv2.LINE_AA)
        elif kind == "hook":
            elbow = base + u * L * 0.8
            cv2.line(img, _pt(base), _pt(elbow), rgb, max(width - 1, 1), cv2.LINE_AA)
            cv2.line(img, _pt(elbow), _pt(elbow + nrm * L * 0.45), rgb, max(width - 1, 1), cv2.LINE_AA)
        elif kind == "tube":
            cv2.line(img, _pt(base), _pt(base + u * L), rgb, width + 1, cv2.LINE_AA)
            cv2.circle(img, _pt(base + u * L), max(width // 2, 1), (30, 30, 30), -1, cv2.LINE_AA)
        elif kind == "probe":
            cv2.line(img, _pt(base), _pt(base + u * L * 1.2), rgb, max(width // 2, 1), cv2.LINE_AA)
        elif kind == "burr":
            cv2.line(img, _pt(base), _pt(base + u * L * 0.7), rgb, max(width // 2, 1), cv2.LINE_AA)
            spin = self.burr_spin[k].astype(np.float32) * width  # spinning burr: a rotating bar at the tip
            c = base + u * L * 0.8
            cv2.line(img, _pt(c - spin), _pt(c + spin), rgb, 2, cv2.LINE_AA)
        elif kind == "loop":
            cv2.line(img, _pt(base), _pt(base + u * L * 0.5), rgb, 1, cv2.LINE_AA)
            r = int(L * (0.25 + 0.3 * (1 - jaw)))
            cv2.circle(img, _pt(base + u * (L * 0.5 + r)), max(r, 2), rgb, 1, cv2.LINE_AA)
        elif kind == "bag":
            pass  # the bag itself is drawn below
        if tr.bag > 0 or kind == "bag":
            r = max(int(tr.bag if tr.bag > 0 else s * 0.08), 3)
            cv2.ellipse(img, _pt(tip), (r, int(r * 0.7)), 0.0, 0, 360, (235, 235, 238), -1, cv2.LINE_AA)
        if tr.glow[k] > 0:
            g = float(tr.glow[k])
            cv2.circle(img, _pt(tip), max(int(width * (1 + g)), 1), (255, 250, 190), -1, cv2.LINE_AA)
        if tr.stream and tr.active[k]:
            end = tip + u * s * float(self.stream_len[k])
            cv2.line(img, _pt(tip), _pt(end), (190, 225, 255), max(width // 2, 1), cv2.LINE_AA)


def _oscillations(num_frames: int, phases: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-frame oscillations, computed once (stable_sin is exact but slow on single numbers).

    -> specular flicker (T, len(phases)), spinning-burr direction (T, 2) turning 0.8 rad a frame,
    irrigation stream length (T,) as a fraction of the frame size.
    """
    t = np.arange(num_frames, dtype=np.float64)
    flicker = 0.6 + 0.4 * stable_sin(0.9 * t[:, None] + np.asarray(phases, np.float64)[None, :])
    burr = np.stack([stable_cos(0.8 * t), stable_sin(0.8 * t)], axis=1)
    return flicker, burr, 0.15 + 0.05 * stable_sin(0.7 * t)


def _length(v: np.ndarray) -> float:
    """Euclidean length of a 2-vector (np.linalg.norm calls BLAS, whose kernel depends on the CPU)."""
    x, y = float(v[0]), float(v[1])
    return math.sqrt(x * x + y * y)


def _pt(p: np.ndarray) -> tuple[int, int]:
    return int(round(float(p[0]))), int(round(float(p[1])))
