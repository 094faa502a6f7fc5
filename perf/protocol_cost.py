"""What one evaluation protocol costs per sample, counted from its token counts (no data, no GPU).

For each named protocol (``unisurg.evaluation.protocols``) and its reference encoder, the FLOPs of
one clip through the frozen encoder and through one probe head (forward; forward + backward), counted
by torch's FLOP counter on the meta device, so ViT-L at 64 x 256 x 256 costs nothing to measure.
Training a benchmark's heads costs, per training sample and epoch, one encoder forward plus every
head's forward and backward (the authors' eval.py runs the encoder online each epoch); scoring costs
one encoder forward plus every head's forward per validation or test sample. Times assume a sustained
throughput (``--tflops``, default 400: ~40% of an H200's dense bf16 peak), an assumption stated in the output.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from unisurg.evaluation.heads import AttentiveProbe
from unisurg.evaluation.protocols import PROTOCOLS
from unisurg.models import create_model

ENCODER = {"mini": "vit_micro", "surgmotion": "vit_large"}  # the encoder each protocol is run with


def flops(fn) -> float:
    with FlopCounterMode(display=False) as fc:
        fn()
    return float(fc.get_total_flops())


def protocol_cost(name: str, classes: int = 7) -> dict:
    p = PROTOCOLS[name]
    s, g = p.sampling, p.probe
    with torch.device("meta"):
        enc = create_model(ENCODER[name])
        clip = torch.zeros(1, 3, s.frames, s.size, s.size)
        enc_f = flops(lambda: enc(clip))
        tokens = enc(clip).detach()  # (1, N, D)
        head = AttentiveProbe(tokens.size(-1), classes, num_heads=g.num_heads, depth=g.depth, mlp_ratio=g.mlp_ratio)
        head_f = flops(lambda: head(tokens))
        head_fb = flops(lambda: head(tokens).sum().backward())
    heads = len(g.lrs) * len(g.weight_decays) * g.seeds
    return {
        "protocol": name,
        "encoder": ENCODER[name],
        "tokens": int(tokens.size(1)),
        "dim": int(tokens.size(2)),
        "heads": heads,
        "encoder_tflop_per_clip": enc_f / 1e12,
        "head_tflop_forward": head_f / 1e12,
        "head_tflop_forward_backward": head_fb / 1e12,
        # per sample: training (one epoch) and scoring
        "train_tflop_per_sample_epoch": (enc_f + heads * head_fb) / 1e12,
        "score_tflop_per_sample": (enc_f + heads * head_f) / 1e12,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tflops", type=float, default=400.0, help="assumed sustained TFLOP/s of the accelerator")
    ap.add_argument("--out", default="reports/perf_protocol.json")
    args = ap.parse_args(argv)
    rows = [protocol_cost(n) for n in PROTOCOLS]
    for r in rows:
        r["assumed_tflops"] = args.tflops
        r["train_s_per_1000_samples_epoch"] = 1000 * r["train_tflop_per_sample_epoch"] / args.tflops
        r["score_s_per_1000_samples"] = 1000 * r["score_tflop_per_sample"] / args.tflops
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    for r in rows:
        print(
            f"{r['protocol']}: {r['tokens']} tokens x {r['dim']}, {r['heads']} heads; encoder "
            f"{r['encoder_tflop_per_clip']:.3g} TFLOP/clip, head {r['head_tflop_forward_backward']:.3g} TFLOP fwd+bwd; "
            f"{r['train_s_per_1000_samples_epoch']:.0f} s per 1,000 training samples and epoch, "
            f"{r['score_s_per_1000_samples']:.0f} s per 1,000 scored samples at {args.tflops:.0f} TFLOP/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
