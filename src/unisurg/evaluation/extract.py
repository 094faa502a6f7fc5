"""`unisurg features extract`: clip embeddings of whole videos with any encoder.

A video is covered by sliding windows: window k holds ``frames`` frames at ``fps`` starting
at ``k * stride_s`` seconds (the last window is shifted back to end at the last frame, so the
tail is never dropped; a video shorter than one window gives one window padded with its first
frame, as in the probe protocol). Each window's tokens (N, D) are mean-pooled to one
embedding (D,), or kept whole with ``pool="none"``.

Inputs: video files, folders (searched recursively), or curation's ``videos.parquet`` (its
``path`` column, the rows whose ``status`` is ``kept``: duplicates, held-out benchmark videos
and quarantined files are left out).

Outputs:
- ``*.parquet``: one row per window: video, window, t_start, t_end (seconds), embedding
  (list<float32>, pooled only);
- a directory: one ``<video stem>.npy`` per video, float32 (windows, D) or (windows, N, D),
  plus ``windows.parquet`` giving every row's video, file, window and times.
Videos sharing a file stem get the hash of their path appended to the ``.npy`` name.

One bad file never stops a run (as in curation's quarantine): a video that cannot be opened or
decoded, even midway through its windows, is skipped with its reason, logged, and listed in a
``skipped`` table (video, reason) — ``<out stem>.skipped.parquet`` beside a Parquet output,
``skipped.parquet`` inside a folder; written on every run, empty when nothing was skipped. The
videos that succeeded are written; if none did, the run is an error (:class:`UsageError`).

Resuming without recomputing: every finished video's embeddings are saved at once, atomically,
as a ``.npy`` — in the output folder, or for a Parquet output in the sidecar folder
``<out stem>.parts/<settings hash>/`` (the hash of ``meta`` and the windows, so parts of other
encoders, weights or windows are never reused). A rerun loads a video's ``.npy`` instead of
embedding it when it has the right number of windows (and, for a folder, the previous index
records the same settings); window times are recomputed from the video's frame index. The
Parquet file is assembled from the same float32 values either way, so a resumed run writes the
same bytes as an uninterrupted one; the sidecar is removed once the file is written.

The encoder runs on its device (``--device``; bf16 autocast on CUDA unless ``--fp32``). Under
``torchrun`` the videos are dealt out to the ranks in contiguous runs; each rank embeds its
videos (writing their ``.npy`` files: ``--out`` must then be on a filesystem every node sees)
and the main rank gathers the rows and the skipped videos and writes the index or the Parquet
file, in the single process's order, with the single process's numbers (a video's windows are
batched alike).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import shutil
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import torch
from torch import nn

from ..errors import UsageError
from ..io import atomic_path, write_table
from ..media.clips import to_tensor
from ..media.video import VIDEO_EXTENSIONS, VideoError, clip_indices, open_video
from ..runtime import SINGLE, Dist, FittingBatch, autocast, to_device

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Windows:
    frames: int = 16
    fps: float = 8.0
    stride_s: float = 1.0
    size: int = 64

    def starts(self, n_frames: int, native_fps: float) -> np.ndarray:
        """Window end frames (native indices), one per stride, the last ending at the last frame."""
        span = (self.frames - 1) * native_fps / self.fps  # native frames covered by one window
        last = n_frames - 1
        ends = np.arange(span, last + 1e-9, self.stride_s * native_fps)
        if not len(ends) or ends[-1] < last - 1e-9:
            ends = np.r_[ends, last]
        return np.round(ends).astype(np.int64)


WINDOW_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("window", pa.int32()),
        ("t_start", pa.float64()),
        ("t_end", pa.float64()),
    ]
)


SKIPPED_SCHEMA = pa.schema([("video", pa.string()), ("reason", pa.string())])


def find_videos(paths: list[str | Path]) -> list[Path]:
    """Files as given; directories searched recursively for video files (sorted); a ``.parquet`` list
    (curation's ``videos.parquet``) gives the videos it keeps, in its order (:func:`listed_videos`)."""
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_EXTENSIONS and f.is_file())
        elif p.is_file() and p.suffix.lower() == ".parquet":
            out += listed_videos(p)
        elif p.is_file():
            out.append(p)
        else:
            raise FileNotFoundError(f"no video or directory {p}")
    return out


