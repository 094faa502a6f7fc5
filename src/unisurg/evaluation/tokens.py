"""Where the probe heads get their tokens: a sharded on-disk store, or the encoder run online.

:class:`TokenStore` (protocols with ``tokens: cached``): every sample's frozen tokens (N, D),
float16, in shards of whole extraction batches (``<cache>/tokens/<key>/shard-KKKKK.f16`` + a JSON
sidecar with the rows and a CRC-32, written last: a shard is whole when its sidecar exists).
Extraction writes a shard as soon as it is full, so a killed run resumes at the first missing
shard; a shard whose checksum fails is logged, deleted and extracted again. Heads read the rows of
each batch with positioned reads: no sample's tokens are ever all in memory together.

:class:`CachedTokens` and :class:`OnlineTokens` give the harness the same thing — the tokens of a
list of samples, batch after batch, on the device — from the store, or by running the encoder on
each batch of clips (augmented for a training epoch of an augmenting protocol). Under ``torchrun``
the online encoder's work of a batch is split over the ranks and the tokens are gathered, so every
rank holds the whole batch for its share of the heads (:mod:`.parallel`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
import zlib
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..benchmarks import Record
from ..io import atomic_path, atomic_write_text
from ..media.clips import normalize_batch
from ..runtime import SINGLE, Dist, FittingBatch, to_device
from .augment import erase
from .clipdata import ClipSet, clip_loader
from .framestore import source_stamp
from .samples import Sample
from .windows import EVAL_DRAW

log = logging.getLogger(__name__)

SHARD_BYTES = 256 * 2**20  # target size of one token shard
POLL_S = 2.0  # how often a rank looks for shards another rank writes


class TokenStore:
    """One encoder's tokens of one benchmark's samples (module docstring)."""

    def __init__(self, directory: Path, n: int, shape: tuple[int, int], batch: int) -> None:
        self.dir, self.n, self.shape = directory, n, tuple(shape)
        self.row_bytes = shape[0] * shape[1] * 2
        per = max(1, SHARD_BYTES // self.row_bytes)
        self.rows_per_shard = max(batch, per // batch * batch)  # whole extraction batches
        self.shards = -(-n // self.rows_per_shard)
        self._fds: dict[int, int] = {}

    def span(self, k: int) -> range:
        return range(k * self.rows_per_shard, min((k + 1) * self.rows_per_shard, self.n))

    def _paths(self, k: int) -> tuple[Path, Path]:
        return self.dir / f"shard-{k:05d}.f16", self.dir / f"shard-{k:05d}.json"

    def whole(self, k: int) -> bool:
        """Shard k is written and intact (a damaged one is logged and removed)."""
        data, meta = self._paths(k)
        if not meta.exists():
            return False
        try:
            info = json.loads(meta.read_text())
            ok = (
                info["rows"] == len(self.span(k))
                and tuple(info["shape"]) == self.shape
                and data.stat().st_size == info["rows"] * self.row_bytes
                and _crc(data) == info["crc"]
            )
        except (OSError, ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            log.warning("token shard %s is damaged (size, checksum or sidecar): extracting it again", data)
            meta.unlink(missing_ok=True)
            data.unlink(missing_ok=True)
        return ok

    @contextlib.contextmanager
    def writer(self, k: int) -> Iterator[Callable[[torch.Tensor], None]]:
        """Write shard k batch by batch: ``append(tokens (b, N, D))``; the shard (and its sidecar, last)
        appear only when the block ends without an error, and only one batch is ever held."""
        data, meta = self._paths(k)
        state = {"rows": 0, "crc": 0}
        with atomic_path(data) as tmp, open(tmp, "wb") as fh:

            def append(tokens: torch.Tensor) -> None:
                raw = tokens.to(torch.float16).contiguous().numpy().tobytes()
                fh.write(raw)
                state["crc"] = zlib.crc32(raw, state["crc"])
                state["rows"] += len(tokens)

            yield append
        atomic_write_text(meta, json.dumps({"rows": state["rows"], "shape": list(self.shape), "crc": state["crc"]}))

    def wait(self, shards: Sequence[int], d: Dist) -> None:
        """Until every shard in ``shards`` is whole (other ranks write them); no collective, no timeout:
        a dead rank ends the whole job under torchrun."""
        left = [k for k in shards if not self._paths(k)[1].exists()]
        t0 = time.monotonic()
        while left:
            time.sleep(POLL_S)
            left = [k for k in left if not self._paths(k)[1].exists()]
            if left and time.monotonic() - t0 > 60:
                log.info("rank %d: waiting for %d token shards other ranks extract", d.rank, len(left))
                t0 = time.monotonic()

    def read(self, rows: np.ndarray) -> torch.Tensor:
        """float16 (len(rows), N, D) of the given sample rows."""
        out = np.empty((len(rows), *self.shape), np.float16)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        for j, r in enumerate(np.asarray(rows, np.int64)):
            k = int(r) // self.rows_per_shard
            if k not in self._fds:
                self._fds[k] = os.open(self._paths(k)[0], os.O_RDONLY)
            off = (int(r) - k * self.rows_per_shard) * self.row_bytes
            flat[j] = np.frombuffer(os.pread(self._fds[k], self.row_bytes, off), np.uint8)
        return torch.from_numpy(out)

    def close(self) -> None:
        """Close the shards this process opened (a long ``--benchmark all`` run would run out of descriptors)."""
        for fd in self._fds.values():
            os.close(fd)
        self._fds.clear()


def _crc(path: Path, chunk: int = 16 * 2**20) -> int:
    """CRC-32 of a file, read a chunk at a time."""
    crc = 0
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            crc = zlib.crc32(block, crc)
    return crc


# --------------------------------------------------------------------------- sources of tokens


def encode(
    model: nn.Module,
    batch: dict[str, torch.Tensor],
    device: torch.device,
    amp: torch.dtype | None,
    fitting: FittingBatch,
) -> torch.Tensor:
    """A loader batch -> tokens (B, N, D): normalised on the device, erasing applied, encoder forward."""
    x = normalize_batch(to_device(batch["clip"], device))  # (B, 3, T, S, S) float32
    if (batch["erase"][:, 0] >= 0).any():
        erase(x, batch["erase"], batch["key"])
    ctx = torch.autocast("cuda", dtype=amp) if amp is not None and device.type == "cuda" else contextlib.nullcontext()
    with torch.inference_mode(), ctx:
        return fitting(model, x)


class CachedTokens:
    """Tokens of a :class:`TokenStore`, batch by batch, on ``device`` as float32."""

    online = False

    def __init__(self, store: TokenStore, device: torch.device) -> None:
        self.store, self.device = store, device

    def batches(self, batches: Sequence[np.ndarray], epoch: int | None = None) -> Iterator[torch.Tensor]:
        for idx in batches:
            yield to_device(self.store.read(idx), self.device).float()

    def close(self) -> None:
        self.store.close()


class OnlineTokens:
    """Tokens computed by ``model`` on each batch of clips (training draws of ``epoch`` are augmented).

    Under ``torchrun`` rank r encodes its contiguous share of each batch and the shares are gathered,
    so every rank returns the whole batch's tokens."""

    online = True

    def __init__(
        self,
        model: nn.Module,
        clips: ClipSet,
        device: torch.device,
        workers: int,
        amp: torch.dtype | None,
        d: Dist = SINGLE,
    ) -> None:
        self.model, self.clips, self.device, self.workers, self.amp, self.d = model, clips, device, workers, amp, d
        self.fitting = FittingBatch()

    def close(self) -> None:
        """Nothing of its own to close: the frame stores belong to the benchmark's media."""

    def batches(self, batches: Sequence[np.ndarray], epoch: int | None = None) -> Iterator[torch.Tensor]:
        from .parallel import gather_tokens, share

        draw = EVAL_DRAW if epoch is None else epoch
        mine = [[(int(i), draw) for i in share(len(b), self.d, b)] for b in batches]
        loader = clip_loader(self.clips, [m for m in mine if m], self.workers, self.device.type == "cuda")
        it = iter(loader)
        for b, m in zip(batches, mine):
            local = encode(self.model, next(it), self.device, self.amp, self.fitting) if m else None
            yield gather_tokens(local, len(b), self.d).float()


