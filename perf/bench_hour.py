"""What an hour of real-resolution video costs on this machine's CPU, per stage's per-video work.

The built-in corpus is 128 px; hospital video is 720p or 1080p. This writes one 720p, 25 fps H.264
video (a moving test pattern, so that motion and decoding are not trivial), then times on one core:

- curation's per-video inspection (container check, decode check, sha256, perceptual signature),
  without and with the motion score (``curate.motion_step``: 0 and 2);
- decoding and resizing the sliding windows of ``unisurg features extract`` under the ``mini``
  windows (16 frames at 8 fps, 64 px) and the ``surgmotion`` ones (64 frames at 1 fps, 256 px), one
  window per second: the CPU side of extraction, before any encoder runs.

Every figure is scaled to one hour of video. Encoder compute is not included (it is measured by
``make bench-gpu`` on a GPU, and computed from FLOPs in ``perf/protocol_cost.py``).

    OMP_NUM_THREADS=1 python perf/bench_hour.py --seconds 120 --out reports/perf_hour.json
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from perf_report import machine  # beside this script

from unisurg.curation.inspection import inspect_video
from unisurg.evaluation.extract import Windows, _window_batches
from unisurg.media.video import VideoWriter

WIDTH, HEIGHT, FPS = 1280, 720, 25


def write_video(path: Path, seconds: int) -> None:
    """A 720p test pattern: two drifting gradients and a checkerboard that changes every second."""
    yy, xx = np.mgrid[0:HEIGHT, 0:WIDTH]
    with VideoWriter(path, FPS, WIDTH, HEIGHT) as vw:
        for i in range(FPS * seconds):
            r = ((xx + 4 * i) % 256).astype(np.uint8)
            g = ((yy + 2 * i) % 256).astype(np.uint8)
            b = (((xx // 40 + yy // 40 + i // FPS) % 2) * 200).astype(np.uint8)
            vw.write(np.stack([r, g, b], -1))


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument(
        "--seconds", type=int, default=120, help="length of the test video (>= 2 surgmotion windows of 64 s)"
    )
    ap.add_argument("--out", default="reports/perf_hour.json")
    args = ap.parse_args()
    per_hour = 3600.0 / args.seconds
    out: dict = {"video": f"{WIDTH}x{HEIGHT} H.264, {FPS} fps, {args.seconds} s", "per_hour_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        video = Path(tmp) / "hd.mp4"
        write_video(video, args.seconds)
        for step in (0, 2):
            info = None

            def inspect(step=step):
                nonlocal info
                info = inspect_video(str(video), motion_step=step)

            dt = timed(inspect)
            if not info.ok:
                raise RuntimeError(f"the test video did not inspect: {info.reason}")
            out["per_hour_s"][f"curate inspection, motion_step {step}"] = round(dt * per_hour, 1)
        for name, w in (("mini", Windows(16, 8.0, 1.0, 64)), ("surgmotion", Windows(64, 1.0, 1.0, 256))):
            dt = timed(lambda w=w: sum(len(c) for _, _, c in _window_batches(video, w, 8)))
            out["per_hour_s"][f"features windows decoded+resized, {name} ({w.frames} f @ {w.fps} fps, {w.size} px)"] = (
                round(dt * per_hour, 1)
            )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), **out}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    json.dump(out, sys.stdout, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
