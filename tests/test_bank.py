"""The probe grid trained as one bank equals the same heads trained one by one with torch's AdamW."""

import copy
import math
import warnings

import numpy as np
import pytest
import torch

from unisurg.evaluation.bank import HeadBank, StackedAdamW
from unisurg.evaluation.harness import ProbeGrid, train_heads
from unisurg.evaluation.heads import AttentiveProbe, DenseHead
from unisurg.evaluation.tasks import class_loss, depth_loss, multilabel_loss, regression_loss, segmentation_loss

GRID = ProbeGrid(lrs=(3e-3, 1e-3), weight_decays=(0.0, 0.1), epochs=2, batch_size=4, depth=1, num_heads=2)


def _heads(kind: str, k: int) -> list[torch.nn.Module]:
    torch.manual_seed(0)
    make = {
        "attentive": lambda: AttentiveProbe(16, 3, num_heads=2, depth=1),
        "attentive_depth3": lambda: AttentiveProbe(16, 3, num_heads=2, depth=3),
        "dense": lambda: DenseHead(16, 1, (2, 2, 2), 4),
    }[kind]
    heads = [make() for _ in range(k)]
    with torch.no_grad():  # distinct, non-trivial weights (LayerNorm affine and biases included)
        for h in heads:
            for p in h.parameters():
                p.add_(torch.randn_like(p) * 0.1)
    return heads


