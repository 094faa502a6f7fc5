"""Encoder, predictor, RoPE and checkpoints (timm-style: tests run over the registry)."""

import math

import pytest
import torch
import torch.nn.functional as F
from vjepa2_reference import VJEPA2VisionTransformer, rotate_queries_or_keys

from unisurg.models import Predictor, VisionTransformer, create_model, list_models
from unisurg.models.checkpoint import encoder_payload, load_encoder, load_vjepa_checkpoint, save_checkpoint
from unisurg.models.rope import apply_rope_3d, rope_chunk, rotate, token_positions
from unisurg.models.vit import apply_masks

SMALL = ["vit_pico", "vit_nano", "vit_micro"]


def test_registry_has_vjepa2_sizes():
    expected = {"vit_tiny": (192, 12, 3), "vit_large": (1024, 24, 16), "vit_giant_xformers": (1408, 40, 22)}
    for name, (dim, depth, heads) in expected.items():
        assert name in list_models()
        m = torch.device("meta")
        with m:
            model = create_model(name)
        assert (model.embed_dim, model.depth, model.num_heads) == (dim, depth, heads)
    with torch.device("meta"):
        g = create_model("vit_giant_xformers")
    assert g.blocks[0].mlp.fc1.out_features == 6144  # 1408 * 48 / 11


@pytest.mark.parametrize("name", SMALL)
def test_forward_shapes_grads_and_no_nans(name):
    torch.manual_seed(0)
    m = create_model(name)
    x = torch.randn(2, 3, 4, 32, 48)  # non-square input: grid (2, 2, 3)
    out = m(x)
    assert out.shape == (2, 2 * 2 * 3, m.embed_dim) and torch.isfinite(out).all()
    out.pow(2).mean().backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing


def test_unknown_model_and_kwargs_raise():
    with pytest.raises(KeyError, match="vit_nope"):
        create_model("vit_nope")
    with pytest.raises(TypeError):
        create_model("vit_pico", mpl_ratio=4)


def _full_grid_forward_attending_only_to(m, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
    """Reference for a masked forward, computed the other way round: every token of the full clip
    keeps its own grid position, attention may only look at the ``keep`` tokens (an SDPA mask),
    and the kept rows are gathered at the very end. x (1, C, T, H, W), keep (K,) -> (1, K, D)."""
    gt, gh, gw = m.grid(x)
    n = gt * gh * gw
    pos = token_positions(torch.arange(n), gh, gw)  # positions of the full grid, (N,) each
    allowed = torch.zeros(n, n, dtype=torch.bool)
    allowed[:, keep] = True  # (N queries, N keys)
    tokens = m.patch_embed(x)  # (1, N, D)
    for blk in m.blocks:
        a = blk.attn
        qkv = a.qkv(blk.norm1(tokens)).unflatten(-1, (3, a.num_heads, a.head_dim)).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)  # (1, heads, N, head_dim)
        q, k = apply_rope_3d(q, pos), apply_rope_3d(k, pos)
        att = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed)
        tokens = tokens + a.proj(att.transpose(1, 2).reshape(tokens.shape))
        tokens = tokens + blk.mlp(blk.norm2(tokens))
    return m.norm(tokens)[:, keep]


@torch.no_grad()
def test_masked_forward_equals_gathering_positions():
    torch.manual_seed(0)
    m = create_model("vit_pico").eval()
    x = torch.randn(1, 3, 4, 48, 64)  # grid (2, 3, 4): 24 tokens
    full = m(x)
    # keeping every token, in any order, is the full forward with its rows gathered in that order:
    # each kept token carries its own grid position (not its rank among the kept tokens)
    perm = torch.randperm(24)
    torch.testing.assert_close(m(x, [perm[None]]), full[:, perm], atol=1e-5, rtol=1e-5)
    # a subset: kept tokens at their full-grid positions, attending only to each other
    for keep in (torch.tensor([0, 5, 7, 20]), torch.tensor([13, 2, 23]), torch.tensor([9])):
        sub = m(x, [keep[None]])
        assert sub.shape == (1, len(keep), m.embed_dim)
        torch.testing.assert_close(sub, _full_grid_forward_attending_only_to(m, x, keep), atol=1e-5, rtol=1e-5)
    # and it is not the full forward gathered: the dropped tokens are invisible to the kept ones
    keep = torch.tensor([0, 5, 7, 20])
    assert not torch.allclose(m(x, [keep[None]]), full[:, keep], atol=1e-3)


def test_token_positions_are_t_major():
    t, h, w = token_positions(torch.arange(2 * 3 * 4), 3, 4)
    assert t.tolist()[:13] == [0] * 12 + [1] and h[12:16].tolist() == [0, 0, 0, 0] and w[12:16].tolist() == [0, 1, 2, 3]


