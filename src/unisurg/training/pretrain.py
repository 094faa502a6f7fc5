"""Pretraining: V-JEPA latent prediction with the three UniSurg objectives, or pixel reconstruction.

One step, for a global batch of clips x (B, 3, T, H, W) on a (T', H', W') token grid:

1. motion saliency m̂ (B, N) per tubelet (optical flow from the loader, or frame difference);
2. (context, target) token indices per mask generator — multiblock 3D masks, placed
   preferentially on moving tokens when ``motion.mask_bias`` > 0;
3. latent objective: teacher h = LN(target_encoder(x)) (B, N, D) without gradient; student
   z = predictor(encoder(x | context)) at the target positions (B, K_t, D);
   loss = L1(z, h_target; weights 1 + α·m̂) + affinity_weight · KL-affinity(z, h_target)
        + diversity_weight · (variance + cov_weight · covariance)(encoder context tokens);
   pixel objective (baseline): the predictor regresses the masked tubelets' normalised
   pixels (MSE), no teacher;
4. AdamW (no decay on biases/norms), gradient clipping, EMA update of the teacher.

Every random choice is a function of (seed, step, sample index), so a resumed run, or a run
split over ``torchrun`` processes (DDP or FSDP, see :mod:`unisurg.training.parallel`), follows the
single-process trajectory. Checkpoints are atomic full state dicts; ``checkpoint.pt`` in the
output folder is resumed from, whatever the launch that wrote it. Telemetry (token feature
std, effective rank, periodic region probe) goes to ``log.csv``. The exported encoder
(``encoder.pt``) is the EMA target encoder (``export: target``, the V-JEPA choice) or the
online context encoder (``export: context``), always the final one: the telemetry is there to
show a collapsing run, not to cherry-pick a checkpoint on a benchmark.
"""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..models.checkpoint import count_params, encoder_payload, load_checkpoint, save_checkpoint
from ..config import PretrainParams
from ..media.clips import ClipTable, StepBatchSampler, normalize_batch
from ..media.motion import framediff_saliency, normalize_saliency
from .ema import ema_update, momentum_at
from ..io import write_json
from .losses import gather_tokens, latent_l1, normalize_targets
from .masks import MaskCollator, MaskSpec
from ..models import Predictor, VisionTransformer, create_model
from .objectives import affinity_loss, diversity_loss, motion_weights, pixel_targets
from .parallel import (
    full_model_state,
    full_optimizer_state,
    load_full_model_state,
    load_full_optimizer_state,
    prefixed,
    shard,
)
from .schedules import lr_at
from .telemetry import RegionProbe, effective_rank, feature_std
from .loop import (
    Dist,
    StepLog,
    param_groups,
    seed_everything,
    set_lr,
    setup_distributed,
    teardown_distributed,
)

log = logging.getLogger(__name__)

LOG_FIELDS = [
    "step",
    "loss",
    "pred",
    "affinity",
    "diversity",
    "lr",
    "momentum",
    "feat_std",
    "eff_rank",
    "probe_region_acc",
    "seconds",
]


class JEPA(nn.Module):
    """Encoder + predictor behind one forward, so DDP sees a single forward per step."""

    def __init__(self, encoder: VisionTransformer, predictor: Predictor) -> None:
        super().__init__()
        self.encoder, self.predictor = encoder, predictor

    def forward(
        self, x: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]], grid: tuple[int, int, int]
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """-> per mask generator: (predictions at target positions (B, K_t, D_out), context tokens (B, K_c, D))."""
        out = []
        for k, (ctx, tgt) in enumerate(masks):
            z_ctx = self.encoder(x, [ctx])
            out.append((self.predictor(z_ctx, ctx, tgt, grid, mask_index=k), z_ctx))
        return out


