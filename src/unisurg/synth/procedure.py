"""Surgical procedures as plans: phases -> instrument tracks with verb kinematics -> labels.

A *signature* says what happens in one class (phase/step/action): which instrument does
which verb on which target. The verbs differ by their **motion pattern** (grasp closes the
jaws and holds, retract pulls slowly, dissect pushes and pulls fast, coagulate holds still
with a flickering glow, clip snaps the jaws once per second, cut scissors fast, aspirate
circles, irrigate sprays, pack opens a bag), so recognising them needs temporal context
— the reason to use a *video* encoder.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from .scene import TOOL_STYLES, Look, ScenePlan, Target, Track, stable_cos, stable_sin

VERBS: tuple[str, ...] = (
    "grasp",
    "retract",
    "dissect",
    "coagulate",
    "clip",
    "cut",
    "aspirate",
    "irrigate",
    "pack",
    "null_verb",
)

# Stable colours for anatomical targets, independent of the source's look (semantic cue).
_TARGET_PALETTE = [
    (196, 168, 60),
    (150, 60, 70),
    (220, 200, 150),
    (200, 80, 90),
    (120, 40, 60),
    (90, 20, 40),
    (110, 15, 20),
    (230, 170, 160),
    (130, 50, 40),
    (240, 220, 200),
    (235, 205, 120),
    (200, 150, 150),
    (210, 170, 140),
    (240, 240, 240),
    (170, 120, 170),
    (90, 120, 160),
    (160, 190, 110),
    (60, 90, 60),
]


def stable_seed(*parts: object) -> int:
    """A seed derived from names (not Python's salted ``hash``), identical on every machine."""
    return zlib.crc32("|".join(str(p) for p in parts).encode()) & 0x7FFFFFFF


def target_rgb(name: str) -> tuple[int, int, int]:
    return _TARGET_PALETTE[stable_seed("target", name) % len(_TARGET_PALETTE)]


Action = tuple[str, str, str]  # (tool, verb, target)


@dataclass(frozen=True)
class Segment:
    label: int  # class index (phase/step/action); -1 = background (no instruments)
    start: int  # frame, inclusive
    end: int  # frame, exclusive


# --------------------------------------------------------------------------- kinematics


def verb_motion(verb: str, n: int, fps: float, scale: float, rng: np.random.Generator):
    """Tip motion of a verb over ``n`` frames.

    Returns ``(offset, jaw, glow, stream)``: offset (n, 2) in the (along-shaft, across-shaft)
    frame in pixels (``scale`` = frame size), jaw (n,) in [0, 1], glow (n,) in [0, 1].
    Oscillations use :func:`.scene.stable_sin` (NumPy's ``np.sin`` differs in the last bits
    between CPUs), so the same plan gives the same tracks on every machine.
    """
    t = np.arange(n) / fps  # (n,) float64 seconds
    a = scale / 64.0  # motion amplitudes are defined for a 64-px frame
    ph = float(rng.uniform(0, 2 * np.pi))
    off = np.zeros((n, 2), np.float32)
    jaw = np.full(n, 0.5, np.float32)
    glow = np.zeros(n, np.float32)
    stream = False
    if verb == "grasp":
        jaw = np.clip(1.0 - t / 0.8, 0.05, 1.0)
        off[:, 1] = 0.6 * a * stable_sin(2 * np.pi * 0.4 * t + ph)
    elif verb == "retract":
        jaw[:] = 0.05
        off[:, 0] = -5.0 * a * (1 - stable_cos(2 * np.pi * 0.3 * t)) / 2
    elif verb == "dissect":
        off[:, 0] = 2.5 * a * stable_sin(2 * np.pi * 2.0 * t + ph)
        jaw = 0.5 + 0.5 * stable_sin(2 * np.pi * 2.0 * t + ph)
    elif verb == "coagulate":
        jaw[:] = 0.2
        glow = 0.6 + 0.4 * stable_sin(2 * np.pi * 5.0 * t + ph)
    elif verb == "clip":
        jaw = 1.0 - (t % 1.0)  # opens, then snaps shut once a second
        off[:, 0] = 0.8 * a * stable_sin(2 * np.pi * 0.5 * t)
    elif verb == "cut":
        jaw = (stable_sin(2 * np.pi * 3.0 * t + ph) > 0).astype(np.float32)
        off[:, 1] = 2.0 * a * stable_sin(2 * np.pi * 1.5 * t)
    elif verb == "aspirate":
        off[:, 0] = 2.5 * a * stable_cos(2 * np.pi * 0.8 * t + ph)
        off[:, 1] = 2.5 * a * stable_sin(2 * np.pi * 0.8 * t + ph)
    elif verb == "irrigate":
        stream = True
        off[:, 1] = 0.5 * a * stable_sin(2 * np.pi * 0.3 * t)
    elif verb == "pack":
        off[:, 0] = 2.0 * a * stable_sin(2 * np.pi * 0.5 * t + ph)
        off[:, 1] = 2.0 * a * stable_sin(2 * np.pi * 1.0 * t + ph)
    elif verb == "null_verb":
        off[:, 0] = 3.0 * a * stable_sin(2 * np.pi * 0.15 * t + ph)
        off[:, 1] = 3.0 * a * stable_cos(2 * np.pi * 0.11 * t + ph)
    else:
        raise ValueError(f"unknown verb {verb!r}; known: {VERBS}")
    return off, jaw.astype(np.float32), glow.astype(np.float32), stream


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0, 1)
    return x * x * (3 - 2 * x)


