"""Frozen feature extraction with an on-disk cache keyed by (encoder weights, benchmark, protocol)."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

import torch

from ..benchmarks import FramesSource, Record
from ..io import atomic_path
from ..media.clips import to_tensor
from ..runtime import CPU, FittingBatch, autocast, to_device
from .samples import ClipReader, Sample

log = logging.getLogger(__name__)


def _source_stamp(source) -> str:
    """Size and modification time of every file a sample's pixels come from: a regenerated or
    replaced dataset file invalidates its cached features even when its name is unchanged."""
    paths = source.paths if isinstance(source, FramesSource) else (source.path,)
    parts = []
    for p in paths:
        st = os.stat(p)
        parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    return ",".join(parts)


def cache_key(encoder_id: str, benchmark: str, records: list[Record], samples: list[Sample], protocol: dict) -> str:
    """Features are reused only for the same encoder weights, protocol, samples and source files."""
    h = hashlib.sha256()
    h.update(json.dumps({"encoder": encoder_id, "benchmark": benchmark, "protocol": protocol}, sort_keys=True).encode())
    stamps: dict[int, str] = {}
    for s in samples:
        r = records[s.record]
        if s.record not in stamps:
            stamps[s.record] = _source_stamp(r.source)
        h.update(f"{r.id}|{s.t_end}|{getattr(r.source, 'path', '')}|{stamps[s.record]}\n".encode())
    return h.hexdigest()


@torch.inference_mode()
def extract_features(
    encoders: dict[str, torch.nn.Module],
    records: list[Record],
    samples: list[Sample],
    frames: int,
    fps: float,
    size: int,
    batch_size: int,
    device: torch.device = CPU,
    bf16: bool = True,
) -> dict[str, torch.Tensor]:
    """-> {name: float16 tokens (S, N, D) on the CPU} for every sample, in sample order.

    Each clip is decoded once and fed to every encoder (decoding costs as much as a small
    encoder's forward pass on CPU). The encoders run where they are (``device``), under bf16
    autocast on CUDA when ``bf16``; a batch that does not fit in GPU memory is split
    (:class:`~unisurg.runtime.FittingBatch`).
    """
    for enc in encoders.values():
        enc.eval()
    reader = ClipReader(frames, fps, size)
    out: dict[str, list[torch.Tensor]] = {name: [] for name in encoders}
    fitting = {name: FittingBatch() for name in encoders}
    batch: list[torch.Tensor] = []

    def flush() -> None:
        x = to_device(torch.stack(batch), device)  # (B, 3, T, S, S) normalised float32
        for name, enc in encoders.items():
            with autocast(device, bf16):
                tokens = fitting[name](enc, x)  # (B, N, D)
            out[name].append(tokens.half().cpu())
        batch.clear()

    for s in samples:
        batch.append(to_tensor(reader.read(records[s.record].source, s.t_end), size))
        if len(batch) == batch_size:
            flush()
    if batch:
        flush()
    return {name: torch.cat(chunks) if chunks else torch.empty(0, dtype=torch.half) for name, chunks in out.items()}


def load_cached(cache_dir: Path, key: str) -> torch.Tensor | None:
    path = cache_dir / f"{key[:32]}.pt"
    if path.exists():
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("key") == key:
            return data["features"]
    return None


def store_cached(cache_dir: Path, key: str, feats: torch.Tensor) -> None:
    cache_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(cache_dir / f"{key[:32]}.pt") as tmp:
        torch.save({"key": key, "features": feats}, tmp)
