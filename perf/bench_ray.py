"""Curation and feature extraction on a Ray cluster against the local engines (issue #22).

1. **Curation throughput**: the video files of the built-in corpus (``data/synth``: pretraining and
   benchmark videos; frame folders left out) x ``--scale`` (hard links in a temporary folder: same
   bytes, distinct paths), the inspection map timed
   — the part an engine changes; the clip table, dedup, guard and gate after it are the same code —
   on the local process pool with 1 and 2 workers (and 1 worker pinned to one core: a Ray worker holds
   one CPU slot) and on a Ray cluster (``LocalCluster``: a head
   with 1 or 2 CPU slots = worker processes), batches of ``curation.BATCH`` videos.
2. **Ray's overhead per video** at ``--tiny`` tiny videos (one 1-s 32-px H.264 file, hard-linked):
   inspected in this process one after another, then on Ray with one worker; the difference per video.
   And Ray with an inspection that does nothing: its scheduling, shipping and persistence alone.
3. **Extraction**: ``features extract`` windows per second (16 frames at 8 fps, 64 px, a window every
   0.25 s, random vit_micro) of ``--videos`` corpus videos, locally (this process, its torch threads)
   and on Ray with 1 and 2 actors (one torch thread each), the actors' start included.

The cluster's start (~15-20 s here) and the driver's first connection are left out of every timing and
reported apart. ``python perf/bench_ray.py --out reports/perf_ray.json``
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script

from unisurg.cluster.curation import BATCH, RayInspect
from unisurg.cluster.local import LocalCluster
from unisurg.curation.index import InspectJob, inspect_job, process_pool_map
from unisurg.curation.inspection import VideoInfo
from unisurg.media.video import VIDEO_EXTENSIONS


def linked(files: list[Path], copies: int, folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for c in range(copies):
        for i, f in enumerate(files):
            dst = folder / f"{c:05d}_{i:03d}{f.suffix}"
            os.link(f, dst)
            out.append(dst)
    return out


def nothing(job: InspectJob) -> VideoInfo:
    """An inspection that does no work: what is left is the engine's cost."""
    return VideoInfo(job.path, False, "not inspected")


def timed(fn, *args, **kwargs) -> tuple[float, object]:
    t = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - t, out


def ray_run(address: str, state: Path, fn, jobs, batch: int = BATCH) -> float:
    import ray

    ray.init(address=address, logging_level=logging.WARNING, log_to_driver=False)
    try:
        dt, _ = timed(RayInspect(address, state, batch), fn, jobs)
    finally:
        ray.shutdown()
    return dt


def one_core_throughput(videos: list[Path]) -> float:
    """Videos/s of the one-worker local map in a process pinned to one core: a Ray worker holds one CPU
    slot, while the local map's single process spreads its decoder threads over every core."""
    jobs = [InspectJob(str(p)) for p in videos]
    fn = partial(inspect_job, motion_step=2)
    with ProcessPoolExecutor(1, initializer=os.sched_setaffinity, initargs=(0, {0})) as pool:
        list(pool.map(fn, jobs[:1]))  # the worker's start and imports left out
        dt, _ = timed(lambda: list(pool.map(fn, jobs, chunksize=BATCH)))
    return round(len(jobs) / dt, 2)


def curation_throughput(videos: list[Path], tmp: Path) -> dict:
    jobs = [InspectJob(str(p)) for p in videos]
    fn = partial(inspect_job, motion_step=2)
    out: dict = {"videos": len(jobs), "local_1_one_core_videos_per_s": one_core_throughput(videos)}
    for w in (1, 2):
        dt, _ = timed(process_pool_map(w), fn, jobs)
        out[f"local_{w}_videos_per_s"] = round(len(jobs) / dt, 2)
    for w in (1, 2):
        t0 = time.perf_counter()
        with LocalCluster(head_cpus=w) as c:
            out[f"ray_{w}_cluster_start_s"] = round(time.perf_counter() - t0, 1)
            dt = ray_run(c.address, tmp / f"state{w}", fn, jobs)
        out[f"ray_{w}_videos_per_s"] = round(len(jobs) / dt, 2)
        out[f"ray_{w}_vs_local_{w}"] = round(out[f"ray_{w}_videos_per_s"] / out[f"local_{w}_videos_per_s"], 3)
    out["ray_1_vs_local_1_one_core"] = round(out["ray_1_videos_per_s"] / out["local_1_one_core_videos_per_s"], 3)
    return out


