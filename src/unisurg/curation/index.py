"""Curation: inspect multi-source video into a versioned Parquet/DuckDB index.

Steps (``unisurg curate``):
1. list every file matching each source's glob (paths never leave the source root);
2. inspect each file in parallel (:mod:`unisurg.curation.inspection`; a process pool, or a
   Prefect task runner via ``inspect_map``
   when run from ``flows/curation.py``): frames, fps, size, codec, bytes, sha256 and a
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
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UsageError
from ..io import atomic_path, atomic_write_text, write_json, write_table
from .inspection import VideoInfo, inspect_video, near_duplicate
from .matching import Match, find_matches
from .sources import Source

if TYPE_CHECKING:  # for the annotation only
    from ..config import CurateParams

log = logging.getLogger(__name__)


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


class InspectJob(NamedTuple):
    """One video to inspect: a file, or a folder of frames at ``fps``; ``held_out`` videos are hashed
    finely (every quarter second, at several crop scales) so that edited copies of them are found."""

    path: str
    fps: float | None = None
    held_out: bool = False


def inspect_job(job: InspectJob, motion_step: int = 0) -> VideoInfo:
    return inspect_video(job.path, motion_step=motion_step, fps=job.fps, held_out=job.held_out)


InspectMap = Callable[[Callable[[InspectJob], "VideoInfo"], list[InspectJob]], list["VideoInfo"]]


def extension_insensitive(pattern: str) -> str:
    """A glob whose file extension matches in any case: ``**/*.mp4`` -> ``**/*.[mM][pP]4`` (hospital
    archives hold ``CASE010.MP4``). Only the extension of the last component, and only when it holds
    no glob syntax of its own; directories keep their case."""
    head, sep, last = pattern.rpartition("/")
    stem, dot, ext = last.rpartition(".")
    if not dot or any(c in ext for c in "[]*?"):
        return pattern
    ext = "".join(f"[{c.lower()}{c.upper()}]" if c.isalpha() else c for c in ext)
    return f"{head}{sep}{stem}.{ext}"


def list_files(src: Source) -> list[Path]:
    """Entries matching the source's glob, its extension in any case, that resolve inside its root
    (symlinks out are ignored; symlinked directories are not followed, so a symlink loop cannot hang
    the listing). Pipes and other special files are listed too: inspection quarantines them instead
    of opening them. A ``kind: frames`` source lists the folders its glob matches (each one video). A
    glob that matches nothing is an error naming the source: an empty source is almost always a wrong
    root or glob, not an empty hospital archive."""
    root = Path(src.root).resolve()
    out = []
    for p in sorted(root.glob(extension_insensitive(src.glob))):
        try:
            inside = p.resolve().is_relative_to(root)
        except (OSError, RuntimeError):  # e.g. a symlink loop resolving to nothing
            continue
        if inside and (p.is_dir() if src.kind == "frames" else not p.is_dir()):
            out.append(p)
    if not out:
        what = "folders" if src.kind == "frames" else "files"
        raise FileNotFoundError(f"source {src.name}: glob {src.glob!r} matched no {what} under {src.root}")
    return out


def printable_path(p: Path | str) -> str:
    """A path as valid UTF-8 text (undecodable bytes of a file name shown as \\xNN)."""
    return os.fsencode(p).decode("utf-8", "backslashreplace")


def benchmark_splits(src: Source) -> dict[str, str]:
    """For a ``benchmark:<name>`` source: resolved video path -> split, read by the benchmark's loader."""
    from ..benchmarks import VideoSource, get_benchmark
    from ..benchmarks.records import FramesSource

    bench = get_benchmark(src.benchmark or "")
    out = {}
    for r in bench.load(src.root):
        if isinstance(r.source, VideoSource):
            path = Path(r.source.path)
        elif isinstance(r.source, FramesSource) and r.source.paths:
            path = Path(r.source.paths[0]).parent  # a frame-folder video is its folder
        else:
            continue
        # cross-validated benchmarks test on every video at some fold: none may pretrain
        out[str(path.resolve())] = "test" if bench.folds else r.split
    return out


