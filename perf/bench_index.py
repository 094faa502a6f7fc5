"""Index-scale benchmark: build the clip table for a UniSurg-15M-sized corpus and query it.

A synthetic video table (no video files: metadata only, drawn to match UniSurg-15M's
3,658 hours over 50 sources and 13 regions) goes through the same clip-table builder and
Parquet writer as ``unisurg curate``; we measure build time, bytes per row, peak memory and
typical DuckDB queries, next to a bare DuckDB write of the same number of rows measured in
the same run (the physical reference).

    python perf/bench_index.py --clips 15000000      # writes reports/perf_index.json
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script
import pyarrow as pa

REGIONS = [
    "brain",
    "eye",
    "stomach",
    "gallbladder",
    "colon",
    "uterus",
    "prostate",
    "liver",
    "breast",
    "bronchi",
    "bench-top",
    "spine",
    "heart",
]
REGION_SHARE = np.array([0.78, 0.05, 0.03, 0.03, 0.03, 0.02, 0.015, 0.015, 0.01, 0.01, 0.01, 0.005, 0.005])


def synthetic_videos(target_clips: int, clip_stride_s: float, seed: int = 0) -> pa.Table:
    """A video table whose clips add up to ~``target_clips`` (one clip per stride second)."""
    from unisurg.curation.index import VIDEO_SCHEMA

    rng = np.random.default_rng(seed)
    hours_needed = target_clips * clip_stride_s / 3600
    durations = []
    while sum(durations) / 3600 < hours_needed:
        durations.append(float(rng.lognormal(np.log(1800), 0.8)))  # ~30 min typical case
    n = len(durations)
    fps = rng.choice([25.0, 30.0, 50.0], n, p=[0.6, 0.3, 0.1])
    region = rng.choice(len(REGIONS), n, p=REGION_SHARE / REGION_SHARE.sum())
    source = rng.integers(0, 50, n)
    rows = {
        "video_id": [f"source_{s:02d}/case_{i:06d}.mp4" for i, s in enumerate(source)],
        "path": [f"/archive/source_{s:02d}/case_{i:06d}.mp4" for i, s in enumerate(source)],
        "source": [f"source_{s:02d}" for s in source],
        "region": [REGIONS[r] for r in region],
        "procedure": ["surgery"] * n,
        "license": ["private"] * n,
        "role": ["pretrain"] * n,
        "split": [""] * n,
        "num_frames": (np.array(durations) * fps).astype(np.int64),
        "fps": fps,
        "duration_s": np.array(durations),
        "width": np.full(n, 1280, np.int32),
        "height": np.full(n, 720, np.int32),
        "codec": ["h264"] * n,
        "bytes": (np.array(durations) * 4e5).astype(np.int64),
        "sha256": [f"{i:064x}" for i in range(n)],
        "signature": [[0, 0, 0, 0]] * n,
        "status": ["kept"] * n,
        "reason": [""] * n,
    }
    return pa.table(rows, schema=VIDEO_SCHEMA)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def build_index(videos: pa.Table, folder: Path) -> tuple[float, float, int]:
    """What ``unisurg curate`` writes after inspection, timed: the clip table a row group at a time,
    the video and quarantine tables, the DuckDB index -> (seconds, this process's peak RSS in MB, clips).
    Run in a fresh process (spawned) so the peak is the build's alone."""
    from unisurg.curation.index import QUARANTINE_SCHEMA, build_index_sql, clip_batches, write_clips
    from unisurg.io import write_table

    t0 = time.perf_counter()
    counts = write_clips(folder / "clips.parquet", clip_batches(videos, clip_frames=16, frame_step=2, clip_stride_s=1.0))
    write_table(folder / "videos.parquet", videos)
    write_table(folder / "quarantine.parquet", QUARANTINE_SCHEMA.empty_table())
    build_index_sql(folder)
    return time.perf_counter() - t0, peak_rss_mb(), sum(counts["source"].values())


def bare_duckdb_write(n: int, path: Path) -> float:
    """The physical reference: DuckDB generating n rows of 7 clip-like columns and writing them."""
    import duckdb

    con = duckdb.connect()
    t0 = time.perf_counter()
    con.execute(f"""CREATE TABLE t AS SELECT range AS clip, range // 900 AS video, (range % 50)::VARCHAR AS source,
                 (range % 13)::VARCHAR AS region, (range % 900) * 25 AS start_frame, 2 AS frame_step,
                 (range % 900)::DOUBLE AS start_s FROM range({n})""")
    con.execute(f"COPY t TO '{path}' (FORMAT parquet, COMPRESSION zstd)")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=15_000_000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reports/perf_index.json")
    args = ap.parse_args(argv)
    from unisurg.curation.index import open_index

    videos = synthetic_videos(args.clips, 1.0)
    builds, bares, peaks = [], [], []
    timings: dict[str, list[float]] = {}
    queries = {
        "hours_by_region": "SELECT region, sum(duration_s) / 3600 AS hours FROM videos GROUP BY region",
        "clips_by_region": "SELECT region, count(*) FROM clips GROUP BY region",
        "clips_of_one_source": "SELECT count(*), avg(end_s - start_s) FROM clips WHERE source = 'source_07'",
    }
    spawn = multiprocessing.get_context("spawn")
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            tmp = Path(tmp)
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                pool.submit(peak_rss_mb).result()  # the worker's start and imports are not timed
                build_s, peak, n_clips = pool.submit(build_index, videos, tmp).result()
            builds.append(build_s)
            peaks.append(peak)
            size = (tmp / "clips.parquet").stat().st_size
            with ProcessPoolExecutor(1, mp_context=spawn) as pool:
                bares.append(pool.submit(bare_duckdb_write, n_clips, tmp / "bare.parquet").result())
            con = open_index(tmp)
            for name, sql in queries.items():
                t = time.perf_counter()
                con.sql(sql).fetchall()
                timings.setdefault(name, []).append(time.perf_counter() - t)
            con.close()
    build_s, bare_s = float(np.median(builds)), float(np.median(bares))
    spread = lambda v: [round(float(min(v)), 3), round(float(max(v)), 3)]  # noqa: E731
    result = {
        "clip_rows": n_clips,
        "videos": videos.num_rows,
        "hours": round(float(np.sum(videos["duration_s"])) / 3600, 1),
        "repeats": args.repeats,
        "build_s": round(build_s, 2),
        "build_range_s": spread(builds),
        "bare_duckdb_write_s": round(bare_s, 2),
        "bare_range_s": spread(bares),
        "build_vs_bare": round(build_s / bare_s, 2),
        "clips_parquet_bytes": size,
        "bytes_per_row": round(size / n_clips, 2),
        "peak_rss_mb": round(max(peaks), 0),
        "peak_rss_of": "the build's process (spawned; imports included)",
        "queries_s": {k: round(float(np.median(v)), 4) for k, v in timings.items()},
        "queries_range_s": {k: spread(v) for k, v in timings.items()},
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
