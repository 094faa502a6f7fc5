"""The three UniSurg additions to latent prediction, and the pixel-reconstruction baseline.

The paper does not publish its loss formulas; these are the instantiations we chose, every
coefficient exposed in ``params.yaml`` (``pretrain.motion``, ``pretrain.affinity``,
``pretrain.diversity``). Shapes: B clips, N = T'H'W' tokens (t-major), D features.

1. **Motion-guided latent prediction.** Per-tubelet motion saliency ``m_i`` (B, N): the mean
   optical-flow magnitude over the tubelet's pixels, after subtracting each frame's median
   flow (camera motion), from OpenCV Farnebäck on the decoded frames; or, as a cheap proxy,
   the mean absolute difference between consecutive frames. Normalised per clip,
   ``m̂ = m / mean(m)``. It weights the latent L1 loss over target tokens,
   ``L = Σ_i w_i |z_i − sg(LN(h_i))|_1 / Σ_i w_i`` with ``w_i = 1 + α·m̂_i``, and biases mask
   placement: a block's position is drawn with probability ∝ (mean m̂ under it)^β.
2. **Spatiotemporal affinity self-distillation.** With L2-normalised predicted tokens ẑ and
   teacher tokens ĥ at the target positions, ``A = softmax(ẑẑᵀ/τ)`` row-wise over the
   tokens that share the row token's time step (spatial affinity) or its spatial position
   (temporal affinity), the diagonal excluded; the loss is the mean over a clip's rows of
   ``KL(A_teacher ‖ A_student)``, averaged over clips, spatial and temporal averaged. About ``max_tokens``
   tokens per clip take part: every time step of a random subset of the clip's own spatial
   positions, drawn from the clip's own seeded generator.
3. **Feature diversity regularisation** on the encoder's context tokens before its final
   LayerNorm, each token standardised over its features (u = LN without affine, so the term is
   scale-free: a larger norm weight cannot satisfy it), per clip over the token axis:
   ``mean_d relu(γ − sqrt(Var_k u_kd + ε))`` plus ``cov_weight ·`` (sum of squared off-diagonal
   covariances)/D (VICReg-style), averaged over clips.

Baseline: **pixel reconstruction** (VideoMAE-style) regresses each masked tubelet's pixels,
normalised per patch (mean 0, variance 1), with an MSE loss.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------- motion weighting


def motion_weights(m_hat: torch.Tensor, idx: torch.Tensor, alpha: float) -> torch.Tensor:
    """Loss weights of target tokens: w = 1 + α·m̂ gathered at idx. m_hat (B, N), idx (B, K) -> (B, K)."""
    return 1.0 + alpha * torch.gather(m_hat, 1, idx)


# --------------------------------------------------------------------------- affinity


def _affinity_kl(s_logits: torch.Tensor, t_logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """KL(softmax(t) || softmax(s)) restricted to ``allowed``, averaged over each clip's rows that have
    >= 1 allowed entry, then over clips (a clip without such rows counts 0).

    s_logits, t_logits (B, K, K); allowed (B, K, K) bool. Every clip weighs the same whatever its
    number of rows, so the loss of a batch split over processes averages to the whole batch's (DDP).
    """
    neg = torch.finfo(s_logits.dtype).min
    s = s_logits.masked_fill(~allowed, neg)
    t = t_logits.masked_fill(~allowed, neg)
    log_ps, log_pt = F.log_softmax(s, dim=-1), F.log_softmax(t, dim=-1)
    kl = (log_pt.exp() * (log_pt - log_ps)).masked_fill(~allowed, 0.0).sum(-1)  # (B, K)
    rows = allowed.any(-1)  # (B, K)
    per_clip = (kl * rows).sum(1) / rows.sum(1).clamp_min(1)  # (B,)
    return per_clip.mean()


def affinity_subsample(
    idx: torch.Tensor, grid: tuple[int, int, int], max_tokens: int, generators: list[torch.Generator]
) -> torch.Tensor:
    """Which target tokens enter the affinity loss: idx (B, K) -> keep (B, K) bool.

    Each clip keeps every time step of a random subset of *its own* spatial positions, about
    ``max_tokens`` tokens, drawn from its own generator ``generators[b]`` (seeded by (seed, step,
    sample index) by the caller): a clip's subset depends neither on the other clips of the batch,
    nor on the process that draws it, nor on the global RNG. All True when K <= max_tokens.
    """
    B, K = idx.shape
    if not max_tokens or K <= max_tokens:
        return torch.ones(B, K, dtype=torch.bool, device=idx.device)
    s_id = (idx % (grid[1] * grid[2])).cpu()  # (B, K) spatial position of each token
    keep = torch.zeros(B, K, dtype=torch.bool)
    for b in range(B):
        pos = torch.unique(s_id[b])
        n = max(1, max_tokens * len(pos) // K)
        chosen = pos[torch.randperm(len(pos), generator=generators[b])[:n]]
        keep[b] = torch.isin(s_id[b], chosen)
    return keep.to(idx.device)


def affinity_loss(
    z: torch.Tensor,
    h: torch.Tensor,
    idx: torch.Tensor,
    grid: tuple[int, int, int],
    tau: float,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial and temporal affinity distillation losses.

    z: student (predicted) tokens (B, K, D); h: teacher tokens at the same positions (B, K, D),
    no gradient; idx: their token indices (B, K); keep (B, K) bool: the tokens that take part
    (:func:`affinity_subsample`; None = all). Returns (spatial, temporal) scalar losses.
    """
    if keep is not None and not bool(keep.all()):
        # pack each clip's kept tokens to the front: (B, K') with K' the largest count, padding masked out
        n = keep.sum(1)
        order = torch.argsort((~keep).to(torch.int8), dim=1, stable=True)[:, : int(n.max())]  # (B, K')
        valid = torch.gather(keep, 1, order)
        z, h, idx = (
            torch.gather(a, 1, order.unsqueeze(-1).expand(-1, -1, a.size(-1))) for a in (z, h, idx.unsqueeze(-1))
        )
        idx = idx.squeeze(-1)
    else:
        valid = torch.ones(idx.shape, dtype=torch.bool, device=idx.device)
    per_frame = grid[1] * grid[2]
    t_id, s_id = idx // per_frame, idx % per_frame  # (B, K) time step and spatial position
    zn, hn = F.normalize(z, dim=-1), F.normalize(h, dim=-1)
    s_logits = zn @ zn.transpose(1, 2) / tau  # (B, K, K)
    t_logits = hn @ hn.transpose(1, 2) / tau
    eye = torch.eye(z.size(1), dtype=torch.bool, device=z.device).unsqueeze(0)
    pair = valid.unsqueeze(2) & valid.unsqueeze(1) & ~eye  # both tokens kept, not the diagonal
    same_t = (t_id.unsqueeze(2) == t_id.unsqueeze(1)) & pair
    same_s = (s_id.unsqueeze(2) == s_id.unsqueeze(1)) & pair
    return _affinity_kl(s_logits, t_logits, same_t), _affinity_kl(s_logits, t_logits, same_s)


