"""Pretraining: V-JEPA latent prediction with the three UniSurg objectives, or pixel reconstruction.

One step, for a global batch of clips x (B, 3, T, H, W) on a (T', H', W') token grid:

1. motion saliency m̂ (B, N) per tubelet (optical flow from the loader, or frame difference);
2. (context, target) token indices per mask generator — multiblock 3D masks, placed
   preferentially on moving tokens when ``motion.mask_bias`` > 0;
3. latent objective: teacher h = LN(target_encoder(x)) (B, N, D) without gradient; student
   z = predictor(encoder(x | context)) at the target positions (B, K_t, D);
   loss = L1(z, h_target; weights 1 + α·m̂) + affinity_weight · KL-affinity(z, h_target)
        + diversity_weight · (variance + cov_weight · covariance)(encoder context tokens before
          the final norm, standardised per token: scale-free)
        [+ self_weight · mean ||LN(encoder(x | context)) − LN(teacher(x | context))||² / D, the
          self-distillation mode of :mod:`unisurg.training.selfdistill`];
   pixel objective (baseline): the predictor regresses the masked tubelets' normalised
   pixels (MSE), no teacher;
4. AdamW (no decay on biases/norms), gradient clipping, EMA update of the teacher.

Steps 1-3 are :class:`Pretraining`, a :class:`~unisurg.training.loop.Task`; the training loop
shared with distillation (:class:`~unisurg.training.loop.Trainer`) runs them and does step 4.

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
import csv
import logging
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import torch
from torch import nn

from ..benchmarks import get_benchmark
from ..config import PretrainParams
from ..io import write_json
from ..media.clips import Augment, ClipTable, StepBatchSampler, normalize_batch
from ..media.motion import framediff_saliency, normalize_saliency
from ..models import Predictor, VisionTransformer, create_model
from ..models.checkpoint import count_params, encoder_payload, save_checkpoint
from ..runtime import Dist, distributed
from .diagnostics import Diagnostics, copy_losses, probe_set
from .ema import MomentumSchedule, ema_update
from .initial import InitialWeights, apply_initial, load_initial
from .loop import Fit, Task, Trainer, param_groups, seed_everything
from .losses import gather_tokens, latent_l1, normalize_targets, self_distill_loss
from .masks import MaskCollator, MaskSpec, sample_generators
from .objectives import affinity_loss, affinity_subsample, diversity_loss, motion_weights, pixel_targets
from .parallel import full_model_state, prefixed, shard
from .schedules import lr_schedule
from .telemetry import RegionProbe, effective_rank, feature_std

log = logging.getLogger(__name__)
AFFINITY_STREAM = 1000  # sample_generators stream of the affinity subsample (+ mask generator index)

LOG_FIELDS = [
    "step",
    "loss",
    "pred",
    "affinity",
    "diversity",
    "lr",
    "momentum",
    "mask_ratio",
    "feat_std",
    "eff_rank",
    "probe_region_acc",
    "copy_mean",
    "copy_nearest",
    *Diagnostics.fields,
    "seconds",
]


class JEPA(nn.Module):
    """Encoder + predictor behind one forward, so DDP sees a single forward per step."""

    def __init__(self, encoder: VisionTransformer, predictor: Predictor) -> None:
        super().__init__()
        self.encoder, self.predictor = encoder, predictor

    def forward(
        self, x: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]], grid: tuple[int, int, int]
    ) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """-> per mask generator: (predictions at target positions (B, K_t, D_out), context tokens
        (B, K_c, D), the same before the encoder's final norm (B, K_c, D))."""
        out = []
        for k, (ctx, tgt) in enumerate(masks):
            pre = self.encoder.forward_intermediates(x, [-1], [ctx], norm=False)[0]
            z_ctx = self.encoder.norm(pre)  # = self.encoder(x, [ctx])
            out.append((self.predictor(z_ctx, ctx, tgt, grid, mask_index=k), z_ctx, pre))
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
    affinity_keep: list[torch.Tensor] | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Total loss and its parts, averaged over mask generators. ``affinity_keep``: per generator,
    the (B, K_t) target tokens of the affinity term (:func:`~.objectives.affinity_subsample`)."""
    pred_l, aff_l, div_l = [], [], []
    targets_px = pixel_targets(x, tubelet, patch) if p.objective == "pixel" else None
    for k, ((z, _z_ctx, pre), (_, tgt)) in enumerate(zip(outs, masks)):
        if p.objective == "pixel":
            pred_l.append((z - gather_tokens(targets_px, tgt)).pow(2).mean())
            continue
        ht = gather_tokens(h, tgt)  # (B, K_t, D)
        w = motion_weights(m_hat, tgt, p.motion.loss_alpha) if m_hat is not None and p.motion.loss_alpha else None
        pred_l.append(latent_l1(z, ht, w))
        if p.affinity.weight:
            keep = affinity_keep[k] if affinity_keep is not None else None
            sp, tm = affinity_loss(z, ht, tgt, grid, p.affinity.tau, keep)
            aff_l.append(0.5 * (sp + tm))
        if p.diversity.weight:
            var, cov = diversity_loss(pre, p.diversity.gamma, scope=p.diversity.scope)
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


def token_grid(p: PretrainParams, encoder: VisionTransformer) -> tuple[int, int, int]:
    """(T', H', W') tokens of a clip: frames / tubelet, size / patch, size / patch."""
    return (p.clip.frames // encoder.tubelet_size, p.clip.size // encoder.patch_size, p.clip.size // encoder.patch_size)


class Anchor:
    """The self-distillation term (Lee et al., 2023): a frozen further-pretrained ``teacher`` of the
    student's architecture; on the context tokens of every mask generator, the student's encoder
    output is pulled toward the teacher's on the same masked input: ``weight`` · mean over
    generators of :func:`~.losses.self_distill_loss`."""

    def __init__(self, teacher: VisionTransformer, weight: float, record: dict) -> None:
        self.teacher, self.weight, self.record = teacher.eval().requires_grad_(False), weight, record

    def loss(
        self, x: torch.Tensor, masks: list[tuple[torch.Tensor, torch.Tensor]], outs: list[tuple[torch.Tensor, ...]]
    ) -> torch.Tensor:
        """x (B, 3, T, H, W); masks per generator (context (B, K_c), target); outs from :class:`JEPA`."""
        with torch.no_grad():
            t = [self.teacher(x, [ctx]) for ctx, _ in masks]  # (B, K_c, D) each
        return torch.stack([self_distill_loss(z_ctx, tk) for (_, z_ctx, _), tk in zip(outs, t)]).mean()


class Pretraining(Task):
    """Steps 1-3 of the module docstring, and the collapse telemetry; the :class:`Trainer` does step 4."""

    fields = LOG_FIELDS

    def __init__(
        self,
        p: PretrainParams,
        model: JEPA,
        target: VisionTransformer | None,
        table: ClipTable,
        sample_ids: list[int],
        seed: int,
        d: Dist,
        sharded: bool,
        probe: RegionProbe | None,
        anchor: Anchor | None = None,
        diagnostics: Diagnostics | None = None,
    ) -> None:
        self.p, self.model, self.target, self.table, self.sample_ids = p, model, target, table, sample_ids
        self.d, self.sharded, self.probe, self.anchor, self.seed = d, sharded, probe, anchor, seed
        self.diagnostics = diagnostics
        if anchor is not None:
            self.fields = [*LOG_FIELDS[:5], "self_distill", *LOG_FIELDS[5:]]
        self.tubelet, self.patch = model.encoder.tubelet_size, model.encoder.patch_size
        self.grid = token_grid(p, model.encoder)
        specs = [MaskSpec(m.num_blocks, m.spatial_scale, m.temporal_scale, m.aspect_ratio) for m in p.masks]
        self.collate = MaskCollator(specs, self.grid, seed)
        self.momentum = MomentumSchedule(p.ema[0], p.ema[1], p.steps)
        # DDP all-reduces gradients through the JEPA's single forward; FSDP and one process call the model
        self.forward = nn.parallel.DistributedDataParallel(model) if d.world > 1 and not sharded else model
        self.mom, self.feats, self.tokens_seen, self.mask_ratio = float("nan"), None, 0, float("nan")
        self.copy: tuple[float, float] | None = None  # (clip-mean, nearest-visible) copy losses of the last step

    def step(self, step: int, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        p, grid = self.p, self.grid
        x = normalize_batch(batch["clip"])  # uint8 -> float32 (B, 3, T, H, W), on the device
        self.mom = self.momentum.value_at(step)
        # 1. motion saliency per tubelet (B, N), mean 1 per clip
        m_hat = None
        if p.motion.enabled:
            m = batch["motion"] if p.motion.source == "flow" else framediff_saliency(x, self.tubelet, self.patch)
            m_hat = normalize_saliency(m)
        # 2. (context (B, K_c), target (B, K_t)) indices per mask generator, same on every rank after reduce_min
        bias = p.motion.mask_bias if p.motion.enabled else 0.0
        masks = self.collate(
            step, self.sample_ids, m_hat.view(-1, *grid).cpu() if m_hat is not None else None, bias, self.d.reduce_min
        )
        # effective masking ratio: the share of the grid's tokens predicted, after block overlaps and
        # truncation (motion-biased placement overlaps blocks more, so a mask_bias change shows here)
        n_tokens = grid[0] * grid[1] * grid[2]
        self.mask_ratio = sum(t.size(1) for _, t in masks) / (len(masks) * n_tokens)
        affinity_keep = None
        if p.objective == "latent" and p.affinity.weight:
            affinity_keep = [
                affinity_subsample(
                    t,
                    grid,
                    p.affinity.max_tokens,
                    sample_generators(self.seed, step, AFFINITY_STREAM + k, self.sample_ids),
                )
                for k, (_, t) in enumerate(masks)
            ]
        masks = [(c.to(self.d.device), t.to(self.d.device)) for c, t in masks]
        if affinity_keep is not None:
            affinity_keep = [keep.to(self.d.device) for keep in affinity_keep]
        # 3. teacher tokens without gradient, student predictions at the targets, the loss
        h = None
        if self.target is not None:
            with torch.no_grad():
                self.feats = self.target(x)  # (B, N, D), also the collapse telemetry
                h = normalize_targets(self.feats)
        outs = self.forward(x, masks, grid)
        if self.target is None:
            self.feats = outs[0][1]  # pixel objective: the first generator's context tokens (B, K_c, D)
        self.tokens_seen += x.size(0) * self.d.world * n_tokens
        loss, parts = step_losses(p, outs, masks, h, x, m_hat, grid, self.tubelet, self.patch, affinity_keep)
        if h is not None:  # what copying would score on the same targets, with the same weights
            copies = [
                copy_losses(h, c, t, grid, motion_weights(m_hat, t, p.motion.loss_alpha) if m_hat is not None else None)
                for c, t in masks
            ]
            self.copy = tuple(float(np.mean(v)) for v in zip(*copies))
        if self.anchor is not None:
            sd = self.anchor.loss(x, masks, outs)
            loss, parts = loss + self.anchor.weight * sd, {**parts, "self_distill": sd.item()}
        return loss, parts

    def after_update(self, step: int) -> None:
        if self.target is not None:
            ema_update(self.target, self.model.encoder, self.mom)

    def initial(self) -> dict[str, str]:
        return self._diagnostics(0)

    def telemetry(self, done: int, logged: bool) -> dict[str, str]:
        acc = ""
        if self.probe is not None and self.probe.usable and (done % self.p.probe_every == 0 or done == self.p.steps):
            acc = f"{self._probe():.4f}"
        diag = self._diagnostics(done)
        if not logged:
            return {}
        copy_mean, copy_nearest = (f"{v:.6f}" for v in self.copy) if self.copy is not None else ("", "")
        return {
            "momentum": f"{self.mom:.6f}",
            "mask_ratio": f"{self.mask_ratio:.4f}",
            "feat_std": f"{feature_std(self.feats):.5f}",
            "eff_rank": f"{effective_rank(self.feats):.3f}",
            "probe_region_acc": acc,
            "copy_mean": copy_mean,
            "copy_nearest": copy_nearest,
            **dict.fromkeys(Diagnostics.fields, ""),
            **diag,
        }

    def _diagnostics(self, done: int) -> dict[str, str]:
        """The learning diagnostics when due ({} otherwise); every rank runs them under FSDP (collectives)."""
        if self.diagnostics is None or not self.diagnostics.due(done):
            return {}
        if self.sharded:
            self.model.unshard()
        row = self.diagnostics.row()
        if self.sharded:
            self.model.reshard()
        return row

    def _probe(self) -> float:
        """Region-probe accuracy of the encoder that would be exported (the EMA target when there is one)."""
        # under FSDP the forward passes are collectives: every rank runs the probe
        clip = lambda r: normalize_batch(self.table[int(r)]["clip"][None].to(self.d.device))[0]  # noqa: E731
        # without a teacher the encoder's non-block weights live in the JEPA's root FSDP unit
        unshard = self.sharded and self.target is None
        if unshard:
            self.model.unshard()
        acc = self.probe.score(self.target if self.target is not None else self.model.encoder, clip)
        if unshard:
            self.model.reshard()
        return acc


def run_pretrain(clips: Path, out: Path, p: PretrainParams, seed: int, progress: bool = True) -> dict:
    """Pretrain on the clip table ``clips``; write checkpoint.pt, encoder.pt, log.csv, metrics.json to ``out``."""
    with distributed(p.device) as d:
        return train_jepa(clips, out, p, seed, d, progress and d.is_main)


def train_jepa(
    clips: Path,
    out: Path,
    p: PretrainParams,
    seed: int,
    d: Dist,
    progress: bool,
    anchor: Anchor | None = None,
    export_name: str = "encoder.pt",
) -> dict:
    """The pretraining run of ``p`` in process ``d`` -> its metrics; with ``anchor``, plus the
    self-distillation term (the distill stage's ``mode: self``), exported as ``export_name``."""
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)

    # 1. models (identical initial weights on every rank: same seed, or pretrain.init's file), sharded
    # under FSDP; AdamW, always fresh
    encoder, predictor, target = build_models(p)
    init = load_initial(p.init, p.arch)
    if init is not None:
        apply_initial(init, encoder, predictor, target, p.arch)
    model = JEPA(encoder, predictor)
    sharded = _place(model, target, d, p.parallel)
    opt = torch.optim.AdamW(
        param_groups([encoder, predictor], p.optim.weight_decay), lr=p.optim.lr, betas=p.optim.betas
    )
    trainer = Trainer(
        model,
        opt,
        out,
        d,
        name="pretraining",
        lr=lr_schedule(p.optim, p.steps),
        steps=p.steps,
        clip_grad=p.optim.clip_grad,
        log_every=p.log_every,
        checkpoint_every=p.checkpoint_every,
        meta={
            "kind": "pretrain" if anchor is None else "self_distill",
            "arch": p.arch,
            "config": encoder.config,
            "predictor_config": predictor.config,
            "params": p.model_dump(mode="json"),
            "init": init.record if init is not None else None,
            **({"teacher": anchor.record} if anchor is not None else {}),
        },
        frozen={"target_encoder": target},
        bf16=p.bf16,
    )

    # 2. resume from checkpoint.pt, whatever launch wrote it (θ₀ of the diagnostics taken before)
    diagnostics = _diagnostics(p, clips, encoder, target, d, sharded) if anchor is None else None
    start = trainer.resume()

    # 3. data: this rank's slice of each step's global batch, from the resumed step on
    flow = (encoder.tubelet_size, encoder.patch_size) if p.motion.enabled and p.motion.source == "flow" else None
    a = p.augment
    augment = (
        Augment(seed, a.scale, a.aspect_ratio, a.random_resized_crop, a.horizontal_flip)
        if a.random_resized_crop or a.horizontal_flip
        else None
    )
    # the flow is a property of the clip: each one is computed once, then resampled to each view
    table = ClipTable(str(clips), p.clip.frames, p.clip.size, flow, augment, flow_cache_mb=p.motion.cache_mb)
    sampler = StepBatchSampler(table.weight, p.batch_size, seed, start, p.steps, d.rank, d.world, keyed=True)
    loader = torch.utils.data.DataLoader(
        table, batch_sampler=sampler, num_workers=p.num_workers, pin_memory=d.device.type == "cuda"
    )
    sample_ids = list(range(p.batch_size))[sampler.local_slice()]
    probe = RegionProbe(str(clips), seed=seed) if (d.is_main or sharded) and p.probe_every else None

    # 4. the loop
    if anchor is not None:
        anchor.teacher.to(d.device)
    task = Pretraining(p, model, target, table, sample_ids, seed, d, sharded, probe, anchor, diagnostics)
    fit = trainer.fit(task, loader, start, progress)

    # 5. outputs: the exported encoder used downstream, and the run's metrics
    extra = {"teacher": anchor.record} if anchor is not None else {}
    return _export(out / export_name, p, model, target, d, fit, task.tokens_seen, init, extra)


def _diagnostics(
    p: PretrainParams, clips: Path, encoder: nn.Module, target: nn.Module | None, d: Dist, sharded: bool
) -> Diagnostics | None:
    """The run's learning diagnostics (None when off, and on the ranks that do not log them)."""
    dg = p.diagnostics
    if dg.benchmark is None or not (d.is_main or sharded):
        return None
    # probe clips at the pretraining clips' rate: the curated clips' frame step (native frames)
    step = float(np.median(pq.read_table(clips, columns=["frame_step"]).column(0).to_numpy()))
    probe = probe_set(get_benchmark(dg.benchmark), dg.root, p.clip.frames, p.clip.size, step, dg.per_video)
    total = (lambda v: d.mean(v) * d.world) if sharded else None  # FSDP: each rank holds a shard
    return Diagnostics(probe, encoder, target, dg.every, p.steps, d.device, total)


def _place(model: JEPA, target: VisionTransformer | None, d: Dist, parallel: str) -> bool:
    """Move the models to the device; shard them under a multi-process FSDP launch -> whether sharded."""
    model.to(d.device)
    if target is not None:
        target.to(d.device)
    if d.world == 1 or parallel != "fsdp":
        return False
    shard(model, [model.encoder.blocks, model.predictor.predictor_blocks])
    if target is not None:
        shard(target, [target.blocks])  # same units as the encoder: the EMA is shard-local
    local = sum(t.to_local().numel() for t in model.parameters())
    log.info(
        "FSDP: encoder + predictor sharded over %d ranks (%d of %d elements on this rank)",
        d.world,
        local,
        count_params(model),
    )
    return True


def _export(
    path: Path,
    p: PretrainParams,
    model: JEPA,
    target: VisionTransformer | None,
    d: Dist,
    fit: Fit,
    tokens: int,
    init: InitialWeights | None,
    extra: dict,
) -> dict:
    """Write the encoder to ``path`` (always the final weights) and metrics.json beside it -> the
    metrics ({} off the main rank)."""
    out = path.parent
    use_target = p.export == "target" and target is not None
    # gathers are collectives under FSDP: every rank takes part, the main rank writes
    exported = full_model_state(target) if use_target else prefixed(full_model_state(model), "encoder")
    if not d.is_main:
        return {}
    encoder = model.encoder
    exported_as = p.export if target is not None else "context"
    meta = {"objective": p.objective, "steps": p.steps, "exported": exported_as}
    if init is not None:  # only then: an encoder.pt of a run from random weights is unchanged
        meta["init"] = init.record
    save_checkpoint(path, encoder_payload(encoder, p.arch, state=exported, **meta, **extra))
    rows = _rows(out / "log.csv")
    row = rows[-1] if rows else {}
    metrics = {
        "final_loss": round(fit.loss, 6),
        "steps": p.steps,
        "encoder_params": count_params(encoder),
        "predictor_params": count_params(model.predictor),
        "final_eff_rank": float(row.get("eff_rank") or "nan"),
        "final_feat_std": float(row.get("feat_std") or "nan"),
        "final_probe_region_acc": float(row["probe_region_acc"]) if row.get("probe_region_acc") else None,
        "tokens_per_second": round(tokens / fit.seconds, 1) if fit.seconds > 0 and tokens else None,
        **_diagnostics_summary(rows),
    }
    write_json(out / "metrics.json", metrics)
    return metrics


def _rows(path: Path) -> list[dict]:
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _diagnostics_summary(rows: list[dict]) -> dict:
    """The learning diagnostics at the first and last steps they ran ({} when they did not)."""
    diag = [r for r in rows if r.get("pooled_rank")]
    if not diag:
        return {}
    first, last = diag[0], diag[-1]
    num = lambda v: float(v) if v else None  # noqa: E731
    out = {f"{k}_step{first['step']}": num(first[k]) for k in ("probe_online", "probe_ema", "pooled_rank")}
    return {**out, **{f"final_{k}": num(last[k]) for k in Diagnostics.fields}}