def listed_videos(table: Path) -> list[Path]:
    """The ``path`` column of a Parquet list, only its ``kept`` rows when it has curation's ``status``
    column (``videos.parquet`` lists every file it saw: duplicates, held-out benchmark videos and
    quarantined files too). Curation stores absolute paths; a relative one is taken as given (from
    the working directory), as the clip loader takes the paths of ``clips.parquet``."""
    try:
        names = pq.read_schema(table).names
    except pa.ArrowInvalid as err:
        raise UsageError(f"{table}: not a Parquet file ({err})") from err
    if "path" not in names:
        raise UsageError(
            f"{table}: no 'path' column (it has {', '.join(names)}): give video files, folders or curation's "
            "videos.parquet"
        )
    cols = pq.read_table(table, columns=[c for c in ("path", "status") if c in names]).to_pydict()
    status = cols.get("status") or ["kept"] * len(cols["path"])
    kept = [Path(p) for p, s in zip(cols["path"], status) if s == "kept"]
    left = Counter(s for s in status if s != "kept")
    if left:
        why = ", ".join(f"{n} {s}" for s, n in sorted(left.items()))
        log.info("features: %d of the %d videos in %s (left out: %s)", len(kept), len(status), table, why)
    return kept


def window_frames(n_frames: int, native_fps: float, w: Windows) -> list[np.ndarray]:
    """Native frame indices (frames,) of every window of a video."""
    step = native_fps / w.fps
    return [clip_indices(int(e), w.frames, step) for e in w.starts(n_frames, native_fps)]


def _window_batches(path: Path, w: Windows, batch: int) -> Iterator[tuple[np.ndarray, np.ndarray, torch.Tensor]]:
    """-> (t_start, t_end, clips (b, 3, T, S, S)) per batch of windows of one video."""
    vr = open_video(path)
    windows = window_frames(len(vr), vr.fps, w)
    for i in range(0, len(windows), batch):
        idx = windows[i : i + batch]
        need = np.unique(np.concatenate(idx))
        decoded = vr.get_frames(need)  # each frame once, even where windows overlap
        pos = {int(k): j for j, k in enumerate(need)}
        clips = torch.stack([to_tensor(decoded[[pos[int(k)] for k in ix]], w.size) for ix in idx])
        yield np.array([ix[0] / vr.fps for ix in idx]), np.array([ix[-1] / vr.fps for ix in idx]), clips


def npy_names(videos: list[Path]) -> dict[Path, str]:
    """``<stem>.npy`` per video; stems shared by several inputs (``case1/video.mp4``,
    ``case2/video.mp4``) get a hash of the full path so that no file overwrites another."""
    stems: dict[str, int] = {}
    for v in videos:
        stems[v.stem] = stems.get(v.stem, 0) + 1
    return {
        v: f"{v.stem}.npy" if stems[v.stem] == 1 else f"{v.stem}-{hashlib.sha1(str(v).encode()).hexdigest()[:8]}.npy"
        for v in videos
    }