def test_rope_matches_the_vjepa2_formula_including_its_quirk():
    torch.manual_seed(0)
    d = 8
    x = torch.randn(1, 1, 3, d)
    pos = torch.tensor([0, 1, 5])
    y = rotate(x, pos)
    half = d // 2
    omega = [1 / 10000 ** (j / half) for j in range(half)]
    for n, p in enumerate(pos.tolist()):
        for i in range(half):
            # element k uses omega[k mod d/2] (tiled tables), pairs are interleaved (2i, 2i+1)
            a, b = 2 * i, 2 * i + 1
            fa, fb = p * omega[a % half], p * omega[b % half]
            ea = x[0, 0, n, a] * math.cos(fa) - x[0, 0, n, b] * math.sin(fa)
            eb = x[0, 0, n, b] * math.cos(fb) + x[0, 0, n, a] * math.sin(fb)
            assert y[0, 0, n, a].item() == pytest.approx(ea.item(), abs=1e-5)
            assert y[0, 0, n, b].item() == pytest.approx(eb.item(), abs=1e-5)
    assert torch.equal(rotate(x, torch.zeros(3, dtype=torch.long)), x)  # position 0 is the identity
    # the same against V-JEPA 2's own code (transcribed below), on (B, heads, N, D) as it is called there
    q = torch.randn(2, 3, 5, 10)
    pos = torch.tensor([0, 1, 2, 7, 40])
    torch.testing.assert_close(rotate(q, pos), rotate_queries_or_keys(q, pos))


def test_rope_3d_chunks_and_unrotated_tail():
    assert rope_chunk(64) == 20 and rope_chunk(80) == 26 and rope_chunk(32) == 10
    q = torch.randn(1, 2, 5, 64)
    pos = token_positions(torch.arange(5), 2, 2)
    out = apply_rope_3d(q, pos)
    assert torch.equal(out[..., 60:], q[..., 60:])  # 64 - 3*20 leftover dims untouched
    assert not torch.allclose(out[..., 20:40], q[..., 20:40])  # the height chunk rotates


def test_predictor_outputs_targets_in_order():
    torch.manual_seed(0)
    enc = create_model("vit_pico")
    pred = Predictor(enc.embed_dim, 32, depth=1, num_heads=2, num_mask_tokens=2)
    assert all(t.detach().abs().sum().item() == 0 for t in pred.mask_tokens)  # zero-initialised
    x = torch.randn(2, 3, 4, 32, 32)  # grid (2, 2, 2) = 8 tokens
    ctx = torch.tensor([[0, 1, 2, 3], [4, 5, 6, 7]])
    tgt = torch.tensor([[7, 4], [0, 2]])
    z = pred(enc(x, [ctx]), ctx, tgt, (2, 2, 2), mask_index=1)
    assert z.shape == (2, 2, enc.embed_dim)
    z.sum().backward()
    assert pred.mask_tokens[1].grad is not None and pred.mask_tokens[0].grad is None


def test_apply_masks_gathers():
    x = torch.arange(2 * 5 * 3, dtype=torch.float).view(2, 5, 3)
    out = apply_masks(x, [torch.tensor([[4, 0], [1, 1]])])
    assert torch.equal(out[0, 0], x[0, 4]) and torch.equal(out[1, 1], x[1, 1])


def test_checkpoints_rebuild_themselves_and_vjepa_layout_loads(tmp_path):
    """Our checkpoints rebuild the model; a file in the V-JEPA 2 *container* layout (wrapper prefixes,
    ``encoder`` / ``target_encoder``) loads the key asked for. The file is written from our own
    state dict, so this proves prefix stripping, key choice and the errors only (self-consistency);
    compatibility with released weights is checked against V-JEPA 2's own forward in
    ``test_a_vjepa2_encoder_state_dict_loads_into_the_same_function``."""
    torch.manual_seed(0)
    m = create_model("vit_pico").eval()
    ema = create_model("vit_pico").eval()  # other weights under target_encoder
    x = torch.randn(1, 3, 4, 32, 32)
    save_checkpoint(tmp_path / "ours.pt", encoder_payload(m, "vit_pico"))
    assert torch.equal(load_encoder(tmp_path / "ours.pt").eval()(x), m(x))
    # public V-JEPA 2 layout: DDP + wrapper prefixes under 'encoder' / 'target_encoder'
    sd = {f"module.backbone.{k}": v for k, v in m.state_dict().items()}
    sd_ema = {f"module.backbone.{k}": v for k, v in ema.state_dict().items()}
    torch.save({"encoder": sd, "target_encoder": sd_ema, "epoch": 1}, tmp_path / "vjepa.pt")
    loaded = load_vjepa_checkpoint(tmp_path / "vjepa.pt", "vit_pico", key="target_encoder").eval()
    assert torch.equal(loaded(x), ema(x))
    assert torch.equal(load_vjepa_checkpoint(tmp_path / "vjepa.pt", "vit_pico", key="encoder").eval()(x), m(x))
    assert torch.equal(load_encoder(tmp_path / "vjepa.pt", arch="vit_pico").eval()(x), ema(x))  # V-JEPA's default
    with pytest.raises(ValueError, match="do not match vit_nano"):
        load_vjepa_checkpoint(tmp_path / "vjepa.pt", "vit_nano")
    with pytest.raises(ValueError, match="name its architecture"):
        load_encoder(tmp_path / "vjepa.pt")



