"""Matching videos by content: is one a (trimmed, cropped, re-encoded, re-timed) copy of another?

Two videos match when ``RUN_SECONDS`` consecutive seconds of one line up with as many consecutive
seconds of the other, at any offset, with a mean distance of at most ``MAX_MEAN_BITS`` (of 64). The
distance of two seconds is the smaller Hamming distance of their two hashes (border-free frame,
centre crop: :mod:`.signatures`); a uniform second never matches. Seconds are whole seconds of
content time, so a 25-fps file, its 10-fps re-encode and its 1-fps frame export line up.

The thresholds come from measurements (``perf/bench_leakage.py``, rendered in ``reports/perf.md``):
the largest mean distance of an edited copy of a built-in corpus video and the smallest between
any two distinct videos of the corpus, and between 10,000 synthetic unrelated videos.

Finding the pairs to compare: every held-out second against every other second costs
``protected seconds x corpus seconds`` distance computations, fine for a hospital archive checked
against one benchmark (:func:`brute_force_candidates` below ``BRUTE_FORCE_LIMIT``), not for 50,000
videos of 30 minutes. Above it, :func:`keyed_candidates` looks up exact keys in DuckDB (a hash join:
work proportional to the seconds plus the key collisions, not to their product): the key of second
``t`` is the 15-bit low-frequency codes of seconds ``t`` and ``t + 1``, and each key collision
proposes one (pair, offset) that is then verified like every other candidate. A copy is found when at
least one of its 2-second keys survives the edit intact: the benchmark reports that rate by copy
length and edit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .signatures import CODE_BITS, SecondHashes

RUN_SECONDS = 5  # consecutive seconds that must line up (a copy shorter than this is not recognised)
MAX_MEAN_BITS = 14.0  # of 64, mean over the run; measured: see reports/perf.md "Leakage signatures"
BRUTE_FORCE_LIMIT = 400_000_000  # second pairs; above this the keyed candidate search is used
INVALID = 64  # distance of a pair involving a uniform second: as far as two hashes can be


@dataclass(frozen=True)
class Match:
    """``b`` seconds ``[b_start, b_start + seconds)`` show ``a`` seconds ``[a_start, ...)``."""

    a: str
    b: str
    a_start: int
    b_start: int
    seconds: int
    mean_bits: float

    def describe(self) -> str:
        a_end, b_end = self.a_start + self.seconds - 1, self.b_start + self.seconds - 1
        return (
            f"its seconds {self.b_start}-{b_end} show seconds {self.a_start}-{a_end} "
            f"(mean {self.mean_bits:.1f} of 64 bits)"
        )


def distances(a: SecondHashes, b: SecondHashes) -> np.ndarray:
    """(len(a), len(b)) uint8: per pair of seconds, the smaller Hamming distance of the two hashes."""
    d = np.minimum(
        np.bitwise_count(a.hash[:, None] ^ b.hash[None, :]), np.bitwise_count(a.crop[:, None] ^ b.crop[None, :])
    )
    d[~(a.valid[:, None] & b.valid[None, :])] = INVALID
    return d


def diagonal_run(diag: np.ndarray, run: int = RUN_SECONDS, limit: float = MAX_MEAN_BITS) -> tuple[float, int, int]:
    """Best window of ``run`` along one diagonal of distances -> (best mean, run start, run length).

    The run is the longest stretch of overlapping windows that all stay within ``limit`` and contain
    the best window (``length`` 0 when no window does)."""
    if len(diag) < run:
        return float("inf"), 0, 0
    c = np.concatenate([[0.0], np.cumsum(diag, dtype=np.float64)])
    means = (c[run:] - c[:-run]) / run  # (len - run + 1,) window means
    best = int(np.argmin(means))
    if means[best] > limit:
        return float(means[best]), best, 0
    ok = means <= limit
    lo = best
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    hi = best
    while hi + 1 < len(ok) and ok[hi + 1]:
        hi += 1
    return float(means[best]), lo, hi - lo + run


def best_match(
    a_id: str, a: SecondHashes, b_id: str, b: SecondHashes, offsets: np.ndarray | None = None
) -> tuple[float, Match | None]:
    """Lowest window mean between ``a`` and ``b`` over all offsets (or the given ones, ``b`` second =
    ``a`` second + offset) -> (that mean, the match if it is within ``MAX_MEAN_BITS``)."""
    if len(a) < RUN_SECONDS or len(b) < RUN_SECONDS:
        return float("inf"), None
    d = distances(a, b)
    if offsets is None:
        offsets = np.arange(-(len(a) - RUN_SECONDS), len(b) - RUN_SECONDS + 1)
    best, found = float("inf"), None
    for off in offsets.tolist():
        mean, start, length = diagonal_run(np.diagonal(d, off))
        if mean < best:
            best = mean
            a0, b0 = (start, start + off) if off >= 0 else (start - off, start)
            found = Match(a_id, b_id, a0, b0, length, round(mean, 2)) if length else None
    return best, found


# --------------------------------------------------------------------------- candidates


def brute_force_candidates(protected: dict[str, SecondHashes], others: dict[str, SecondHashes]) -> list[tuple]:
    """Every (protected, other) pair at every offset: exact, for small collections."""
    return [(p, o, None) for p in protected for o in others if p != o]


def second_keys(ids: list[str], sigs: list[SecondHashes]) -> pa.Table:
    """(vid, t, key) for every second t whose codes at t and t + 1 are valid: key = code_t << 15 | code_t+1."""
    vids, ts, keys = [], [], []
    for v, s in enumerate(sigs):
        if len(s) < 2:
            continue
        ok = s.valid[:-1] & s.valid[1:]
        t = np.flatnonzero(ok)
        k = (s.code[:-1].astype(np.int64) << CODE_BITS) | s.code[1:].astype(np.int64)
        vids.append(np.full(len(t), v, np.int32))
        ts.append(t.astype(np.int32))
        keys.append(k[t])
    cat = (lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt))  # noqa: E731
    return pa.table({"vid": cat(vids, np.int32), "t": cat(ts, np.int32), "key": cat(keys, np.int64)})


def keyed_candidates(protected: dict[str, SecondHashes], others: dict[str, SecondHashes], con=None) -> list[tuple]:
    """(protected id, other id, offsets) proposed by at least one shared 2-second key (DuckDB hash
    join and group-by). Offsets include the neighbours of each voted one: a copy cut half a second
    off the original lines up with it one second earlier or later in places."""
    import duckdb

    pids, oids = list(protected), list(others)
    q = second_keys(pids, [protected[i] for i in pids])  # noqa: F841 (read by DuckDB by name)
    c = second_keys(oids, [others[i] for i in oids])  # noqa: F841
    con = con or duckdb.connect()
    rows = con.sql(
        "SELECT q.vid AS a, c.vid AS b, c.t - q.t AS off FROM q JOIN c USING (key) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    by_pair: dict[tuple[int, int], set[int]] = {}
    for a, b, off in rows:
        by_pair.setdefault((a, b), set()).update((off - 1, off, off + 1))
    return [
        (pids[a], oids[b], np.array(sorted(offs)))
        for (a, b), offs in sorted(by_pair.items())
        if pids[a] != oids[b]
    ]


def find_matches(
    protected: dict[str, SecondHashes], others: dict[str, SecondHashes], keyed: bool | None = None
) -> list[Match]:
    """Every (protected, other) pair that matches (``a`` = the protected video, ``b`` = the other),
    sorted by (b, a). ``keyed`` None: brute force below ``BRUTE_FORCE_LIMIT`` second pairs."""
    if keyed is None:
        pairs = sum(len(s) for s in protected.values()) * sum(len(s) for s in others.values())
        keyed = pairs > BRUTE_FORCE_LIMIT
    cands = keyed_candidates(protected, others) if keyed else brute_force_candidates(protected, others)
    out = []
    for p, o, offsets in cands:
        _, m = best_match(p, protected[p], o, others[o], offsets)
        if m is not None:
            out.append(m)
    return sorted(out, key=lambda m: (m.b, m.a))
