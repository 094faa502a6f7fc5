"""unisurg export: transformers (AutoModel / AutoVideoProcessor, offline), safetensors with metadata, the
vjepa2 layout; hf:<folder> back in (evaluation, pretrain.init); refusals; the generated model card."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess

import numpy as np
import pytest
import torch
import yaml
from vjepa2_reference import VJEPA2PredictorLayout, VJEPA2VisionTransformer, write_released

from unisurg.cli import main
from unisurg.evaluation.encoders import load_encoder_spec
from unisurg.io import sha256_file, write_json
from unisurg.media.clips import to_tensor
from unisurg.models import Predictor, create_model
from unisurg.models.checkpoint import (
    load_encoder,
    load_vjepa_checkpoint,
    read_safetensors_meta,
    save_checkpoint,
    state_digest,
    strip_prefixes,
)
from unisurg.models.hf import load_hf
from unisurg.training.initial import apply_initial, load_initial

SIZE, FRAMES = 32, 4


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Nothing may be fetched: transformers and huggingface_hub refuse the network."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")


def _pretrain_checkpoint(path):
    """A pretraining checkpoint as the pretrain stage writes it: online encoder, EMA target (other
    weights), predictor (2 mask tokens, each its own values), arch and configs."""
    torch.manual_seed(0)
    enc, tgt = create_model("vit_pico"), create_model("vit_pico")
    pred = Predictor(48, predictor_embed_dim=32, depth=1, num_heads=2, num_mask_tokens=2)
    for p in pred.mask_tokens:
        torch.nn.init.normal_(p, std=0.5)  # off zero: the wrong token would show
    save_checkpoint(
        path,
        {
            "kind": "pretrain",
            "arch": "vit_pico",
            "config": enc.config,
            "predictor_config": pred.config,
            "encoder": enc.state_dict(),
            "target_encoder": tgt.state_dict(),
            "predictor": pred.state_dict(),
            "step": 12,
        },
    )
    return enc.eval(), tgt.eval(), pred.eval()


def _result(name: str, mine: float, base: float) -> dict:
    models = {
        m: {"value": v, "ci": [v - 0.05, v + 0.05], "n_test_units": 4, "unit": "video"}
        for m, v in (("mine", mine), ("random_init", base))
    }
    models["mine"]["paired"] = {"random_init": {"diff": mine - base, "ci": [mine - base - 0.1, mine - base + 0.1]}}
    return {
        "benchmark": name.upper(),
        "name": name,
        "task": "phase",
        "metric": "accuracy",
        "higher_is_better": True,
        "protocol": {"name": "mini", "label": "mini"},
        "models": models,
        "null": {"value": 0.2, "ci": [0.15, 0.25], "n_test_units": 4, "unit": "video"},
    }


@pytest.fixture
def project(tmp_path, clips, monkeypatch):
    """A project as `dvc repro` leaves it: a git checkout with a curated index, a pretraining checkpoint
    that dvc.lock names as the pretrain stage's output, results under reports/metrics, params.yaml."""
    root = tmp_path / "proj"
    (root / "data" / "curate").mkdir(parents=True)
    (root / "data" / "pretrain").mkdir()
    for name in ("clips.parquet", "videos.parquet"):
        shutil.copy(clips.with_name(name), root / "data" / "curate" / name)
    ckpt = root / "data" / "pretrain" / "checkpoint.pt"
    models = _pretrain_checkpoint(ckpt)
    lock = {
        "schema": "2.0",
        "stages": {
            "curate": {"deps": [{"path": "data/synth"}], "outs": [{"path": "data/curate/clips.parquet"}]},
            "pretrain": {
                "deps": [{"path": "data/curate/clips.parquet"}, {"path": "src/unisurg/training"}],
                "outs": [{"path": "data/pretrain/checkpoint.pt", "md5": hashlib.md5(ckpt.read_bytes()).hexdigest()}],
            },
        },
    }
    (root / "dvc.lock").write_text(yaml.safe_dump(lock))
    params = {
        "evaluate": {"models": {"mine": "data/pretrain/checkpoint.pt", "random_init": "random:vit_pico"}},
        "report": {"baselines": {"mine": "random_init"}},
    }
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    (root / "reports" / "metrics").mkdir(parents=True)
    write_json(root / "reports" / "metrics" / "cholec80.json", _result("cholec80", 0.6, 0.4))
    write_json(root / "reports" / "metrics" / "autolaparo.json", _result("autolaparo", 0.18, 0.3))
    git = ["git", "-c", "user.email=t@t", "-c", "user.name=t"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run([*git, "add", "-A"], cwd=root, check=True)
    subprocess.run([*git, "commit", "-qm", "x"], cwd=root, check=True)
    monkeypatch.chdir(root)
    return root, ckpt, models


def _export(spec, fmt, out, *extra) -> int:
    return main(
        ["export", str(spec), "--format", fmt, "--out", str(out), "--size", str(SIZE), "--frames", str(FRAMES), *extra]
    )


def _clip(seed: int = 1) -> torch.Tensor:
    return torch.randn(2, 3, FRAMES, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))  # (B, C, T, H, W)


