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
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap
from torch.nn.attention import SDPBackend, sdpa_kernel


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

    @torch.inference_mode()
    def predict(self, x: torch.Tensor, index: Sequence[int] | None = None, batch: int = 256) -> np.ndarray:
        """x (n, ...) shared by all heads -> float32 outputs (K', n, *out) of the heads in
        ``index`` (default: all K), computed ``batch`` samples at a time."""
        ix = torch.as_tensor(list(range(len(self)) if index is None else index), dtype=torch.long, device=self.device)
        params = {k: v.detach()[ix] for k, v in self.params.items()}
        buffers = {k: v[ix] for k, v in self.buffers.items()}
        dev = self.device
        outs = [self._vmapped(params, buffers, x[i : i + batch].to(dev).float()) for i in range(0, x.size(0), batch)]
        return torch.cat(outs, dim=1).cpu().numpy()  # metrics are computed on the CPU

    def module(self, k: int) -> nn.Module:
        """Head k as an ordinary module (a copy of its weights)."""
        head = copy.deepcopy(self._base).to_empty(device="cpu")
        state = {n: v[k].detach().clone() for n, v in {**self.params, **self.buffers}.items()}
        head.load_state_dict(state)
        return head.eval()


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

    def step(self, grads: Sequence[torch.Tensor], lr_scale: float = 1.0) -> None:
        """One update from the stacked gradients, learning rates ``lr * lr_scale`` (the schedule's
        factor at this step)."""
        if len(grads) != len(self.params):
            raise ValueError(f"{len(grads)} gradients for {len(self.params)} parameters")
        # The fused CPU kernel (torch 2.14) reads a gradient's storage in its parameter's layout,
        # ignoring the gradient's strides: vmapped linear layers give transposed gradients, which
        # it would apply transposed (cf. pytorch/pytorch#106951, where CUDA refuses such strides).
        # Contiguous copies make the layouts agree.
        grads = [g.contiguous() for g in grads]
        for k, group in enumerate(self._opt.param_groups):
            group["lr"] = self.lr[k] * lr_scale
            for view, g in zip(group["params"], grads, strict=True):
                view.grad = g[k]
        self._opt.step()
