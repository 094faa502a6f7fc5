"""Probes trained by vjepa2 / SurgMotion load into AttentiveProbe and compute the same logits.

The reference here is written from the published architecture (vjepa2 ``AttentiveClassifier``:
``src/models/attentive_pooler.py``, ``src/models/utils/modules.py``) with plain torch ops on the raw
state dict, independently of :mod:`unisurg.evaluation.heads`.
"""

import math

import pytest
import torch
import torch.nn.functional as F

from unisurg.evaluation import AttentiveProbe, load_vjepa_probe

DIM, DEPTH, HEADS, CLASSES, MLP = 64, 4, 16, 7, 256  # a small probe of the surgmotion layout


def vjepa2_shapes(dim: int = DIM, depth: int = DEPTH, classes: int = CLASSES, hidden: int = MLP) -> dict:
    """Parameter names and shapes of vjepa2's AttentiveClassifier(num_queries=1, qkv_bias=True)."""
    mlp = {"mlp.fc1": (hidden, dim), "mlp.fc2": (dim, hidden)}
    block = {"attn.qkv": (3 * dim, dim), "attn.proj": (dim, dim)} | mlp
    cross = {"xattn.q": (dim, dim), "xattn.kv": (2 * dim, dim)} | mlp  # no xattn.proj
    layers = {f"pooler.blocks.{i}": block for i in range(depth - 1)} | {"pooler.cross_attention_block": cross}
    shapes = {"pooler.query_tokens": (1, 1, dim)}
    for p, linears in layers.items():
        for name in ("norm1", "norm2"):
            shapes |= {f"{p}.{name}.weight": (dim,), f"{p}.{name}.bias": (dim,)}
        for name, shape in linears.items():
            shapes |= {f"{p}.{name}.weight": shape, f"{p}.{name}.bias": shape[:1]}
    return shapes | {"linear.weight": (classes, dim), "linear.bias": (classes,)}


def random_state(seed: int) -> dict[str, torch.Tensor]:
    """Trained-looking weights: LayerNorm gains near 1, everything else small and non-zero."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for k, shape in vjepa2_shapes().items():
        v = torch.randn(shape, generator=g)
        state[k] = 1 + 0.2 * v if ".norm" in k and k.endswith(".weight") else (0.1 if "norm" in k else 0.08) * v
    return state


def save_checkpoint(path, heads: list[dict], prefix: str = "module.") -> None:
    """vjepa2's eval layout: DDP-wrapped heads (``module.``), optimizer states and counters beside them."""
    torch.save(
        {
            "classifiers": [{prefix + k: v for k, v in h.items()} for h in heads],
            "opt": [{"state": {}, "param_groups": [{"lr": 1e-3, "params": [0, 1]}]} for _ in heads],
            "scaler": None,
            "epoch": 20,
            "batch_size": 4,
            "world_size": 8,
        },
        path,
    )


# --------------------------------------------------------------------------- independent forward


def _ln(sd, p, x):
    return F.layer_norm(x, x.shape[-1:], sd[f"{p}.weight"], sd[f"{p}.bias"], eps=1e-5)  # nn.LayerNorm default


def _linear(sd, p, x):
    return x @ sd[f"{p}.weight"].T + sd[f"{p}.bias"]


def _mlp(sd, p, x):
    return _linear(sd, f"{p}.fc2", F.gelu(_linear(sd, f"{p}.fc1", x)))  # exact (erf) GELU


def _attention(q, k, v, heads):
    """q (B, Q, D), k/v (B, N, D) -> softmax(q k^T / sqrt(d)) v per head, heads concatenated (B, Q, D)."""
    B, Q, D = q.shape
    d = D // heads
    q, k, v = (t.reshape(B, -1, heads, d).transpose(1, 2) for t in (q, k, v))  # (B, h, ., d)
    a = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(d), dim=-1)  # (B, h, Q, N)
    return (a @ v).transpose(1, 2).reshape(B, Q, D)