@torch.no_grad()
def test_transformers_export_loads_offline_with_our_features_predictions_and_preprocessing(project, tmp_path):
    from transformers import AutoModel, AutoVideoProcessor, VJEPA2Model

    root, ckpt, (_, target, predictor) = project
    out = tmp_path / "hf"
    assert _export(ckpt, "transformers", out) == 0
    model = AutoModel.from_pretrained(out).eval()
    assert isinstance(model, VJEPA2Model)
    x = _clip()
    ours = target(x)  # the EMA target: what V-JEPA evaluates and exports
    theirs = model(pixel_values_videos=x.transpose(1, 2), skip_predictor=True).last_hidden_state
    assert theirs.shape == ours.shape
    assert (theirs - ours).abs().max() <= 1e-4
    # the predictor too: transformers' predictor uses mask token 1
    n = ours.size(1)
    ctx, tgt = torch.arange(0, n, 2)[None].expand(2, -1), torch.arange(1, n, 2)[None].expand(2, -1)
    mine = predictor(torch.gather(ours, 1, ctx[..., None].expand(-1, -1, ours.size(-1))), ctx, tgt, target.grid(x), 1)
    hf = model.predictor(encoder_hidden_states=ours, context_mask=[ctx], target_mask=[tgt]).last_hidden_state
    assert (hf - mine).abs().max() <= 1e-4
    assert (
        hf - predictor(torch.gather(ours, 1, ctx[..., None].expand(-1, -1, 48)), ctx, tgt, target.grid(x), 0)
    ).abs().max() > 1e-3

    # the processor prepares a non-square video as our pipeline does: whole frame to SIZE x SIZE, ImageNet norm
    processor = AutoVideoProcessor.from_pretrained(out)
    ramp = np.linspace(0, 255, 96, dtype=np.float32)
    frame = np.stack([np.add.outer(np.linspace(0, 80, 72), ramp) % 256] * 3, axis=-1)  # smooth (72, 96, 3)
    video = np.stack([np.roll(frame, 4 * t, axis=1) for t in range(FRAMES)]).astype(np.uint8)  # (T, H, W, 3)
    got = processor(video, return_tensors="pt")["pixel_values_videos"][0]  # (T, 3, SIZE, SIZE)
    want = to_tensor(video, SIZE).transpose(0, 1)
    assert got.shape == want.shape == (FRAMES, 3, SIZE, SIZE)
    assert (got - want).abs().mean() < 0.02  # bilinear (antialiased) vs area resampling: < 1.2 grey levels on average

    # hf: back in: evaluation sees our original features, pretrain.init gets encoder, teacher and predictor
    back, wid = load_encoder_spec(f"hf:{out}")
    assert wid.startswith("hf:") and torch.equal(back(x), ours)
    init = load_initial(f"hf:{out}", "vit_pico")
    assert init.sha256 == sha256_file(out / "model.safetensors")
    fresh_enc, fresh_tgt = create_model("vit_pico"), create_model("vit_pico")
    fresh_pred = Predictor(48, predictor_embed_dim=32, depth=1, num_heads=2, num_mask_tokens=2)
    apply_initial(init, fresh_enc, fresh_pred, fresh_tgt, "vit_pico")
    assert torch.equal(fresh_tgt.eval()(x), ours)
    assert all(torch.equal(a, b) for a, b in zip(fresh_pred.state_dict().values(), predictor.state_dict().values()))
    with pytest.raises(Exception, match="is not a vit_nano"):
        apply_initial(init, create_model("vit_nano"), fresh_pred, create_model("vit_nano"), "vit_nano")

    card = (out / "README.md").read_text()
    assert "# mine (transformers export)" in card
    assert "AutoModel.from_pretrained" in card and f"hf:{out}" in card


