"""``unisurg features extract``: embed whole videos in sliding windows with any encoder. A tool, not a
pipeline stage."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from ..errors import UsageError
from .common import Command, log
from .evaluate import compute_info


def add_arguments(sp: argparse.ArgumentParser) -> None:
    sp.add_argument("action", choices=["extract"], help="what to do")
    sp.add_argument(
        "videos", nargs="+", help="video files, folders (searched recursively) or curation's videos.parquet"
    )
    sp.add_argument(
        "--encoder", required=True, help="checkpoint path, random:<arch>, vjepa:<arch>:<path>, hf:<folder>, timm:<name>"
    )
    sp.add_argument("--out", required=True, help="a .parquet file (pooled embeddings) or a folder of .npy files")
    sp.add_argument("--frames", type=int, default=16, help="frames per window")
    sp.add_argument("--fps", type=float, default=8.0, help="frames per second sampled in a window")
    sp.add_argument("--stride", type=float, default=1.0, help="seconds between window starts")
    sp.add_argument("--size", type=int, default=64, help="frame side in pixels (V-JEPA 2 ViT-L weights expect 256)")
    sp.add_argument("--pool", choices=["mean", "none"], default="mean", help="none: every token (.npy folder only)")
    sp.add_argument("--batch-size", type=int, default=8, help="windows per encoder forward")
    sp.add_argument("--seed", type=int, default=0, help="seed of random:/timm: encoders without weights")
    sp.add_argument("--device", default="auto", help="auto (the GPU when there is one), cpu, cuda or cuda:N")
    sp.add_argument("--fp32", action="store_true", help="no bf16 autocast on CUDA (float32 throughout)")
    sp.add_argument(
        "--engine",
        choices=["local", "ray"],
        default="local",
        help="local (this process, or torchrun ranks) or a Ray cluster (--address): actors each holding the encoder",
    )
    sp.add_argument("--address", default="auto", help="--engine ray: the cluster (HOST:PORT of its head, or auto)")
    sp.add_argument("--actors", type=int, default=None, help="--engine ray: encoder actors (default: GPUs, else CPUs)")
    sp.add_argument("--shard-size", type=int, default=8, help="--engine ray: videos per shard (one Parquet part)")
    sp.add_argument(
        "--layers",
        type=int,
        nargs="+",
        default=None,
        help="blocks whose tokens are concatenated (e.g. -4 -3 -2 -1, as vjepa2's out_layers); default: the last",
    )


def cmd_features(args: argparse.Namespace) -> int:
    from ..evaluation.encoders import MultiLayer, load_encoder_spec
    from ..evaluation.extract import Windows, extract, find_videos
    from ..runtime import distributed

    if args.pool == "none" and Path(args.out).suffix == ".parquet":
        raise UsageError(f"--pool none keeps every token: --out must be a folder of .npy files, not {args.out}")
    windows = Windows(args.frames, args.fps, args.stride, args.size)
    videos = find_videos(args.videos)
    if not videos:
        raise UsageError(f"no video files in {' '.join(args.videos)}")
    if args.engine == "ray":
        return _features_on_ray(args, windows, videos)
    with distributed(args.device) as d:
        model, wid = load_encoder_spec(args.encoder, args.seed, args.size)
        meta = {"encoder": args.encoder, "weights": wid, "windows": json.dumps(dataclasses.asdict(windows))}
        if args.layers:  # multi-level features: the blocks' tokens side by side on the channel axis
            model = MultiLayer(model, args.layers)
            meta["layers"] = json.dumps(args.layers)
        bf16 = not args.fp32
        rows = extract(model.to(d.device), videos, Path(args.out), windows, args.batch_size, args.pool, meta, d, bf16)
        if d.is_main:
            log.info(
                "features: %d windows of the %d videos given -> %s (%s)",
                rows,
                len(videos),
                args.out,
                compute_info(d, bf16),
            )
    return 0


def _features_on_ray(args: argparse.Namespace, windows, videos: list[Path]) -> int:
    from ..cluster.features import EncoderSpec, extract_on_ray
    from ..evaluation.encoders import load_encoder_spec

    if args.pool != "mean":
        raise UsageError("--engine ray writes mean-pooled embeddings (--pool mean) into a .parquet file")
    _, wid = load_encoder_spec(args.encoder, args.seed, args.size)  # a wrong spec fails here, before the cluster
    meta = {"encoder": args.encoder, "weights": wid, "windows": json.dumps(dataclasses.asdict(windows))}
    if args.layers:
        meta["layers"] = json.dumps(args.layers)
    enc = EncoderSpec(args.encoder, args.seed, tuple(args.layers) if args.layers else None, not args.fp32)
    rows = extract_on_ray(
        args.address, enc, videos, Path(args.out), windows, args.batch_size, meta, args.actors, args.shard_size
    )
    log.info(
        "features: %d windows of the %d videos given -> %s (on Ray at %s)", rows, len(videos), args.out, args.address
    )
    return 0


COMMAND = Command("features", "embed whole videos in sliding windows with any encoder", add_arguments, cmd_features)