def vjepa2_logits(sd: dict, x: torch.Tensor, heads: int) -> torch.Tensor:
    """AttentiveClassifier.forward from its published definition, in float64."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    depth = 1 + len({k.split(".")[2] for k in sd if k.startswith("pooler.blocks.")})
    for i in range(depth - 1):  # Block: x + attn(norm1(x)); x + mlp(norm2(x)); no RoPE
        p = f"pooler.blocks.{i}"
        q, k, v = _linear(sd, f"{p}.attn.qkv", _ln(sd, f"{p}.norm1", x)).chunk(3, dim=-1)
        x = x + _linear(sd, f"{p}.attn.proj", _attention(q, k, v, heads))
        x = x + _mlp(sd, f"{p}.mlp", _ln(sd, f"{p}.norm2", x))
    p = "pooler.cross_attention_block"  # q + xattn(q, norm1(x)) without output projection; + mlp(norm2(q))
    q = sd["pooler.query_tokens"].repeat(len(x), 1, 1)
    k, v = _linear(sd, f"{p}.xattn.kv", _ln(sd, f"{p}.norm1", x)).chunk(2, dim=-1)
    q = q + _attention(_linear(sd, f"{p}.xattn.q", q), k, v, heads)
    q = q + _mlp(sd, f"{p}.mlp", _ln(sd, f"{p}.norm2", q))
    return _linear(sd, "linear", q.squeeze(1))


# --------------------------------------------------------------------------- tests


@pytest.mark.parametrize("prefix", ["module.", ""], ids=["vjepa2-ddp", "surgmotion-unwrapped"])
@pytest.mark.parametrize("scale", [1.5, 0.01], ids=["unit-tokens", "small-tokens"])  # small: LayerNorm eps matters
def test_loaded_probe_computes_the_published_architecture(tmp_path, prefix, scale):
    heads = [random_state(0), random_state(1)]
    path = tmp_path / "probe.pt"
    save_checkpoint(path, heads, prefix)
    probe = load_vjepa_probe(path, head=1, num_heads=HEADS)
    assert not probe.training and len(probe.pooler.blocks) == DEPTH - 1
    x = (torch.randn(3, 40, DIM) + 0.2) * scale
    with torch.no_grad():
        ours = probe(x)
    ref = vjepa2_logits(heads[1], x, HEADS)
    assert ours.shape == (3, CLASSES)
    assert (ours.double() - ref).abs().max() < 1e-5
    assert (vjepa2_logits(heads[0], x, HEADS) - ref).abs().max() > 1e-2  # head 1 it is, not head 0


def test_fresh_probe_has_exactly_the_vjepa2_parameter_names_and_shapes():
    own = AttentiveProbe(DIM, CLASSES, num_heads=HEADS, depth=DEPTH).state_dict()
    assert {k: tuple(v.shape) for k, v in own.items()} == vjepa2_shapes()
    # depth 1 (the mini protocol): the cross-attention block alone, no `pooler.blocks`
    shallow = AttentiveProbe(DIM, CLASSES, num_heads=4, depth=1).state_dict()
    assert set(shallow) == set(vjepa2_shapes(depth=1))


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (lambda s: s.pop("pooler.cross_attention_block.xattn.kv.bias"), ["pooler.cross_attention_block.xattn.kv.bias"]),
        (
            lambda s: s.update({"pooler.blocks.1.mlp.fc1.weight": torch.zeros(100, DIM)}),
            ["pooler.blocks.1.mlp.fc1.weight", "(100, 64)", "(256, 64)"],
        ),
        (  # the output projection vjepa2 comments out
            lambda s: s.update({"pooler.cross_attention_block.xattn.proj.weight": torch.zeros(DIM, DIM)}),
            ["pooler.cross_attention_block.xattn.proj.weight"],
        ),
        (lambda s: s.pop("linear.weight"), ["linear.weight"]),
    ],
    ids=["missing", "wrong-shape", "unexpected", "no-linear"],
)
def test_mismatched_checkpoint_errors_name_the_key(tmp_path, edit, named):
    state = random_state(0)
    edit(state)
    save_checkpoint(tmp_path / "probe.pt", [random_state(1), state])
    load_vjepa_probe(tmp_path / "probe.pt", head=0, num_heads=HEADS)  # the intact head loads
    with pytest.raises(ValueError) as err:
        load_vjepa_probe(tmp_path / "probe.pt", head=1, num_heads=HEADS)
    for text in named:
        assert text in str(err.value)


@pytest.mark.parametrize("head", [2, -1])
def test_head_index_out_of_range_is_an_error(tmp_path, head):
    save_checkpoint(tmp_path / "probe.pt", [random_state(0), random_state(1)])
    with pytest.raises(ValueError, match="out of range.*2 heads"):
        load_vjepa_probe(tmp_path / "probe.pt", head=head)


def test_a_file_without_classifiers_is_an_error(tmp_path):
    torch.save({"encoder": {"patch_embed.proj.weight": torch.zeros(2)}}, tmp_path / "encoder.pt")
    with pytest.raises(ValueError, match="classifiers"):
        load_vjepa_probe(tmp_path / "encoder.pt")


def test_wrong_mlp_ratio_is_an_error_naming_the_mlp(tmp_path):
    save_checkpoint(tmp_path / "probe.pt", [random_state(0)])
    with pytest.raises(ValueError, match=r"mlp\.fc1\.weight \(256, 64\) \(expected \(128, 64\)\)"):
        load_vjepa_probe(tmp_path / "probe.pt", num_heads=HEADS, mlp_ratio=2.0)


@pytest.mark.parametrize("depth", [1, 2, 4])
def test_init_follows_vjepa2(depth):
    """trunc-normal 0.02, zero biases, unit LayerNorms; block i's attn.proj / mlp.fc2 divided by
    sqrt(2(i+1)), the cross-attention block's mlp.fc2 by the last block's factor (sqrt(2) alone)."""
    torch.manual_seed(0)
    dim = 256
    probe = AttentiveProbe(dim, 10, num_heads=16, depth=depth)
    sd = probe.state_dict()
    n_blocks = depth - 1
    expected = {k: 0.02 for k, v in sd.items() if k.startswith("pooler") and k.endswith(".weight") and v.ndim == 2}
    for i in range(n_blocks):
        for name in ("attn.proj", "mlp.fc2"):
            expected[f"pooler.blocks.{i}.{name}.weight"] = 0.02 / math.sqrt(2 * (i + 1))
    expected["pooler.cross_attention_block.mlp.fc2.weight"] = 0.02 / math.sqrt(2 * max(n_blocks, 1))
    for k, std in expected.items():
        assert sd[k].std().item() == pytest.approx(std, rel=0.03), k
        assert sd[k].abs().max() <= 2.0  # truncated at +-2 (absolute, as vjepa2's trunc_normal_)
    assert sd["pooler.query_tokens"].std().item() == pytest.approx(0.02, rel=0.15)
    for k, v in sd.items():
        if k.startswith("pooler") and k.endswith(".bias"):
            assert torch.all(v == 0), k
        if ".norm" in k and k.endswith(".weight"):
            assert torch.all(v == 1), k
    # vjepa2 initialises only the pooler: `linear` keeps torch's default, uniform(+-1/sqrt(dim))
    assert sd["linear.weight"].abs().max() <= 1 / math.sqrt(dim)
    assert sd["linear.weight"].std().item() == pytest.approx(1 / math.sqrt(3 * dim), rel=0.1)


def test_a_file_that_is_no_checkpoint_is_named_as_such(tmp_path):
    """The same reader as encoder checkpoints: a text file is named, not torch's unpickling error."""
    from unisurg.errors import UsageError

    (tmp_path / "probe.pt").write_text("not a checkpoint\n")
    with pytest.raises(UsageError, match="probe.pt: not a PyTorch checkpoint"):
        load_vjepa_probe(tmp_path / "probe.pt", head=0)
