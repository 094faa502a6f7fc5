"""Curation: probe multi-source video into a versioned Parquet/DuckDB index.

Steps (``unisurg curate``):
1. list every file matching each source's glob (paths never leave the source root);
2. probe each file in a process pool: frames, fps, size, codec, bytes, sha256 and a
   perceptual signature (64-bit DCT hash of 4 sampled frames) — failures are *quarantined*
   with a reason, never fatal;
3. drop exact duplicates (same sha256) and near duplicates (signature Hamming distance <=
   ``NEAR_DUP_BITS`` on every sampled frame), keeping the first by (role, source, path);
4. leakage guard: benchmark videos outside their training split, and any video duplicating
   one, are excluded from pretraining with the reason recorded;
5. cut kept videos into fixed-length clips with per-source balancing weights.

Outputs: ``videos.parquet``, ``clips.parquet``, ``quarantine.parquet``, ``index.sql`` (DuckDB
views over the Parquet files, see :func:`open_index`) and ``curation.json`` (hours/clips per
region and source, counts). All are byte-identical for identical inputs.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .io import atomic_path, atomic_write_text, sha256_file, write_json
from .sources import Source
from .video import VideoError, open_video

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
        ("weight", pa.float64()),
    ]
)
QUARANTINE_SCHEMA = pa.schema([("path", pa.string()), ("source", pa.string()), ("reason", pa.string())])


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


def dct_hash(frame: np.ndarray) -> int:
    """64-bit perceptual hash: 8x8 low frequencies of the 32x32 grey image's DCT vs their median."""
    g = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = cv2.resize(g, (32, 32), interpolation=cv2.INTER_AREA)
    d = cv2.dct(g)[:8, :8].flatten()
    bits = d > np.median(d[1:])
    return int(sum(1 << i for i, b in enumerate(bits) if b))


def probe_video(path: str) -> Probe:
    """Probe one file; any failure becomes ``Probe(ok=False, reason=...)``."""
    try:
        size = os.path.getsize(path)
        if size == 0:
            return Probe(path, False, "empty file (0 bytes)", bytes=0)
        vr = open_video(path)
        meta = vr.meta
        if meta.num_frames <= 0:
            return Probe(path, False, "no decodable frames", bytes=size)
        if not (0 < meta.fps <= MAX_FPS):
            return Probe(path, False, f"implausible frame rate {meta.fps}", bytes=size)
        if meta.width < 16 or meta.height < 16:
            return Probe(path, False, f"implausible size {meta.width}x{meta.height}", bytes=size)
        idx = np.linspace(0.1, 0.9, SIGNATURE_FRAMES) * (meta.num_frames - 1)
        frames = vr.get_frames(idx.round().astype(np.int64))
        sig = tuple(dct_hash(f) for f in frames)
        import av  # codec name: decord does not expose it

        with av.open(path) as c:
            codec = c.streams.video[0].codec_context.name if c.streams.video else ""
        return Probe(
            path, True, "", meta.num_frames, meta.fps, meta.width, meta.height, codec, size, sha256_file(path), sig
        )
    except VideoError as err:
        return Probe(path, False, f"unreadable video: {err}", bytes=_size(path))
    except (OSError, ValueError) as err:  # av errors derive from these
        return Probe(path, False, f"{type(err).__name__}: {err}", bytes=_size(path))


def _size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def near_duplicate(sa: tuple[int, ...], sb: tuple[int, ...], bits: int = NEAR_DUP_BITS) -> bool:
    return len(sa) == len(sb) and all(hamming(x, y) <= bits for x, y in zip(sa, sb))


def list_files(src: Source) -> list[Path]:
    root = Path(src.root).resolve()
    out = []
    for p in sorted(root.glob(src.glob)):
        if p.is_file() and p.resolve().is_relative_to(root):
            out.append(p)
    return out


def benchmark_splits(src: Source) -> dict[str, str]:
    """For a ``benchmark:<name>`` source: resolved video path -> split, read by the benchmark's loader."""
    from .benchmarks import get_benchmark
    from .benchmarks.base import VideoSource

    bench = get_benchmark(src.benchmark or "")
    records = bench.load(src.root)
    out = {}
    for r in records:
        if isinstance(r.source, VideoSource):
            out[str(Path(r.source.path).resolve())] = "test" if bench.folds else r.split
    return out


