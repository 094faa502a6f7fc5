"""V-JEPA-style pretraining loop (latent prediction with an EMA teacher).

One training step, for a batch of clips x (B, 3, T, H, W) on a (T', H', W') token grid:

1. draw (context, target) token indices per mask generator (multiblock 3D masks);
2. teacher: h = LN(target_encoder(x)) (B, N, D), no gradient;
3. student: z = predictor(encoder(x | context), context, target) (B, K_t, D) per generator;
4. loss = mean over generators of L1(z, h[target]);
5. AdamW step (no decay on biases/norms), gradient clipping, then EMA update of the teacher.

Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; a run
finding ``checkpoint.pt`` in its output folder resumes from it and reaches the same weights
as an uninterrupted run (batches and masks are functions of (seed, step)).
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from .checkpoint import count_params, encoder_payload, load_checkpoint, save_checkpoint
from .config import PretrainParams
from .data import ClipTable, StepBatchSampler
from .ema import ema_update, momentum_at
from .io import write_json
from .losses import gather_tokens, latent_l1, normalize_targets
from .masks import MaskCollator, MaskSpec
from .models import Predictor, create_model
from .schedules import lr_at
from .trainer import StepLog, param_groups, seed_everything, set_lr

log = logging.getLogger(__name__)

LOG_FIELDS = ["step", "loss", "lr", "momentum", "seconds"]


def run_pretrain(clips: Path, out: Path, p: PretrainParams, seed: int, progress: bool = True) -> dict:
    """Pretrain on the clip table ``clips``; write checkpoint.pt, encoder.pt, log.csv, metrics.json to ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    torch.set_num_threads(max(torch.get_num_threads(), 1))

    # 1. models
    encoder = create_model(p.arch)
    target = copy.deepcopy(encoder).requires_grad_(False)
    predictor = Predictor(
        encoder.embed_dim, p.predictor.embed_dim, p.predictor.depth, p.predictor.num_heads, num_mask_tokens=len(p.masks)
    )
    opt = torch.optim.AdamW(
        param_groups([encoder, predictor], p.optim.weight_decay), lr=p.optim.lr, betas=p.optim.betas
    )

    # 2. resume
    ckpt_path = out / "checkpoint.pt"
    start = 0
    if ckpt_path.exists():
        ck = load_checkpoint(ckpt_path)
        encoder.load_state_dict(ck["encoder"])
        target.load_state_dict(ck["target_encoder"])
        predictor.load_state_dict(ck["predictor"])
        opt.load_state_dict(ck["optimizer"])
        start = int(ck["step"])
        log.info("resuming pretraining from step %d", start)

    # 3. data and masks
    grid = (p.clip.frames // encoder.tubelet_size, p.clip.size // encoder.patch_size, p.clip.size // encoder.patch_size)
    table = ClipTable(str(clips), p.clip.frames, p.clip.size)
    sampler = StepBatchSampler(table.weight, p.batch_size, seed, start, p.steps)
    loader = torch.utils.data.DataLoader(table, batch_sampler=sampler, num_workers=p.num_workers)
    collate = MaskCollator(
        [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks], grid, seed
    )
    steplog = StepLog(out / "log.csv", LOG_FIELDS, resume_step=start)

    def save(step: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "kind": "pretrain",
                "arch": p.arch,
                "config": encoder.config,
                "predictor_config": predictor.config,
                "encoder": encoder.state_dict(),
                "target_encoder": target.state_dict(),
                "predictor": predictor.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "params": p.model_dump(mode="json"),
            },
        )

    # 4. loop
    encoder.train()
    predictor.train()
    t0 = time.perf_counter()
    tokens_seen = 0
    loss_val = float("nan")
    bar = tqdm(total=p.steps, initial=start, desc="pretrain", disable=not progress, mininterval=2.0)
    for step, x in enumerate(loader, start=start):
        lr = lr_at(
            step, p.steps, p.optim.lr, p.optim.start_lr, p.optim.final_lr, p.optim.warmup_steps, p.optim.schedule
        )
        set_lr(opt, lr)
        m = momentum_at(step, p.steps, *p.ema)
        masks = collate(step, x.size(0))
        with torch.no_grad():
            h = normalize_targets(target(x))  # (B, N, D)
        losses = []
        for k, (ctx, tgt) in enumerate(masks):
            z = predictor(encoder(x, [ctx]), ctx, tgt, grid, mask_index=k)  # (B, Kt, D)
            losses.append(latent_l1(z, gather_tokens(h, tgt)))
        loss = torch.stack(losses).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_([*encoder.parameters(), *predictor.parameters()], p.optim.clip_grad)
        opt.step()
        ema_update(target, encoder, m)
        loss_val = loss.item()
        if not torch.isfinite(loss):
            raise FloatingPointError(f"pretraining diverged at step {step}: loss {loss_val}")
        tokens_seen += x.size(0) * grid[0] * grid[1] * grid[2]
        done = step + 1
        if done % p.log_every == 0 or done == p.steps:
            steplog.write(
                {
                    "step": done,
                    "loss": f"{loss_val:.6f}",
                    "lr": f"{lr:.3e}",
                    "momentum": f"{m:.6f}",
                    "seconds": f"{time.perf_counter() - t0:.2f}",
                }
            )
        if done % p.checkpoint_every == 0 and done < p.steps:
            save(done)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_val:.4f}")
    bar.close()
    elapsed = time.perf_counter() - t0

    # 5. outputs: the full checkpoint (for resume) and the EMA encoder used downstream
    save(p.steps)
    save_checkpoint(out / "encoder.pt", encoder_payload(target, p.arch, objective=p.objective, steps=p.steps))
    metrics = {
        "final_loss": round(loss_val, 6),
        "steps": p.steps,
        "encoder_params": count_params(encoder),
        "predictor_params": count_params(predictor),
        "tokens_per_second": round(tokens_seen / elapsed, 1) if elapsed > 0 and tokens_seen else None,
    }
    write_json(out / "metrics.json", metrics)
    return metrics
