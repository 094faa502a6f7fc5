"""Curation: probe multi-source video into a versioned Parquet/DuckDB index.

Steps (``unisurg curate``):
1. list every file matching each source's glob (paths never leave the source root);
2. probe each file in parallel (a process pool, or a Prefect task runner via ``probe_map``
   when run from ``flows/curate.py``): frames, fps, size, codec, bytes, sha256 and a
   perceptual signature (64-bit DCT hash of 4 sampled frames) — failures are *quarantined*
   with a reason, never fatal;
3. drop exact duplicates (same sha256) and near duplicates (signature Hamming distance <=
   ``NEAR_DUP_BITS`` on every sampled frame), keeping the first by (role, source, path);
4. leakage guard: benchmark videos outside their training split, and any video duplicating
   one, are excluded from pretraining with the reason recorded;
5. cut kept videos into fixed-length clips (vectorised: 15 M rows build in seconds) with a
   motion score (mean absolute frame difference, one pair of frames per second) and
   per-source balancing weights;
6. write the index and run the data-quality gate (:mod:`unisurg.curation.gate`).

Outputs: ``videos.parquet``, ``clips.parquet``, ``quarantine.parquet``, ``index.sql`` (DuckDB
views over the Parquet files, see :func:`open_index`) and ``curation.json`` (hours/clips per
region and source, counts). All are byte-identical for identical inputs.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa

from ..io import atomic_write_text, sha256_file, write_json, write_table
from .sources import Source
from ..media.video import VideoError, open_video

log = logging.getLogger(__name__)

NEAR_DUP_BITS = 10  # of 64; re-encoding/resizing flips a few bits, different content ~32
SIGNATURE_FRAMES = 4
MAX_FPS = 1000.0

VIDEO_SCHEMA = pa.schema(
    [
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("source", pa.string()),
        ("region", pa.string()),
        ("procedure", pa.string()),
        ("license", pa.string()),
        ("role", pa.string()),
        ("split", pa.string()),
        ("num_frames", pa.int64()),
        ("fps", pa.float64()),
        ("duration_s", pa.float64()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("codec", pa.string()),
        ("bytes", pa.int64()),
        ("sha256", pa.string()),
        ("signature", pa.list_(pa.uint64())),
        ("status", pa.string()),
        ("reason", pa.string()),
    ]
)
CLIP_SCHEMA = pa.schema(
    [
        ("clip_id", pa.string()),
        ("video_id", pa.string()),
        ("path", pa.string()),
        ("source", pa.string()),
        ("region", pa.string()),
        ("start_frame", pa.int64()),
        ("frame_step", pa.int64()),
        ("num_frames", pa.int64()),
        ("start_s", pa.float64()),
        ("end_s", pa.float64()),
        ("motion", pa.float64()),
        ("weight", pa.float64()),
    ]
)
QUARANTINE_SCHEMA = pa.schema([("path", pa.string()), ("source", pa.string()), ("reason", pa.string())])

ProbeMap = Callable[[Callable[[str], "Probe"], list[str]], list["Probe"]]


@dataclass(frozen=True)
class Probe:
    path: str
    ok: bool
    reason: str = ""
    num_frames: int = 0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    codec: str = ""
    bytes: int = 0
    sha256: str = ""
    signature: tuple[int, ...] = ()
    motion: tuple[float, ...] = field(default=(), repr=False)  # per second, mean |frame difference|


def dct_hash(frame: np.ndarray) -> int:
    """64-bit perceptual hash: 8x8 low frequencies of the 32x32 grey image's DCT vs their median."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA)
    d = cv2.dct(g)[:8, :8].flatten()
    bits = d > np.median(d[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def motion_profile(vr, motion_step: int) -> tuple[float, ...]:
    """Mean absolute difference (grey, 32x32, 0-255) between frame t and t + motion_step, per second."""
    n, fps = len(vr), vr.fps
    starts = np.arange(0, n - motion_step, max(int(round(fps)), 1))
    if not len(starts):
        return ()
    idx = np.stack([starts, starts + motion_step], axis=1).reshape(-1)
    frames = vr.get_frames(idx)
    small = np.stack(
        [cv2.resize(cv2.cvtColor(f, cv2.COLOR_RGB2GRAY), (32, 32), interpolation=cv2.INTER_AREA) for f in frames]
    )
    small = small.astype(np.float32).reshape(len(starts), 2, 32, 32)
    return tuple(float(x) for x in np.abs(small[:, 1] - small[:, 0]).mean(axis=(1, 2)).round(4))


MAX_DURATION_S = 48 * 3600.0  # no surgical recording lasts two days: such metadata is corrupt


def container_check(path: str) -> tuple[str, str]:
    """(codec, problem) from the container, read with PyAV: specific reasons decord cannot give."""
    import av

    try:
        with av.open(path) as c:
            if not c.streams.video:
                kinds = sorted({s.type for s in c.streams}) or ["no streams"]
                return "", f"no video stream (container holds: {', '.join(kinds)})"
            return c.streams.video[0].codec_context.name, ""
    except (av.error.FFmpegError, OSError, ValueError) as err:
        return "", f"not a readable video container ({getattr(err, 'strerror', None) or err})"


def probe_video(path: str, motion_step: int = 0) -> Probe:
    """Probe one file; any failure becomes ``Probe(ok=False, reason=...)``, never an exception."""
    try:
        if not os.path.isfile(path):
            return Probe(path, False, "not a regular file (pipe, socket or device)")
        size = os.path.getsize(path)
        if size == 0:
            return Probe(path, False, "empty file (0 bytes)", bytes=0)
        codec, problem = container_check(path)
        if problem:
            return Probe(path, False, problem, bytes=size)
        vr = open_video(path)
        meta = vr.meta
        if meta.num_frames <= 0:
            return Probe(path, False, "no decodable frames", bytes=size)
        if not (1.0 <= meta.fps <= MAX_FPS):
            return Probe(path, False, f"implausible frame rate {meta.fps:g}", bytes=size)
        if meta.duration_s > MAX_DURATION_S:
            return Probe(path, False, f"implausible duration {meta.duration_s / 3600:.0f} h", bytes=size)
        if meta.width < 16 or meta.height < 16:
            return Probe(path, False, f"implausible size {meta.width}x{meta.height}", bytes=size)
        # the last frame too: a file truncated mid-stream fails here, not in the training loop
        idx = np.r_[np.linspace(0.1, 0.9, SIGNATURE_FRAMES) * (meta.num_frames - 1), meta.num_frames - 1]
        frames = vr.get_frames(idx.round().astype(np.int64))
        sig = tuple(dct_hash(f) for f in frames[:SIGNATURE_FRAMES])
        motion = motion_profile(vr, motion_step) if motion_step > 0 else ()
        return Probe(
            path,
            True,
            "",
            meta.num_frames,
            meta.fps,
            meta.width,
            meta.height,
            codec,
            size,
            sha256_file(path),
            sig,
            motion,
        )
    except VideoError as err:
        return Probe(path, False, f"unreadable video: {err}", bytes=_size(path))
    except OSError as err:
        return Probe(path, False, f"cannot read file ({err.strerror or err})", bytes=_size(path))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def near_duplicate(sa: tuple[int, ...], sb: tuple[int, ...], bits: int = NEAR_DUP_BITS) -> bool:
    return len(sa) == len(sb) > 0 and all(hamming(x, y) <= bits for x, y in zip(sa, sb))


def list_files(src: Source) -> list[Path]:
    """Entries matching the source's glob that resolve inside its root (symlinks out are ignored;
    symlinked directories are not followed, so a symlink loop cannot hang the listing). Pipes
    and other special files are listed too: the probe quarantines them instead of opening them."""
    root = Path(src.root).resolve()
    out = []
    for p in sorted(root.glob(src.glob)):
        try:
            inside = p.resolve().is_relative_to(root)
        except (OSError, RuntimeError):  # e.g. a symlink loop resolving to nothing
            continue
        if inside and not p.is_dir():
            out.append(p)
    return out


def printable_path(p: Path | str) -> str:
    """A path as valid UTF-8 text (undecodable bytes of a file name shown as \\xNN)."""
    return os.fsencode(p).decode("utf-8", "backslashreplace")


def benchmark_splits(src: Source) -> dict[str, str]:
    """For a ``benchmark:<name>`` source: resolved video path -> split, read by the benchmark's loader."""
    from ..benchmarks import get_benchmark
    from ..benchmarks.base import VideoSource

    bench = get_benchmark(src.benchmark or "")
    out = {}
    for r in bench.load(src.root):
        if isinstance(r.source, VideoSource):
            # cross-validated benchmarks test on every video at some fold: none may pretrain
            out[str(Path(r.source.path).resolve())] = "test" if bench.folds else r.split
    return out


def process_pool_map(workers: int) -> ProbeMap:
    def run(fn, paths):
        if workers <= 1 or len(paths) <= 1:
            return [fn(p) for p in paths]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, paths, chunksize=4))

    return run


