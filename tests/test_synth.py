"""The built-in corpus: deterministic, multi-source, labels carried by semantics not nuisance."""

import hashlib
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from unisurg.media.video import VideoWriter
from unisurg.synth.corpus import CorpusSpec, build_corpus
from unisurg.synth.layouts import SynthSpec, motion_quality, skill_trajectory
from unisurg.synth.looks import LOOKS, PRETRAIN_SOURCES
from unisurg.synth.procedure import (
    Segment,
    active_actions,
    class_signatures,
    fill_segments,
    new_plan,
    tools_present,
    workflow_segments,
)
from unisurg.synth.scene import SceneRenderer, cubic_upsample, gaussian_blur, stable_cos, stable_exp, stable_sin


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path):
    spec = SynthSpec(size=48, seconds=4.0, videos_per_split=(1, 1, 1), images_per_split=(2, 1, 1))
    names = ("autolaparo", "kvasirseg")
    a = build_corpus(tmp_path / "a", CorpusSpec(spec, 1, 2.0, names, seed=3), workers=2)
    b = build_corpus(tmp_path / "b", CorpusSpec(spec, 1, 2.0, names, seed=3), workers=1)
    c = build_corpus(tmp_path / "c", CorpusSpec(spec, 1, 2.0, names, seed=4), workers=1)
    assert a["files"] == b["files"]  # byte-identical, whatever the number of workers
    videos = [k for k in a["files"] if k.endswith(".mp4")]
    assert any(a["files"][k]["sha256"] != c["files"][k]["sha256"] for k in videos)
    assert json.loads((tmp_path / "a" / "manifest.json").read_text())["files"] == a["files"]


def test_pretraining_sources_span_regions(corpus):
    manifest = json.loads((corpus / "manifest.json").read_text())
    regions = {s["region"] for s in manifest["pretrain_sources"].values()}
    assert len(manifest["pretrain_sources"]) >= 6 and len(regions) >= 4
    for src in PRETRAIN_SOURCES:
        assert list((corpus / "pretrain" / src.name).rglob("*.mp4")), src.name
    assert len({LOOKS[s.look].tissue for s in PRETRAIN_SOURCES}) == len(PRETRAIN_SOURCES)  # each its own look


def test_labels_come_from_instruments_and_nuisance_is_label_free():
    tools, targets = ["grasper", "hook", "clipper"], ["gallbladder", "liver"]
    sig = class_signatures("t", 3, tools, targets)
    assert len({a[0][0] for a in sig.values()}) == 3  # with enough tools, every class has its own instrument

    def plan(smoke: bool):
        p = new_plan(LOOKS["lap_chole"], 64, 25.0, 250, seed=1, target_names=targets)
        p.smoke = [(0, 250)] if smoke else []
        rng = np.random.default_rng(2)
        fill_segments(p, workflow_segments(250, 25.0, [0, 1, 2], rng), sig, rng)
        return p

    clean, smoky = plan(False), plan(True)
    for t in range(0, 250, 10):  # identical labels with or without smoke
        assert tools_present(clean, t) == tools_present(smoky, t)
        assert active_actions(clean, t) == active_actions(smoky, t)
    a, b = SceneRenderer(clean).frame(100), SceneRenderer(smoky).frame(100)
    assert np.abs(a.astype(int) - b).mean() > 5  # ... while the pixels differ a lot
    seg = [Segment(0, 0, 250)]
    p = new_plan(LOOKS["lap_chole"], 64, 25.0, 250, seed=1, target_names=targets)
    fill_segments(p, seg, sig, np.random.default_rng(0), assistant=None)
    assert {a[0] for t in range(250) for a in active_actions(p, t)} == {sig[0][0][0]}


def test_skill_scores_follow_motion_quality():
    rng = np.random.default_rng(0)
    scores = []
    for q in (0.1, 0.5, 0.9):
        sm, ec = motion_quality(skill_trajectory(q, 300, 64, rng), 30.0, 64)
        scores.append(0.5 * sm + 0.5 * ec)
    assert scores[0] < scores[1] < scores[2]


# --------------------------------------------------------------------------- same bytes on every CPU

# Renders a small corpus and prints {file: sha256}. "plain" mode also turns off OpenCV's optimised
# paths (SIMD dispatch and IPP) and x264's assembly; the environment turns off the rest.
_RENDER = """
import functools, json, sys
from pathlib import Path
out, mode = Path(sys.argv[1]), sys.argv[2]
if mode == "plain":
    import cv2
    cv2.setUseOptimized(False)
    from unisurg.media.video import VideoWriter
    from unisurg.synth import layouts
    layouts.VideoWriter = functools.partial(VideoWriter, x264_asm=False)
from unisurg.synth.corpus import CorpusSpec, build_corpus
from unisurg.synth.layouts import SynthSpec
spec = SynthSpec(size=48, seconds=4.0, videos_per_split=(1, 0, 1), images_per_split=(4, 1, 2))
names = ("autolaparo", "egosurgery", "cholect50", "polypdiag", "kvasirseg", "cvc12k", "c3vd", "scared")
m = build_corpus(out, CorpusSpec(spec, 1, 2.0, names, seed=0), workers=1)
print(json.dumps({k: v["sha256"] for k, v in m["files"].items()}))
"""


