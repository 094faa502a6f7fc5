"""Decode throughput: our clip loader vs raw decord vs PyAV, 1 and 2 workers, two resolutions.

For each resolution we write H.264 videos (PyAV, libx264), draw the same random clips
(16 frames, every 2nd frame) and measure decoded frames per second:
- ``loader``: ``unisurg.media.clips.ClipTable`` items (decord, one batched read per clip, resize to
  the model's input size, normalise) through a torch DataLoader;
- ``decord``: raw ``decord.VideoReader(path).get_batch(indices)`` on the same clips (our overhead);
- ``pyav``: PyAV seeking to the keyframe before the clip and decoding frame by frame, converting
  every frame of the clip's span (what ``torchvision.io.read_video``-style loaders do).

    python perf/bench_decode.py --out reports/perf_decode.json
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
import pyarrow as pa
import pyarrow.parquet as pq
import torch

FRAMES, STEP = 16, 2


def make_videos(folder: Path, size: int, n: int, seconds: float) -> list[Path]:
    from unisurg.media.video import VideoWriter

    rng = np.random.default_rng(size)
    paths = []
    for k in range(n):
        p = folder / f"v{size}_{k}.mp4"
        base = rng.integers(0, 255, (size // 8, size // 8, 3)).astype(np.float32)
        import cv2

        tex = cv2.resize(base, (2 * size, 2 * size), interpolation=cv2.INTER_CUBIC)
        with VideoWriter(p, 25.0, size, size) as w:
            for t in range(int(seconds * 25)):
                o = int(size / 2 + size / 3 * np.sin(t / 20))
                w.write(np.clip(tex[o : o + size, o : o + size], 0, 255).astype(np.uint8))
        paths.append(p)
    return paths


def clip_table(paths: list[Path], n_clips: int, n_frames: int, path: Path) -> list[tuple[str, list[int]]]:
    rng = np.random.default_rng(0)
    span = (FRAMES - 1) * STEP + 1
    rows, clips = [], []
    for i in range(n_clips):
        v = str(paths[i % len(paths)])
        start = int(rng.integers(0, n_frames - span))
        rows.append(
            {
                "clip_id": f"c{i}",
                "path": v,
                "start_frame": start,
                "frame_step": STEP,
                "num_frames": FRAMES,
                "weight": 1.0,
            }
        )
        clips.append((v, list(range(start, start + span, STEP))))
    pq.write_table(pa.Table.from_pylist(rows), path)
    return clips


def _decord_clip(item: tuple[str, list[int]]) -> int:
    import decord

    path, idx = item
    vr = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    return len(vr.get_batch(idx).asnumpy())


def _pyav_clip(item: tuple[str, list[int]]) -> int:
    """What PyAV-based loaders (e.g. torchvision.io.read_video) do: seek to the keyframe before the
    clip, decode frame by frame to its end converting every frame, keep the sampled ones."""
    import av

    path, idx = item
    with av.open(path) as c:
        st = c.streams.video[0]
        fps = float(st.average_rate)
        c.seek(int(idx[0] / fps / st.time_base), stream=st, backward=True, any_frame=False)
        frames = {}
        for fr in c.decode(st):
            k = int(round(float(fr.pts * st.time_base) * fps))
            if k > idx[-1]:
                break
            if k >= idx[0]:
                frames[k] = fr.to_ndarray(format="rgb24")
    return sum(1 for i in idx if i in frames)


def timed_map(fn, items, workers: int) -> float:
    t0 = time.perf_counter()
    if workers == 1:
        n = sum(fn(x) for x in items)
    else:
        with ProcessPoolExecutor(workers) as pool:
            n = sum(pool.map(fn, items, chunksize=4))
    return n / (time.perf_counter() - t0)


def loader_fps(table: Path, workers: int, size: int) -> float:
    from unisurg.media.clips import ClipTable

    ds = ClipTable(str(table), FRAMES, size)
    dl = torch.utils.data.DataLoader(
        ds, batch_size=8, num_workers=0 if workers == 1 else workers, persistent_workers=False
    )
    t0 = time.perf_counter()
    n = sum(b["clip"].shape[0] * b["clip"].shape[2] for b in dl)
    return n / (time.perf_counter() - t0)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reports/perf_decode.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, model_size in ((128, 64), (256, 128)):
            paths = make_videos(tmp, size, n=4, seconds=12.0)
            clips = clip_table(paths, args.clips, 12 * 25, tmp / f"clips{size}.parquet")
            for workers in (1, 2):
                runs = {"loader": [], "decord": [], "pyav": []}
                for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all three
                    runs["loader"].append(loader_fps(tmp / f"clips{size}.parquet", workers, model_size))
                    runs["decord"].append(timed_map(_decord_clip, clips, workers))
                    runs["pyav"].append(timed_map(_pyav_clip, clips, workers))
                r = {"resolution": size, "model_input": model_size, "workers": workers, "repeats": args.repeats}
                for k, v in runs.items():
                    r[f"{k}_fps"] = round(float(np.median(v)), 1)
                    r[f"{k}_range"] = [round(float(min(v)), 1), round(float(max(v)), 1)]
                r["loader_vs_decord"] = round(r["loader_fps"] / r["decord_fps"], 2)
                r["loader_vs_pyav"] = round(r["loader_fps"] / r["pyav_fps"], 2)
                results.append(r)
                print(json.dumps(r), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
