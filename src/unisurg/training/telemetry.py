"""Collapse telemetry for self-supervised pretraining (what V-JEPA users keep asking for).

- ``feature_std``: mean over feature dims of the std over tokens — falls to ~0 when every
  token maps to the same vector (complete collapse);
- ``effective_rank``: exp(entropy) of the normalised singular values of the centred token
  matrix (RankMe; Garrido et al. 2023) — falls when features span few directions
  (dimensional collapse);
- ``RegionProbe``: a cheap periodic probe — closed-form ridge regression from mean-pooled
  encoder features to the anatomical region of held-out clips of the curated index (a label
  curation gives for free), fitted on some videos, scored on others. Colour alone separates
  regions in the built-in corpus: :mod:`.diagnostics` probes surgical phase instead.
"""

from __future__ import annotations

import numpy as np
import pyarrow.parquet as pq
import torch


@torch.no_grad()
def feature_std(h: torch.Tensor) -> float:
    """h (B, N, D) -> mean_d std over all B*N tokens."""
    return h.reshape(-1, h.size(-1)).float().std(dim=0).mean().item()


@torch.no_grad()
def effective_rank(h: torch.Tensor, eps: float = 1e-12) -> float:
    """h (B, N, D) -> RankMe effective rank in [1, min(B*N, D)]."""
    z = h.reshape(-1, h.size(-1)).float()
    s = torch.linalg.svdvals(z - z.mean(dim=0))
    p = s / (s.sum() + eps) + eps
    return float(torch.exp(-(p * p.log()).sum()))


class RegionProbe:
    """Ridge probe: mean-pooled features -> anatomical region, fit on half the videos, scored on the rest."""

    def __init__(self, clips_parquet: str, per_region: int = 8, seed: int = 0) -> None:
        t = pq.read_table(clips_parquet, columns=["video_id", "region"]).to_pandas()
        rng = np.random.default_rng(seed)
        rows, fit = [], []
        for _, g in t.groupby("region", sort=True):
            videos = sorted(g["video_id"].unique())
            if len(videos) < 2:
                continue  # needs one video to fit and another to score
            for j, v in enumerate(videos):
                idx = g.index[g["video_id"] == v].to_numpy()
                take = rng.choice(idx, size=min(len(idx), max(per_region // len(videos), 1)), replace=False)
                rows += take.tolist()
                fit += [j % 2 == 0] * len(take)
        self.rows = np.asarray(rows, np.int64)
        self.fit = np.asarray(fit, bool)
        labels = t["region"].to_numpy()[self.rows]
        self.classes, self.y = np.unique(labels, return_inverse=True)

    @property
    def usable(self) -> bool:
        return len(self.classes) >= 2 and self.fit.any() and (~self.fit).any()

    @torch.no_grad()
    def score(self, encoder: torch.nn.Module, clip_fn, lam: float = 1.0) -> float:
        """Accuracy of ridge regression on one-hot regions; ``clip_fn(row) -> (3, T, H, W)`` tensor."""
        was_training = encoder.training
        encoder.eval()
        feats = (
            torch.cat(
                [
                    encoder(torch.stack([clip_fn(int(r)) for r in self.rows[i : i + 16]])).mean(dim=1)
                    for i in range(0, len(self.rows), 16)
                ]
            )
            .double()
            .numpy()
        )
        encoder.train(was_training)
        y = np.eye(len(self.classes))[self.y]
        pred = ridge_scores(feats[self.fit], y[self.fit], feats[~self.fit], lam).argmax(1)
        return float(np.mean(pred == self.y[~self.fit]))


def ridge_scores(x_fit: np.ndarray, y_fit: np.ndarray, x: np.ndarray, lam: float = 1.0) -> np.ndarray:
    """Ridge regression fitted on (x_fit (n, D), one-hot y_fit (n, C)), features standardised with the
    fitted rows' statistics -> scores (m, C) of ``x`` (m, D)."""
    mu, sd = x_fit.mean(0), x_fit.std(0) + 1e-6
    xf, xs = (x_fit - mu) / sd, (x - mu) / sd
    w = np.linalg.solve(xf.T @ xf + lam * np.eye(xf.shape[1]), xf.T @ y_fit)
    return xs @ w
