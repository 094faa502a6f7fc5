"""Training loops on real decoded clips: they learn, log, checkpoint and resume exactly."""

import csv
import shutil

import pytest
import torch
from tiny import distill_params, pretrain_params

from unisurg.curation.index import curate
from unisurg.curation.sources import Source
from unisurg.media.clips import Augment, ClipTable, normalize_batch
from unisurg.models import create_model
from unisurg.models.checkpoint import count_params, load_checkpoint, load_encoder
from unisurg.training import distill, pretrain
from unisurg.training.distill import TeacherEnsemble, flops_per_clip, run_distill
from unisurg.training.loop import StepLog
from unisurg.training.losses import normalize_targets
from unisurg.training.pretrain import run_pretrain
from unisurg.training.telemetry import RegionProbe


def _rows(out) -> list[dict]:
    with open(out / "log.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_pretrain_runs_logs_and_resumes_exactly(clips, tmp_path):
    full = tmp_path / "full"
    m = run_pretrain(clips, full, pretrain_params(4), seed=0, progress=False)
    rows = (full / "log.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss,pred,affinity,diversity,lr,momentum,mask_ratio,feat_std,eff_rank")
    assert len(rows) == 5
    last = _rows(full)[-1]
    assert m["steps"] == 4 and m["final_loss"] == float(last["loss"])  # the metric is the last step's loss
    assert float(last["eff_rank"]) > 1 and float(last["feat_std"]) > 0  # telemetry is logged
    assert 0 < float(last["mask_ratio"]) < 1  # the share of tokens predicted
    part = tmp_path / "part"
    run_pretrain(clips, part, pretrain_params(2), seed=0, progress=False)
    assert load_checkpoint(part / "checkpoint.pt")["step"] == 2
    run_pretrain(clips, part, pretrain_params(4), seed=0, progress=False)  # finds checkpoint.pt, resumes at step 2
    a, b = load_checkpoint(full / "checkpoint.pt"), load_checkpoint(part / "checkpoint.pt")
    for key in ("encoder", "target_encoder", "predictor"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    assert len((part / "log.csv").read_text().splitlines()) == 5  # no duplicated rows after resume
    enc = load_encoder(full / "encoder.pt")
    assert enc.embed_dim == 48  # the exported EMA encoder rebuilds itself


def test_each_clips_flow_is_computed_once_and_the_kept_flow_changes_nothing(clips):
    # the loader keeps each clip's optical flow: the 2nd..5th views of a clip cost no flow, and every
    # view's saliency equals the one a loader without a cache (or a resumed run) computes from scratch
    kept = ClipTable(str(clips), 4, 32, flow=(2, 8), augment=Augment(seed=0), flow_cache_mb=64)
    fresh = ClipTable(str(clips), 4, 32, flow=(2, 8), augment=Augment(seed=0), flow_cache_mb=0)
    items = [(row, step, slot) for step in range(5) for row, slot in ((0, 0), (1, 1))]
    views = [kept[it] for it in items]
    assert kept.flow_computed == 2 and len(kept._fields) == 2
    for it, v in zip(items, views, strict=True):
        w = fresh[it]
        assert torch.equal(v["clip"], w["clip"]) and torch.equal(v["motion"], w["motion"])
    assert fresh.flow_computed == len(items) and not fresh._fields  # no room: recomputed every time
    # different views of one clip: different crops, so different saliency maps of the same flow
    assert not torch.equal(views[0]["motion"], views[2]["motion"])
    # the budget caps what is kept: room for exactly one 4-frame 32-px field (32 * 32 * 4 * 2 int16)
    one = ClipTable(str(clips), 4, 32, flow=(2, 8), augment=Augment(seed=0), flow_cache_mb=32 * 32 * 4 * 2 * 2 / 2**20)
    for it in items:
        one[it]
    assert len(one._fields) == 1 and one.flow_computed == 1 + 5


def test_distillation_moves_student_towards_teacher(clips, tmp_path):
    run_pretrain(clips, tmp_path / "t", pretrain_params(2), seed=0, progress=False)
    p = distill_params(12)
    m = run_distill(
        clips, [tmp_path / "t" / "encoder.pt"], tmp_path / "s", p, frames=4, size=32, seed=0, progress=False
    )
    rows = _rows(tmp_path / "s")
    cos = [float(r["cosine"]) for r in rows]  # cosine distance per step
    assert sum(cos[-3:]) / 3 < sum(cos[:3]) / 3  # cosine similarity rises
    for r in rows:  # loss = cosine_weight * cosine + smooth_l1_weight * smooth_l1 (weights 1, 1)
        assert float(r["loss"]) == pytest.approx(float(r["cosine"]) + float(r["smooth_l1"]), abs=2e-6)
    assert m["final_loss"] == float(rows[-1]["loss"]) and m["final_cosine_distance"] == cos[-1]
    student = load_encoder(tmp_path / "s" / "student.pt")
    assert m["student_params"] == count_params(student) == count_params(create_model("vit_pico"))
    assert 0 < m["student_gflops_per_clip"] == m["teacher_gflops_per_clip"] and m["teachers"] == 1  # both vit_pico
    # an ensemble of two pretraining seeds distils too (targets: mean of their normalised tokens)
    run_pretrain(clips, tmp_path / "t2", pretrain_params(2), seed=1, progress=False)
    teachers = [tmp_path / "t" / "encoder.pt", tmp_path / "t2" / "encoder.pt"]
    m2 = run_distill(clips, teachers, tmp_path / "s2", distill_params(2), frames=4, size=32, seed=0, progress=False)
    assert m2["teachers"] == 2 and m2["final_loss"] == float(_rows(tmp_path / "s2")[-1]["loss"])
    # same student init, same batches: only the targets differ, so the ensemble's first loss differs
    assert float(_rows(tmp_path / "s2")[0]["loss"]) != float(rows[0]["loss"])
    shutil.rmtree(tmp_path / "t")


def test_killed_distillation_resumes_to_the_uninterrupted_student(clips, teacher, tmp_path, monkeypatch):
    p = distill_params(4, checkpoint_every=2)
    run = lambda out: run_distill(clips, [teacher], out, p, frames=4, size=32, seed=0, progress=False)  # noqa: E731
    run(tmp_path / "full")

    class Killed(Exception):
        pass

    write = StepLog.write

    def write_then_die(self, row):  # a kill right after step 3: the checkpoint of step 2 is the last one
        write(self, row)
        if row["step"] == 3:
            raise Killed

    monkeypatch.setattr(StepLog, "write", write_then_die)
    with pytest.raises(Killed):
        run(tmp_path / "part")
    assert load_checkpoint(tmp_path / "part" / "checkpoint.pt")["step"] == 2
    monkeypatch.setattr(StepLog, "write", write)
    run(tmp_path / "part")
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for key in ("student", "proj"):
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), f"{key}.{k} differs after resume"
    for name, st in a["optimizer"]["state"].items():
        assert torch.equal(st["exp_avg_sq"], b["optimizer"]["state"][name]["exp_avg_sq"]), name
    drop = lambda rows: [{k: v for k, v in r.items() if k != "seconds"} for r in rows]  # noqa: E731
    assert drop(_rows(tmp_path / "part")) == drop(_rows(tmp_path / "full"))  # the rows of step 3 are not repeated


@pytest.mark.parametrize("stage", ["pretraining", "distillation"])
def test_a_nan_loss_stops_the_run_naming_the_step(clips, teacher, tmp_path, monkeypatch, stage):
    def poisoned(losses):
        def f(*args, **kw):
            loss, parts = losses(*args, **kw)
            return loss * float("nan"), parts

        return f

    with pytest.raises(FloatingPointError, match=f"{stage} diverged at step 0: loss nan"):
        if stage == "pretraining":
            monkeypatch.setattr(pretrain, "step_losses", poisoned(pretrain.step_losses))
            run_pretrain(clips, tmp_path / "p", pretrain_params(2), seed=0, progress=False)
        else:
            monkeypatch.setattr(distill, "distill_loss", poisoned(distill.distill_loss))
            run_distill(clips, [teacher], tmp_path / "d", distill_params(2), frames=4, size=32, seed=0, progress=False)
    assert not (tmp_path / "p" / "encoder.pt").exists() and not (tmp_path / "d" / "student.pt").exists()


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
    "variant,weights",
    [
        ({"objective": "pixel"}, (0.0, 0.0)),  # reconstruction only: no affinity, no diversity term
        ({"motion": {"enabled": False}, "affinity": {"weight": 0.0}, "diversity": {"weight": 0.0}}, (0.0, 0.0)),
        ({"motion": {"source": "framediff"}, "export": "context"}, (0.5, 0.1)),  # UniSurg, default weights
    ],
    ids=["pixel", "vjepa", "unisurg_framediff"],
)
def test_objective_variants_train(clips, tmp_path, variant, weights):
    m = run_pretrain(clips, tmp_path / "v", pretrain_params(3, **variant), seed=0, progress=False)
    rows = _rows(tmp_path / "v")
    assert m["steps"] == 3 and m["final_loss"] == float(rows[-1]["loss"])
    # the logged loss is the weighted sum of its logged parts, and only the enabled terms are non-zero
    w_aff, w_div = weights
    parts = {k: [float(r[k]) for r in rows] for k in ("loss", "pred", "affinity", "diversity")}
    for loss, pred, aff, div in zip(*parts.values()):  # parts are logged to 6 decimals
        assert loss == pytest.approx(pred + w_aff * aff + w_div * div, abs=3e-6)
    assert 0 < parts["pred"][-1] < parts["pred"][0]  # the predictor learns within 3 steps
    assert (max(parts["affinity"]) > 0) == (w_aff > 0)  # (an enabled affinity term can be 0 at a step)
    assert (min(parts["diversity"]) > 0) == (w_div > 0)  # the variance hinge is active on 48-d tokens
    if variant.get("objective") == "pixel":
        # targets: tubelets normalised to variance 1; the untrained predictor's outputs are small, so
        # the first step's MSE is close to 1
        assert 0.9 < parts["pred"][0] < 1.1
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
    index = tmp_path / "idx" / "clips.parquet"
    m = run_pretrain(index, tmp_path / "p", pretrain_params(2, probe_every=2), seed=0, progress=False)
    acc = float(_rows(tmp_path / "p")[-1]["probe_region_acc"])
    # the logged accuracy is the probe's score of the exported (final EMA) encoder on normalised clips
    probe, table = RegionProbe(str(index), seed=0), ClipTable(str(index), 4, 32)
    clip = lambda r: normalize_batch(table[r]["clip"][None])[0]  # noqa: E731
    want = probe.score(load_encoder(tmp_path / "p" / "encoder.pt"), clip)
    assert acc == round(want, 4) and m["final_probe_region_acc"] == acc
    # two regions with distinct looks (cholecystectomy vs hysterectomy scenes): above chance already
    assert acc > 0.5

