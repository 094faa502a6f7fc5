"""Bulk feature extraction on a Ray cluster: ``unisurg features extract ... --engine ray``.

The videos are cut into shards of ``shard_size`` consecutive videos. Ray actors each build the encoder
once (one actor per GPU where the cluster has GPUs, else one per CPU slot) and embed whole shards: an
actor writes its shard's rows as one Parquet part, atomically, into the output's sidecar folder
(``<out stem>.parts/<settings hash>/ray/``), and the driver records the shard in ``manifest.json``
there. A rerun after any failure (a killed driver, a lost node) reads the manifest and embeds only the
shards it does not list. When every shard is done the parts are assembled, in video order, into the
same ``.parquet`` file the local engine writes (same rows and columns; the same bytes where the
encoder's arithmetic matches, e.g. one thread per process on both sides), the skipped videos into the
same ``.skipped.parquet``, and the sidecar is removed.

A lost actor (its node died) is restarted by Ray and its shard retried (``max_restarts`` /
``max_task_retries``); a video its decoder cannot read is skipped with its reason, as locally.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import UsageError
from ..evaluation.extract import (  # the local engine's pieces: one definition of windows, rows and files
    SKIPPED_SCHEMA,
    Windows,
    _report_skipped,
    _write_rows,
    parts_dir,
)
from ..io import atomic_write_text, write_table
from .session import connected

log = logging.getLogger(__name__)

SHARD = 8  # videos per shard by default: what a failure can cost, and the unit of balancing
PART_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("window", pa.int32()),
        ("t_start", pa.float64()),
        ("t_end", pa.float64()),
        ("embedding", pa.list_(pa.float32())),
    ]
)


@dataclass(frozen=True)
class EncoderSpec:
    """What each actor builds once: the encoder spec and how its tokens are read."""

    spec: str
    seed: int = 0
    layers: tuple[int, ...] | None = None
    bf16: bool = True
    threads: int = 1  # torch threads per actor (its CPU slots)


class Embedder:
    """A Ray actor: holds one encoder, embeds shards into Parquet parts."""

    def __init__(self, enc: EncoderSpec, windows: Windows, batch: int) -> None:
        import torch

        from ..evaluation.encoders import MultiLayer, load_encoder_spec
        from ..runtime import resolve_device

        torch.set_num_threads(enc.threads)
        self.device = resolve_device("auto")
        model, _ = load_encoder_spec(enc.spec, enc.seed, windows.size)
        if enc.layers:
            model = MultiLayer(model, list(enc.layers))
        self.model, self.enc, self.windows, self.batch = model.eval().to(self.device), enc, windows, batch

    def embed(self, videos: list[str], part: str) -> dict:
        """Embed ``videos`` into the Parquet file ``part`` -> {"rows": n, "skipped": [(video, reason)]}."""
        from ..evaluation.extract import video_embeddings
        from ..media.video import VideoError

        cols: dict[str, list] = {k: [] for k in PART_SCHEMA.names}
        skipped = []
        for v in videos:
            try:
                t0, t1, emb = video_embeddings(self.model, Path(v), self.windows, self.batch, "mean", self.enc.bf16)
            except VideoError as err:  # one bad file must not cost its shard: skipped with its reason
                skipped.append((v, str(err).removeprefix(f"{v}: ")))
                continue
            cols["video"] += [v] * len(t0)
            cols["window"] += list(range(len(t0)))
            cols["t_start"] += t0.tolist()
            cols["t_end"] += t1.tolist()
            cols["embedding"] += [e.astype(np.float32) for e in emb]
        write_table(Path(part), pa.table(cols, schema=PART_SCHEMA))
        return {"rows": len(cols["video"]), "skipped": skipped}


def _manifest(folder: Path) -> dict:
    path = folder / "manifest.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def extract_on_ray(
    address: str,
    enc: EncoderSpec,
    videos: list[Path],
    out: Path,
    windows: Windows,
    batch: int = 8,
    meta: dict[str, str] | None = None,
    actors: int | None = None,
    shard_size: int = SHARD,
) -> int:
    """Embed ``videos`` (mean-pooled) into the Parquet file ``out`` on the cluster at ``address`` -> rows."""
    if out.suffix != ".parquet":
        raise UsageError(f"--engine ray writes pooled embeddings into a .parquet file, not {out}")
    meta = meta or {}
    folder = parts_dir(out, windows, meta) / "ray"
    folder.mkdir(parents=True, exist_ok=True)
    shards = [[str(v) for v in videos[i : i + shard_size]] for i in range(0, len(videos), shard_size)]
    manifest = _manifest(folder)
    if manifest.get("shards_of") != shards:  # another video list: nothing of it is reused
        manifest = {"shards_of": shards, "meta": meta, "windows": dataclasses.asdict(windows), "done": {}}
    done: dict[str, dict] = manifest["done"]
    todo = [k for k in range(len(shards)) if str(k) not in done or not (folder / done[str(k)]["part"]).is_file()]
    if len(todo) < len(shards):
        log.info("features on Ray: %d of %d shards finished by an earlier run", len(shards) - len(todo), len(shards))
    with connected(address) as ray:
        _run_shards(ray, enc, windows, batch, shards, todo, folder, manifest, actors)
    return _assemble(out, folder, manifest, len(shards), len(videos), meta)


def _run_shards(ray, enc, windows, batch, shards, todo, folder: Path, manifest: dict, actors: int | None) -> None:
    if not todo:
        return
    res = ray.cluster_resources()
    gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
    n = min(actors or (gpus or max(cpus, 1)), len(todo))
    opts = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": 1}
    actor = ray.remote(Embedder).options(max_restarts=2, max_task_retries=2, **opts)
    pool = [actor.remote(dataclasses.replace(enc, threads=1), windows, batch) for _ in range(n)]
    log.info("features on Ray: %d shards on %d actors (%s each)", len(todo), n, "1 GPU" if gpus else "1 CPU")
    t0, queue, running = time.perf_counter(), list(todo), {}
    free = list(range(n))
    while queue or running:
        while queue and free:
            k, a = queue.pop(0), free.pop(0)
            running[pool[a].embed.remote(shards[k], str(folder / f"part-{k:05d}.parquet"))] = (k, a)
        ready, _ = ray.wait(list(running), num_returns=1)
        k, a = running.pop(ready[0])
        result = ray.get(ready[0])
        manifest["done"][str(k)] = {"part": f"part-{k:05d}.parquet", **result}
        atomic_write_text(folder / "manifest.json", json.dumps(manifest))  # a shard is done once listed here
        free.append(a)
        log.info(
            "features on Ray: shard %d done (%d/%d), %d rows", k, len(manifest["done"]), len(shards), result["rows"]
        )
    dt = time.perf_counter() - t0
    log.info("features on Ray: %d shards in %.1f s", len(todo), dt)


def _assemble(out: Path, folder: Path, manifest: dict, n_shards: int, n_videos: int, meta: dict[str, str]) -> int:
    """The parts, in shard (= video) order, into the local engine's files; the sidecar removed."""
    cols: dict[str, list] = {k: [] for k in ("video", "window", "t_start", "t_end", "embedding", "file")}
    skipped: dict[str, list[str]] = {k: [] for k in SKIPPED_SCHEMA.names}
    for k in range(n_shards):
        entry = manifest["done"][str(k)]
        part = pq.read_table(folder / entry["part"]).to_pydict()
        for c in PART_SCHEMA.names:
            cols[c] += part[c]
        for v, reason in entry["skipped"]:
            skipped["video"].append(v)
            skipped["reason"].append(reason)
    cols["embedding"] = [np.asarray(e, np.float32) for e in cols["embedding"]]
    _report_skipped(out, skipped, n_videos, meta)
    _write_rows(out, cols, meta)
    shutil.rmtree(out.with_suffix(".parts"))  # the file is whole: the sidecar has served (as locally)
    return len(cols["video"])
