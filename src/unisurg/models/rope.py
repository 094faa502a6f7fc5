"""3D rotary position embedding exactly as V-JEPA 2 computes it (released weights depend on it).

The head dimension is split into three equal, even chunks for (time, height, width),
``d = 2 * ((head_dim // 3) // 2)`` each; leftover dimensions are appended unrotated. Within a
chunk of size D the frequencies are ``omega_j = 10000 ** (-j / (D/2))`` for ``j < D/2``.

Known quirk, kept on purpose: the rotation pairs *interleaved* elements (x[2i], x[2i+1]) but
tiles the sin/cos tables (``repeat``, not ``repeat_interleave``), so element k uses frequency
``omega[k mod D/2]``. This is not a true rotation, but it is what the public V-JEPA 2 /
SurgMotion checkpoints were trained with ("fixing the bug would break compatibility").
"""

from __future__ import annotations

import torch


def rope_chunk(head_dim: int) -> int:
    """Size of each of the three (t, h, w) chunks of the head dimension."""
    return 2 * ((head_dim // 3) // 2)


def rotate(x: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
    """Rotate ``x`` (..., N, D) by integer positions ``pos`` (..., N) (broadcastable), V-JEPA 2 style."""
    d = x.size(-1)
    omega = torch.arange(d // 2, dtype=x.dtype, device=x.device)
    omega = 1.0 / 10000 ** (omega / (d / 2.0))  # (D/2,)
    freq = pos.unsqueeze(-1).to(x.dtype) * omega  # (..., N, D/2)
    # Tiled tables [w0..w_{D/2-1}, w0..w_{D/2-1}] against interleaved pairs: the V-JEPA 2 quirk.
    sin = torch.cat([freq.sin(), freq.sin()], dim=-1)  # (..., N, D)
    cos = torch.cat([freq.cos(), freq.cos()], dim=-1)
    y = x.unflatten(-1, (-1, 2))  # (..., N, D/2, 2) interleaved pairs
    y1, y2 = y.unbind(dim=-1)
    y = torch.stack((-y2, y1), dim=-1).flatten(-2)  # (..., N, D): (-x1, x0, -x3, x2, ...)
    return x * cos + y * sin


def token_positions(ids: torch.Tensor, grid_h: int, grid_w: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Token index -> integer (frame, row, column) in the (T', H', W') patch grid (t-major order)."""
    per_frame = grid_h * grid_w
    t = ids // per_frame
    rem = ids - t * per_frame
    h = rem // grid_w
    w = rem - h * grid_w
    return t, h, w


def apply_rope_3d(q: torch.Tensor, pos: tuple[torch.Tensor, torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Rotate queries or keys ``q`` (B, heads, N, head_dim) with 3D positions (each (N,) or (B, 1, N))."""
    d = rope_chunk(q.size(-1))
    pt, ph, pw = pos
    parts = [rotate(q[..., :d], pt), rotate(q[..., d : 2 * d], ph), rotate(q[..., 2 * d : 3 * d], pw)]
    if 3 * d < q.size(-1):
        parts.append(q[..., 3 * d :])  # leftover dims are not rotated
    return torch.cat(parts, dim=-1)
