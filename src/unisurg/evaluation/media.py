"""A benchmark's pixels, ready for probing: windows planned, every record decoded once, bad input set aside.

:func:`prepare_media` plans every sample's window (:class:`~.windows.WindowPlan`), makes sure each
record's frame store exists and is intact (:mod:`.framestore`; building the missing ones in
``workers`` processes, and under ``torchrun`` on the rank that owns the record), and marks the
samples whose window needs a frame that could not be decoded. Those samples are left out of every
split; the log says why, and the results count them per video (``skipped``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from torch.utils.data import DataLoader, Dataset

from ..benchmarks import Benchmark, Record
from ..benchmarks.records import AuthorsRecipe
from ..media.video import VideoError, open_video
from ..runtime import SINGLE, Dist
from .framestore import FrameStore, Geometry, build_store, store_key
from .protocols import Sampling
from .samples import Sample
from .windows import SourceInfo, WindowPlan, source_info

log = logging.getLogger(__name__)

POLL_S = 2.0


@dataclass
class Media:
    plan: WindowPlan
    stores: dict[int, FrameStore]
    usable: np.ndarray  # (S,) bool: the sample's window reads only decoded frames
    skipped: dict  # {"samples": count, "videos": {video: reason}} of the unusable samples
    decoded: int  # frames the readers returned while building stores in this process (0: all reused)
    needed: int  # distinct frames the windows read

    def close(self) -> None:
        """Close the stores' files in this process (one descriptor per record otherwise stays open)."""
        for store in self.stores.values():
            store.close()


def geometry(sampling: Sampling) -> Geometry:
    """How the stores keep frames: ``source_width`` wide with the source's aspect (the authors'
    extraction), else squashed to the side the view resizes to (nothing left to resize)."""
    if sampling.source_width:
        return Geometry(sampling.source_width)
    return Geometry(sampling.resize, sampling.resize)


class _Build(Dataset):
    """Item j: build the store of job j -> its sidecar (run in DataLoader workers)."""

    def __init__(
        self, jobs: list[tuple[Record, np.ndarray, str]], geo: Geometry, directory: Path, decoder: str
    ) -> None:
        self.jobs, self.geo, self.dir, self.decoder = jobs, geo, directory, decoder

    def __len__(self) -> int:
        return len(self.jobs)

    def __getitem__(self, j: int):
        record, frames, key = self.jobs[j]
        meta = build_store(record, frames, self.geo, self.dir, key, self.decoder)
        return record.id, meta.decoded, meta.error


def _infos(records: Sequence[Record], decoder: str) -> tuple[list[SourceInfo], dict[int, str]]:
    """Every record's source facts; records whose source does not even open -> their reason."""
    infos, broken = [], {}
    for r, rec in enumerate(records):
        try:
            infos.append(source_info(rec, lambda p: open_video(p, decoder=decoder)))
        except VideoError as err:
            infos.append(SourceInfo(1, 1.0))
            broken[r] = str(err)
    return infos, broken


def prepare_media(
    bench: Benchmark,
    records: Sequence[Record],
    samples: Sequence[Sample],
    sampling: Sampling,
    seed: int,
    cache_dir: Path,
    recipe: AuthorsRecipe | None = None,
    workers: int = 0,
    decoder: str = "decord",
    d: Dist = SINGLE,
) -> Media:
    """Windows, frame stores and usable samples of one benchmark (module docstring)."""
    infos, broken = _infos(records, decoder)
    plan = WindowPlan(bench, records, samples, sampling, infos, seed, recipe)
    needed = {r: f for r, f in plan.needed().items() if r not in broken}
    geo, directory = geometry(sampling), cache_dir / "frames"
    keys = {r: store_key(records[r], f, geo, decoder) for r, f in needed.items()}
    mine = sorted(keys)[d.rank :: d.world]  # each rank checks and builds its share
    todo = [r for r in mine if FrameStore.open(directory, keys[r]) is None]
    decoded = 0
    if todo:
        jobs = [(records[r], needed[r], keys[r]) for r in todo]
        serial = workers == 0 or decoder == "torchcodec-cuda"  # CUDA decoding stays in this process
        loader = DataLoader(
            _Build(jobs, geo, directory, decoder), batch_size=None, num_workers=0 if serial else workers
        )
        for rid, n, error in loader:
            decoded += n
            log.debug("%s: %s decoded once (%d frames)%s", bench.title, rid, n, f"; {error}" if error else "")
    log.info(
        "%s: %d of %d records decoded into frame stores (%d frames), %d reused",
        bench.title,
        len(todo),
        len(records),
        decoded,
        len(mine) - len(todo),
    )
    stores = _wait_for_stores(directory, keys, d)
    usable, skipped = _usable(plan, stores, broken, records)
    return Media(plan, stores, usable, skipped, decoded, sum(len(f) for f in needed.values()))


def _wait_for_stores(directory: Path, keys: dict[int, str], d: Dist) -> dict[int, FrameStore]:
    """Every record's store, once whole (other ranks build theirs: waited for by polling, no timeout)."""
    stores: dict[int, FrameStore] = {}
    t0 = time.monotonic()
    while len(stores) < len(keys):
        for r, key in keys.items():
            if r not in stores and (directory / f"{key[:40]}.json").exists():
                stores[r] = FrameStore.load(directory, key)
        if len(stores) < len(keys):
            time.sleep(POLL_S)
            if time.monotonic() - t0 > 60:
                log.info("rank %d: waiting for %d frame stores other ranks build", d.rank, len(keys) - len(stores))
                t0 = time.monotonic()
    return stores


def _usable(
    plan: WindowPlan, stores: dict[int, FrameStore], broken: dict[int, str], records: Sequence[Record]
) -> tuple[np.ndarray, dict]:
    """Which samples' windows read only decoded frames, and why the others were left out (per video)."""
    usable = np.ones(len(plan.samples), bool)
    reasons: dict[str, str] = {}
    for i, s in enumerate(plan.samples):
        if s.record in broken:
            usable[i] = False
            reasons.setdefault(records[s.record].video, broken[s.record])
            continue
        w = plan.whole_list(i) if plan.random else plan.window(i)
        for r in np.unique(w[:, 0]):
            store = stores.get(int(r))
            if store is None or not store.usable(w[w[:, 0] == r, 1]):
                usable[i] = False
                why = store.meta.error if store is not None else broken.get(int(r), "not decodable")
                reasons.setdefault(records[s.record].video, why or "a frame could not be decoded")
    n = int((~usable).sum())
    if n:
        for video, why in sorted(reasons.items()):
            log.warning("%s: samples whose clip needs undecodable frames are skipped: %s", video, why)
        log.warning("%d of %d samples skipped (undecodable frames in %d videos)", n, len(usable), len(reasons))
    return usable, {"samples": n, "videos": dict(sorted(reasons.items()))}