# --------------------------------------------------------------------------- assembling


def assess(
    files: list[tuple[Source, Path]], probes: list[Probe], splits: dict[str, dict[str, str]], min_seconds: float
) -> tuple[list[dict], list[dict], dict[str, tuple[float, ...]]]:
    """Decide each file's status (kept / duplicate / excluded / quarantined) with its reason.

    Returns video rows (sorted by id), quarantine rows and the kept videos' motion profiles.
    """
    blocked: list[tuple[str, tuple[int, ...], str]] = []  # held-out benchmark videos: (sha, signature, why)
    for (src, p), pr in zip(files, probes):
        if src.benchmark and pr.ok and splits[src.name].get(str(p.resolve())) != "train":
            split = splits[src.name].get(str(p.resolve())) or "unlisted"
            blocked.append(
                (pr.sha256, pr.signature, f"benchmark:{src.benchmark} {split} video {printable_path(p.name)}")
            )
    # pretraining sources first, so a benchmark's training video duplicating one is the dropped copy
    order = sorted(
        range(len(files)), key=lambda i: (files[i][0].role != "pretrain", files[i][0].name, str(files[i][1]))
    )
    rows, quarantine, motion = [], [], {}
    kept: list[tuple[str, tuple[int, ...], str]] = []
    for i in order:
        (src, p), pr = files[i], probes[i]
        vid = f"{src.name}/{printable_path(p.relative_to(src.root))}"
        if printable_path(p) != str(p):
            # Parquet strings are UTF-8: a name that is not cannot be stored, so it could not be opened again
            pr = Probe(pr.path, False, "file name is not valid UTF-8 (rename the file)", bytes=pr.bytes)
        split = splits.get(src.name, {}).get(str(p.resolve()), "") if src.benchmark else ""
        if pr.ok and pr.num_frames / pr.fps < min_seconds:
            pr = Probe(pr.path, False, f"shorter than {min_seconds}s ({pr.num_frames / pr.fps:.2f}s)", bytes=pr.bytes)
        status, reason = "kept", ""
        if not pr.ok:
            status, reason = "quarantined", pr.reason
            quarantine.append({"path": printable_path(p), "source": src.name, "reason": pr.reason})
        elif src.benchmark and split != "train":
            status, reason = "excluded", f"benchmark:{src.benchmark} {split or 'unlisted'} split"
        else:
            leak = next((w for sha, sig, w in blocked if sha == pr.sha256 or near_duplicate(sig, pr.signature)), None)
            dup = next((v for sha, sig, v in kept if sha == pr.sha256 or near_duplicate(sig, pr.signature)), None)
            if leak:
                status, reason = "excluded", f"duplicates held-out {leak}"
            elif dup:
                status, reason = "duplicate", f"duplicate of {dup}"
            else:
                kept.append((pr.sha256, pr.signature, vid))
                motion[vid] = pr.motion
        rows.append(
            {
                "video_id": vid,
                "path": printable_path(p),
                "source": src.name,
                "region": src.region,
                "procedure": src.procedure,
                "license": src.license,
                "role": src.role,
                "split": split,
                "num_frames": pr.num_frames,
                "fps": pr.fps,
                "duration_s": pr.num_frames / pr.fps if pr.fps else 0.0,
                "width": pr.width,
                "height": pr.height,
                "codec": pr.codec,
                "bytes": pr.bytes,
                "sha256": pr.sha256,
                "signature": list(pr.signature),
                "status": status,
                "reason": reason,
            }
        )
    rows.sort(key=lambda r: r["video_id"])
    quarantine.sort(key=lambda q: q["path"])
    return rows, quarantine, motion


