"""Adding a benchmark is one declaration plus its loader and synth writer.

A toy 18th benchmark (clip classification on a few short H.264 videos) is declared here, its
mini dataset written with the project's video writer, and it runs through the command line
and the harness end to end — registered in a temporary registry, so no other test sees it.
"""

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from unisurg.benchmarks import Benchmark, Record, Registry, VideoSource, get_benchmark, list_benchmarks, suite, using
from unisurg.benchmarks.families import ClipClassification
from unisurg.benchmarks.parsing import check_header, read_lines
from unisurg.benchmarks.problems import Problems
from unisurg.benchmarks.records import IdSplit
from unisurg.cli import main
from unisurg.evaluation.encoders import load_encoder_spec
from unisurg.evaluation.harness import run_benchmark
from unisurg.evaluation.protocols import ProbeGrid, Protocol, Sampling
from unisurg.media.video import VideoWriter
from unisurg.synth.layouts import SynthSpec, write_text
from unisurg.synth.procedure import stable_seed

ROOT = Path(__file__).resolve().parents[1]

# --------------------------------------------------------------------------- 1. the loader

TOY_CLASSES = ("clear", "smoke")
TOY_SPLIT = IdSplit(train=(1, 2, 3, 4, 5, 6), val=(7, 8), test=(9, 10, 11, 12))


def load_toy(root: Path, problems: Problems) -> list[Record]:
    """``videos/NN.mp4`` + ``labels.csv`` (header ``video,label``; label = class name); split by number."""
    path = root / "labels.csv"
    lines = read_lines(path, problems)
    if lines is None or not check_header(path, lines[0], ["video", "label"], problems, ","):
        return []
    records = []
    for ln, line in enumerate(lines[1:], start=2):
        name, _, label = line.partition(",")
        video = root / "videos" / f"{name}.mp4"
        if label not in TOY_CLASSES:
            problems.add(path, ln, f"unknown label {label!r}")
        elif not video.exists():
            problems.add(path, ln, f"video {video.name} missing")
        else:
            label_id = np.array([TOY_CLASSES.index(label)])
            records.append(Record(name, TOY_SPLIT.of(int(name)), VideoSource(str(video)), label_id))
    return records


# --------------------------------------------------------------------------- 2. the declaration

TOY = Benchmark(
    number=18,
    name="toyclips",
    title="ToyClips",
    family=ClipClassification(),
    classes=TOY_CLASSES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_toy,
    description="toy clip classification: smoke or clear view; split 6/2/4 by video number",
    split=TOY_SPLIT,
)

# --------------------------------------------------------------------------- 3. the synth writer


def write_toy(root: Path, spec: SynthSpec, seed: int) -> None:
    """The toy layout with the declared split's ids: smoke clips are brighter than clear ones."""
    rows = []
    for ids in TOY.split.table().values():
        for num in ids:
            label = num % 2
            rng = np.random.default_rng(stable_seed(seed, "toyclips", num))
            with VideoWriter(root / "videos" / f"{num:02d}.mp4", 8.0, spec.size, spec.size) as w:
                for _ in range(8):
                    w.write((rng.integers(0, 96, (spec.size, spec.size, 3)) + 120 * label).astype(np.uint8))
            rows.append(f"{num:02d},{TOY_CLASSES[label]}\n")
    write_text(root / "labels.csv", "video,label\n" + "".join(rows))


# --------------------------------------------------------------------------- tests

GRID = ProbeGrid(lrs=(1e-3, 1e-2), weight_decays=(0.01,), epochs=3, batch_size=4, depth=1, num_heads=2)
PROTO = Protocol("test", Sampling(frames=4, fps=4.0, size=32), GRID, bootstrap=20)


def with_toy() -> Registry:
    return Registry([*suite().list(), TOY])


def test_the_toy_benchmark_exists_only_inside_its_temporary_registry():
    with using(with_toy()):
        assert get_benchmark("toyclips") is TOY and get_benchmark("ToyClips") is TOY
        assert [b.number for b in list_benchmarks()] == list(range(1, 19))  # the 18th, after the suite
    with pytest.raises(KeyError, match="toyclips"):
        get_benchmark("toyclips")
    assert [b.number for b in list_benchmarks()] == list(range(1, 18))


def test_a_registry_refuses_a_taken_name_or_number():
    reg = with_toy()
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(dataclasses.replace(TOY, name="cholec80", number=None))
    with pytest.raises(ValueError, match="number 1 is taken by 'cholec80'"):
        reg.register(dataclasses.replace(TOY, name="toy2", number=1))


def test_a_new_benchmark_runs_end_to_end(tmp_path):
    root = tmp_path / "ToyClips"
    write_toy(root, SynthSpec(size=32), seed=0)
    rep = TOY.validate(root)
    assert rep.ok and rep.counts == {"train": 6, "val": 2, "test": 4}, rep
    assert rep.class_counts == {"clear": 6, "smoke": 6}
    with using(with_toy()):
        # the harness, as `unisurg evaluate` calls it on the registered declaration
        res, preds, _ = run_benchmark(
            get_benchmark("toyclips"),
            root,
            {"rand": load_encoder_spec("random:vit_nano", 0, PROTO.sampling.size)},
            PROTO,
            seed=0,
            cache_dir=tmp_path / "cache",
            batch_size=4,
        )
        # and the command line, which finds the benchmark by name
        metrics = tmp_path / "out" / "results.json"  # without --metrics: beside the predictions
        args = ["evaluate", "--params", str(ROOT / "params.yaml"), "--quiet", "--benchmark", "toyclips"]
        args += ["--root", str(root), "--out", str(tmp_path / "out")]
        args += ["--encoder", "rand=random:vit_nano", "--set", f"evaluate.cache_dir={tmp_path}/c"]  # not params' models
        args += ["--set", "evaluate.clip={frames: 4, fps: 4.0, size: 32}", "--set", "evaluate.bootstrap=20"]
        args += ["--set", "evaluate.probe={lrs: [0.01], weight_decays: [0.01], epochs: 2, seeds: 1}"]
        assert main(args) == 0
    r = res["models"]["rand"]
    assert (res["name"], res["task"], res["metric"]) == ("toyclips", "clip", "accuracy")
    assert res["classes"] == ["clear", "smoke"]
    assert res["splits"] == {
        "train": ["01", "02", "03", "04", "05", "06"],
        "val": ["07", "08"],
        "test": ["09", "10", "11", "12"],
    }
    assert set(r["metrics"]) == {"accuracy", "f1"} and 0 <= r["value"] <= 1 and np.isfinite(r["value"])
    assert r["n_test_samples"] == 4 and preds.num_rows == 8  # the encoder's rows and the null's
    assert res["null"]["heads"][0]["null"] == "training prior" and set(r["paired"]) == {"null"}
    cli = json.loads(metrics.read_text())
    assert cli["name"] == "toyclips" and cli["classes"] == ["clear", "smoke"]
    assert set(cli["models"]) == {"rand"} and 0 <= cli["models"]["rand"]["value"] <= 1  # --encoder replaced the models
    # only the fields that differ from the preset are named (weight_decays [0.01] is mini's own)
    label = "mini+clip.frames+clip.fps+clip.size+probe.lrs+probe.epochs+probe.seeds+bootstrap"
    assert cli["protocol"]["label"] == label
