"""Feature distillation: a small student regresses the frozen pretrained encoder's tokens.

For clips x (B, 3, T, H, W): t = LN(teacher(x)) (B, N, D_t) without gradient — with an
ensemble of teachers (several pretraining seeds or ablation checkpoints, same token grid and
width), t = mean_k LN(teacher_k(x)), the average of their normalised features; the student's
tokens go through a linear projection to D_t, s = proj(student(x)); the loss is
``cosine_weight * (1 - cos(s, t)) + smooth_l1_weight * SmoothL1(s, t)`` (see
:func:`unisurg.training.losses.distill_loss`). Cosine aligns directions (what probes use), smooth-L1
keeps magnitudes and is robust to the few large-norm tokens. The training loop is pretraining's
(:class:`~unisurg.training.loop.Trainer`), with the same guarantees: seeded, on ``distill.device``
(bf16 autocast on CUDA), NaN guard, atomic checkpoints, resume to identical weights; under
``torchrun`` the student trains under DDP (each rank its slice of every global batch, the
teachers replicated), following the single-process trajectory like pretraining.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch
from torch import nn

from ..config import DistillParams
from ..io import write_json
from ..media.clips import ClipTable, StepBatchSampler, normalize_batch
from ..models import VisionTransformer, create_model
from ..models.checkpoint import count_params, encoder_payload, load_encoder, save_checkpoint
from ..runtime import Dist, distributed
from .loop import Fit, Task, Trainer, param_groups, seed_everything
from .losses import distill_loss, normalize_targets
from .schedules import lr_schedule

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


class Student(nn.Module):
    """The student encoder and its linear projection to the teachers' width: x -> proj(student(x)) (B, N, D_t)."""

    def __init__(self, student: VisionTransformer, teacher_dim: int) -> None:
        super().__init__()
        self.student = student
        self.proj = nn.Linear(student.embed_dim, teacher_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(self.student(x))


class Distillation(Task):
    """One distillation step: the student's projected tokens regress the teachers' normalised tokens."""

    fields = LOG_FIELDS

    def __init__(self, teacher: TeacherEnsemble, student: Student, p: DistillParams, d: Dist) -> None:
        self.teacher, self.p = teacher, p
        # DDP all-reduces the student's gradients through its forward; one process calls it directly
        self.student = nn.parallel.DistributedDataParallel(student) if d.world > 1 else student
        self.last_x: torch.Tensor | None = None  # the last batch: FLOPs and throughput are timed on it

    def step(self, step: int, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, dict[str, float]]:
        x = normalize_batch(batch["clip"])  # uint8 -> float32 (B, 3, T, H, W), on the device
        self.last_x = x
        t = self.teacher(x)  # (B, N, D_t), normalised (mean over the ensemble)
        s = self.student(x)  # (B, N, D_t)
        return distill_loss(s, t, self.p.cosine_weight, self.p.smooth_l1_weight)


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
    """Distil the teachers at ``teacher_paths`` into ``p.student_arch`` on the clip table ``clips``;
    write checkpoint.pt, student.pt, log.csv, metrics.json to ``out`` -> the metrics ({} off the main rank)."""
    with distributed(p.device) as d:
        return _distill(clips, teacher_paths, out, p, (frames, size), seed, d, progress and d.is_main)


def _distill(
    clips: Path,
    teacher_paths: list[Path],
    out: Path,
    p: DistillParams,
    clip: tuple[int, int],
    seed: int,
    d: Dist,
    progress: bool,
) -> dict:
    """:func:`run_distill` in process ``d`` on clips of ``clip`` = (frames, size)."""
    frames, size = clip
    out.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)

    # 1. frozen teachers, the student (+ projection to the teachers' width), AdamW
    teachers = [load_encoder(path).eval().requires_grad_(False) for path in teacher_paths]
    target = TeacherEnsemble(teachers).to(d.device)
    model = Student(create_model(p.student_arch), target.embed_dim).to(d.device)
    opt = torch.optim.AdamW(
        param_groups([model.student, model.proj], p.optim.weight_decay), lr=p.optim.lr, betas=p.optim.betas
    )
    trainer = Trainer(
        model,
        opt,
        out,
        d,
        name="distillation",
        lr=lr_schedule(p.optim, p.steps),
        steps=p.steps,
        clip_grad=p.optim.clip_grad,
        log_every=p.log_every,
        checkpoint_every=p.checkpoint_every,
        meta={
            "kind": "distill",
            "arch": p.student_arch,
            "config": model.student.config,
            "params": p.model_dump(mode="json"),
        },
        bf16=p.bf16,
    )

    # 2. resume; 3. data: this rank's slice of each global batch (the sampler's seed differs from
    # pretraining's: other clips in other steps)
    start = trainer.resume()
    table = ClipTable(str(clips), frames, size)
    sampler = StepBatchSampler(table.weight, p.batch_size, seed + 1, start, p.steps, d.rank, d.world)
    loader = torch.utils.data.DataLoader(
        table, batch_sampler=sampler, num_workers=p.num_workers, pin_memory=d.device.type == "cuda"
    )

    # 4. the loop
    task = Distillation(target, model, p, d)
    fit = trainer.fit(task, loader, start, progress)

    # 5. outputs, written by the main rank
    if not d.is_main:
        return {}
    meta = {"teachers": [str(t) for t in teacher_paths], "steps": p.steps}
    save_checkpoint(out / "student.pt", encoder_payload(model.student, p.student_arch, **meta))
    timing_batch = task.last_x
    if timing_batch is None:  # nothing left to train after a resume: time a batch of the first clip
        timing_batch = normalize_batch(torch.stack([table[0]["clip"]] * p.batch_size).to(d.device))
    metrics = _metrics(model.student, teachers[0], len(teachers), p, fit, timing_batch)
    write_json(out / "metrics.json", metrics)
    return metrics


def _metrics(
    student: VisionTransformer, teacher: nn.Module, n_teachers: int, p: DistillParams, fit: Fit, x: torch.Tensor
) -> dict:
    """Final loss, sizes, FLOPs and throughput of student and teacher on the timing batch ``x`` (B, 3, T, H, W).

    The ensemble members share an architecture, so sizes and costs are those of one member.
    """
    return {
        "final_loss": round(fit.loss, 6),
        "final_cosine_distance": round(fit.parts.get("cosine", float("nan")), 6),
        "teachers": n_teachers,
        "student_arch": p.student_arch,
        "student_params": count_params(student),
        "teacher_params": count_params(teacher),
        "student_gflops_per_clip": round(flops_per_clip(student, x) / 1e9, 6),
        "teacher_gflops_per_clip": round(flops_per_clip(teacher, x) / 1e9, 6),
        "clip_shape": list(x.shape[1:]),
        # measured on the device that ran the stage (CPU threads as configured), batch of p.batch_size clips
        "student_clips_per_s": round(clips_per_second(student, x), 2),
        "teacher_clips_per_s": round(clips_per_second(teacher, x), 2),
    }