@torch.no_grad()
def test_an_export_without_predictor_writes_a_zero_placeholder_that_is_never_loaded_back(project, tmp_path):
    from transformers import AutoModel

    _, ckpt, (_, target, _) = project
    out = tmp_path / "enc"
    assert _export(ckpt, "transformers", out, "--encoder-only") == 0
    config = json.loads((out / "config.json").read_text())
    assert config["unisurg"] == {"arch": "vit_pico", "predictor": False} and config["pred_num_hidden_layers"] == 0
    model = AutoModel.from_pretrained(out).eval()  # loads with every weight present (no random init)
    x = _clip()
    assert (model.get_vision_features(x.transpose(1, 2)) - target(x)).abs().max() <= 1e-4
    assert not model(pixel_values_videos=x.transpose(1, 2)).predictor_output.last_hidden_state.any()  # zeros
    assert load_hf(out).predictor is None and load_initial(f"hf:{out}", "vit_pico").predictor is None


@torch.no_grad()
def test_safetensors_export_round_trips_its_metadata_and_detects_edits(project, tmp_path):
    root, ckpt, (_, target, _) = project
    out = tmp_path / "st"
    assert _export(ckpt, "safetensors", out) == 0
    path = out / "encoder.safetensors"
    meta = read_safetensors_meta(path)
    assert meta["format"] == "unisurg-safetensors/v1" and meta["arch"] == "vit_pico"
    assert json.loads(meta["config"]) == target.config
    assert json.loads(meta["input"]) == {"size": SIZE, "frames": FRAMES, "fps": None}
    assert (meta["tubelet_size"], meta["patch_size"]) == ("2", "16")
    assert json.loads(meta["normalisation"])["mean"] == [0.485, 0.456, 0.406]
    assert meta["weights_sha256"] == state_digest(target.state_dict())
    assert meta["source_sha256"] == sha256_file(ckpt)
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True).stdout.strip()
    assert meta["git_commit"] == head
    dvc = json.loads(meta["dvc"])
    assert (
        dvc["stage"] == "pretrain" and dvc["matches_file"] and dvc["md5"] == hashlib.md5(ckpt.read_bytes()).hexdigest()
    )
    assert "data/synth" in dvc["upstream"]  # through the curate stage
    x = _clip()
    assert torch.equal(load_encoder(path)(x), target(x))
    assert torch.equal(load_encoder_spec(str(path))[0](x), target(x))
    # flip one byte of the last tensor's data: the hash in the metadata no longer matches
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match="weights_sha256"):
        load_encoder(path)


