"""Decode throughput: our clip loader vs raw decord vs PyAV, 1 and 2 workers, two resolutions.

For each resolution we write H.264 videos (PyAV, libx264), draw the same random clips
(16 frames, every 2nd frame) and measure decoded frames per second:
- ``loader``: ``unisurg.media.clips.ClipTable`` items (decord, one batched read per clip, resize to
  the model's input size, normalise) through a torch DataLoader;
- ``decord``: raw ``decord.VideoReader(path).get_batch(indices)`` on the same clips (our overhead);
- ``pyav``: PyAV seeking to the keyframe before the clip and decoding frame by frame, converting
  every frame of the clip's span (what ``torchvision.io.read_video``-style loaders do);
- ``torchcodec``: PyTorch's decoder (``VideoDecoder(seek_mode="exact").get_frames_at``), when it loads.

Where the loader's time goes beyond decord's (:func:`loader_costs`): decoding, preparing (resize,
channels-first) and moving batches out of DataLoader workers, each timed alone.

Then the backends side by side (:func:`backends`): whether each loads here and how it is installed,
seek accuracy on a variable-frame-rate file whose frames show their own index, and each one's peak
memory decoding the clips.

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
from perf_report import machine  # beside this script
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


def _torchcodec_clip(item: tuple[str, list[int]]) -> int:
    from torchcodec.decoders import VideoDecoder

    path, idx = item
    dec = VideoDecoder(path, seek_mode="exact", num_ffmpeg_threads=1)
    return int(dec.get_frames_at(idx).data.shape[0])


def torchcodec_status() -> str | None:
    """None when torchcodec decodes here, else why not (its import or its FFmpeg libraries)."""
    try:
        from torchcodec.decoders import VideoDecoder  # noqa: F401  (loads the FFmpeg libraries it finds)
    except ImportError:
        return "not installed (`pip install torchcodec`)"
    except (OSError, RuntimeError) as err:  # torchcodec raises these when no FFmpeg 4-8 shared libraries load
        return f"installed, but its FFmpeg libraries do not load ({str(err).splitlines()[0][:160]})"
    return None


# ---------------------------------------------------------------- backends side by side

VFR_FRAMES = 120


def _code_frame(k: int, size: int = 64) -> np.ndarray:
    """Frame ``k`` shows its index: left half grey 24 + 8 (k % 25), right half 24 + 8 (k // 25)."""
    f = np.empty((size, size, 3), np.uint8)
    f[:, : size // 2] = 24 + 8 * (k % 25)
    f[:, size // 2 :] = 24 + 8 * (k // 25)
    return f


def _read_code(frame: np.ndarray) -> int:
    """(H, W, 3) RGB -> the index :func:`_code_frame` drew (lossy H.264 moves a flat grey by a few levels)."""
    w = frame.shape[1]
    lo = round((float(frame[4:-4, 4 : w // 2 - 4].mean()) - 24) / 8)
    hi = round((float(frame[4:-4, w // 2 + 4 : -4].mean()) - 24) / 8)
    return hi * 25 + lo


def write_vfr(path: Path) -> np.ndarray:
    """An H.264 MP4 whose frame durations alternate 40 ms and 80 ms (a variable frame rate, as phone
    and screen recordings have) -> the frames' presentation times (s)."""
    import av

    durations = np.where(np.arange(VFR_FRAMES) % 2 == 0, 40, 80)  # ms
    pts = np.concatenate([[0], np.cumsum(durations)[:-1]])
    with av.open(str(path), "w") as out:
        st = out.add_stream("libx264", rate=25)
        st.width = st.height = 64
        st.pix_fmt = "yuv420p"
        st.codec_context.time_base = __import__("fractions").Fraction(1, 1000)
        st.options = {"crf": "10", "x264-params": "keyint=25:scenecut=0"}
        for k in range(VFR_FRAMES):
            fr = av.VideoFrame.from_ndarray(_code_frame(k), format="rgb24")
            fr.pts, fr.time_base = int(pts[k]), st.codec_context.time_base
            for pkt in st.encode(fr):
                out.mux(pkt)
        for pkt in st.encode():
            out.mux(pkt)
    return pts / 1000.0


def seek_accuracy(path: Path, times: np.ndarray, backend: str) -> dict:
    """Frames asked for by index (random order) and by time, as a loader asks: -> share correct.

    By time, decord and our pipeline turn seconds into an index with the reported average rate
    (``round(t * fps)``); torchcodec is asked by time (``get_frames_played_at``); the right frame is
    the one on screen at t."""
    rng = np.random.default_rng(0)
    idx = rng.permutation(VFR_FRAMES)[:48]
    t_ask = np.sort(rng.uniform(0, times[-1], 48))
    want_t = np.searchsorted(times, t_ask, side="right") - 1
    if backend == "decord":
        import decord

        vr = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1)
        by_idx = vr.get_batch(idx.tolist()).asnumpy()
        fps, n = vr.get_avg_fps(), len(vr)
        by_t = vr.get_batch(np.clip(np.round(t_ask * fps), 0, n - 1).astype(int).tolist()).asnumpy()
    elif backend == "torchcodec":
        from torchcodec.decoders import VideoDecoder

        dec = VideoDecoder(str(path), seek_mode="exact", num_ffmpeg_threads=1)
        by_idx = dec.get_frames_at(idx.tolist()).data.permute(0, 2, 3, 1).numpy()
        by_t = dec.get_frames_played_at(t_ask.tolist()).data.permute(0, 2, 3, 1).numpy()
    else:  # pyav: decode the stream, keep frames by position and by presentation time
        import av

        with av.open(str(path)) as c:
            frames = [(float(f.pts * f.time_base), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        ft = np.array([t for t, _ in frames])
        by_idx = np.stack([frames[i][1] for i in idx])
        by_t = np.stack([frames[int(np.searchsorted(ft, t, side="right") - 1)][1] for t in t_ask])
    return {
        "by_index": round(float(np.mean([_read_code(f) == i for f, i in zip(by_idx, idx)])), 3),
        "by_time": round(float(np.mean([_read_code(f) == i for f, i in zip(by_t, want_t)])), 3),
    }


def _peak_rss_mb(backend: str, clips: list[tuple[str, list[int]]]) -> float:
    """Peak resident memory (MB) of a fresh process that imports ``backend`` and decodes ``clips``
    (``none``: imports only, the baseline subtracted from the others)."""
    import resource

    fn = {"decord": _decord_clip, "pyav": _pyav_clip, "torchcodec": _torchcodec_clip}.get(backend)
    if backend == "torchcodec":
        import torchcodec.decoders  # noqa: F401
    elif backend == "decord":
        import decord  # noqa: F401
    elif backend == "pyav":
        import av  # noqa: F401
    for c in clips if fn else ():
        fn(c)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def backends(clips: list[tuple[str, list[int]]], tmp: Path) -> dict:
    """Each backend: does it load here, how it installs, VFR seek accuracy, peak memory (MB above the
    baseline process) decoding ``clips``."""
    import decord

    tc = torchcodec_status()
    out: dict = {
        "decord": {"version": decord.__version__, "install": "pip wheel (requirements.lock), FFmpeg bundled"},
        "pyav": {"version": __import__("av").__version__, "install": "pip wheel (requirements.lock), FFmpeg bundled"},
        "torchcodec": {
            "install": "pip wheel (requirements.lock) and FFmpeg 4-8 shared libraries from the system: "
            "`make ffmpeg` installs Debian's (apt, needs root)",
            "loads": tc is None,
            **({"why_not": tc} if tc else {}),
        },
    }
    if tc is None:
        out["torchcodec"]["version"] = __import__("torchcodec").__version__
    vfr = tmp / "vfr.mp4"
    times = write_vfr(vfr)
    with ProcessPoolExecutor(1) as pool:
        base = pool.submit(_peak_rss_mb, "none", []).result()
    for name in ("decord", "pyav", "torchcodec"):
        if name == "torchcodec" and tc is not None:
            continue
        out[name]["vfr_seek_correct"] = seek_accuracy(vfr, times, name)
        with ProcessPoolExecutor(1) as pool:  # a fresh process each: ru_maxrss only grows
            out[name]["peak_rss_mb_above_baseline"] = round(pool.submit(_peak_rss_mb, name, clips).result() - base, 1)
    out["baseline_rss_mb"] = round(base, 1)
    return out


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


class _Prepared(torch.utils.data.Dataset):
    """``n`` prepared clips (uint8 (3, T, S, S)) with nothing to decode: what a DataLoader moves."""

    def __init__(self, n: int, size: int) -> None:
        self.n, self.x = n, torch.zeros(3, FRAMES, size, size, dtype=torch.uint8)

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"clip": self.x.clone()}


def loader_costs(clips: list[tuple[str, list[int]]], size: int, repeats: int, batch: int = 8) -> dict:
    """Where the loader's time goes beyond raw decord's, in ms (medians over ``repeats``):
    ``decode``: a reader opened and one batched read, per clip (what raw decord does);
    ``prepare``: resize to the model input and channels-first uint8 (``to_uint8_tensor``), per clip;
    ``move``: a DataLoader's wall time per batch of ``batch`` prepared clips out of 2 workers when there
    is nothing to decode (worker start-up, collation into shared memory, the queue to the caller)."""
    import decord

    from unisurg.media.clips import to_uint8_tensor

    dec, prep, move = [], [], []
    for _ in range(repeats):
        td = tp = 0.0
        for path, idx in clips:
            t0 = time.perf_counter()
            frames = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1).get_batch(idx).asnumpy()
            t1 = time.perf_counter()
            to_uint8_tensor(frames, size)
            td, tp = td + t1 - t0, tp + time.perf_counter() - t1
        dec.append(td / len(clips) * 1e3)
        prep.append(tp / len(clips) * 1e3)
        dl = torch.utils.data.DataLoader(_Prepared(len(clips), size), batch_size=batch, num_workers=2)
        t0 = time.perf_counter()
        n = sum(1 for _ in dl)
        move.append((time.perf_counter() - t0) / n * 1e3)
    d, p, m = (round(float(np.median(v)), 3) for v in (dec, prep, move))
    return {
        "decode_ms_per_clip": d,
        "prepare_ms_per_clip": p,
        "move_ms_per_batch": m,
        "batch": batch,
        # one process decodes and prepares in turn: its loader/decord cannot exceed d / (d + p)
        "ceiling_1_worker": round(d / (d + p), 3),
        # two workers decode and prepare a batch in batch * (d + p) / 2 ms of wall time; were its move
        # never overlapped with decoding, loader/decord would be this (the move overlaps in part)
        "no_overlap_2_workers": round((batch * d / 2) / (batch * (d + p) / 2 + m), 3),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=96)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="reports/perf_decode.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    results, costs = [], {}
    tc = torchcodec_status() is None
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for size, model_size in ((128, 64), (256, 128)):
            paths = make_videos(tmp, size, n=4, seconds=12.0)
            clips = clip_table(paths, args.clips, 12 * 25, tmp / f"clips{size}.parquet")
            for workers in (1, 2):
                runs = {"loader": [], "decord": [], "pyav": [], **({"torchcodec": []} if tc else {})}
                for _ in range(args.repeats):  # interleaved, so drifts in machine load hit all of them
                    runs["loader"].append(loader_fps(tmp / f"clips{size}.parquet", workers, model_size))
                    runs["decord"].append(timed_map(_decord_clip, clips, workers))
                    runs["pyav"].append(timed_map(_pyav_clip, clips, workers))
                    if tc:
                        runs["torchcodec"].append(timed_map(_torchcodec_clip, clips, workers))
                r = {"resolution": size, "model_input": model_size, "workers": workers, "repeats": args.repeats}
                for k, v in runs.items():
                    r[f"{k}_fps"] = round(float(np.median(v)), 1)
                    r[f"{k}_range"] = [round(float(min(v)), 1), round(float(max(v)), 1)]
                r["loader_vs_decord"] = round(r["loader_fps"] / r["decord_fps"], 2)
                r["loader_vs_pyav"] = round(r["loader_fps"] / r["pyav_fps"], 2)
                results.append(r)
                print(json.dumps(r), flush=True)
            costs[size] = loader_costs(clips, model_size, args.repeats)
            print(json.dumps({"resolution": size, **costs[size]}), flush=True)
            if size == 256:
                side = backends(clips, tmp)
                print(json.dumps(side), flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": machine(), "rows": results, "backends": side, "loader_costs": costs}
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