def test_the_same_weights_give_the_same_checkpoint_bytes(tmp_path):
    """DVC hashes outputs: a rerun that reproduces the weights must reproduce the file, whatever the
    temporary name it was written under (torch names the archive after a path it is given)."""
    torch.manual_seed(0)
    payload = encoder_payload(create_model("vit_pico"), "vit_pico")
    save_checkpoint(tmp_path / "a.pt", payload)
    save_checkpoint(tmp_path / "b" / "encoder.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b" / "encoder.pt").read_bytes()

# vit_micro: head_dim 64 -> three chunks of 20 and 4 unrotated dims; vit_pico: head_dim 24, all rotated
@pytest.mark.parametrize("arch, dims", [("vit_pico", (48, 2, 2)), ("vit_micro", (192, 6, 3))])
@torch.no_grad()
def test_a_vjepa2_encoder_state_dict_loads_into_the_same_function(arch, dims, tmp_path):
    """Weights of V-JEPA 2's own encoder (the transcription above, with its parameter names and its
    random weights, not ours), saved as a released checkpoint is, load strictly into ``arch`` and give
    the same tokens, full and masked, on a non-square clip."""
    torch.manual_seed(0)
    ref = VJEPA2VisionTransformer(*dims, mlp_ratio=4.0).eval()
    for name, q in ref.named_parameters():
        if q.ndim == 1:  # biases and LayerNorm affines off their defaults (0 / 1), so a swap would show
            q.copy_(torch.randn_like(q) * 0.5 + (1.0 if "norm" in name and name.endswith("weight") else 0.0))
        elif "qkv" in name:
            q.mul_(2.0)  # sharper attention: a wrong token position changes the output by ~0.5, not ~1e-4
    sd = {f"module.backbone.{k}": v for k, v in ref.state_dict().items()}
    torch.save({"encoder": sd, "target_encoder": sd, "epoch": 1}, tmp_path / "released.pt")
    ours = load_vjepa_checkpoint(tmp_path / "released.pt", arch).eval()
    x = torch.randn(2, 3, 4, 32, 48)  # grid (2, 2, 3) = 12 tokens
    torch.testing.assert_close(ours(x), ref(x), atol=1e-5, rtol=1e-4)
    masks = [torch.tensor([[0, 4, 5, 11], [3, 2, 9, 7]]), torch.tensor([[1, 6, 8, 10], [0, 1, 2, 3]])]
    torch.testing.assert_close(ours(x, masks), ref(x, masks), atol=1e-5, rtol=1e-4)


@torch.no_grad()
def test_intermediate_layers_are_vjepa2_out_layers():
    """forward_intermediates(layers) = the tokens after those blocks through the final LayerNorm, as
    vjepa2's out_layers: checked against V-JEPA 2's encoder cut after the same block."""
    torch.manual_seed(0)
    ref = VJEPA2VisionTransformer(48, 3, 2, mlp_ratio=4.0).eval()
    ours = VisionTransformer(embed_dim=48, depth=3, num_heads=2).eval()
    ours.load_state_dict(ref.state_dict())
    x = torch.randn(2, 3, 4, 32, 32)
    first, last, again = ours.forward_intermediates(x, [0, -1, 2])
    assert torch.equal(last, ours(x)) and torch.equal(again, last)  # the final layer is forward's output
    cut = VJEPA2VisionTransformer(48, 1, 2, mlp_ratio=4.0).eval()  # the reference stopped after block 0
    cut.load_state_dict({k: v for k, v in ref.state_dict().items() if not k.startswith(("blocks.1.", "blocks.2."))})
    torch.testing.assert_close(first, cut(x), atol=1e-5, rtol=1e-4)
    with pytest.raises(IndexError, match="blocks 0..2"):
        ours.forward_intermediates(x, [3])