@torch.no_grad()
def test_vjepa_export_loads_with_strict_true_in_vjepa2s_own_modules_and_ours(project, tmp_path):
    _, ckpt, (online, target, predictor) = project
    out = tmp_path / "vj"
    assert _export(ckpt, "vjepa", out) == 0
    path = out / "vit_pico.pt"
    ck = torch.load(path, map_location="cpu", weights_only=True)  # as vjepa2 (torch >= 2.6) reads it
    assert {"encoder", "target_encoder", "predictor", "epoch"} <= set(ck)
    assert all(k.startswith("module.backbone.") for k in ck["target_encoder"])
    x = _clip()
    for key, ours in (("target_encoder", target), ("encoder", online)):
        # vjepa2's load_pretrained: strip module. and backbone., here with strict=True
        ref = VJEPA2VisionTransformer(48, 2, 2, mlp_ratio=4.0).eval()
        ref.load_state_dict({k.replace("module.", "").replace("backbone.", ""): v for k, v in ck[key].items()})
        assert (ref(x) - ours(x)).abs().max() <= 1e-5
        assert torch.equal(load_vjepa_checkpoint(path, "vit_pico", key, strict=True)(x), ours(x))
    VJEPA2PredictorLayout(48, 32, 1, 2).load_state_dict(strip_prefixes(ck["predictor"]), strict=True)
    assert torch.equal(strip_prefixes(ck["predictor"])["mask_tokens.1"], predictor.mask_tokens[1])
    card = (out / "README.md").read_text()
    assert "vjepa2's code registers no `vit_pico`" in card and "embed_dim=48" in card
    assert _export(ckpt, "vjepa", tmp_path / "again") == 0  # the same weights: the same bytes
    assert (tmp_path / "again" / "vit_pico.pt").read_bytes() == path.read_bytes()


@torch.no_grad()
def test_released_vjepa_weights_go_to_transformers_and_compute_vjepa2s_features(tmp_path):
    from transformers import AutoModel

    released = tmp_path / "released.pt"
    ref = write_released(released)["target_encoder"].eval()
    out = tmp_path / "hf"
    assert _export(f"vjepa:vit_pico:{released}", "transformers", out, "--metrics-dir", str(tmp_path / "none")) == 0
    x = _clip()
    theirs = AutoModel.from_pretrained(out).eval().get_vision_features(x.transpose(1, 2))
    assert (theirs - ref(x)).abs().max() <= 1e-4
    card = (out / "README.md").read_text()
    assert "trained elsewhere" in card and "no benchmark claim" in card


def test_exports_that_cannot_be_held_are_refused_with_what_is_missing(tmp_path, monkeypatch, caplog):
    import unisurg.models.vit as vit
    from unisurg.export import Inputs, resolve
    from unisurg.export.formats import transformers_model

    caplog.set_level("ERROR")
    # a frame-wise timm backbone is no V-JEPA video ViT: refused by every format, exit code 2
    assert main(["export", "timm:resnet18", "--format", "safetensors", "--out", str(tmp_path / "t")]) == 2
    assert "timm image backbone" in caplog.text and "not a V-JEPA video ViT" in caplog.text
    assert not (tmp_path / "t").exists()
    # inputs the patch grid cannot tile
    assert _export("random:vit_pico", "transformers", tmp_path / "s", "--size", "40") == 2
    assert "size 40 is not a multiple of the patch size 16" in caplog.text

    # an encoder with a RoPE variant (repeat_interleave tables, V-JEPA 2.1's fix): transformers computes
    # V-JEPA 2's, so the features differ and nothing is written
    def interleaved(x, pos):
        d = x.size(-1)
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=x.dtype) / (d / 2.0))
        freq = (pos.unsqueeze(-1).to(x.dtype) * omega).repeat_interleave(2, dim=-1)  # (..., N, D)
        y = torch.stack((-x[..., 1::2], x[..., ::2]), dim=-1).flatten(-2)
        return x * freq.cos() + y * freq.sin()

    src = resolve("random:vit_pico")
    monkeypatch.setattr(vit, "apply_rope_3d", lambda q, pos: _rope_with(interleaved, q, pos))
    with pytest.raises(Exception, match=r"computes something else .* RoPE variant"):
        transformers_model(src, Inputs(SIZE, FRAMES))
    monkeypatch.undo()

    # a predictor projecting to another width than the encoder's: transformers' cannot
    src.predictor = Predictor(48, predictor_embed_dim=32, depth=1, num_heads=2, out_embed_dim=24)
    with pytest.raises(Exception, match="--encoder-only"):
        transformers_model(src, Inputs(SIZE, FRAMES))


