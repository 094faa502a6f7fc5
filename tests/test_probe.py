"""The attentive probe's token-linear cross-attention equals the textbook computation."""

import pytest
import torch

from unisurg.evaluation.heads import AttentiveProbe, CrossAttentionBlock, reference_cross_attention


def test_folded_cross_attention_equals_projecting_every_token():
    torch.manual_seed(0)
    blk = CrossAttentionBlock(48, num_heads=4)
    with torch.no_grad():  # non-trivial LayerNorm affine and biases: all of them enter the algebra
        for p in blk.parameters():
            p.normal_(0, 0.5)
    q = torch.randn(3, 1, 48, requires_grad=True)
    x = torch.randn(3, 20, 48) * 2 + 0.5
    fast, ref = blk.attend(q, x), reference_cross_attention(blk, q, x)
    torch.testing.assert_close(fast, ref, atol=1e-4, rtol=1e-4)
    # and so are the gradients every probe parameter receives
    g_fast = torch.autograd.grad(fast.square().sum(), [q, *blk.parameters()], allow_unused=True)
    g_ref = torch.autograd.grad(ref.square().sum(), [q, *blk.parameters()], allow_unused=True)
    for a, b in zip(g_fast, g_ref, strict=True):
        if b is None:  # norm2/mlp are not part of the attention
            assert a is None
        else:
            torch.testing.assert_close(a, b, atol=1e-3, rtol=1e-3)


def test_attentive_probe_is_permutation_invariant_over_tokens():
    torch.manual_seed(0)
    probe = AttentiveProbe(32, 5, num_heads=4, depth=1)
    x = torch.randn(2, 10, 32)
    out = probe(x)
    assert out.shape == (2, 5)
    torch.testing.assert_close(probe(x[:, torch.randperm(10)]), out, atol=1e-5, rtol=1e-5)


def test_shared_query_is_projected_once_with_the_same_result():
    """The probe's learned query (1, 1, D) is not expanded per sample: same output, same gradients."""
    torch.manual_seed(0)
    blk = CrossAttentionBlock(48, num_heads=4)
    q = torch.randn(1, 1, 48, requires_grad=True)
    x = torch.randn(5, 20, 48)
    shared = blk(q, x)
    assert shared.shape == (5, 1, 48)
    expanded = torch.cat([blk(q, x[i : i + 1]) for i in range(5)])
    torch.testing.assert_close(shared, expanded, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        blk.attend(q, x), reference_cross_attention(blk, q.expand(5, -1, -1), x), atol=1e-4, rtol=1e-4
    )
    (g_shared,) = torch.autograd.grad(shared.sum(), q)
    (g_expanded,) = torch.autograd.grad(expanded.sum(), q)
    torch.testing.assert_close(g_shared, g_expanded, atol=1e-4, rtol=1e-4)


def test_fast_cross_attention_without_biases_equals_the_textbook_computation():
    torch.manual_seed(0)
    blk = CrossAttentionBlock(32, num_heads=8, qkv_bias=False)
    assert blk.xattn.q.bias is None and blk.xattn.kv.bias is None
    with torch.no_grad():
        for p in blk.parameters():
            p.normal_(0, 0.5)
    q, x = torch.randn(1, 1, 32), torch.randn(4, 12, 32)
    torch.testing.assert_close(
        blk.attend(q, x), reference_cross_attention(blk, q.expand(4, -1, -1), x), atol=1e-4, rtol=1e-4
    )


@pytest.mark.parametrize("depth", [1, 3])
def test_probe_gives_every_parameter_a_gradient(depth):
    torch.manual_seed(0)
    probe = AttentiveProbe(32, 5, num_heads=4, depth=depth)
    probe(torch.randn(3, 10, 32)).square().sum().backward()
    assert len(probe.pooler.blocks) == depth - 1
    for name, p in probe.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize(("dim", "num_heads", "depth", "match"), [(30, 4, 1, "divisible"), (32, 4, 0, "depth")])
def test_probe_rejects_a_width_the_heads_do_not_divide_and_a_zero_depth(dim, num_heads, depth, match):
    with pytest.raises(ValueError, match=match):
        AttentiveProbe(dim, 3, num_heads=num_heads, depth=depth)
