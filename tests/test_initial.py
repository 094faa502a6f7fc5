"""Continued pretraining from released weights (unisurg.training.initial): a file in V-JEPA 2's layout,
written from V-JEPA 2's own module definitions (tests/vjepa2_reference.py), starts a run."""

from __future__ import annotations

import logging

import pytest
import torch
import torch.nn.functional as F
from tiny import pretrain_params
from vjepa2_reference import write_released

from unisurg.models.checkpoint import load_checkpoint, load_encoder
from unisurg.training.pretrain import run_pretrain


def test_continued_pretraining_starts_from_the_released_encoder_teacher_and_predictor(clips, tmp_path, caplog):
    released = tmp_path / "vitp.pt"
    ref = write_released(released)
    spec = f"vjepa:vit_pico:{released}"
    # lr 0 and EMA 1.0: nothing moves, so the exported encoder (the teacher) is the file's target_encoder
    with caplog.at_level(logging.INFO, logger="unisurg"):
        run_pretrain(clips, tmp_path / "run", pretrain_params(2, init=spec, lr=0.0, ema=1.0), seed=0, progress=False)
    assert "encoder, teacher and predictor loaded" in caplog.text
    exported = load_encoder(tmp_path / "run" / "encoder.pt").eval()
    x = torch.randn(2, 3, 4, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(exported(x), ref["target_encoder"].eval()(x), atol=1e-5, rtol=1e-4)
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    file = torch.load(released, weights_only=True)
    for k, v in file["encoder"].items():  # the online encoder started from `encoder`, not from the teacher
        assert torch.equal(ck["encoder"][k.removeprefix("module.")], v), k
    for k, v in file["predictor"].items():
        assert torch.equal(ck["predictor"][k.removeprefix("module.")], v), k
    assert ck["init"]["spec"] == spec and len(ck["init"]["sha256"]) == 64
    assert load_checkpoint(tmp_path / "run" / "encoder.pt")["meta"]["init"] == ck["init"]
    # the optimizer starts fresh: its state holds only this run's 2 steps
    assert {int(s["step"]) for s in ck["optimizer"]["state"].values()} == {2}


def test_a_predictor_of_another_depth_is_replaced_and_said_once(clips, tmp_path, caplog):
    released = tmp_path / "deep.pt"
    write_released(released, predictor_depth=3)
    with caplog.at_level(logging.WARNING, logger="unisurg"):
        run_pretrain(
            clips, tmp_path / "run", pretrain_params(1, init=f"vjepa:vit_pico:{released}"), seed=0, progress=False
        )
    lines = [r.message for r in caplog.records if "fresh predictor" in r.message]
    assert len(lines) == 1 and "another shape than pretrain.predictor" in lines[0]
    ck = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert "predictor_blocks.1.norm1.weight" not in ck["predictor"]  # our depth-1 predictor, not the file's 3


def test_a_wrong_architecture_is_an_error_naming_keys_and_shapes(clips, tmp_path):
    released = tmp_path / "vitp.pt"
    write_released(released)
    nano = pretrain_params(1, init=f"vjepa:vit_nano:{released}").model_copy(update={"arch": "vit_nano"})
    with pytest.raises(
        ValueError, match=r"not a vit_nano: .*blocks\.0\.attn\.qkv\.weight: file \(144, 48\) vs model \(288, 96\)"
    ):
        run_pretrain(clips, tmp_path / "run", nano, seed=0, progress=False)
    assert not (tmp_path / "run" / "checkpoint.pt").exists()  # stopped before any step
    with pytest.raises(ValueError, match="pretrain.arch is vit_pico: they must agree"):
        run_pretrain(
            clips, tmp_path / "r2", pretrain_params(1, init=f"vjepa:vit_nano:{released}"), seed=0, progress=False
        )
    with pytest.raises(FileNotFoundError, match="no file"):
        run_pretrain(
            clips,
            tmp_path / "r3",
            pretrain_params(1, init=f"vjepa:vit_pico:{tmp_path / 'nope.pt'}"),
            seed=0,
            progress=False,
        )


def test_our_own_pretraining_checkpoint_continues_with_its_predictor(clips, tmp_path):
    run_pretrain(clips, tmp_path / "first", pretrain_params(2, init="none"), seed=0, progress=False)
    first = load_checkpoint(tmp_path / "first" / "checkpoint.pt")
    run_pretrain(
        clips,
        tmp_path / "second",
        pretrain_params(1, init=str(tmp_path / "first" / "checkpoint.pt"), lr=0.0, ema=1.0),
        seed=3,
        progress=False,
    )
    second = load_checkpoint(tmp_path / "second" / "checkpoint.pt")
    for part in ("encoder", "predictor", "target_encoder"):
        for k, v in first[part].items():
            assert torch.equal(second[part][k], v), (part, k)


def test_self_distillation_mode(clips, tmp_path):
    """distill.mode self (Lee et al. 2023): the student has the teacher's architecture, starts from
    pretrain.init and trains by the pretraining recipe plus a pull toward the further-pretrained teacher."""
    from tiny import distill_params

    from unisurg.media.clips import ClipTable, normalize_batch
    from unisurg.training.selfdistill import run_self_distill

    run_pretrain(clips, tmp_path / "initial", pretrain_params(2), seed=0, progress=False)
    pre = pretrain_params(6, init=str(tmp_path / "initial" / "checkpoint.pt"), lr=3e-3)
    # two further-pretraining runs from the initial weights; seed 2's is the teacher
    run_pretrain(clips, tmp_path / "further", pre, seed=1, progress=False)
    run_pretrain(clips, tmp_path / "teacher", pre, seed=2, progress=False)
    teacher = tmp_path / "teacher" / "encoder.pt"

    def student(weight: float, name: str) -> torch.nn.Module:
        run_self_distill(
            clips, teacher, tmp_path / name, distill_params(6, mode="self", self_weight=weight), pre, 1, False
        )
        return load_encoder(tmp_path / name / "student.pt").eval()

    # weight 0: the student is the seed-1 further-pretraining run, bit for bit (same start, batches,
    # masks and crops): the two differ only by the term
    plain = student(0.0, "sd0")
    further = load_checkpoint(tmp_path / "further" / "encoder.pt")["encoder"]
    assert all(torch.equal(v, plain.state_dict()[k]) for k, v in further.items())
    # weight 20: pulled toward the teacher's tokens
    pulled = student(20.0, "sd20")
    x = normalize_batch(torch.stack([ClipTable(str(clips), 4, 32)[i]["clip"] for i in range(4)]))
    t = load_encoder(teacher).eval()
    with torch.no_grad():
        dist = {
            n: (F.layer_norm(m(x), (m.embed_dim,)) - F.layer_norm(t(x), (m.embed_dim,))).pow(2).mean().item()
            for n, m in (("plain", plain), ("pulled", pulled))
        }
    assert dist["pulled"] < dist["plain"], dist
    rows = (tmp_path / "sd20" / "log.csv").read_text().splitlines()
    assert "self_distill" in rows[0].split(",") and len(rows) == 7
    meta = load_checkpoint(tmp_path / "sd20" / "student.pt")["meta"]
    assert meta["teacher"]["path"] == str(teacher) and len(meta["teacher"]["sha256"]) == 64
    assert meta["init"]["spec"] == pre.init
    # the student takes the teacher's architecture: a teacher of another is an error naming both
    nano = pre.model_copy(update={"arch": "vit_nano"})
    with pytest.raises(ValueError, match="'vit_pico', pretrain.arch is 'vit_nano'"):
        run_self_distill(clips, teacher, tmp_path / "bad", distill_params(1, mode="self"), nano, 1, False)