def _rope_with(rotate, q, pos):
    from unisurg.models.rope import rope_chunk

    d = rope_chunk(q.size(-1))
    parts = [rotate(q[..., i * d : (i + 1) * d], p) for i, p in enumerate(pos)]
    return torch.cat([*parts, q[..., 3 * d :]], dim=-1)


def test_hf_import_refuses_configs_it_cannot_reproduce(tmp_path):
    out = tmp_path / "hf"
    assert _export("random:vit_pico", "transformers", out, "--metrics-dir", str(tmp_path / "none")) == 0
    config = json.loads((out / "config.json").read_text())
    for change, named in (
        ({"rope_interleave": True}, "rope_interleave"),
        ({"hidden_act": "silu"}, "hidden_act is 'silu'"),
        ({"model_type": "vit"}, "model_type is 'vit'"),
    ):
        (out / "config.json").write_text(json.dumps({**config, **change}))
        with pytest.raises(Exception, match=named):
            load_encoder_spec(f"hf:{out}")
    (out / "config.json").write_text(json.dumps({**config, "num_hidden_layers": 3}))  # weights for 2 blocks
    with pytest.raises(Exception, match="missing"):
        load_encoder_spec(f"hf:{out}")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_encoder_spec(f"hf:{tmp_path / 'nowhere'}")


def test_model_card_is_generated_from_the_lock_the_index_and_the_report(project, tmp_path):
    root, ckpt, _ = project
    out = tmp_path / "card"
    assert _export(ckpt, "safetensors", out) == 0
    card = (out / "README.md").read_text()
    assert "Produced by the DVC stage `pretrain`" in card
    # training data by source from the curation index: the tiny corpus's one source, its region and licence
    assert "| pre | mixed | x |" in card
    # the report's rows for this model and its baseline, the protocol line, CIs, the null, the paired test
    assert "Protocol: `mini`" in card
    assert "| benchmark | task | metric | test units | mine | random_init | null |" in card
    assert "0.600 [0.550, 0.650]" in card and "| mine | random_init | 1 of 2 | 1 |" in card
    assert "At or below the null (a constant output) on: AUTOLAPARO" in card
    assert "built-in synthetic corpus" in card  # data/synth is upstream of its clips
    assert "not comparable with the paper's table" in card
    # retrained (or edited) since the lock recorded it: the card says so
    from unisurg.models.checkpoint import load_checkpoint

    save_checkpoint(ckpt, {**load_checkpoint(ckpt), "step": 13})
    assert _export(ckpt, "safetensors", out) == 0
    assert "the file no longer has that md5" in (out / "README.md").read_text()


@torch.no_grad()
def test_hf_import_reads_sharded_weights_as_large_published_models_have_them(tmp_path):
    from safetensors.torch import load_file, save_file

    out = tmp_path / "hf"
    assert _export("random:vit_pico", "transformers", out, "--metrics-dir", str(tmp_path / "none")) == 0
    whole, _ = load_encoder_spec(f"hf:{out}")
    state = load_file(str(out / "model.safetensors"))
    (out / "model.safetensors").unlink()
    names = sorted(state)
    shards = {"model-00001-of-00002.safetensors": names[::2], "model-00002-of-00002.safetensors": names[1::2]}
    for file, keys in shards.items():
        save_file({k: state[k] for k in keys}, str(out / file))
    weight_map = {k: f for f, keys in shards.items() for k in keys}
    (out / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    sharded, wid = load_encoder_spec(f"hf:{out}")
    x = _clip()
    assert torch.equal(sharded(x), whole(x)) and wid.startswith("hf:")
    (out / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(Exception, match="model-00002-of-00002"):
        load_encoder_spec(f"hf:{out}")