def build_clip_table(
    videos: pa.Table,
    clip_frames: int,
    frame_step: int,
    clip_stride_s: float,
    motion: dict[str, tuple[float, ...]] | None = None,
    balance: str = "source",
) -> pa.Table:
    """Fixed-length clips of every *kept* video, vectorised -> a table with the CLIP_SCHEMA columns.

    A clip spans ``(clip_frames - 1) * frame_step + 1`` native frames; clip starts are
    ``clip_stride_s`` seconds apart. ``weight`` = 1 / (clips of the clip's source or region,
    per ``balance``), so every source (region) contributes equally in expectation; ``none``
    weighs every clip 1. ``motion`` = mean of the video's per-second motion
    profile over the clip (NaN when not measured).
    """
    import pyarrow.compute as pc

    kept = videos.filter(pc.equal(videos["status"], "kept"))
    n_frames = kept["num_frames"].to_numpy()
    fps = kept["fps"].to_numpy()
    span = (clip_frames - 1) * frame_step + 1
    stride = np.maximum(np.round(clip_stride_s * fps).astype(np.int64), 1)
    count = np.where(n_frames >= span, (n_frames - span) // stride + 1, 0)  # clips per video
    total = int(count.sum())
    vidx = np.repeat(np.arange(len(count)), count)  # (total,) video index of each clip
    first = np.cumsum(count) - count
    k = np.arange(total) - first[vidx]  # clip number within its video
    start = k * stride[vidx]
    start_s = start / fps[vidx]
    end_s = (start + span) / fps[vidx]

    # Per-video strings repeat over thousands of clips: dictionary-encode them (indices into the
    # video table) instead of materialising one string per clip.
    def per_clip(col: str) -> pa.DictionaryArray:
        # unique dictionary first: Parquet output with a duplicated dictionary was not reproducible
        enc = pc.dictionary_encode(kept[col].combine_chunks())
        codes = enc.indices.to_numpy(zero_copy_only=False)[vidx]
        return pa.DictionaryArray.from_arrays(pa.array(codes, pa.int32()), enc.dictionary)

    if balance == "none" or not total:
        weight = np.ones(total)
    else:  # group sizes are counted per video, then broadcast to its clips
        _, gidx = np.unique(kept[balance].to_numpy(zero_copy_only=False), return_inverse=True)
        per_group = np.bincount(gidx, weights=count)
        weight = 1.0 / per_group[gidx][vidx]
    clip_motion = np.full(total, np.nan)
    if motion:
        ids = kept["video_id"].to_pylist()
        for v, vid in enumerate(ids):
            prof = np.asarray(motion.get(vid, ()), np.float64)
            if not len(prof) or not count[v]:
                continue
            cs = np.concatenate([[0.0], np.cumsum(prof)])
            sel = slice(first[v], first[v] + count[v])
            a = np.clip(np.floor(start_s[sel]).astype(np.int64), 0, len(prof) - 1)
            b = np.clip(np.ceil(end_s[sel]).astype(np.int64), a + 1, len(prof))
            clip_motion[sel] = (cs[b] - cs[a]) / (b - a)
    video_id = per_clip("video_id")
    clip_id = pc.binary_join_element_wise(
        pc.cast(video_id, pa.string()), pc.utf8_lpad(pc.cast(pa.array(k), pa.string()), 5, "0"), "#"
    )
    return pa.table(
        {
            "clip_id": clip_id,
            "video_id": video_id,
            "path": per_clip("path"),
            "source": per_clip("source"),
            "region": per_clip("region"),
            "start_frame": pa.array(start, pa.int64()),
            "frame_step": pa.array(np.full(total, frame_step), pa.int64()),
            "num_frames": pa.array(np.full(total, clip_frames), pa.int64()),
            "start_s": pa.array(start_s),
            "end_s": pa.array(end_s),
            "motion": pa.array(clip_motion),
            "weight": pa.array(weight, pa.float64()),
        }
    )


def curate(
    sources: list[Source],
    out: Path,
    clip_frames: int,
    frame_step: int,
    clip_stride_s: float,
    min_seconds: float,
    workers: int,
    motion_step: int = 0,
    balance: str = "source",
    probe_map: ProbeMap | None = None,
) -> dict:
    """Build the index of ``sources`` in ``out``; returns the curation metrics (also in curation.json)."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Source, Path]] = [(s, p) for s in sources for p in list_files(s)]
    log.info("curate: %d files from %d sources", len(files), len(sources))
    run = probe_map or process_pool_map(workers)
    probes = run(partial(probe_video, motion_step=motion_step), [str(p) for _, p in files])
    splits = {s.name: benchmark_splits(s) for s in sources if s.benchmark}
    rows, quarantine, motion = assess(files, probes, splits, min_seconds)
    videos = pa.Table.from_pylist(rows, schema=VIDEO_SCHEMA)
    clips = build_clip_table(videos, clip_frames, frame_step, clip_stride_s, motion, balance)
    write_table(out / "videos.parquet", videos, VIDEO_SCHEMA)
    write_table(out / "clips.parquet", clips, CLIP_SCHEMA)
    write_table(
        out / "quarantine.parquet", pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA), QUARANTINE_SCHEMA
    )
    build_index_sql(out)
    metrics = summarize(rows, clips)
    write_json(out / "curation.json", metrics)
    return metrics


INDEX_SQL = """-- DuckDB views over the curated index. Paths are relative to this folder:
--   duckdb -c "SET file_search_path='data/curate'; .read data/curate/index.sql"
-- or, from Python, unisurg.curation.index.open_index("data/curate").
CREATE VIEW videos AS SELECT * FROM read_parquet('videos.parquet');
CREATE VIEW clips AS SELECT * FROM read_parquet('clips.parquet');
CREATE VIEW quarantine AS SELECT * FROM read_parquet('quarantine.parquet');
"""


def build_index_sql(out: Path) -> None:
    """Write ``index.sql``: the view definitions. A text file, unlike a ``.duckdb`` database file,
    is byte-identical for identical inputs, so DVC never reruns downstream stages for nothing."""
    atomic_write_text(out / "index.sql", INDEX_SQL)


def open_index(folder: str | Path, con=None):
    """An in-memory DuckDB connection with the ``videos``, ``clips`` and ``quarantine`` views."""
    import duckdb

    folder = Path(folder).resolve()
    con = con or duckdb.connect()
    con.execute(f"SET file_search_path = '{folder}'")
    con.execute((folder / "index.sql").read_text(encoding="utf-8"))
    return con


def summarize(rows: list[dict], clips: pa.Table) -> dict:
    def group(key: str) -> dict:
        out: dict[str, dict] = {}
        for r in rows:
            if r["status"] == "kept":
                g = out.setdefault(r[key], {"videos": 0, "hours": 0.0, "clips": 0})
                g["videos"] += 1
                g["hours"] += r["duration_s"] / 3600
        for item in clips.group_by(key).aggregate([(key, "count")]).to_pylist():
            out[str(item[key])]["clips"] = item[f"{key}_count"]
        return {k: {**v, "hours": round(v["hours"], 4)} for k, v in sorted(out.items())}

    reasons: dict[str, int] = {}
    for r in rows:
        if r["status"] == "quarantined":
            key = r["reason"].split(":")[0]
            reasons[key] = reasons.get(key, 0) + 1
    return {
        "videos_total": len(rows),
        "videos_kept": sum(r["status"] == "kept" for r in rows),
        "duplicates_removed": sum(r["status"] == "duplicate" for r in rows),
        "excluded_benchmark_heldout": sum(r["status"] == "excluded" for r in rows),
        "quarantined": sum(r["status"] == "quarantined" for r in rows),
        "quarantined_by_reason": dict(sorted(reasons.items())),
        "clips": clips.num_rows,
        "hours_kept": round(sum(r["duration_s"] for r in rows if r["status"] == "kept") / 3600, 4),
        "by_region": group("region"),
        "by_source": group("source"),
    }
