"""Feature distillation: a small student regresses the frozen pretrained encoder's tokens.

For clips x (B, 3, T, H, W): t = LN(teacher(x)) (B, N, D_t) without gradient — with an
ensemble of teachers (several pretraining seeds or ablation checkpoints, same token grid and
width), t = mean_k LN(teacher_k(x)), the average of their normalised features; the student's
tokens go through a linear projection to D_t, s = proj(student(x)); the loss is
``cosine_weight * (1 - cos(s, t)) + smooth_l1_weight * SmoothL1(s, t)`` (see
:func:`unisurg.training.losses.distill_loss`). Cosine aligns directions (what probes use), smooth-L1
keeps magnitudes and is robust to the few large-norm tokens. Same loop guarantees as
pretraining: seeded, atomic checkpoints, resume to identical weights.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ..models.checkpoint import count_params, encoder_payload, load_encoder, save_checkpoint
from ..config import DistillParams
from ..media.clips import ClipTable, StepBatchSampler, normalize_batch
from ..io import write_json
from .losses import distill_loss, normalize_targets
from ..models import create_model
from .schedules import lr_at
from .loop import StepLog, param_groups, resume, seed_everything, set_lr

log = logging.getLogger(__name__)
LOG_FIELDS = ["step", "loss", "cosine", "smooth_l1", "lr", "seconds"]


def flops_per_clip(model: torch.nn.Module, x: torch.Tensor) -> int:
    """Forward FLOPs for one clip (multiply-add = 2 FLOPs), counted by torch's FLOP counter
    (matmuls, convolutions, attention) on ``x[:1]``."""
    from torch.utils.flop_counter import FlopCounterMode

    model.eval()
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        model(x[:1])
    return int(counter.get_total_flops())


class TeacherEnsemble(torch.nn.Module):
    """Frozen teachers -> the mean of their layer-normed tokens (B, N, D); one teacher = LN(teacher(x))."""

    def __init__(self, teachers: list[torch.nn.Module]) -> None:
        super().__init__()
        if not teachers:
            raise ValueError("distillation needs at least one teacher")
        first = teachers[0]

        def shape(m: torch.nn.Module) -> tuple[int, int, int]:
            return (m.embed_dim, m.patch_size, m.tubelet_size)

        for k, t in enumerate(teachers[1:], 2):
            if shape(t) != shape(first):
                raise ValueError(
                    f"teacher {k} has width/patch/tubelet {shape(t)}, teacher 1 {shape(first)}: an ensemble "
                    "averages tokens, so its members need the same token grid and width"
                )
        self.teachers = torch.nn.ModuleList(teachers).eval().requires_grad_(False)
        self.embed_dim = first.embed_dim

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.stack([normalize_targets(t(x)) for t in self.teachers]).mean(0)


@torch.inference_mode()
def clips_per_second(model: torch.nn.Module, x: torch.Tensor, repeats: int = 3) -> float:
    model.eval()
    model(x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(repeats):
        model(x)
    return repeats * x.size(0) / (time.perf_counter() - t0)


def run_distill(
    clips: Path,
    teacher_paths: list[Path],
    out: Path,
    p: DistillParams,
    frames: int,
    size: int,
    seed: int,
    progress: bool = True,
) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    teachers = [load_encoder(path).eval().requires_grad_(False) for path in teacher_paths]
    target = TeacherEnsemble(teachers)
    student = create_model(p.student_arch)
    proj = torch.nn.Linear(student.embed_dim, target.embed_dim)
    opt = torch.optim.AdamW(param_groups([student, proj], p.optim.weight_decay), lr=p.optim.lr, betas=p.optim.betas)
    ckpt_path = out / "checkpoint.pt"
    start = resume(ckpt_path, {"student": student, "proj": proj}, opt)
    if start:
        log.info("resuming distillation from step %d", start)
    table = ClipTable(str(clips), frames, size)
    loader = torch.utils.data.DataLoader(
        table,
        batch_sampler=StepBatchSampler(table.weight, p.batch_size, seed + 1, start, p.steps),
        num_workers=p.num_workers,
    )
    steplog = StepLog(out / "log.csv", LOG_FIELDS, resume_step=start)

    def save(step: int) -> None:
        save_checkpoint(
            ckpt_path,
            {
                "kind": "distill",
                "arch": p.student_arch,
                "config": student.config,
                "student": student.state_dict(),
                "proj": proj.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "params": p.model_dump(mode="json"),
            },
        )

    student.train()
    t0 = time.perf_counter()
    parts = {"cosine": float("nan"), "smooth_l1": float("nan")}
    loss_val = float("nan")
    bar = tqdm(total=p.steps, initial=start, desc="distill", disable=not progress, mininterval=2.0)
    x = None
    for step, batch in enumerate(loader, start=start):
        x = normalize_batch(batch["clip"])
        lr = lr_at(
            step, p.steps, p.optim.lr, p.optim.start_lr, p.optim.final_lr, p.optim.warmup_steps, p.optim.schedule
        )
        set_lr(opt, lr)
        t = target(x)  # (B, N, D_t), normalised (mean over the ensemble)
        s = proj(student(x))  # (B, N, D_t)
        loss, parts = distill_loss(s, t, p.cosine_weight, p.smooth_l1_weight)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if p.optim.clip_grad:
            torch.nn.utils.clip_grad_norm_([*student.parameters(), *proj.parameters()], p.optim.clip_grad)
        opt.step()
        loss_val = loss.item()
        done = step + 1
        if done % p.log_every == 0 or done == p.steps:
            steplog.write(
                {
                    "step": done,
                    "loss": f"{loss_val:.6f}",
                    "cosine": f"{parts['cosine']:.6f}",
                    "smooth_l1": f"{parts['smooth_l1']:.6f}",
                    "lr": f"{lr:.3e}",
                    "seconds": f"{time.perf_counter() - t0:.2f}",
                }
            )
        if done % p.checkpoint_every == 0 and done < p.steps:
            save(done)
        bar.update(1)
    bar.close()
    save(p.steps)
    meta = {"teachers": [str(t) for t in teacher_paths], "steps": p.steps}
    save_checkpoint(out / "student.pt", encoder_payload(student, p.student_arch, **meta))
    probe = x if x is not None else normalize_batch(torch.stack([table[0]["clip"]] * p.batch_size))
    teacher = teachers[0]  # the ensemble members share an architecture grid; sizes are per member
    metrics = {
        "final_loss": round(loss_val, 6),
        "final_cosine_distance": round(parts["cosine"], 6),
        "teachers": len(teachers),
        "student_arch": p.student_arch,
        "student_params": count_params(student),
        "teacher_params": count_params(teacher),
        "student_gflops_per_clip": round(flops_per_clip(student, probe) / 1e9, 6),
        "teacher_gflops_per_clip": round(flops_per_clip(teacher, probe) / 1e9, 6),
        "clip_shape": list(probe.shape[1:]),
        # measured on the machine that ran the stage, batch of p.batch_size clips, CPU threads as configured
        "student_clips_per_s": round(clips_per_second(student, probe), 2),
        "teacher_clips_per_s": round(clips_per_second(teacher, probe), 2),
    }
    write_json(out / "metrics.json", metrics)
    return metrics
