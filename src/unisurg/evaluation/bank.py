"""A grid of probe heads trained in lockstep: parameters stacked on a leading axis, one vectorised
forward/backward and one AdamW update per step for all of them.

The probe protocol trains several small heads (lr x weight decay x seeds) on a few hundred
frozen samples. Trained one after another, every step is that many small forward/backward passes
and optimizer updates (~4-5 ms per head and step for a 192-wide attentive probe over 128 tokens
on 2 CPU cores), much of it per-op overhead. Stacked, the grid takes one pass and one fused
optimizer update (``perf/bench_eval.py`` measures both ways). The head modules stay the
single source of truth (:mod:`.heads`), evaluated with ``torch.func.functional_call`` under
``vmap`` over the stacked parameters.

All heads see the same batch: vmap then shares it (the token LayerNorm is computed once, the
token products are single matrix products). Giving each seed its own batch order instead made
vmap copy the batch once per head, ~1.4x slower per step; the seeds still differ by their
initialisation. :class:`StackedAdamW` updates the stacked tensors with ``torch.optim.AdamW``,
each head with its own learning rate and weight decay.

Probes with self-attention blocks (``depth`` > 1) work too. torch 2.14 has no vmap rule for its
CPU flash-attention kernel (it would run the blocks head by head, with a warning), so on CPU the
bank selects the math kernel of ``scaled_dot_product_attention``, which vmap batches like any
matrix product; elsewhere the default kernels are kept.

On a GPU (the paper's protocol: 20 depth-4 heads over 8,192 ViT-L tokens) a step of the whole bank
does not fit: :meth:`HeadBank.grads` runs the heads in chunks, each chunk's forward and backward
before the next (the heads are independent, so the gradients are the same), under the protocol's
autocast (fp16 with a gradient scale per head, :class:`HeadScaler`, or bf16); a chunk that runs out
of memory is halved until one fits (:class:`Chunks`, remembered for the next steps), and so is a
prediction batch. :func:`bank_memory` gives the activation memory of a step for the README's table.
"""

from __future__ import annotations

import contextlib
import copy
import logging
from collections.abc import Callable, Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel

log = logging.getLogger(__name__)

CPU_ATTENTION_BYTES = 2**30  # above this much of N x N attention scores, the CPU runs heads one at a time


class Chunks:
    """How many heads (or samples) one forward takes: all at first, halved on a CUDA out-of-memory
    error until it fits (the error stands when one does not), then kept for later calls."""

    def __init__(self, what: str) -> None:
        self.what, self.size = what, None

    def run(self, total: int, fn: Callable[[int], object]) -> object:
        """``fn(chunk)`` with the largest chunk of ``total`` that fits."""
        while True:
            chunk = min(self.size or total, total)
            try:
                return fn(chunk)
            except torch.cuda.OutOfMemoryError:
                if chunk == 1:
                    raise
                if self.size is None:
                    log.warning("%d %s at once do not fit in GPU memory: halving until they do", chunk, self.what)
                self.size = chunk // 2
                torch.cuda.empty_cache()