@torch.inference_mode()
def video_embeddings(
    encoder: nn.Module,
    path: Path,
    w: Windows,
    batch: int = 8,
    pool: str = "mean",
    bf16: bool = True,
    fitting: FittingBatch | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (t_start (n,), t_end (n,), embeddings float32 (n, D) or (n, N, D) with pool='none').

    The encoder runs on the device of its parameters, under bf16 autocast there if CUDA and ``bf16``."""
    if pool not in ("mean", "none"):
        raise ValueError(f"pool must be 'mean' or 'none', not {pool!r}")
    device = next(encoder.parameters()).device
    fitting = fitting or FittingBatch()
    starts, ends, embs = [], [], []
    for t0, t1, clips in _window_batches(path, w, batch):
        with autocast(device, bf16):
            tokens = fitting(encoder, to_device(clips, device)).float()  # (b, N, D)
        embs.append((tokens.mean(1) if pool == "mean" else tokens).cpu().numpy())
        starts.append(t0)
        ends.append(t1)
    return np.concatenate(starts), np.concatenate(ends), np.concatenate(embs)


def extract(
    encoder: nn.Module,
    videos: list[Path],
    out: Path,
    w: Windows,
    batch: int = 8,
    pool: str = "mean",
    meta: dict[str, str] | None = None,
    d: Dist = SINGLE,
    bf16: bool = True,
) -> int:
    """Embed every video into ``out`` (a ``.parquet`` file or a directory of ``.npy``) -> rows written
    (on the main rank; other ranks of a ``torchrun`` launch embed their videos and return 0).

    Unreadable videos are skipped and listed in :func:`skipped_path`; :class:`UsageError` if all were."""
    encoder.eval()
    to_parquet = out.suffix == ".parquet"
    if to_parquet and pool != "mean":
        raise ValueError("token-level features (pool='none') are written as .npy: give a directory as --out")
    meta = meta or {}
    # where each finished video's .npy goes: the output folder, or the Parquet output's resume sidecar
    store = parts_dir(out, w, meta) if to_parquet else out
    reuse = to_parquet or _same_settings(out / "windows.parquet", meta)  # the sidecar's name holds its settings
    names = npy_names(videos)
    mine = videos[d.rank * len(videos) // d.world : (d.rank + 1) * len(videos) // d.world]
    cols: dict[str, list] = {k: [] for k in (*WINDOW_SCHEMA.names, "embedding", "file")}
    skipped: dict[str, list[str]] = {k: [] for k in SKIPPED_SCHEMA.names}
    fitting = FittingBatch()
    for n, path in enumerate(mine, 1):
        try:
            t0, t1, emb = _embedded(encoder, path, store / names[path], w, batch, pool, bf16, fitting, reuse)
        except VideoError as err:  # one bad file must not cost the others: skipped, listed, the run goes on
            reason = str(err).removeprefix(f"{path}: ")  # the table's video column names the file
            log.warning("features: %d/%d %s skipped: %s", n, len(mine), path, reason)
            skipped["video"].append(str(path))
            skipped["reason"].append(reason)
            continue
        log.info("features: %d/%d %s: %d windows, %s", n, len(mine), path.name, len(emb), emb.shape[1:])
        cols["video"] += [str(path)] * len(t0)
        cols["window"] += list(range(len(t0)))
        cols["t_start"] += t0.tolist()
        cols["t_end"] += t1.tolist()
        cols["file"] += [names[path]] * len(t0)
        if to_parquet:
            cols["embedding"] += [e.astype(np.float32) for e in emb]  # copies: never views of a loaded part
    parts = d.gather((cols, skipped))  # every rank's rows and skips, in rank order = video order
    if parts is None:
        return 0
    cols = {k: [v for part, _ in parts for v in part[k]] for k in cols}
    skipped = {k: [v for _, part in parts for v in part[k]] for k in skipped}
    _report_skipped(out, skipped, len(videos), meta)
    _write_rows(out, cols, meta)
    if to_parquet and store.parent.exists():  # the file is whole: the resume sidecar has served
        shutil.rmtree(store.parent)
    return len(cols["video"])


def parts_dir(out: Path, w: Windows, meta: dict[str, str]) -> Path:
    """A Parquet output's resume sidecar: ``<out stem>.parts/<hash of meta and windows>/``, one ``.npy``
    per finished video. The settings are in the name, so no other encoder's parts are ever reused."""
    key = json.dumps({"meta": meta, "windows": dataclasses.asdict(w)}, sort_keys=True)
    return out.with_suffix(".parts") / hashlib.sha1(key.encode()).hexdigest()[:12]


def skipped_path(out: Path) -> Path:
    """The skipped table of an output: ``<out stem>.skipped.parquet`` beside a Parquet file, or
    ``skipped.parquet`` inside a folder of ``.npy``."""
    return out.with_suffix(".skipped.parquet") if out.suffix == ".parquet" else out / "skipped.parquet"


def _embedded(
    encoder: nn.Module,
    path: Path,
    npy: Path,
    w: Windows,
    batch: int,
    pool: str,
    bf16: bool,
    fitting: FittingBatch,
    reuse: bool,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """-> (t_start (n,), t_end (n,), embeddings) of one video: loaded from ``npy`` if a previous run with
    the same settings (``reuse``) finished it, else embedded and saved there. Raises VideoError."""
    if reuse and npy.exists():
        done = np.load(npy, mmap_mode="r")
        vr = open_video(path)  # the frame index only: times are recomputed, not stored
        windows = window_frames(len(vr), vr.fps, w)
        if len(done) == len(windows) and done.ndim == (2 if pool == "mean" else 3):
            log.info("features: %s already extracted (%d windows)", path.name, len(done))
            t0 = np.array([ix[0] / vr.fps for ix in windows])
            t1 = np.array([ix[-1] / vr.fps for ix in windows])
            return t0, t1, done
        # written with other windows or pooling: redo, never mix
        log.info("features: %s has %s from other settings: extracting again", npy.name, done.shape)
    t0, t1, emb = video_embeddings(encoder, path, w, batch, pool, bf16, fitting)
    with atomic_path(npy) as tmp:  # whole or absent: a killed run never leaves a part that looks finished
        with open(tmp, "wb") as fh:
            np.save(fh, emb.astype(np.float32))
    return t0, t1, emb


def _report_skipped(out: Path, skipped: dict[str, list[str]], total: int, meta: dict[str, str]) -> None:
    """Write the skipped table (empty when nothing was: no stale list survives a rerun), warn with the count;
    raise UsageError when no video could be read."""
    path = skipped_path(out)
    schema = SKIPPED_SCHEMA.with_metadata({k.encode(): v.encode() for k, v in meta.items()})
    write_table(path, pa.table(skipped, schema=schema), SKIPPED_SCHEMA)
    n = len(skipped["video"])
    if n and n == total:
        first = f"{skipped['video'][0]}: {skipped['reason'][0]}"
        raise UsageError(f"features: none of the {n} videos could be read (first: {first}); listed in {path}")
    if n:
        log.warning("features: %d of %d videos skipped (unreadable), listed in %s", n, total, path)


def _write_rows(out: Path, cols: dict[str, list], meta: dict[str, str]) -> None:
    """The Parquet file (rows with their embeddings), or a folder's ``windows.parquet`` index."""
    base = {k: cols[k] for k in WINDOW_SCHEMA.names}
    schema_meta = {k.encode(): v.encode() for k, v in meta.items()}
    if out.suffix == ".parquet":
        dim = len(cols["embedding"][0]) if cols["embedding"] else 0
        emb_type = pa.list_(pa.float32(), dim) if dim else pa.list_(pa.float32())  # fixed-size: one D per file
        table = pa.table({**base, "embedding": pa.array(cols["embedding"], emb_type)})
        write_table(out, table.replace_schema_metadata(schema_meta))
    else:
        table = pa.table({**base, "file": cols["file"]})
        write_table(out / "windows.parquet", table.replace_schema_metadata(schema_meta))


def _same_settings(index: Path, meta: dict[str, str]) -> bool:
    """Whether a previous run into this folder used the same encoder, weights and windows (its
    ``windows.parquet`` metadata): only then are its ``.npy`` files reused."""
    if not index.exists():
        return True  # nothing recorded yet (e.g. killed before the index): shapes are still checked
    old = pq.read_schema(index).metadata or {}
    return all(old.get(k.encode()) == v.encode() for k, v in meta.items())