def process_pool_map(workers: int) -> InspectMap:
    def run(fn, paths):
        if workers <= 1 or len(paths) <= 1:
            return [fn(p) for p in paths]
        with ProcessPoolExecutor(max_workers=workers) as pool:
            return list(pool.map(fn, paths, chunksize=4))

    return run


# --------------------------------------------------------------------------- assembling


def video_label(src: Source, p: Path, split: str) -> str:
    """How a route names a video: ``cholect50 test VID06``, ``hospital_a pretrain case_001``."""
    name = p.name if src.kind == "frames" else p.stem
    return f"{src.name} {split or 'pretrain'} {printable_path(name)}"


def find_leaks(
    files: list[tuple[Source, Path]], infos: list[VideoInfo], splits: dict[str, dict[str, str]]
) -> dict[int, tuple[int, Match]]:
    """Content matches of each readable video that is not held out against the held-out ones (every
    benchmark's val/test/unlisted videos) -> file index -> (held-out file index, match), the first
    held-out video by id when several match. Exact copies (same sha256) match even when shorter than a
    matching run."""
    held = [i for i, ((s, p), pr) in enumerate(zip(files, infos)) if pr.ok and held_out(s, p, splits)]
    rest = [i for i, ((s, p), pr) in enumerate(zip(files, infos)) if pr.ok and not held_out(s, p, splits)]
    by_sha = {infos[i].sha256: i for i in reversed(held)}
    found: dict[int, tuple[int, Match]] = {}
    for i in rest:
        if infos[i].sha256 in by_sha:
            j = by_sha[infos[i].sha256]
            found[i] = (j, Match(str(j), str(i), 0.0, 0, len(infos[i].seconds), 1.0, 0.0))
    matches = find_matches({str(i): infos[i].seconds for i in held}, {str(i): infos[i].seconds for i in rest})
    for m in matches:  # sorted by (b, a): the first a wins
        found.setdefault(int(m.b), (int(m.a), m))
    return found


def held_out(src: Source, p: Path, splits: dict[str, dict[str, str]]) -> bool:
    return bool(src.benchmark) and splits.get(src.name, {}).get(str(p.resolve())) != "train"


def assess(
    files: list[tuple[Source, Path]], infos: list[VideoInfo], splits: dict[str, dict[str, str]], min_seconds: float
) -> tuple[list[dict], list[dict], dict[str, tuple[float, ...]], list[dict]]:
    """Decide each file's status (kept / duplicate / excluded / quarantined) with its reason.

    Returns video rows (sorted by id), quarantine rows, the kept videos' motion profiles and the leaks
    (a video that shows a held-out benchmark video's content: its route, e.g. "cholec80 train video06 =
    cholect50 test VID06", and where they match).
    """
    leaks_found = find_leaks(files, infos, splits)
    # pretraining sources first, so a benchmark's training video duplicating one is the dropped copy
    order = sorted(
        range(len(files)), key=lambda i: (files[i][0].role != "pretrain", files[i][0].name, str(files[i][1]))
    )
    split_of = [splits.get(s.name, {}).get(str(p.resolve()), "") if s.benchmark else "" for s, p in files]
    ids = [f"{s.name}/{printable_path(p.relative_to(s.root))}" for s, p in files]
    rows, quarantine, motion, leaks = [], [], {}, []
    kept: list[tuple[str, tuple[int, ...], str]] = []
    for i in order:
        (src, p), pr = files[i], infos[i]
        vid = ids[i]
        if printable_path(p) != str(p):
            # Parquet strings are UTF-8: a name that is not cannot be stored, so it could not be opened again
            pr = VideoInfo(pr.path, False, "file name is not valid UTF-8 (rename the file)", bytes=pr.bytes)
        split = split_of[i]
        if pr.ok and pr.num_frames / pr.fps < min_seconds:
            short = f"shorter than {min_seconds}s ({pr.num_frames / pr.fps:.2f}s)"
            pr = VideoInfo(pr.path, False, short, bytes=pr.bytes)
        status, reason = "kept", ""
        if not pr.ok:
            status, reason = "quarantined", pr.reason
            quarantine.append({"path": printable_path(p), "source": src.name, "reason": pr.reason})
        elif src.benchmark and split != "train":
            status, reason = "excluded", f"benchmark:{src.benchmark} {split or 'unlisted'} split"
        elif i in leaks_found:
            j, m = leaks_found[i]
            (hsrc, hp), hsplit = files[j], split_of[j] or "unlisted"
            held = f"benchmark:{hsrc.benchmark} {hsplit} video {printable_path(hp.name)}"
            how = "an exact copy" if m.mean_bits == 0.0 and infos[i].sha256 == infos[j].sha256 else m.describe()
            status, reason = "excluded", f"shows held-out {held}: {how}"
            route = f"{video_label(src, p, split)} = {video_label(hsrc, hp, hsplit)}"
            leaks.append({"route": route, "video_id": vid, "held_out": ids[j], "how": how})
        elif src.guard_only:
            status, reason = "excluded", f"benchmark:{src.benchmark} {split} split (guard_only: none of it pretrains)"
        else:
            dup = next((v for sha, sig, v in kept if sha == pr.sha256 or near_duplicate(sig, pr.signature)), None)
            if dup:
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
    leaks.sort(key=lambda x: x["route"])
    return rows, quarantine, motion, leaks