# --------------------------------------------------------------------------- one encoder's source


def cache_key(encoder_id: str, benchmark: str, records: list[Record], samples: list[Sample], protocol: dict) -> str:
    """Tokens are reused only for the same encoder weights, protocol, samples and source files."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": encoder_id, "benchmark": benchmark, "protocol": protocol}, sort_keys=True).encode())
    stamps: dict[int, str] = {}
    for s in samples:
        r = records[s.record]
        if s.record not in stamps:
            stamps[s.record] = source_stamp(r.source)
        h.update(f"{r.id}|{s.t_end}|{getattr(r.source, 'path', '')}|{stamps[s.record]}\n".encode())
    return h.hexdigest()


@torch.inference_mode()
def token_shape(model: nn.Module, frames: int, size: int, device: torch.device) -> tuple[int, int]:
    """(N, D) of ``model``'s tokens for one clip of ``frames`` x ``size``² (one forward of zeros)."""
    model.eval()
    return tuple(model(torch.zeros(1, 3, frames, size, size, device=device)).shape[1:])


def extract(
    model: nn.Module,
    store: TokenStore,
    clips: ClipSet,
    batch: int,
    device: torch.device,
    amp: torch.dtype | None,
    workers: int,
    d: Dist = SINGLE,
) -> None:
    """Fill the store's missing shards (shards k = rank mod world are this rank's), clips read from the
    frame stores in batches of ``batch``; then wait for the other ranks' shards."""
    fitting = FittingBatch()
    todo = [k for k in range(d.rank, store.shards, d.world) if not store.whole(k)]
    for k in todo:
        span = store.span(k)
        batches = [[(i, EVAL_DRAW) for i in span[b : b + batch]] for b in range(0, len(span), batch)]
        with store.writer(k) as append:
            for item in clip_loader(clips, batches, workers, device.type == "cuda"):
                append(encode(model, item, device, amp, fitting).to(torch.float16).cpu())
        log.info("tokens: shard %d of %d extracted (%d samples)", k + 1, store.shards, len(span))
    store.wait(range(store.shards), d)


