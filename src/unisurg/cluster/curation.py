"""Curation's per-video work — probing, hashing, perceptual signatures, motion scores — on a Ray cluster.

:class:`RayInspect` is an inspection map (``unisurg.curation.index.InspectMap``): ``curate`` hands it
the list of videos and gets one ``VideoInfo`` per video back, in the list's order, and builds the clip
table, the dedup decisions, the leakage guard and the quality gate where it runs, exactly as with the
local process pool. So ``videos.parquet``, ``clips.parquet``, ``quarantine.parquet`` and
``curation.json`` are byte-identical whichever engine ran (tested).

- **Batches, not one task per video**: a Ray task inspects ``batch_size`` videos (measured per-video
  overhead: ``reports/perf.md``); at 100,000 videos one task (or one Prefect task run) per video would
  spend more on bookkeeping than on small videos.
- **A killed node**: its tasks fail with a system error and Ray runs them again elsewhere
  (``max_retries``).
- **A killed driver**: every finished batch is written at once, atomically, to ``state`` (under the
  output folder); the same command run again loads those and submits only the rest. A batch's file is
  named by its videos (path, size, mtime) and the inspection settings, so a changed file or setting is
  inspected again. The folder is removed when the index is written.
- **A video that crashes the decoder** (the worker process dies, e.g. a segfault in FFmpeg): the batch
  fails after its retry, is split into one task per video, and the video whose task dies twice is
  quarantined with that reason; the rest of its batch is inspected normally.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from ..curation.index import InspectJob
from ..curation.inspection import VideoInfo
from ..curation.signatures import SecondHashes
from ..io import atomic_path
from .session import connected

log = logging.getLogger(__name__)

BATCH = 16  # videos per Ray task by default (perf/bench_ray.py: the overhead per video is flat from ~8)
CRASH = "the inspecting worker process died twice on this video (a decoder crash?): {error}"
_SCALARS = [f.name for f in fields(VideoInfo) if f.name not in ("signature", "motion", "seconds")]


def inspect_batch(fn: Callable[[InspectJob], VideoInfo], jobs: list[InspectJob]) -> list[VideoInfo]:
    """What one Ray task runs: ``fn`` on each job, in order."""
    return [fn(j) for j in jobs]


# --------------------------------------------------------------------------- persisted batches


def save_batch(path: Path, infos: list[VideoInfo]) -> None:
    """``infos`` as one ``.npz`` (arrays and a JSON of the scalar fields; no pickles), atomically."""
    arrays: dict[str, np.ndarray] = {
        "scalars": np.array(json.dumps([{k: getattr(i, k) for k in _SCALARS} for i in infos]))
    }
    for n, i in enumerate(infos):
        arrays[f"signature{n}"] = np.array(i.signature, np.uint64)
        arrays[f"motion{n}"] = np.array(i.motion, np.float64)
        arrays[f"hash{n}"], arrays[f"code{n}"], arrays[f"valid{n}"] = i.seconds.hash, i.seconds.code, i.seconds.valid
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_batch(path: Path) -> list[VideoInfo]:
    with np.load(path, allow_pickle=False) as z:
        out = []
        for n, s in enumerate(json.loads(str(z["scalars"]))):
            seconds = SecondHashes(z[f"hash{n}"], z[f"code{n}"], z[f"valid{n}"])
            signature = tuple(int(v) for v in z[f"signature{n}"])
            motion = tuple(float(v) for v in z[f"motion{n}"])
            out.append(VideoInfo(**s, signature=signature, motion=motion, seconds=seconds))
        return out


def batch_key(fn: Callable, jobs: list[InspectJob]) -> str:
    """Names a batch by what determines its result: the function's name and keyword settings (a
    ``partial``'s), each video's path, size and modification time (a replaced file is inspected again),
    its fps and held-out flag."""
    func = getattr(fn, "func", fn)  # a partial: its function and keywords (the inspection settings)
    name = getattr(func, "__qualname__", type(func).__qualname__)
    what = [f"{func.__module__}.{name}", sorted(getattr(fn, "keywords", {}).items())]
    for j in jobs:
        try:
            st = os.stat(j.path)
            what.append([j.path, j.fps, j.held_out, st.st_size, st.st_mtime_ns])
        except OSError:  # missing or unreadable: inspection quarantines it; nothing to key on
            what.append([j.path, j.fps, j.held_out, None])
    return hashlib.sha1(json.dumps(what, default=str).encode()).hexdigest()[:20]


# --------------------------------------------------------------------------- the map


@dataclass
class RayInspect:
    """Inspect videos on the Ray cluster at ``address`` (``auto``: the one this machine belongs to)."""

    address: str
    state: Path  # finished batches (``<out>/.inspect``), removed by :meth:`done`
    batch_size: int = BATCH
    max_retries: int = 2  # system failures (a dead node or worker) of a batch before it is split
    progress: Callable[[int, int], None] | None = None  # (videos finished, videos in all)

    def __call__(self, fn: Callable[[InspectJob], VideoInfo], jobs: list[InspectJob]) -> list[VideoInfo]:
        with connected(self.address) as ray:
            return self._run(ray, fn, jobs)

    def _run(self, ray, fn, jobs: list[InspectJob]) -> list[VideoInfo]:
        t0 = time.perf_counter()
        self.state.mkdir(parents=True, exist_ok=True)
        batches = [jobs[i : i + self.batch_size] for i in range(0, len(jobs), self.batch_size)]
        results: list[list[VideoInfo] | None] = [None] * len(batches)
        files = [self.state / f"{batch_key(fn, b)}.npz" for b in batches]
        for k, f in enumerate(files):
            if f.is_file():
                results[k] = load_batch(f)
        reused = sum(r is not None for r in results)
        if reused:
            log.info("curate on Ray: %d of %d batches finished by an earlier run, loaded", reused, len(batches))
        task = ray.remote(inspect_batch)
        remote = task.options(max_retries=self.max_retries, num_cpus=1)
        fn_ref = ray.put(fn)
        pending = {remote.remote(fn_ref, b): k for k, b in enumerate(batches) if results[k] is None}
        done_videos = sum(len(r) for r in results if r is not None)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            k = pending.pop(ready[0])
            try:
                results[k] = ray.get(ready[0])
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
                log.warning(
                    "curate on Ray: batch %d lost its worker twice (%s): one task per video", k, type(err).__name__
                )
                results[k] = self._one_by_one(ray, task, fn_ref, batches[k])
            save_batch(files[k], results[k])
            done_videos += len(results[k])
            if self.progress is not None:
                self.progress(done_videos, len(jobs))
            log.debug("curate on Ray: batch %d done (%d/%d videos)", k, done_videos, len(jobs))
        dt = time.perf_counter() - t0
        log.info(
            "curate on Ray: %d videos in %d batches, %.1f s (%.1f videos/s)",
            len(jobs),
            len(batches),
            dt,
            len(jobs) / max(dt, 1e-9),
        )
        return [i for r in results for i in r]

    def _one_by_one(self, ray, task, fn_ref, batch: list[InspectJob]) -> list[VideoInfo]:
        """A batch whose worker kept dying: each video in a task of its own; one that still kills its
        worker is quarantined with the reason, the others are inspected."""
        single = task.options(max_retries=1, num_cpus=1)
        refs = [single.remote(fn_ref, [j]) for j in batch]
        out = []
        for j, ref in zip(batch, refs):
            try:
                out += ray.get(ref)
            except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError) as err:
                log.warning("curate on Ray: %s quarantined: its worker died twice", j.path)
                size = os.path.getsize(j.path) if os.path.isfile(j.path) else 0
                out.append(VideoInfo(j.path, False, CRASH.format(error=type(err).__name__), bytes=size))
        return out

    def done(self) -> None:
        """The index is written: the finished batches have served."""
        shutil.rmtree(self.state, ignore_errors=True)