def make_track(
    tool: str, verb: str, target: Target | None, start: int, end: int, plan: ScenePlan, rng: np.random.Generator
) -> Track:
    """An instrument that enters from off-screen, performs ``verb`` on ``target``, and leaves."""
    if tool not in TOOL_STYLES:
        raise ValueError(f"unknown tool {tool!r}")
    n = end - start
    s = plan.size
    if target is not None:
        goal = np.array(target.center, np.float32) + rng.uniform(-0.4, 0.4, 2).astype(np.float32) * target.axes
    else:
        goal = np.array([s, s], np.float32) + rng.uniform(-0.25, 0.25, 2).astype(np.float32) * s
    # Ports are fixed in a procedure: each instrument type comes from its own side of the
    # view (a stable angle per (procedure, tool)), with a little per-case jitter.
    port = stable_seed("port", plan.layout_key, tool) % 360
    ang = float(np.deg2rad(port) + rng.uniform(-0.3, 0.3))
    d = np.array([stable_cos(ang), stable_sin(ang)], np.float32)  # from the tip towards the trocar
    entry = goal + d * s * 1.3
    u = -d  # shaft direction towards the tip
    nrm = np.array([-u[1], u[0]], np.float32)
    n_in = min(int(0.6 * plan.fps), n // 4)
    n_out = min(int(0.4 * plan.fps), n // 5)
    off, jaw, glow, stream = verb_motion(verb, n, plan.fps, s, rng)
    tip = goal + off[:, :1] * u + off[:, 1:] * nrm  # (n, 2)
    active = np.ones(n, bool)
    far = goal + d * s * 0.75
    if n_in > 0:
        w = _smoothstep(np.arange(n_in, dtype=np.float32) / n_in)[:, None]
        tip[:n_in] = far * (1 - w) + tip[:n_in] * w
        active[:n_in] = False
        glow[:n_in] = 0
        jaw[:n_in] = 0.3
    if n_out > 0:
        w = _smoothstep(np.arange(n_out, dtype=np.float32) / n_out)[:, None]
        tip[n - n_out :] = tip[n - n_out :] * (1 - w) + far * w
        active[n - n_out :] = False
        glow[n - n_out :] = 0
    bag = 0.0
    if verb == "pack" or tool == "specimen_bag":
        bag = s * 0.07
    return Track(
        tool=tool,
        start=start,
        end=end,
        entry=entry,
        tip=tip.astype(np.float32),
        jaw=jaw,
        glow=glow,
        active=active,
        verb=verb,
        target=target.name if target else "null_target",
        stream=stream,
        bag=bag,
    )


# --------------------------------------------------------------------------- scenes


def place_targets(names: list[str], size: int, rng: np.random.Generator, layout_key: str) -> list[Target]:
    """Spread the named targets over the part of the world the camera keeps in view.

    The arrangement (which structure sits where) is the procedure's anatomy, fixed by
    ``layout_key``; sizes and exact positions vary per case.
    """
    real = [nm for nm in names if not nm.startswith("null")]
    k = len(real)
    cols = int(np.ceil(np.sqrt(max(k, 1))))
    span = 0.62 * size
    cell = span / cols
    order = np.random.default_rng(stable_seed("anatomy", layout_key)).permutation(k)
    out = []
    for i, idx in enumerate(order):
        r, c = divmod(i, cols)
        cx = size - span / 2 + (c + 0.5) * cell + rng.uniform(-0.15, 0.15) * cell
        cy = size - span / 2 + (r + 0.5) * cell + rng.uniform(-0.15, 0.15) * cell
        ax = (cell * rng.uniform(0.28, 0.42), cell * rng.uniform(0.22, 0.34))
        out.append(Target(real[idx], (float(cx), float(cy)), (float(ax[0]), float(ax[1])), target_rgb(real[idx])))
    return out


def add_nuisance(plan: ScenePlan, rng: np.random.Generator) -> None:
    """Smoke, camera shake and a fluid pool, drawn independently of every label."""
    minutes = plan.num_frames / plan.fps / 60.0
    for _ in range(rng.poisson(plan.look.smoke_per_min * minutes)):
        dur = int(rng.uniform(1.5, 4.0) * plan.fps)
        a = int(rng.integers(0, max(plan.num_frames - dur, 1)))
        plan.smoke.append((a, min(a + dur, plan.num_frames)))
    for _ in range(rng.poisson(2.0 * minutes + 0.5)):
        dur = int(rng.uniform(0.5, 2.0) * plan.fps)
        a = int(rng.integers(0, max(plan.num_frames - dur, 1)))
        plan.shake.append((a, min(a + dur, plan.num_frames)))
    plan.fluid = bool(rng.random() < plan.look.fluid)


def new_plan(
    look: Look, size: int, fps: float, num_frames: int, seed: int, target_names: list[str], layout_key: str = ""
) -> ScenePlan:
    """A scene of one case: ``layout_key`` (the procedure) fixes anatomy and ports, ``seed`` the case."""
    rng = np.random.default_rng(seed)
    key = layout_key or look.name
    plan = ScenePlan(
        look=look,
        size=size,
        fps=fps,
        num_frames=num_frames,
        seed=seed,
        targets=place_targets(target_names, size, rng, key),
        layout_key=key,
    )
    add_nuisance(plan, rng)
    return plan


def fill_segments(
    plan: ScenePlan,
    segments: list[Segment],
    signatures: dict[int, list[Action]],
    rng: np.random.Generator,
    assistant: Action | None = None,
    assistant_prob: float = 0.5,
) -> None:
    """Create the instrument tracks that perform each segment's class signature.

    Within a segment the signature's actions are performed one after another (each
    0.4x-1x of the segment); with ``assistant_prob`` an assisting instrument (the same
    for every class, so it carries no class information) works alongside.
    """
    for seg in segments:
        if seg.label < 0:
            continue
        acts = signatures[seg.label]
        n = seg.end - seg.start
        # split the segment into len(acts) consecutive sub-spans of random length
        w = rng.dirichlet(np.full(len(acts), 4.0))
        bounds = seg.start + np.concatenate([[0], np.cumsum(w)]) * n
        for (tool, verb, tname), a, b in zip(acts, bounds[:-1], bounds[1:]):
            a, b = int(a), int(b)
            if b - a < max(int(0.5 * plan.fps), 4):
                continue
            tgt = _find_target(plan, tname)
            plan.tracks.append(make_track(tool, verb, tgt, a, b, plan, rng))
        if assistant is not None and rng.random() < assistant_prob and n > plan.fps:
            tool, verb, tname = assistant
            a = seg.start + int(rng.uniform(0, 0.3) * n)
            b = seg.end - int(rng.uniform(0, 0.3) * n)
            plan.tracks.append(make_track(tool, verb, _find_target(plan, tname), a, b, plan, rng))


def _find_target(plan: ScenePlan, name: str) -> Target | None:
    if name.startswith("null"):
        return None
    return plan.target(name)


def workflow_segments(
    num_frames: int,
    fps: float,
    classes: list[int],
    rng: np.random.Generator,
    min_seconds: float = 1.5,
    skip_prob: float = 0.0,
) -> list[Segment]:
    """Consecutive segments for the ordered class list ``classes`` covering the whole video."""
    chosen = [c for i, c in enumerate(classes) if i == 0 or rng.random() >= skip_prob]
    k = len(chosen)
    # Short videos (tests) shrink the minimum so that every class still gets a segment.
    min_len = min(int(min_seconds * fps), num_frames // (2 * k))
    if min_len < 1:
        raise ValueError(f"{k} segments do not fit in {num_frames} frames")
    w = rng.dirichlet(np.full(k, 3.0))
    lengths = min_len + np.floor(w * (num_frames - k * min_len)).astype(int)
    lengths[-1] = num_frames - lengths[:-1].sum()
    out, start = [], 0
    for c, ln in zip(chosen, lengths):
        out.append(Segment(c, start, start + int(ln)))
        start += int(ln)
    return out


def class_signatures(
    key: str, num_classes: int, tools: list[str], targets: list[str], per_class: int = 2
) -> dict[int, list[Action]]:
    """Deterministic, mutually distinct signatures for the classes of a benchmark or source.

    Class c is performed by tool ``tools[c mod T]`` (after a seeded shuffle): with no more
    classes than tools every class has its own instrument, as phases in real procedures
    largely do; beyond that, classes sharing an instrument differ by verb (motion). Each
    class performs ``per_class`` verbs with its instrument on one target.
    """
    rng = np.random.default_rng(stable_seed("signature", key))
    verbs = [v for v in VERBS if v != "null_verb"]
    T, V = len(tools), len(verbs)
    if num_classes > T * V:
        raise ValueError(f"{key}: {num_classes} classes need more than {T * V} tool/verb pairs")
    tool_order = [tools[i] for i in rng.permutation(T)]
    verb_order = [verbs[i] for i in rng.permutation(V)]
    real_targets = [t for t in targets if not t.startswith("null")]
    out: dict[int, list[Action]] = {}
    for c in range(num_classes):
        tool = tool_order[c % T]
        first = (c // T + c % T) % V  # distinct verbs for classes sharing a tool
        target = real_targets[int(rng.integers(len(real_targets)))]
        out[c] = [(tool, verb_order[(first + k * (num_classes // T + 1)) % V], target) for k in range(per_class)]
    return out


def tools_present(plan: ScenePlan, t: int) -> set[str]:
    return {tr.tool for tr in plan.tracks if tr.covers(t)}


def active_actions(plan: ScenePlan, t: int) -> set[Action]:
    return {(tr.tool, tr.verb, tr.target) for tr in plan.tracks if tr.covers(t) and tr.active[t - tr.start]}