# --------------------------------------------------------------------------- diversity


def diversity_loss(
    z: torch.Tensor, gamma: float = 1.0, eps: float = 1e-4, scope: str = "clip"
) -> tuple[torch.Tensor, torch.Tensor]:
    """VICReg-style variance and covariance terms over the token axis of each clip, scale-free.

    ``scope="batch"``: over the clips of the batch instead (VICReg's own axis): each clip's tokens
    are mean-pooled, the pooled vectors standardised over their features, and the terms taken across
    the B clips. It guards against different clips collapsing onto one another, which the per-clip
    terms cannot see, and does not penalise a feature that is constant within a clip (what a
    pooled probe reads). It needs B > 1 clips per process.

    z (B, K, D): the encoder's context tokens *before* its final LayerNorm. Each token is first
    standardised over its features (layer norm without affine: (z − mean_d) / std_d), so the
    terms do not change when the tokens are rescaled — by the residual stream or by the final
    norm's affine weight, which is not weight-decayed and could otherwise buy variance without
    any change in the representation. Identical tokens (collapse) give variance term γ.
    -> (variance_term, covariance_term), each averaged over clips:
    variance = mean_d relu(γ − sqrt(Var_k u_kd + ε)); covariance = Σ_{d≠e} C_de² / D, u the
    standardised tokens.
    """
    if scope == "batch":
        u = F.layer_norm(z.float().mean(dim=1), (z.size(-1),))[None]  # (1, B, D): the clips as one set
    else:
        u = F.layer_norm(z.float(), (z.size(-1),))  # (B, K, D)
    uc = u - u.mean(dim=1, keepdim=True)
    var = uc.pow(2).sum(dim=1) / max(u.size(1) - 1, 1)  # (B, D), unbiased over tokens
    var_term = F.relu(gamma - torch.sqrt(var + eps)).mean()
    cov = uc.transpose(1, 2) @ uc / max(u.size(1) - 1, 1)  # (B, D, D)
    off = cov - torch.diag_embed(torch.diagonal(cov, dim1=1, dim2=2))
    cov_term = (off.pow(2).sum(dim=(1, 2)) / u.size(2)).mean()
    return var_term, cov_term


# --------------------------------------------------------------------------- pixel baseline


def patchify(x: torch.Tensor, tubelet: int, patch: int) -> torch.Tensor:
    """x (B, C, T, H, W) -> tubelet pixels (B, N, tubelet*patch*patch*C), t-major token order."""
    B, C, T, H, W = x.shape
    x = x.reshape(B, C, T // tubelet, tubelet, H // patch, patch, W // patch, patch)
    x = x.permute(0, 2, 4, 6, 3, 5, 7, 1)  # (B, T', H', W', tubelet, p, p, C)
    return x.reshape(B, (T // tubelet) * (H // patch) * (W // patch), -1)


def pixel_targets(x: torch.Tensor, tubelet: int, patch: int, eps: float = 1e-6) -> torch.Tensor:
    """VideoMAE targets: each tubelet's pixels normalised to mean 0 / variance 1. -> (B, N, P)."""
    p = patchify(x, tubelet, patch)
    return (p - p.mean(-1, keepdim=True)) / (p.var(-1, keepdim=True, unbiased=True) + eps).sqrt()
