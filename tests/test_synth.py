"""The built-in corpus: deterministic, multi-source, labels carried by semantics not nuisance."""

import json

import numpy as np

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
from unisurg.synth.scene import SceneRenderer


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