# Rows per Parquet row group of clips.parquet, and per batch the clip table is built in: pyarrow's
# default row group; a 15 M-row index is then built and written a group at a time, never whole.
CLIP_ROWS_PER_GROUP = 1 << 20


def clip_batches(
    videos: pa.Table,
    clip_frames: int,
    frame_step: int,
    clip_stride_s: float,
    motion: dict[str, tuple[float, ...]] | None = None,
    balance: str = "source",
    rows: int = CLIP_ROWS_PER_GROUP,
) -> Iterator[pa.RecordBatch]:
    """Fixed-length clips of every *kept* video, vectorised, ``rows`` clips per batch (CLIP_SCHEMA columns;
    at least one batch, empty when no video gives a clip).

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
    count = np.where(n_frames >= span, (n_frames - span) // stride + 1, 0)  # (V,) clips per video
    total = int(count.sum())
    first = np.cumsum(count) - count  # (V,) row of each video's first clip
    # Per-video strings repeat over thousands of clips: dictionary-encode them (indices into the
    # video table) instead of materialising one string per clip; the unique dictionary first (Parquet
    # output with a duplicated dictionary was not reproducible)
    encoded = {c: pc.dictionary_encode(kept[c].combine_chunks()) for c in ("video_id", "path", "source", "region")}
    codes = {c: e.indices.to_numpy(zero_copy_only=False) for c, e in encoded.items()}  # (V,) each
    if balance == "none" or not total:
        video_weight = np.ones(len(count))
    else:  # group sizes are counted per video, then broadcast to its clips
        _, gidx = np.unique(kept[balance].to_numpy(zero_copy_only=False), return_inverse=True)
        video_weight = 1.0 / np.bincount(gidx, weights=count)[gidx]  # (V,)
    profiles = [np.asarray((motion or {}).get(v, ()), np.float64) for v in kept["video_id"].to_pylist()]
    for r0 in range(0, max(total, 1), rows):
        r1 = min(r0 + rows, total)
        vidx = np.searchsorted(first + count, np.arange(r0, r1), side="right")  # (R,) video of each clip
        k = np.arange(r0, r1) - first[vidx]  # clip number within its video
        start = k * stride[vidx]
        start_s = start / fps[vidx]
        end_s = (start + span) / fps[vidx]
        clip_motion = np.full(r1 - r0, np.nan)
        for v in np.unique(vidx) if motion else ():
            prof = profiles[v]
            if not len(prof):
                continue
            sel = slice(max(first[v], r0) - r0, min(first[v] + count[v], r1) - r0)  # its clips: contiguous rows
            cs = np.concatenate([[0.0], np.cumsum(prof)])
            a = np.clip(np.floor(start_s[sel]).astype(np.int64), 0, len(prof) - 1)
            b = np.clip(np.ceil(end_s[sel]).astype(np.int64), a + 1, len(prof))
            clip_motion[sel] = (cs[b] - cs[a]) / (b - a)

        def per_clip(col: str) -> pa.DictionaryArray:
            return pa.DictionaryArray.from_arrays(pa.array(codes[col][vidx], pa.int32()), encoded[col].dictionary)

        video_id = per_clip("video_id")
        clip_id = pc.binary_join_element_wise(
            pc.cast(video_id, pa.string()), pc.utf8_lpad(pc.cast(pa.array(k), pa.string()), 5, "0"), "#"
        )
        yield pa.RecordBatch.from_pydict(
            {
                "clip_id": clip_id,
                "video_id": video_id,
                "path": per_clip("path"),
                "source": per_clip("source"),
                "region": per_clip("region"),
                "start_frame": pa.array(start, pa.int64()),
                "frame_step": pa.array(np.full(r1 - r0, frame_step), pa.int64()),
                "num_frames": pa.array(np.full(r1 - r0, clip_frames), pa.int64()),
                "start_s": pa.array(start_s),
                "end_s": pa.array(end_s),
                "motion": pa.array(clip_motion),
                "weight": pa.array(video_weight[vidx], pa.float64()),
            }
        )


def build_clip_table(
    videos: pa.Table,
    clip_frames: int,
    frame_step: int,
    clip_stride_s: float,
    motion: dict[str, tuple[float, ...]] | None = None,
    balance: str = "source",
) -> pa.Table:
    """The clips of :func:`clip_batches` as one table (the whole index in memory: small corpora, tests)."""
    return pa.Table.from_batches(list(clip_batches(videos, clip_frames, frame_step, clip_stride_s, motion, balance)))


def write_clips(path: Path, batches: Iterable[pa.RecordBatch]) -> dict[str, dict[str, int]]:
    """Write clip batches to ``path`` one row group each (atomic, zstd; the same bytes as
    :func:`unisurg.io.write_table` of their table when there is one batch) -> clips per source and
    per region, for the summary."""
    counts: dict[str, dict[str, int]] = {"source": {}, "region": {}}
    with atomic_path(path) as tmp:
        writer = None
        try:
            for batch in batches:
                if batch.schema.names != CLIP_SCHEMA.names:
                    raise ValueError(f"{path.name}: columns {batch.schema.names} do not match {CLIP_SCHEMA.names}")
                if writer is None:
                    writer = pq.ParquetWriter(tmp, batch.schema, compression="zstd", store_schema=False)
                writer.write_table(pa.Table.from_batches([batch]), row_group_size=max(batch.num_rows, 1))
                for key in counts:
                    for item in pa.table({key: batch[key]}).group_by(key).aggregate([(key, "count")]).to_pylist():
                        g = str(item[key])
                        counts[key][g] = counts[key].get(g, 0) + item[f"{key}_count"]
        finally:
            if writer is not None:
                writer.close()
    return counts


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
    inspect_map: InspectMap | None = None,
) -> dict:
    """Build the index of ``sources`` in ``out``; returns the curation metrics (also in curation.json)."""
    out.mkdir(parents=True, exist_ok=True)
    files: list[tuple[Source, Path]] = [(s, p) for s in sources for p in list_files(s)]
    log.info("curate: %d files from %d sources", len(files), len(sources))
    # the benchmarks' splits first: a held-out video is hashed finely enough to find edited copies of it
    splits = {s.name: benchmark_splits(s) for s in sources if s.benchmark}
    jobs = [InspectJob(str(p), s.fps if s.kind == "frames" else None, held_out(s, p, splits)) for s, p in files]
    run = inspect_map or process_pool_map(workers)
    infos = run(partial(inspect_job, motion_step=motion_step), jobs)
    rows, quarantine, motion, leaks = assess(files, infos, splits, min_seconds)
    videos = pa.Table.from_pylist(rows, schema=VIDEO_SCHEMA)
    write_table(out / "videos.parquet", videos, VIDEO_SCHEMA)
    clip_counts = write_clips(
        out / "clips.parquet", clip_batches(videos, clip_frames, frame_step, clip_stride_s, motion, balance)
    )
    write_table(
        out / "quarantine.parquet", pa.Table.from_pylist(quarantine, schema=QUARANTINE_SCHEMA), QUARANTINE_SCHEMA
    )
    build_index_sql(out)
    metrics = summarize(rows, clip_counts, leaks)
    write_json(out / "curation.json", metrics)
    return metrics


def curate_with(params: CurateParams, sources: list[Source], out: Path, inspect_map: InspectMap | None = None) -> dict:
    """:func:`curate` with the ``curate`` section of the parameters (a :class:`unisurg.config.CurateParams`):
    what ``unisurg curate`` and the curation flow run."""
    c = params
    return curate(
        sources,
        out,
        c.clip_frames,
        c.frame_step,
        c.clip_stride_s,
        c.min_seconds,
        c.workers,
        c.motion_step,
        c.balance,
        inspect_map=inspect_map,
    )


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


def select_clips(clips: Path, where: str, out: Path) -> Path:
    """Write the rows of the clip table ``clips`` that satisfy the DuckDB condition ``where`` (e.g.
    ``region = 'gallbladder'``), in their order, to ``out`` -> ``out``: training on part of the index
    (further pretraining on one region, one source, one licence)."""
    import duckdb

    con = duckdb.connect()
    try:
        source = "'" + str(clips).replace("'", "''") + "'"  # a SQL string literal
        table = con.sql(f"SELECT * FROM read_parquet({source}) WHERE {where}").to_arrow_table()
    except duckdb.Error as err:
        raise UsageError(f"--where {where!r} on {clips}: {str(err).splitlines()[0]}") from err
    finally:
        con.close()
    if not table.num_rows:
        raise UsageError(f"--where {where!r}: no clip of {clips} satisfies it")
    write_table(out, table)
    log.info("%d clips of %s satisfy %s", table.num_rows, clips, where)
    return out


def summarize(rows: list[dict], clip_counts: dict[str, dict[str, int]], leaks: list[dict] | None = None) -> dict:
    """curation.json: videos by status and reason, hours and clips by region and source (``clip_counts``:
    clips per group of each key, as :func:`write_clips` counts them)."""
    def group(key: str) -> dict:
        out: dict[str, dict] = {}
        for r in rows:
            if r["status"] == "kept":
                g = out.setdefault(r[key], {"videos": 0, "hours": 0.0, "clips": 0})
                g["videos"] += 1
                g["hours"] += r["duration_s"] / 3600
        for g, n in clip_counts[key].items():
            out[g]["clips"] = n
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
        # excluded: held-out splits, videos showing held-out content (leaks), guard_only training videos
        "excluded_benchmark_heldout": sum(r["status"] == "excluded" and r["reason"].endswith("split") for r in rows),
        "excluded_leaks": len(leaks or []),
        "excluded_guard_only": sum(r["status"] == "excluded" and "(guard_only" in r["reason"] for r in rows),
        "leaks": leaks or [],
        "quarantined": sum(r["status"] == "quarantined" for r in rows),
        "quarantined_by_reason": dict(sorted(reasons.items())),
        "clips": sum(clip_counts["source"].values()),
        "hours_kept": round(sum(r["duration_s"] for r in rows if r["status"] == "kept") / 3600, 4),
        "by_region": group("region"),
        "by_source": group("source"),
    }