def overhead(n: int, tmp: Path) -> dict:
    from unisurg.media.video import VideoWriter

    tiny = tmp / "tiny.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(tiny, 25.0, 32, 32, crf=30) as w:
        for _ in range(25):
            w.write(rng.integers(0, 255, (32, 32, 3), dtype=np.uint8))
    jobs = [InspectJob(str(p)) for p in linked([tiny], n, tmp / "tiny")]
    fn = partial(inspect_job, motion_step=2)
    local_s, _ = timed(lambda: [fn(j) for j in jobs])  # noqa: B023 (called at once)
    out: dict = {"videos": n, "local_inspect_s": round(local_s, 2)}
    with LocalCluster(head_cpus=1) as c:
        for batch in (BATCH, 64):
            ray_s = ray_run(c.address, tmp / f"o{batch}", fn, jobs, batch)
            out[f"ray_inspect_s_batch{batch}"] = round(ray_s, 2)
            out[f"overhead_ms_per_video_batch{batch}"] = round(1e3 * (ray_s - local_s) / n, 2)
        noop_s = ray_run(c.address, tmp / "noop", nothing, jobs)
        out["ray_noop_s"] = round(noop_s, 2)
        out["noop_ms_per_video"] = round(1e3 * noop_s / n, 2)
    return out


def extraction(videos: list[Path], tmp: Path) -> dict:
    from unisurg.cluster.features import EncoderSpec, extract_on_ray
    from unisurg.evaluation.encoders import load_encoder_spec
    from unisurg.evaluation.extract import Windows, extract

    w = Windows(16, 8.0, 0.25, 64)  # 4 windows per second: enough work that the actors' start-up is amortised
    model, wid = load_encoder_spec("random:vit_micro", 0, 64)
    meta = {"encoder": "random:vit_micro", "weights": wid}
    dt, rows = timed(extract, model, videos, tmp / "local.parquet", w, 8, "mean", meta)
    out: dict = {"videos": len(videos), "windows": rows, "local_windows_per_s": round(rows / dt, 2)}
    for actors in (1, 2):
        with LocalCluster(head_cpus=actors) as c:
            import ray

            ray.init(address=c.address, logging_level=logging.WARNING, log_to_driver=False)
            try:
                enc = EncoderSpec("random:vit_micro")
                f = tmp / f"ray{actors}.parquet"
                dt, rows = timed(extract_on_ray, c.address, enc, videos, f, w, 8, meta, actors, shard_size=2)
            finally:
                ray.shutdown()
        out[f"ray_{actors}_windows_per_s"] = round(rows / dt, 2)
        out[f"ray_{actors}_vs_local"] = round(out[f"ray_{actors}_windows_per_s"] / out["local_windows_per_s"], 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--corpus", default="data/synth", help="the built-in corpus (its video files)")
    ap.add_argument("--scale", type=int, default=16, help="copies of the corpus videos (hard links)")
    ap.add_argument("--tiny", type=int, default=10000, help="tiny videos for the per-video overhead")
    ap.add_argument("--videos", type=int, default=24, help="videos for the extraction comparison")
    ap.add_argument("--parts", default="curation,overhead,extraction", help="what to measure (others kept from --out)")
    ap.add_argument("--out", default="reports/perf_ray.json")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)
    files = sorted(p for p in Path(a.corpus).rglob("*") if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file())
    if not files:
        raise SystemExit(f"no videos under {a.corpus}: run `dvc repro synth` first")
    parts = a.parts.split(",")
    result = json.loads(Path(a.out).read_text()) if Path(a.out).is_file() else {}
    result.update(machine=machine(), corpus=f"{len(files)} videos of {a.corpus} x {a.scale}", batch=BATCH)
    with tempfile.TemporaryDirectory(dir="/tmp") as d:
        tmp = Path(d)
        if "curation" in parts:
            result["curation"] = curation_throughput(linked(files, a.scale, tmp / "scaled"), tmp)
        elif "one_core" in parts:  # only the pinned local figure, beside a curation run already in --out
            c = result["curation"]
            c["local_1_one_core_videos_per_s"] = one_core_throughput(linked(files, a.scale, tmp / "scaled"))
            c["ray_1_vs_local_1_one_core"] = round(c["ray_1_videos_per_s"] / c["local_1_one_core_videos_per_s"], 3)
        if "overhead" in parts:
            result["overhead"] = overhead(a.tiny, tmp)
        if "extraction" in parts:
            result["extraction"] = extraction([f for f in files if "pretrain" in f.parts][: a.videos], tmp)
    Path(a.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
