"""Named evaluation protocols: the presets, params.yaml overrides, and class-weighted cross-entropy."""

import dataclasses

import numpy as np
import pytest
import torch
from sklearn.utils.class_weight import compute_class_weight

from unisurg.config import parse_params
from unisurg.evaluation.protocols import MINI, PROTOCOLS, SURGMOTION, from_params, resolve
from unisurg.evaluation.tasks import balanced_class_weights, class_loss


def test_the_surgmotion_preset_is_the_authors_settings():
    """protocol.md, read from the authors' configs and eval.py."""
    s, p = SURGMOTION.sampling, SURGMOTION.probe
    assert (s.frames, s.fps, s.size) == (64, 1.0, 256)
    assert (p.depth, p.num_heads, p.mlp_ratio) == (4, 16, 4.0)
    assert p.lrs == (5e-3, 3e-3, 1e-3, 3e-4, 1e-4) and p.weight_decays == (0.01, 0.1, 0.4, 0.8)
    assert len(p.lrs) * len(p.weight_decays) * p.seeds == 20  # 20 heads
    assert (p.batch_size, p.epochs, p.epochs_for("surgicalactions160"), p.epochs_for("cholec80")) == (4, 1, 40, 1)
    assert p.class_weighted and p.min_steps == 0
    assert (SURGMOTION.bootstrap, SURGMOTION.bootstrap_seed, SURGMOTION.checkpoint_key) == (1000, 42, "encoder")
    assert SURGMOTION.select_on == "val"  # the paper's selection on test is a switch, never the default
    assert set(PROTOCOLS) == {"mini", "surgmotion"}


def test_overrides_are_named_in_the_label_and_test_selection_is_loud():
    assert resolve("mini").label == "mini" and resolve("mini") == MINI
    same = resolve("mini", probe={"weight_decays": [0.01]})  # mini's own value: not an override
    assert same.label == "mini" and same.probe == MINI.probe
    p = resolve("surgmotion", sampling={"frames": 32}, probe={"lrs": [1e-3]}, bootstrap=200, select_on="test")
    assert p.sampling.frames == 32 and p.probe.lrs == (1e-3,) and p.bootstrap == 200
    assert p.label == "surgmotion+clip.frames+probe.lrs+bootstrap [heads chosen on TEST]"
    assert p.as_dict()["overridden"] == ["clip.frames", "probe.lrs", "bootstrap"]
    with pytest.raises(ValueError, match="unknown evaluation protocol 'vjepa'"):
        resolve("vjepa")


def test_params_yaml_names_a_protocol_and_rejects_unknown_fields():
    e = parse_params({"evaluate": {"protocol": "surgmotion", "probe": {"seeds": 2}}}).evaluate
    p = from_params(e)
    assert p.name == "surgmotion" and p.probe.seeds == 2 and p.probe.depth == 4 and p.label == "surgmotion+probe.seeds"
    with pytest.raises(ValueError, match="evaluate.probe.heads"):
        parse_params({"evaluate": {"probe": {"heads": 3}}})
    with pytest.raises(ValueError, match="evaluate.protocol"):
        parse_params({"evaluate": {"protocol": "paper"}})


def test_balanced_class_weights_are_sklearns_normalised_to_a_smallest_weight_of_one():
    y = np.array([0, 0, 0, 0, 1, 1, 3, 3, 3, 3, 3, 3])  # class 2 absent from training
    present = np.unique(y)
    ref = compute_class_weight("balanced", classes=present, y=y)
    ref = ref / ref.min()
    w = balanced_class_weights(torch.as_tensor(y), 4)
    np.testing.assert_allclose(w.numpy()[present], ref, rtol=1e-6)
    assert w[2] == 1.0 and w.min() == 1.0


def test_weighted_class_loss_is_torchs_weighted_cross_entropy_per_head():
    g = torch.Generator().manual_seed(0)
    out, y = torch.randn(3, 10, 4, generator=g), torch.randint(0, 4, (3, 10), generator=g)  # 3 heads
    w = torch.tensor([1.0, 2.5, 1.5, 4.0])
    ref = torch.stack([torch.nn.CrossEntropyLoss(weight=w)(out[k], y[k]) for k in range(3)])
    torch.testing.assert_close(class_loss(out, y, w), ref)
    torch.testing.assert_close(
        class_loss(out, y), torch.stack([torch.nn.functional.cross_entropy(o, t) for o, t in zip(out, y)])
    )


def test_the_mini_preset_differs_from_surgmotion_only_where_the_docs_say():
    """docs/protocols.md's table of differences lists every field that differs."""
    diff = {
        f"probe.{k}" for k in dataclasses.asdict(MINI.probe) if getattr(MINI.probe, k) != getattr(SURGMOTION.probe, k)
    }
    diff |= {
        f"clip.{k}"
        for k in dataclasses.asdict(MINI.sampling)
        if getattr(MINI.sampling, k) != getattr(SURGMOTION.sampling, k)
    }
    for k in ("bootstrap_seed", "checkpoint_key", "tokens", "augment", "recipe"):
        if getattr(MINI, k) != getattr(SURGMOTION, k):
            diff.add(k)
    docs = (__import__("pathlib").Path(__file__).resolve().parents[1] / "docs" / "protocols.md").read_text()
    section = docs.split("## The `mini` protocol", 1)[1].split("\n## ", 1)[0]
    for field in diff:
        assert f"`{field}`" in section, field