def _plain_cpu_env() -> dict[str, str]:
    """Environment that sends NumPy, OpenCV, libjpeg-turbo, OpenBLAS and glibc's libm down their
    plain (baseline-ISA) code paths: what a CPU without this one's SIMD extensions would run."""
    from numpy._core import _multiarray_umath as umath

    env = dict(os.environ)
    npy = [t for t in umath.__cpu_dispatch__ if umath.__cpu_features__.get(t)]  # non-baseline, present here
    if npy:
        env["NPY_DISABLE_CPU_FEATURES"] = " ".join(npy)
    # OpenCV lists dispatched features as "*NAME" ("*NAME?" when this CPU lacks them)
    cv = [f[1:] for f in cv2.getCPUFeaturesLine().split() if f.startswith("*") and not f.endswith("?")]
    if cv:
        env["OPENCV_CPU_DISABLE"] = ",".join(cv)
    env["JSIMD_FORCENONE"] = "1"
    if platform.machine() in ("x86_64", "AMD64"):
        env["OPENBLAS_CORETYPE"] = "Prescott"
        env["GLIBC_TUNABLES"] = "glibc.cpu.hwcaps=-AVX2,-FMA,-AVX"
    return env


def _render(out: Path, mode: str, env: dict[str, str] | None = None) -> dict[str, str]:
    res = subprocess.run(
        [sys.executable, "-c", _RENDER, str(out), mode], env=env, capture_output=True, text=True, timeout=600
    )
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_corpus_bytes_do_not_depend_on_cpu_features(tmp_path):  # ~5 s: two renders of a 48-px corpus
    """Issue #17: another machine rendered another corpus. Videos and images (all scene, static and
    encoder paths) must come out byte-identical when NumPy, OpenCV, x264, libjpeg-turbo, OpenBLAS and
    libm run their plain code instead of the SIMD kernels this CPU selects."""
    normal = _render(tmp_path / "normal", "normal")
    plain = _render(tmp_path / "plain", "plain", _plain_cpu_env())
    assert {Path(k).suffix for k in normal} >= {".mp4", ".jpg", ".png", ".tif", ".tiff"}
    assert len(normal) > 100
    differ = sorted(k for k in normal if normal[k] != plain.get(k))
    assert normal.keys() == plain.keys() and not differ, f"{len(differ)} files depend on the CPU: {differ[:10]}"


def test_stable_math_is_accurate_and_pinned_to_the_bit():
    x = np.linspace(-2000.0, 2000.0, 100_001)
    for ours, ref in ((stable_sin, np.sin), (stable_cos, np.cos)):
        assert np.abs(ours(x) - ref(x)).max() < 1e-15
    assert np.abs(stable_exp(x / 4) / np.exp(x / 4) - 1).max() < 1e-15
    assert isinstance(stable_sin(0.5), np.floating) and stable_cos(0.0) == 1.0 and stable_exp(0.0) == 1.0
    # The exact bits, as on every machine (only IEEE + - * / rint ldexp): a CPU or NumPy build that
    # computed them differently would change the corpus, and fails here first.
    h = hashlib.sha256()
    for a in (stable_sin(x), stable_cos(x), stable_exp(x / 4)):
        h.update(a.tobytes())
    assert h.hexdigest() == "17e819cee8c6654a86c4d08b45985186cc6ecc1032b412dbcda72a3ea987b24f"
    with pytest.raises(ValueError):
        stable_sin(1e7)


def test_exact_filters_follow_opencv_recipes():
    """The NumPy replacements of cv2.resize(INTER_CUBIC) and cv2.GaussianBlur keep the corpus's looks."""
    grid = np.random.default_rng(0).random((15, 15), dtype=np.float32)
    want = cv2.resize(grid, (160, 160), interpolation=cv2.INTER_CUBIC)[:128, :128]
    assert np.abs(cubic_upsample(grid, 160, 128) - want).max() < 1e-5
    m = np.zeros((96, 96), np.float32)
    cv2.ellipse(m, (40, 50), (20, 10), 30, 0, 360, 1.0, -1, cv2.LINE_AA)
    for sigma in (1.5, 3.0):
        assert np.abs(gaussian_blur(m, sigma) - cv2.GaussianBlur(m, (0, 0), sigma)).max() < 1e-5


def test_yuv420p_conversion_is_bt601_limited_range():
    f = np.zeros((2, 8, 3), np.uint8)
    f[:, 0:2], f[:, 2:4], f[:, 4:6], f[:, 6:8] = (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255)
    yuv = VideoWriter.yuv420p(f)  # (3H/2, W): Y rows, then the U and V planes (W/2 each) packed
    assert yuv.shape == (3, 8)
    assert yuv[0].tolist() == yuv[1].tolist() == [235, 235, 81, 81, 145, 145, 41, 41]
    assert yuv[2, :4].tolist() == [128, 90, 54, 240] and yuv[2, 4:].tolist() == [128, 240, 34, 110]
