"""Training loops on real decoded clips: they learn, log, checkpoint and resume exactly."""

import shutil

import numpy as np
import pytest
import torch

from unisurg.models.checkpoint import load_checkpoint, load_encoder
from unisurg.config import DistillParams, OptimParams, PretrainParams
from unisurg.curation.index import curate
from unisurg.training.distill import TeacherEnsemble, flops_per_clip, run_distill
from unisurg.training.losses import normalize_targets
from unisurg.models import create_model
from unisurg.training.pretrain import run_pretrain
from unisurg.curation.sources import Source


@pytest.fixture(scope="module")
def clips(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("clips")
    src = [Source(name="pre", root=str(corpus / "pretrain"), region="mixed", procedure="mixed", license="x")]
    curate(src, out, clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1)
    return out / "clips.parquet"


def _params(steps: int, **kw) -> PretrainParams:
    # constant schedules so that a 2-step run resumed to 4 steps equals an uninterrupted 4-step run
    return PretrainParams(
        arch="vit_pico",
        predictor={"embed_dim": 32, "depth": 1, "num_heads": 2},
        clip={"frames": 4, "size": 32},
        steps=steps,
        batch_size=2,
        ema=(0.99, 0.99),
        optim=OptimParams(lr=1e-3, start_lr=1e-3, warmup_steps=0, schedule="constant"),
        checkpoint_every=100,
        log_every=1,
        **{"probe_every": 0, **kw},
    )


def test_pretrain_runs_logs_and_resumes_exactly(clips, tmp_path):
    full = tmp_path / "full"
    m = run_pretrain(clips, full, _params(4), seed=0, progress=False)
    assert m["steps"] == 4 and m["final_loss"] > 0
    rows = (full / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,pred,affinity,diversity,lr,momentum,feat_std,eff_rank") and len(rows) == 5
    last = dict(zip(rows[0].split(","), rows[-1].split(",")))
    assert float(last["eff_rank"]) > 1 and float(last["feat_std"]) > 0  # telemetry is logged
    part = tmp_path / "part"
    run_pretrain(clips, part, _params(2), seed=0, progress=False)
    assert load_checkpoint(part / "checkpoint.pt")["step"] == 2
    run_pretrain(clips, part, _params(4), seed=0, progress=False)  # finds checkpoint.pt, resumes at step 2
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    for key in ("encoder", "target_encoder", "predictor"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    assert len((part / "log.csv").read_text().splitlines()) == 5  # no duplicated rows after resume
    enc = load_encoder(full / "encoder.pt")
    assert enc.embed_dim == 48  # the exported EMA encoder rebuilds itself


def test_distillation_moves_student_towards_teacher(clips, tmp_path):
    run_pretrain(clips, tmp_path / "t", _params(2), seed=0, progress=False)
    p = DistillParams(
        student_arch="vit_pico",
        steps=12,
        batch_size=2,
        log_every=1,
        optim=OptimParams(lr=3e-3, start_lr=3e-3, warmup_steps=0, schedule="constant"),
    )
    m = run_distill(
        clips, [tmp_path / "t" / "encoder.pt"], tmp_path / "s", p, frames=4, size=32, seed=0, progress=False
    )
    rows = [r.split(",") for r in (tmp_path / "s" / "log.csv").read_text().splitlines()[1:]]
    cos = [float(r[2]) for r in rows]  # cosine distance per step
    assert sum(cos[-3:]) / 3 < sum(cos[:3]) / 3  # cosine similarity rises
    assert m["student_params"] > 0 and (tmp_path / "s" / "student.pt").exists()
    assert 0 < m["student_gflops_per_clip"] == m["teacher_gflops_per_clip"] and m["teachers"] == 1  # both vit_pico
    # an ensemble of two pretraining seeds distils too (targets: mean of their normalised tokens)
    run_pretrain(clips, tmp_path / "t2", _params(2), seed=1, progress=False)
    teachers = [tmp_path / "t" / "encoder.pt", tmp_path / "t2" / "encoder.pt"]
    p2 = p.model_copy(update={"steps": 2})
    m2 = run_distill(clips, teachers, tmp_path / "s2", p2, frames=4, size=32, seed=0, progress=False)
    assert m2["teachers"] == 2 and np.isfinite(m2["final_loss"])
    shutil.rmtree(tmp_path / "t")


def test_teacher_ensemble_averages_normalised_tokens_and_rejects_mismatched_grids():
    torch.manual_seed(0)
    a, b = create_model("vit_pico").eval(), create_model("vit_pico").eval()
    x = torch.randn(2, 3, 4, 32, 32)
    ens = TeacherEnsemble([a, b])
    want = (normalize_targets(a(x)) + normalize_targets(b(x))) / 2
    torch.testing.assert_close(ens(x), want)
    assert not any(p.requires_grad for p in ens.parameters())
    with pytest.raises(ValueError, match="same token grid and width"):
        TeacherEnsemble([a, create_model("vit_nano")])


def test_flops_per_clip_matches_the_analytic_count():
    model = create_model("vit_pico")
    x = torch.randn(1, 3, 4, 32, 32)
    n = (4 // model.tubelet_size) * (32 // model.patch_size) ** 2  # tokens
    d = model.embed_dim
    depth = len(model.blocks)
    patch = 2 * n * d * 3 * model.tubelet_size * model.patch_size**2
    # per block: qkv + proj + 2-layer MLP (ratio 4) = 12 d^2 per token, attention 2 n^2 d; x2 for multiply-add
    blocks = depth * (2 * n * 12 * d * d + 2 * 2 * n * n * d)
    assert flops_per_clip(model, x) == pytest.approx(patch + blocks, rel=0.02)


@pytest.mark.parametrize(
    "variant",
    [
        {"objective": "pixel"},
        {"motion": {"enabled": False}, "affinity": {"weight": 0.0}, "diversity": {"weight": 0.0}},  # plain V-JEPA
        {"motion": {"source": "framediff"}, "export": "context"},
    ],
)
def test_objective_variants_train(clips, tmp_path, variant):
    m = run_pretrain(clips, tmp_path / "v", _params(3, **variant), seed=0, progress=False)
    assert m["steps"] == 3 and torch.isfinite(torch.tensor(m["final_loss"]))
    enc = load_encoder(tmp_path / "v" / "encoder.pt")
    meta = torch.load(tmp_path / "v" / "encoder.pt", weights_only=True)["meta"]
    assert meta["objective"] == variant.get("objective", "latent")
    assert meta["exported"] == ("context" if variant.get("objective") == "pixel" else variant.get("export", "target"))
    assert enc.embed_dim == 48


def test_region_probe_is_logged(corpus, tmp_path):
    # two regions with several videos each, so the probe can fit on some videos and score on others
    src = [
        Source(
            name="chole",
            root=str(corpus / "benchmarks" / "cholec80"),
            glob="videos/*.mp4",
            region="gallbladder",
            procedure="x",
            license="x",
        ),
        Source(
            name="hyst",
            root=str(corpus / "benchmarks" / "autolaparo"),
            glob="videos/*.mp4",
            region="uterus",
            procedure="x",
            license="x",
        ),
    ]
    curate(src, tmp_path / "idx", clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1)
    run_pretrain(tmp_path / "idx" / "clips.parquet", tmp_path / "p", _params(2, probe_every=2), seed=0, progress=False)
    rows = (tmp_path / "p" / "log.csv").read_text().splitlines()
    last = dict(zip(rows[0].split(","), rows[-1].split(",")))
    assert 0.0 <= float(last["probe_region_acc"]) <= 1.0