def curate(
    sources: list[Source],
    out: Path,
    clip_frames: int,
    frame_step: int,
    clip_stride_s: float,
    min_seconds: float,
    workers: int,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    # 1. list files
    files: list[tuple[Source, Path]] = [(s, p) for s in sources for p in list_files(s)]
    log.info("curate: %d files from %d sources", len(files), len(sources))
    # 2. probe in parallel
    paths = [str(p) for _, p in files]
    if workers > 1 and len(paths) > 1:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            probes = list(pool.map(probe_video, paths, chunksize=4))
    else:
        probes = [probe_video(p) for p in paths]
    splits: dict[str, dict[str, str]] = {}
    for s in sources:
        if s.benchmark:
            splits[s.name] = benchmark_splits(s)

    # 3-4. quarantine, dedup, leakage guard
    rows, quarantine = [], []
    order = sorted(range(len(files)), key=lambda i: (files[i][0].role != "pretrain", files[i][0].name, paths[i]))
    blocked: list[tuple[str, tuple[int, ...], str]] = []  # (sha, signature, why) of held-out benchmark videos
    for i, (src, p) in enumerate(files):
        pr = probes[i]
        if pr.ok and pr.num_frames / pr.fps < min_seconds:
            pr = Probe(pr.path, False, f"shorter than {min_seconds}s ({pr.num_frames / pr.fps:.2f}s)", bytes=pr.bytes)
            probes[i] = pr
        if src.benchmark and pr.ok:
            split = splits[src.name].get(str(p.resolve()))
            if split != "train":
                blocked.append(
                    (pr.sha256, pr.signature, f"benchmark:{src.benchmark} {split or 'unlisted'} video {p.name}")
                )
    kept: list[tuple[str, tuple[int, ...], str]] = []
    for i in order:
        src, p = files[i]
        pr = probes[i]
        vid = f"{src.name}/{p.relative_to(src.root)}"
        split = splits.get(src.name, {}).get(str(p.resolve()), "") if src.benchmark else ""
        status, reason = "kept", ""
        if not pr.ok:
            status, reason = "quarantined", pr.reason
            quarantine.append({"path": str(p), "source": src.name, "reason": pr.reason})
        elif src.benchmark and split != "train":
            status, reason = "excluded", f"benchmark:{src.benchmark} {split or 'unlisted'} split"
        else:
            leak = next(
                (why for sha, sig, why in blocked if sha == pr.sha256 or near_duplicate(sig, pr.signature)), None
            )
            dup = next((v for sha, sig, v in kept if sha == pr.sha256 or near_duplicate(sig, pr.signature)), None)
            if leak:
                status, reason = "excluded", f"duplicates held-out {leak}"
            elif dup:
                status, reason = "duplicate", f"duplicate of {dup}"
            else:
                kept.append((pr.sha256, pr.signature, vid))
        rows.append(
            {
                "video_id": vid,
                "path": str(p),
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

    # 5. clips with per-source balancing weights
    clips = []
    span = (clip_frames - 1) * frame_step + 1
    for r in rows:
        if r["status"] != "kept":
            continue
        stride = max(int(round(clip_stride_s * r["fps"])), 1)
        for k, start in enumerate(range(0, r["num_frames"] - span + 1, stride)):
            clips.append(
                {
                    "clip_id": f"{r['video_id']}#{k:05d}",
                    "video_id": r["video_id"],
                    "path": r["path"],
                    "source": r["source"],
                    "region": r["region"],
                    "start_frame": start,
                    "frame_step": frame_step,
                    "num_frames": clip_frames,
                    "start_s": start / r["fps"],
                    "end_s": (start + span) / r["fps"],
                    "weight": 0.0,
                }
            )
    per_source: dict[str, int] = {}
    for c in clips:
        per_source[c["source"]] = per_source.get(c["source"], 0) + 1
    for c in clips:
        c["weight"] = 1.0 / per_source[c["source"]]  # every source contributes equally in expectation

    _write_parquet(out / "videos.parquet", rows, VIDEO_SCHEMA)
    _write_parquet(out / "clips.parquet", clips, CLIP_SCHEMA)
    _write_parquet(out / "quarantine.parquet", sorted(quarantine, key=lambda q: q["path"]), QUARANTINE_SCHEMA)
    build_index_sql(out)
    metrics = summarize(rows, clips)
    write_json(out / "curation.json", metrics)
    return metrics


def _write_parquet(path: Path, rows: list[dict], schema: pa.Schema) -> None:
    table = pa.Table.from_pylist(rows, schema=schema)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


INDEX_SQL = """-- DuckDB views over the curated index. Paths are relative to this folder:
--   duckdb -c "SET file_search_path='data/curate'; .read data/curate/index.sql"
-- or, from Python, unisurg.curate.open_index("data/curate").
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


def summarize(rows: list[dict], clips: list[dict]) -> dict:
    def group(key: str) -> dict:
        out: dict[str, dict] = {}
        for r in rows:
            if r["status"] == "kept":
                g = out.setdefault(r[key], {"videos": 0, "hours": 0.0, "clips": 0})
                g["videos"] += 1
                g["hours"] += r["duration_s"] / 3600
        for c in clips:
            out[c[key]]["clips"] += 1
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
        "clips": len(clips),
        "hours_kept": round(sum(r["duration_s"] for r in rows if r["status"] == "kept") / 3600, 4),
        "by_region": group("region"),
        "by_source": group("source"),
    }