@pytest.mark.parametrize("kind", ["attentive", "attentive_depth3", "dense"])
def test_bank_forward_equals_each_head(kind):
    heads = _heads(kind, 6)
    bank = HeadBank(heads, hparams=[{}] * 6)
    x = torch.randn(5, 8, 16)  # one batch of 5 samples for every head
    with warnings.catch_warnings():  # self-attention blocks are batched by vmap, not run head by head
        warnings.simplefilter("error")
        out = bank(x)  # (K, B, ...)
    assert out.shape[:2] == (6, 5)
    for k, head in enumerate(heads):
        torch.testing.assert_close(out[k], head(x), atol=1e-5, rtol=1e-5)
    # prediction on half-precision features, for all heads or a chosen few, and a head as a plain module
    shared = torch.randn(7, 8, 16).half()
    pred = bank.predict(shared, batch=3)
    assert pred.shape[:2] == (6, 7) and pred.dtype == np.float32
    for k, head in enumerate(heads):
        np.testing.assert_allclose(pred[k], head(shared.float()).detach().numpy(), atol=1e-5, rtol=1e-5)
        np.testing.assert_allclose(bank.module(k)(shared.float()).detach().numpy(), pred[k], atol=1e-6, rtol=1e-6)
    np.testing.assert_allclose(bank.predict(shared, [4, 1]), pred[[4, 1]], atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("kind", ["attentive", "attentive_depth3", "dense"])
def test_bank_gradients_equal_each_heads_own(kind):
    heads = _heads(kind, 4)
    bank = HeadBank(heads, hparams=[{}] * 4)
    x = torch.randn(4, 8, 16)
    out = bank(x)
    grads = torch.autograd.grad(out.square().flatten(1).mean(1).sum(), list(bank.params.values()))
    for k, h in enumerate(heads):
        own = torch.autograd.grad(h(x).square().mean(), list(h.parameters()))
        for name, g, o in zip(bank.params, grads, own, strict=True):
            torch.testing.assert_close(g[k], o, atol=1e-6, rtol=1e-5, msg=lambda m, n=name: f"{n}: {m}")


# Self-attention blocks are left out: their key bias gets an analytically zero gradient (a constant
# logit shift), whose rounding noise AdamW normalises into lr-sized steps of either sign.
@pytest.mark.parametrize("kind", ["attentive", "dense"])
def test_bank_training_equals_heads_trained_one_by_one(kind):
    """Stacked AdamW (per-head lr and weight decay, scheduled lr) == torch.optim.AdamW per head."""
    heads = _heads(kind, 4)
    ref = copy.deepcopy(heads)
    lrs, wds = [1e-2, 3e-3, 1e-3, 1e-2], [0.0, 0.1, 0.01, 0.5]
    bank = HeadBank(heads, hparams=[{}] * 4)
    opt = StackedAdamW(list(bank.params.values()), lrs, wds)
    ref_opts = [torch.optim.AdamW(h.parameters(), lr=lr, weight_decay=wd) for h, lr, wd in zip(ref, lrs, wds)]
    torch.manual_seed(1)
    for step in range(5):
        x = torch.randn(4, 8, 16)
        scale = 0.5 * (1 + math.cos(math.pi * step / 5))
        out = bank(x)  # (K, B, ...): per-head mean over the batch and outputs, summed over heads
        grads = torch.autograd.grad(out.square().flatten(1).mean(1).sum(), list(bank.params.values()))
        opt.step(grads, scale)
        for k, (h, o) in enumerate(zip(ref, ref_opts)):
            for group in o.param_groups:
                group["lr"] = lrs[k] * scale
            o.zero_grad()
            h(x).square().mean().backward()
            o.step()
    for k, h in enumerate(ref):
        for name, p in h.named_parameters():
            torch.testing.assert_close(bank.params[name][k], p, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("loss", "shape", "make_y"),
    [
        (class_loss, (5, 4), lambda: torch.randint(0, 4, (5,)).double()),
        (multilabel_loss, (5, 6), lambda: torch.randint(0, 2, (5, 6)).double()),
        (regression_loss, (5, 1), lambda: torch.randn(5).double()),
        (segmentation_loss, (5, 1, 8, 8), lambda: (torch.rand(5, 8, 8) > 0.8).float()),
        (depth_loss, (5, 1, 8, 8), lambda: torch.rand(5, 8, 8) * (torch.rand(5, 8, 8) > 0.3)),
    ],
    ids=["phase", "multilabel", "skill", "segmentation", "depth"],
)
def test_loss_of_a_grid_is_each_heads_own_loss(loss, shape, make_y):
    torch.manual_seed(0)
    out = torch.randn(3, 2, *shape)  # any leading dims, here (3, 2) heads, then (B, ...)
    ys = torch.stack([make_y() for _ in range(6)]).view(3, 2, *shape[:1], *make_y().shape[1:])
    grid = loss(out, ys)
    assert grid.shape == (3, 2)
    for g in range(3):
        for h in range(2):
            torch.testing.assert_close(grid[g, h], loss(out[g, h], ys[g, h]))


def test_depth_loss_on_a_batch_without_valid_pixels_is_zero_not_nan():
    out = torch.randn(2, 1, 4, 4, requires_grad=True)
    loss = depth_loss(out, torch.zeros(2, 4, 4))
    loss.backward()
    assert loss.item() == 0 and torch.all(out.grad == 0)


def test_train_heads_seeds_share_the_batches_and_differ_by_initialisation():
    """A 3-seed grid = the 1-seed grid of its first seed plus grids initialised from the other seeds,
    trained on the same batches (drawn from the first seed)."""
    torch.manual_seed(0)
    feats, y = torch.randn(10, 6, 16), torch.randint(0, 3, (10,))
    bank = train_heads(class_loss, feats, y, 3, GRID, [5, 6, 7], None)
    assert len(bank) == 12 and all(hp["steps"] == 6 for hp in bank.hparams)
    assert [(hp["lr"], hp["weight_decay"]) for hp in bank.hparams[:4]] == [
        (3e-3, 0.0),
        (3e-3, 0.1),
        (1e-3, 0.0),
        (1e-3, 0.1),
    ]
    first = train_heads(class_loss, feats, y, 3, GRID, [5], None)
    np.testing.assert_allclose(bank.predict(feats, range(4)), first.predict(feats), atol=1e-5, rtol=1e-4)
    assert not np.allclose(bank.predict(feats, [0]), bank.predict(feats, [4]), atol=1e-3)  # seeds differ


def test_bank_and_optimizer_reject_mismatched_sizes():
    with pytest.raises(ValueError, match="one per head"):
        HeadBank(_heads("dense", 4), hparams=[{}] * 3)
    with pytest.raises(ValueError, match="leading size K"):
        StackedAdamW([torch.zeros(4, 2, requires_grad=True)], [1e-3] * 3, [0.0] * 3)


def test_stacked_adamw_applies_non_contiguous_gradients_in_their_own_layout():
    """torch 2.14's fused CPU AdamW reads a transposed gradient in the parameter's layout."""
    p = torch.zeros(2, 3, 2, requires_grad=True)
    opt = StackedAdamW([p], [1e-2, 1e-2], [0.0, 0.0])
    g = torch.tensor([[1.0, -1.0, 1.0], [-1.0, 1.0, -1.0]]).T.expand(2, 3, 2)  # strides not p's
    assert not g.is_contiguous()
    opt.step([g])
    torch.testing.assert_close(p.detach(), -1e-2 * g.sign())


def test_depth_loss_is_the_scale_invariant_log_loss_over_valid_pixels_hand_computed():
    log_pred = torch.tensor([[[[0.0, 1.0], [2.0, 5.0]]], [[[1.0, 1.0], [0.5, 0.0]]]])  # (B=2, 1, 2, 2)
    depth = torch.tensor([[[1.0, 1.0], [0.0, 2.0]], [[0.0, 0.0], [1.0, 0.0]]])  # 0 = invalid pixel
    d = torch.tensor([0.0 - 0.0, 1.0 - 0.0, 5.0 - math.log(2.0), 0.5 - 0.0])  # the 4 valid pixels
    expected = (d**2).mean() - 0.85 * d.mean() ** 2
    torch.testing.assert_close(depth_loss(log_pred, depth), expected)


def test_the_readmes_probe_memory_table_is_what_the_code_computes():
    from pathlib import Path

    from unisurg.evaluation.bank import bank_memory_table, saved_per_token

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    block = readme.split("<!-- bank-memory:", 1)[1].split("-->", 1)[1].split("<!-- /bank-memory -->", 1)[0]
    assert block.strip() == bank_memory_table()
    # the activations scale with the tokens: elements kept per token do not depend on the count
    assert saved_per_token(4, tokens=40) == pytest.approx(saved_per_token(4, tokens=80), rel=0.04)
    assert saved_per_token(4) > saved_per_token(1) > 0  # self-attention blocks keep more


def test_heads_with_big_attention_run_one_at_a_time_on_the_cpu_with_the_same_results(monkeypatch):
    """Under the paper's protocol (8,192 tokens) vmap would materialise every head's N x N scores with the
    math kernel; above a budget the CPU runs one head after another (memory-efficient kernel)."""
    import unisurg.evaluation.bank as bank_module

    heads = _heads("attentive_depth3", 3)
    bank = HeadBank(heads, hparams=[{}] * 3)
    x, y = torch.randn(2, 40, 16), torch.randint(0, 3, (2,))
    assert not bank._big_cpu_attention(3, x)
    vmapped, pred = bank.grads(class_loss, x, y), bank.predict(x)
    monkeypatch.setattr(bank_module, "CPU_ATTENTION_BYTES", 0)
    assert bank._big_cpu_attention(3, x)
    for a, b in zip(vmapped, bank.grads(class_loss, x, y), strict=True):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    np.testing.assert_allclose(bank.predict(x), pred, atol=1e-6, rtol=1e-5)
    # 20 depth-4 heads over 8,192 tokens at batch 4 would need ~640 GiB of scores under vmap
    big = HeadBank([AttentiveProbe(48, 7, num_heads=16, depth=4) for _ in range(2)], [{}] * 2)
    monkeypatch.setattr(bank_module, "CPU_ATTENTION_BYTES", 2**30)
    assert big._big_cpu_attention(20, torch.empty(4, 8192, 48))