class HeadBank:
    """K heads of one architecture with stacked parameters (K, *shape)."""

    def __init__(self, heads: Sequence[nn.Module], hparams: Sequence[dict]) -> None:
        if not heads or len(hparams) != len(heads):
            raise ValueError(f"{len(heads)} heads and {len(hparams)} hparams: need one per head, at least one")
        self.hparams = [dict(h) for h in hparams]
        params, buffers = stack_module_state(list(heads))  # leaves that require grad, (K, *shape)
        self.params, self.buffers = params, buffers
        self._base = copy.deepcopy(heads[0]).to("meta")  # architecture only: weights come from params

    def __len__(self) -> int:
        return len(self.hparams)

    @property
    def device(self) -> torch.device:
        return next(iter(self.params.values())).device

    def to(self, device: torch.device) -> HeadBank:
        """Move the stacked parameters (still leaves that require grad) and buffers to ``device``, in place."""
        if torch.device(device) != self.device:
            self.params = {k: v.detach().to(device).requires_grad_(v.requires_grad) for k, v in self.params.items()}
            self.buffers = {k: v.to(device) for k, v in self.buffers.items()}
        return self

    def _call(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        return functional_call(self._base, (params, buffers), (x,))

    def _vmapped(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        """Every head's output (K, B, *out) of the shared batch x."""
        # CPU: the math attention kernel, which vmap batches (see the module docstring)
        cpu = x.device.type == "cpu"
        with sdpa_kernel(SDPBackend.MATH) if cpu else contextlib.nullcontext():
            return vmap(self._call, in_dims=(0, 0, None))(params, buffers, x)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """x (B, ...) one batch for all heads -> outputs (K, B, *out) of every head."""
        return self._vmapped(self.params, self.buffers, x)

    def _big_cpu_attention(self, k: int, x: torch.Tensor) -> bool:
        """Whether k heads' self-attention on x (B, N, D) would materialise more than CPU_ATTENTION_BYTES
        of N x N scores under vmap (the math kernel; e.g. 8,192 tokens under the paper's protocol)."""
        blocks = getattr(getattr(self._base, "pooler", None), "blocks", ())
        if x.device.type != "cpu" or not len(blocks) or x.dim() != 3:
            return False
        b, n = x.shape[:2]
        return k * 2 * b * blocks[0].attn.num_heads * n * n * 4 > CPU_ATTENTION_BYTES

    def _forward(self, params: dict, buffers: dict, x: torch.Tensor) -> torch.Tensor:
        """(k, B, *out) of the heads in ``params``: under vmap, or, where their attention would be too big
        for the CPU's math kernel, one head after another with torch's memory-efficient CPU kernel."""
        k = next(iter(params.values())).size(0)
        if not self._big_cpu_attention(k, x):
            return self._vmapped(params, buffers, x)
        one = lambda d, j: {n: v[j] for n, v in d.items()}  # noqa: E731
        return torch.stack([self._call(one(params, j), one(buffers, j), x) for j in range(k)])

    @torch.inference_mode()
    def predict(
        self,
        x: torch.Tensor,
        index: Sequence[int] | None = None,
        batch: int = 256,
        amp: torch.dtype | None = None,
        chunks: Chunks | None = None,
    ) -> np.ndarray:
        """x (n, ...) shared by all heads -> float32 outputs (K', n, *out) of the heads in
        ``index`` (default: all K), computed ``batch`` samples at a time (halved while a batch does not
        fit in GPU memory), under ``amp`` autocast on CUDA."""
        ix = torch.as_tensor(list(range(len(self)) if index is None else index), dtype=torch.long, device=self.device)
        params = {k: v.detach()[ix] for k, v in self.params.items()}
        buffers = {k: v[ix] for k, v in self.buffers.items()}
        dev, chunks = self.device, chunks or Chunks("prediction samples")

        def run(b: int) -> np.ndarray:
            outs = []
            for i in range(0, x.size(0), b):
                with _autocast(dev, amp):
                    outs.append(self._forward(params, buffers, x[i : i + b].to(dev).float()).float())
            return torch.cat(outs, dim=1).cpu().numpy()  # metrics are computed on the CPU

        return chunks.run(min(batch, max(x.size(0), 1)), run)

    def grads(
        self,
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        x: torch.Tensor,
        y: torch.Tensor,
        amp: torch.dtype | None = None,
        scale: torch.Tensor | None = None,
        chunks: Chunks | None = None,
    ) -> list[torch.Tensor]:
        """Gradients (K, *shape) of every head's loss on the shared batch x (B, ...) with targets y (B, ...):
        ``loss_fn(out (k, B, ...), y (k, B, ...)) -> (k,)``; each head's loss multiplied by ``scale[k]``
        if given (:class:`HeadScaler`). On CUDA the heads run ``chunks`` at a time; on the CPU all at once,
        or one at a time where their attention is too big for vmap (:meth:`_forward`)."""
        params = list(self.params.values())
        one_by_one = self._big_cpu_attention(len(self), x)
        if one_by_one:
            chunks = Chunks("probe heads")
            chunks.size = 1
        if chunks is None or (self.device.type != "cuda" and not one_by_one):
            out = self(x)  # (K, B, ...)
            loss = loss_fn(out, y.expand(len(self), *y.shape))
            # the heads' losses are independent: the gradient of their sum is each head's own
            return list(torch.autograd.grad((loss if scale is None else loss * scale).sum(), params))

        def run(chunk: int) -> list[torch.Tensor]:
            full = [torch.empty_like(p) for p in params]
            for a in range(0, len(self), chunk):
                sub = {k: v[a : a + chunk] for k, v in self.params.items()}
                with _autocast(self.device, amp):
                    out = self._forward(sub, {k: v[a : a + chunk] for k, v in self.buffers.items()}, x)
                    loss = loss_fn(out.float(), y.expand(out.size(0), *y.shape))
                if scale is not None:
                    loss = loss * scale[a : a + chunk]
                for f, g in zip(full, torch.autograd.grad(loss.sum(), list(sub.values())), strict=True):
                    f[a : a + chunk] = g
            return full

        return chunks.run(len(self), run)

    def subset(self, index: Sequence[int]) -> HeadBank:
        """The heads ``index`` as a bank of their own (copies of their weights): a rank's share."""
        ix = torch.as_tensor(list(index), dtype=torch.long)
        bank = copy.copy(self)
        bank.params = {k: v.detach()[ix].clone().requires_grad_(v.requires_grad) for k, v in self.params.items()}
        bank.buffers = {k: v[ix].clone() for k, v in self.buffers.items()}
        bank.hparams = [dict(self.hparams[i]) for i in index]
        return bank

    def module(self, k: int) -> nn.Module:
        """Head k as an ordinary module (a copy of its weights)."""
        head = copy.deepcopy(self._base).to_empty(device="cpu")
        state = {n: v[k].detach().clone() for n, v in {**self.params, **self.buffers}.items()}
        head.load_state_dict(state)
        return head.eval()


def _autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    if dtype is not None and device.type == "cuda":
        return torch.autocast("cuda", dtype=dtype)
    return contextlib.nullcontext()


class HeadScaler:
    """A dynamic loss scale per head for fp16 training (torch's ``GradScaler`` rules, head by head:
    start at 2**16, halve when a head's gradients are not finite and skip that head's update, double
    after 2,000 finite steps), as the authors' eval.py keeps one ``GradScaler`` per head."""

    def __init__(self, k: int, device: torch.device, init: float = 2.0**16, interval: int = 2000) -> None:
        self.scale = torch.full((k,), init, dtype=torch.float32, device=device)
        self.good = torch.zeros(k, dtype=torch.int64, device=device)
        self.interval = interval

    def unscale(self, grads: list[torch.Tensor]) -> torch.Tensor:
        """Divide each head's gradients by its scale, in place -> (K,) bool: heads whose gradients are finite."""
        finite = torch.ones_like(self.good, dtype=torch.bool)
        for g in grads:
            inv = (1.0 / self.scale).view(-1, *([1] * (g.dim() - 1)))
            g.mul_(inv)
            finite &= torch.isfinite(g.flatten(1)).all(1)
        return finite

    def update(self, finite: torch.Tensor) -> None:
        self.good = torch.where(finite, self.good + 1, torch.zeros_like(self.good))
        grow = self.good >= self.interval
        self.scale = torch.where(~finite, self.scale * 0.5, torch.where(grow, self.scale * 2.0, self.scale))
        self.good = torch.where(grow, torch.zeros_like(self.good), self.good)

    def state_dict(self) -> dict:
        return {"scale": self.scale.cpu(), "good": self.good.cpu()}

    def load_state_dict(self, state: dict) -> None:
        self.scale, self.good = state["scale"].to(self.scale.device), state["good"].to(self.good.device)


class StackedAdamW:
    """AdamW (decoupled weight decay, on every parameter) for stacked parameters (K, *shape), with
    a learning rate and weight decay per head (K,).

    It is ``torch.optim.AdamW(fused=True)`` with one parameter group per head whose parameters
    are the heads' slices of the stacked tensors (views sharing their storage): the fused kernel
    updates ~5 M parameters of a 12-head grid in ~5 ms on 2 CPU cores where the same update in
    elementwise tensor ops takes ~35 ms (memory traffic of ten passes instead of one).
    """

    def __init__(
        self,
        params: Sequence[torch.Tensor],
        lr: Sequence[float],
        weight_decay: Sequence[float],
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        self.params = list(params)
        if any(p.size(0) != len(lr) for p in self.params) or len(weight_decay) != len(lr):
            raise ValueError("every parameter, lr and weight_decay needs the same leading size K")
        self.lr = list(lr)
        groups = [
            # detached views: leaves for the optimizer, updated in place in the stacked storage
            {"params": [p.detach()[k] for p in self.params], "lr": lr[k], "weight_decay": weight_decay[k]}
            for k in range(len(lr))
        ]
        self._opt = torch.optim.AdamW(groups, betas=betas, eps=eps, fused=True)

    def step(self, grads: Sequence[torch.Tensor], lr_scale: float = 1.0, skip: torch.Tensor | None = None) -> None:
        """One update from the stacked gradients, learning rates ``lr * lr_scale`` (the schedule's
        factor at this step); heads where ``skip`` (K,) is True are not updated at all (no moment or
        step count changes: their gradients are left unset)."""
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        skipped = set() if skip is None else set(torch.nonzero(skip).flatten().tolist())
        # The fused CPU kernel (torch 2.14) reads a gradient's storage in its parameter's layout,
        # ignoring the gradient's strides: vmapped linear layers give transposed gradients, which
        # it would apply transposed (cf. pytorch/pytorch#106951, where CUDA refuses such strides).
        # Contiguous copies make the layouts agree.
        grads = [g.contiguous() for g in grads]
        for k, group in enumerate(self._opt.param_groups):
            group["lr"] = self.lr[k] * lr_scale
            for view, g in zip(group["params"], grads, strict=True):
                view.grad = None if k in skipped else g[k]
        self._opt.step()

    def state_dict(self) -> dict:
        return self._opt.state_dict()

    def load_state_dict(self, state: dict) -> None:
        self._opt.load_state_dict(state)


def saved_per_token(depth: int, num_heads: int = 4, mlp_ratio: float = 4.0, dim: int = 64, tokens: int = 40) -> float:
    """Elements the autograd graph keeps for backward per head, sample, token and channel in a bank
    step of attentive probes of ``depth`` (measured: one step of the real bank at a small size with
    a saved-tensor hook; the heads' own weights left out (they are the states), and attention
    matrices (N x N), as a GPU's memory-efficient attention kernel keeps O(N) of them)."""
    from .heads import AttentiveProbe

    torch.manual_seed(0)
    k, b = 2, 2
    bank = HeadBank([AttentiveProbe(dim, 3, num_heads, depth, mlp_ratio) for _ in range(k)], [{}] * k)
    seen: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in [*bank.params.values(), *bank.buffers.values()]}

    def pack(t: torch.Tensor) -> torch.Tensor:
        ptr = t.untyped_storage().data_ptr()
        attention = t.dim() >= 2 and t.shape[-1] == tokens and t.shape[-2] == tokens
        if ptr not in weights and not attention:  # the weights are counted as states, not activations
            seen[ptr] = t.untyped_storage().nbytes() // t.element_size()
        return t

    x = torch.randn(b, tokens, dim)
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = bank(x)
    del out
    return sum(seen.values()) / (k * b * tokens * dim)


def bank_memory(
    dim: int,
    tokens: int,
    heads: int,
    depth: int,
    batch: int,
    chunk: int | None = None,
    num_heads: int = 16,
    mlp_ratio: float = 4.0,
    act_bytes: int = 2,
    per_token: float | None = None,
) -> dict[str, float]:
    """GiB of a bank step on a GPU: the heads' parameters, gradients and AdamW moments (float32), the
    activations of ``chunk`` heads at a time (all at once: None) in ``act_bytes`` per element, and the
    batch's tokens. Per-head parameters are counted from the module; activations from
    :func:`saved_per_token` (what this code's autograd graph keeps)."""
    from .heads import AttentiveProbe

    with torch.device("meta"):
        params = sum(p.numel() for p in AttentiveProbe(dim, 1, num_heads, depth, mlp_ratio).parameters())
    gib = 2.0**30
    per = per_token if per_token is not None else saved_per_token(depth, min(num_heads, 4), mlp_ratio)
    return {
        "states": heads * params * 4 * 4 / gib,  # weights, gradients, two moments
        "activations": (chunk or heads) * batch * tokens * dim * per * act_bytes / gib,
        "tokens": batch * tokens * dim * 4 / gib,
    }


def bank_memory_table(tokens: int = 8192, heads: int = 20, depth: int = 4) -> str:
    """The README's table of :func:`bank_memory` for ViT-L and ViT-g tokens under the paper's protocol."""
    per = saved_per_token(depth)
    rows = [
        "| encoder (width) | batch | heads per chunk | heads' weights, gradients, AdamW (fp32) | activations | total |",
        "|---|---|---|---|---|---|",
    ]
    for name, dim in (("ViT-L (1,024)", 1024), ("ViT-g (1,408)", 1408)):
        for batch in (4, 8):
            for chunk in (heads, 4, 1):
                m = bank_memory(dim, tokens, heads, depth, batch, chunk, per_token=per)
                total = sum(m.values())
                label = f"{chunk} (all)" if chunk == heads else str(chunk)
                cells = (
                    name,
                    batch,
                    label,
                    f"{m['states']:.1f} GiB",
                    f"{m['activations']:.1f} GiB",
                    f"{total:.1f} GiB",
                )
                rows.append("| " + " | ".join(map(str, cells)) + " |")
    return "\n".join(rows)
