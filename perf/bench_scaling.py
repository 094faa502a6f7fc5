"""How stage time grows with corpus size: synth and curation at 1x, 4x and 16x the built-in sources.

Each scale writes that many distinct pretraining videos (different seeds, so none is a
duplicate), then curates them; we fit time = a + b * videos by least squares.

    python perf/bench_scaling.py --out reports/perf_scaling.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script

from unisurg.curation.index import curate
from unisurg.curation.sources import Source
from unisurg.synth.corpus import write_pretrain_video
from unisurg.synth.looks import LOOKS, PRETRAIN_SOURCES


def _write(job):
    src, k, out = job
    write_pretrain_video(src, k, out, 64, 8.0, 0)


def run_scale(scale: int) -> dict:
    """Write ``scale`` videos per pretraining source, then curate them; -> timings."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        jobs = [(src, k, out) for src in PRETRAIN_SOURCES for k in range(scale)]
        t0 = time.perf_counter()
        with ProcessPoolExecutor(2) as pool:
            list(pool.map(_write, jobs))
        synth_s = time.perf_counter() - t0
        sources = [
            Source(
                name=s.name,
                root=str(out / "pretrain" / s.name),
                region=LOOKS[s.look].region,
                procedure=s.procedure,
                license="synthetic",
            )
            for s in PRETRAIN_SOURCES
        ]
        t0 = time.perf_counter()
        m = curate(sources, out / "index", 16, 2, 1.0, 1.0, workers=2, motion_step=2)
        curate_s = time.perf_counter() - t0
    return {
        "scale": scale,
        "videos": len(jobs),
        "hours": round(m["hours_kept"], 3),
        "clips": m["clips"],
        "synth_s": round(synth_s, 2),
        "curate_s": round(curate_s, 2),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scales", default="1,4,16")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--out", default="reports/perf_scaling.json")
    args = ap.parse_args(argv)
    rows = []
    for scale in (int(s) for s in args.scales.split(",")):
        runs = [run_scale(scale) for _ in range(args.repeats)]
        row = {k: runs[0][k] for k in ("scale", "videos", "hours", "clips")}
        for stage in ("synth_s", "curate_s"):
            v = [r[stage] for r in runs]
            row[stage] = round(float(np.median(v)), 2)
            row[stage.replace("_s", "_range_s")] = [round(min(v), 2), round(max(v), 2)]
        rows.append(row)
        print(json.dumps(row), flush=True)
    fits = {}
    v = np.array([r["videos"] for r in rows], float)
    for stage in ("synth_s", "curate_s"):
        t = np.array([r[stage] for r in rows])
        b, a = np.polyfit(v, t, 1)
        fits[stage] = {"fixed_s": round(float(a), 3), "per_video_s": round(float(b), 4)}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"machine": machine(), "rows": rows, "fits": fits}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
