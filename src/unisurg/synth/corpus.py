"""Build the whole built-in corpus: unlabelled pretraining sources + 17 mini benchmarks.

Output layout (``out`` = ``data/synth``)::

    pretrain/<source>/case_NNN/<source>_NNN.mp4   unlabelled sources (>= 6, >= 4 regions)
    benchmarks/<Dataset>/...                       each benchmark in its real on-disk layout
    manifest.json                                  every file with its size and sha256

Everything is a pure function of (seed, sizes): the same seed gives byte-identical files,
so DVC hashes do not change on a re-run. Jobs run in a process pool; each job seeds its
own generators from names (``stable_seed``), never from execution order. The bytes do not
depend on the processor either: rendering avoids CPU-dispatched maths (see :mod:`.scene`) and
the H.264 writer converts colours itself and runs x264 CPU-independent (``VideoWriter``);
tests/test_synth.py renders with this CPU's SIMD paths turned off and compares.
"""

from __future__ import annotations

import logging
import shutil
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..io import sha256_file, write_json
from .layouts import WRITERS, SynthSpec, render_to_video
from .looks import LOOKS, PRETRAIN_SOURCES, PretrainSource
from .procedure import class_signatures, fill_segments, new_plan, stable_seed, workflow_segments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CorpusSpec:
    spec: SynthSpec
    pretrain_videos_per_source: int
    pretrain_seconds: float
    benchmarks: tuple[str, ...]
    seed: int


def write_pretrain_video(src: PretrainSource, k: int, out: Path, size: int, seconds: float, seed: int) -> None:
    s = stable_seed(seed, src.name, k)
    rng = np.random.default_rng(s)
    fps = 25.0
    n = int(seconds * fps)
    plan = new_plan(LOOKS[src.look], size, fps, n, s, list(src.targets))
    n_cls = 6
    sig = class_signatures(f"pretrain:{src.name}", n_cls, list(src.tools), list(src.targets))
    order = sorted(rng.choice(n_cls, size=4, replace=False).tolist())
    fill_segments(plan, workflow_segments(n, fps, order, rng), sig, rng)
    render_to_video(plan, out / "pretrain" / src.name / f"case_{k:03d}" / f"{src.name}_{k:03d}.mp4")


def _run(job: tuple) -> str:
    kind, args = job[0], job[1:]
    if kind == "pretrain":
        write_pretrain_video(*args)
        return f"pretrain:{args[0].name}:{args[1]}"
    name, root, spec, seed = args
    WRITERS[name][1](root, spec, seed)
    return f"benchmark:{name}"


def build_corpus(out: Path, cs: CorpusSpec, workers: int = 2) -> dict:
    """Write the corpus under ``out`` (replacing what is there) and return the manifest."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    unknown = [b for b in cs.benchmarks if b not in WRITERS]
    if unknown:
        raise ValueError(f"unknown benchmark(s) {unknown}; known: {sorted(WRITERS)}")
    jobs: list[tuple] = [
        ("benchmark", b, out / "benchmarks" / WRITERS[b][0], cs.spec, stable_seed(cs.seed, b)) for b in cs.benchmarks
    ]
    jobs += [
        ("pretrain", src, k, out, cs.spec.size, cs.pretrain_seconds, cs.seed)
        for src in PRETRAIN_SOURCES
        for k in range(cs.pretrain_videos_per_source)
    ]
    if workers > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            for done in pool.map(_run, jobs):
                log.info("synth: wrote %s", done)
    else:
        for job in jobs:
            log.info("synth: wrote %s", _run(job))
    files = sorted(p for p in out.rglob("*") if p.is_file())
    manifest = {
        "seed": cs.seed,
        "size": cs.spec.size,
        "benchmarks": {b: f"benchmarks/{WRITERS[b][0]}" for b in cs.benchmarks},
        "pretrain_sources": {
            s.name: {"root": f"pretrain/{s.name}", "region": LOOKS[s.look].region, "procedure": s.procedure}
            for s in PRETRAIN_SOURCES
        },
        "files": {str(p.relative_to(out)): {"bytes": p.stat().st_size, "sha256": sha256_file(p)} for p in files},
    }
    write_json(out / "manifest.json", manifest)
    return manifest