def token_source(
    model: nn.Module,
    wid: str,
    setup,
    media,
    cache_dir: Path,
    batch: int,
    d: Dist = SINGLE,
    bf16: bool = True,
    workers: int = 0,
    decoder: str = "decord",
) -> tuple[CachedTokens | OnlineTokens, tuple[int, int]]:
    """One encoder's token source on a benchmark (module docstring) and its tokens' shape (N, D)."""
    protocol, task, dev = setup.protocol, setup.task, d.device
    s = protocol.sampling
    online = protocol.tokens == "online"
    clips = ClipSet(media.plan, media.stores, media.usable, protocol.augment if online else None, task.dense)
    shape = token_shape(model, s.frames, s.size, dev)
    if online:
        amp = (torch.float16 if protocol.probe.precision == "fp16" else torch.bfloat16) if bf16 else None
        return OnlineTokens(model, clips, dev, workers, amp, d), shape
    compute = {"compute": f"cuda-{'bf16' if bf16 else 'fp32'}"} if dev.type == "cuda" else {}
    key = cache_key(
        wid, setup.bench.name, media.plan.records, media.plan.samples, {**s.as_dict(), **compute, "decoder": decoder}
    )
    store = TokenStore(cache_dir / "tokens" / key[:32], len(media.plan.samples), shape, batch)
    extract(model, store, clips, batch, dev, torch.bfloat16 if bf16 else None, workers, d)
    return CachedTokens(store, dev), shape
