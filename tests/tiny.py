"""Parameters of the tiny training runs the tests share (vit_pico on 4 x 32² clips, constant
schedules: a run resumed half-way equals an uninterrupted one)."""

from __future__ import annotations

from unisurg.config import DistillParams, OptimParams, PretrainParams


def pretrain_params(steps: int, lr: float = 1e-3, ema: float = 0.99, **kw) -> PretrainParams:
    return PretrainParams(
        arch="vit_pico",
        predictor={"embed_dim": 32, "depth": 1, "num_heads": 2},
        clip={"frames": 4, "size": 32},
        steps=steps,
        batch_size=2,
        ema=(ema, ema),
        optim=OptimParams(lr=lr, start_lr=lr, final_lr=lr, warmup_steps=0, schedule="constant"),
        checkpoint_every=100,
        log_every=1,
        **{"probe_every": 0, **kw},
    )


def distill_params(steps: int, **kw) -> DistillParams:
    return DistillParams(
        student_arch="vit_pico",
        steps=steps,
        batch_size=2,
        log_every=1,
        optim=OptimParams(lr=3e-3, start_lr=3e-3, warmup_steps=0, schedule="constant"),
        **kw,
    )
