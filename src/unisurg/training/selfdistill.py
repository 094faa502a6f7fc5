"""Self-distillation for further pretraining (Lee et al., "Self-Distillation for Further
Pre-training of Transformers", 2023): the distill stage's ``mode: self``.

Further pretraining a pretrained model on a narrow target domain (``pretrain.init`` -> the
teacher, a plain pretraining run) can overfit that domain. Self-distillation then trains a
*student of the same architecture, initialised from the same initial weights* (``pretrain.init``)
on the same videos with the same latent-prediction objective, plus a term pulling its hidden
representations toward the further-pretrained teacher's:

    L = L_pretrain(student) + λ · mean_generators mean_{b,k} ||LN(s_bk) − LN(t_bk)||² / D

with s = student encoder(x | context), t = teacher(x | context) on the same masked clip (the
context tokens of every mask generator), LN a layer norm without affine, λ = ``distill.self_weight``.
L_pretrain is the ``pretrain`` section's recipe (objective, masks, motion, affinity, diversity,
augmentation, optimizer, EMA); ``distill.steps`` / ``batch_size`` / ``device`` / ``bf16`` /
``num_workers`` / ``checkpoint_every`` / ``log_every`` set the run. The batches and masks follow
``base.seed`` as in pretraining, so with the teacher's steps the student sees the teacher's batches:
the two differ only by their start and the term. The student is exported as ``student.pt`` (the
EMA target when ``pretrain.export: target``), a normal encoder checkpoint that records the init
spec and the teacher's path and sha256.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..config import DistillParams, PretrainParams
from ..io import sha256_file
from ..models.checkpoint import load_checkpoint, load_encoder
from ..runtime import distributed
from .pretrain import Anchor, train_jepa

log = logging.getLogger(__name__)


def self_distill_params(pre: PretrainParams, dp: DistillParams) -> PretrainParams:
    """The pretraining recipe ``pre`` with the run settings of the distill section ``dp``."""
    run = ("steps", "batch_size", "device", "bf16", "num_workers", "checkpoint_every", "log_every")
    return pre.model_copy(update={k: getattr(dp, k) for k in run})


def run_self_distill(
    clips: Path, teacher: Path, out: Path, dp: DistillParams, pre: PretrainParams, seed: int, progress: bool = True
) -> dict:
    """Train the self-distilled student of ``teacher`` on ``clips``; write checkpoint.pt, student.pt,
    log.csv and metrics.json to ``out`` -> the metrics ({} off the main rank)."""
    ck = load_checkpoint(teacher)
    if ck.get("arch") != pre.arch:
        raise ValueError(
            f"self-distillation: the teacher {teacher} is {ck.get('arch')!r}, pretrain.arch is {pre.arch!r}; "
            "the student has the teacher's architecture and starts from pretrain.init, so they must agree"
        )
    if pre.init == "none":
        log.info("self-distillation: pretrain.init is none, the student starts from the seed's random weights")
    anchor = Anchor(load_encoder(teacher), dp.self_weight, {"path": str(teacher), "sha256": sha256_file(teacher)})
    p = self_distill_params(pre, dp)
    with distributed(p.device) as d:
        return train_jepa(clips, out, p, seed, d, progress and d.is_main, anchor=anchor, export_name="student.pt")