def step_losses(
    p: PretrainParams,
    outs,
    masks,
    h: torch.Tensor | None,
    x: torch.Tensor,
    m_hat: torch.Tensor | None,
    grid: tuple[int, int, int],
    tubelet: int,
    patch: int,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts, averaged over mask generators."""
    pred_l, aff_l, div_l = [], [], []
    targets_px = pixel_targets(x, tubelet, patch) if p.objective == "pixel" else None
    for (z, z_ctx), (_, tgt) in zip(outs, masks):
        if p.objective == "pixel":
            pred_l.append((z - gather_tokens(targets_px, tgt)).pow(2).mean())
            continue
        ht = gather_tokens(h, tgt)  # (B, K_t, D)
        w = motion_weights(m_hat, tgt, p.motion.loss_alpha) if m_hat is not None and p.motion.loss_alpha else None
        pred_l.append(latent_l1(z, ht, w))
        if p.affinity.weight:
            sp, tm = affinity_loss(z, ht, tgt, grid, p.affinity.tau, p.affinity.max_tokens)
            aff_l.append(0.5 * (sp + tm))
        if p.diversity.weight:
            var, cov = diversity_loss(z_ctx, p.diversity.gamma)
            div_l.append(var + p.diversity.cov_weight * cov)
    pred = torch.stack(pred_l).mean()
    aff = torch.stack(aff_l).mean() if aff_l else torch.zeros(())
    div = torch.stack(div_l).mean() if div_l else torch.zeros(())
    total = pred + p.affinity.weight * aff + p.diversity.weight * div
    return total, {"pred": pred.item(), "affinity": aff.item(), "diversity": div.item()}


def build_models(p: PretrainParams) -> tuple[VisionTransformer, Predictor, VisionTransformer | None]:
    """(encoder, predictor, EMA target encoder or None for the pixel objective) for ``p``."""
    encoder = create_model(p.arch, use_activation_checkpointing=p.activation_checkpointing)
    tubelet, patch = encoder.tubelet_size, encoder.patch_size
    out_dim = tubelet * patch * patch * 3 if p.objective == "pixel" else None
    predictor = Predictor(
        encoder.embed_dim,
        p.predictor.embed_dim,
        p.predictor.depth,
        p.predictor.num_heads,
        num_mask_tokens=len(p.masks),
        out_embed_dim=out_dim,
    )
    target = copy.deepcopy(encoder).requires_grad_(False) if p.objective == "latent" else None
    return encoder, predictor, target


def _resume(path: Path, model: JEPA, target: VisionTransformer | None, opt: torch.optim.Optimizer) -> int:
    """Load the full checkpoint at ``path`` (if any) into plain or sharded modules -> step to resume from."""
    if not path.exists():
        return 0
    ck = load_checkpoint(path)
    state = {f"{part}.{k}": v for part in ("encoder", "predictor") for k, v in ck[part].items()}
    load_full_model_state(model, state)
    if target is not None:
        load_full_model_state(target, ck["target_encoder"])
    load_full_optimizer_state(model, opt, ck["optimizer"])
    return int(ck["step"])


def run_pretrain(clips: Path, out: Path, p: PretrainParams, seed: int, progress: bool = True) -> dict:
    """Pretrain on the clip table ``clips``; write checkpoint.pt, encoder.pt, log.csv, metrics.json to ``out``."""
    d = setup_distributed()
    try:
        return _run(clips, out, p, seed, d, progress and d.is_main)
    finally:
        teardown_distributed(d)


def _run(clips: Path, out: Path, p: PretrainParams, seed: int, d: Dist, progress: bool) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)

    # 1. models (identical initial weights on every rank: same seed), sharded under FSDP
    encoder, predictor, target = build_models(p)
    tubelet, patch = encoder.tubelet_size, encoder.patch_size
    model = JEPA(encoder, predictor).to(d.device)
    if target is not None:
        target.to(d.device)
    sharded = d.world > 1 and p.parallel == "fsdp"
    if sharded:
        shard(model, [encoder.blocks, predictor.predictor_blocks])
        if target is not None:
            shard(target, [target.blocks])  # same units as the encoder: the EMA is shard-local
        local = sum(t.to_local().numel() for t in model.parameters())
        log.info(
            "FSDP: encoder + predictor sharded over %d ranks (%d of %d elements on this rank)",
            d.world,
            local,
            count_params(model),
        )
    opt = torch.optim.AdamW(
        param_groups([encoder, predictor], p.optim.weight_decay), lr=p.optim.lr, betas=p.optim.betas
    )

    # 2. resume (every rank loads the same full checkpoint; FSDP keeps its own shard)
    ckpt_path = out / "checkpoint.pt"
    start = _resume(ckpt_path, model, target, opt)
    if start:
        log.info("resuming pretraining from step %d", start)
    ddp = nn.parallel.DistributedDataParallel(model) if d.world > 1 and not sharded else model

    # 3. data and masks
    grid = (p.clip.frames // tubelet, p.clip.size // patch, p.clip.size // patch)
    flow = (tubelet, patch) if p.motion.enabled and p.motion.source == "flow" else None
    table = ClipTable(str(clips), p.clip.frames, p.clip.size, flow=flow)
    sampler = StepBatchSampler(table.weight, p.batch_size, seed, start, p.steps, d.rank, d.world)
    loader = torch.utils.data.DataLoader(table, batch_sampler=sampler, num_workers=p.num_workers)
    collate = MaskCollator(
        [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks], grid, seed
    )
    sample_ids = list(range(p.batch_size))[sampler.local_slice()]
    probe = RegionProbe(str(clips), seed=seed) if (d.is_main or sharded) and p.probe_every else None
    steplog = StepLog(out / "log.csv", LOG_FIELDS, resume_step=start) if d.is_main else None
    autocast = (
        torch.autocast("cuda", dtype=torch.bfloat16)
        if d.device.type == "cuda"
        else torch.autocast("cpu", enabled=False)
    )

    def save(step: int) -> None:
        # full state dicts: collectives under FSDP, so every rank gathers; the main rank writes
        state = full_model_state(model)
        target_state = full_model_state(target) if target is not None else None
        optim_state = full_optimizer_state(model, opt)
        if not d.is_main:
            return
        save_checkpoint(
            ckpt_path,
            {
                "kind": "pretrain",
                "arch": p.arch,
                "config": encoder.config,
                "predictor_config": predictor.config,
                "encoder": prefixed(state, "encoder"),
                "predictor": prefixed(state, "predictor"),
                "target_encoder": target_state,
                "optimizer": optim_state,
                "step": step,
                "params": p.model_dump(mode="json"),
            },
        )

    # 4. loop
    model.train()
    t0 = time.perf_counter()
    tokens_seen, loss_val, parts = 0, float("nan"), {}
    bar = tqdm(total=p.steps, initial=start, desc="pretrain", disable=not progress, mininterval=2.0)
    for step, batch in enumerate(loader, start=start):
        x = normalize_batch(batch["clip"].to(d.device, non_blocking=True))  # uint8 -> float on the device
        lr = lr_at(
            step, p.steps, p.optim.lr, p.optim.start_lr, p.optim.final_lr, p.optim.warmup_steps, p.optim.schedule
        )
        set_lr(opt, lr)
        mom = momentum_at(step, p.steps, *p.ema)
        m_hat = None
        if p.motion.enabled:
            m = batch["motion"].to(d.device) if flow else framediff_saliency(x, tubelet, patch)
            m_hat = normalize_saliency(m)  # (B, N)
        masks = collate(
            step,
            sample_ids,
            m_hat.view(-1, *grid).cpu() if m_hat is not None else None,
            p.motion.mask_bias if p.motion.enabled else 0.0,
            d.reduce_min,
        )
        masks = [(c.to(d.device), t.to(d.device)) for c, t in masks]
        with autocast:
            h = None
            if target is not None:
                with torch.no_grad():
                    h_raw = target(x)
                    h = normalize_targets(h_raw)  # (B, N, D)
            outs = ddp(x, masks, grid)
            loss, parts = step_losses(p, outs, masks, h, x, m_hat, grid, tubelet, patch)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_(model.parameters(), p.optim.clip_grad)
        opt.step()
        if target is not None:
            ema_update(target, encoder, mom)
        loss_val = d.mean(loss.item())
        if not torch.isfinite(torch.tensor(loss_val)):
            raise FloatingPointError(f"pretraining diverged at step {step}: loss {loss_val}")
        tokens_seen += x.size(0) * d.world * grid[0] * grid[1] * grid[2]
        done = step + 1
        acc = ""
        if probe is not None and probe.usable and (done % p.probe_every == 0 or done == p.steps):
            # under FSDP the forward passes are collectives: every rank runs the probe
            clip = lambda r: normalize_batch(table[int(r)]["clip"][None].to(d.device))[0]  # noqa: E731
            if sharded and target is None:
                model.unshard()  # the encoder's non-block weights live in the JEPA's root FSDP unit
            acc = f"{probe.score(target or encoder, clip):.4f}"
            if sharded and target is None:
                model.reshard()
        if steplog is not None and (done % p.log_every == 0 or done == p.steps):
            feats = h_raw if target is not None else outs[0][1]
            steplog.write(
                {
                    "step": done,
                    "loss": f"{loss_val:.6f}",
                    "pred": f"{parts['pred']:.6f}",
                    "affinity": f"{parts['affinity']:.6f}",
                    "diversity": f"{parts['diversity']:.6f}",
                    "lr": f"{lr:.3e}",
                    "momentum": f"{mom:.6f}",
                    "feat_std": f"{feature_std(feats):.5f}",
                    "eff_rank": f"{effective_rank(feats):.3f}",
                    "probe_region_acc": acc,
                    "seconds": f"{time.perf_counter() - t0:.2f}",
                }
            )
        if done % p.checkpoint_every == 0 and done < p.steps:
            save(done)
        bar.update(1)
        bar.set_postfix(loss=f"{loss_val:.4f}")
    bar.close()
    elapsed = time.perf_counter() - t0

    # 5. outputs: the full checkpoint (for resume) and the exported encoder used downstream
    save(p.steps)
    metrics = {}
    use_target = p.export == "target" and target is not None
    exported = full_model_state(target) if use_target else prefixed(full_model_state(model), "encoder")
    if d.is_main:
        save_checkpoint(
            out / "encoder.pt",
            encoder_payload(
                encoder,
                p.arch,
                state=exported,
                objective=p.objective,
                steps=p.steps,
                exported=p.export if target is not None else "context",
            ),
        )
        rows = _last_row(out / "log.csv")
        metrics = {
            "final_loss": round(loss_val, 6),
            "steps": p.steps,
            "encoder_params": count_params(encoder),
            "predictor_params": count_params(predictor),
            "final_eff_rank": float(rows.get("eff_rank") or "nan"),
            "final_feat_std": float(rows.get("feat_std") or "nan"),
            "final_probe_region_acc": float(rows["probe_region_acc"]) if rows.get("probe_region_acc") else None,
            "tokens_per_second": round(tokens_seen / elapsed, 1) if elapsed > 0 and tokens_seen else None,
        }
        write_json(out / "metrics.json", metrics)
    return metrics


def _last_row(path: Path) -> dict:
    import csv

    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return rows[-1] if rows else {}
