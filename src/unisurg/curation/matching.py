"""Matching videos by content: is one a (trimmed, cropped, re-encoded, re-timed) copy of another?

Two videos match when ``RUN_SECONDS`` consecutive seconds of one (a video hashed once per second)
line up with as many consecutive seconds of a held-out video, at any offset, at one of the held-out
video's phases (quarter seconds) and crop scales (:mod:`.signatures`), with a mean Hamming distance of
at most ``MAX_MEAN_BITS`` (of 63). A uniform second never matches. Seconds are seconds of content
time, so a 25-fps file, its 10-fps re-encode and its 1-fps frame export line up.

The thresholds come from measurements (``perf/bench_leakage.py``, rendered in ``reports/perf.md``):
the largest mean distance of an edited copy of a built-in corpus video, the smallest between any two
distinct videos of the corpus, and the false-positive rate among 10,000 synthetic unrelated videos.

Finding the pairs to compare: every held-out second against every other second costs
``protected seconds x corpus seconds`` distance computations, fine for a hospital archive checked
against one benchmark (:func:`brute_force_candidates` below ``BRUTE_FORCE_LIMIT``), not for 50,000
videos of 30 minutes. Above it, :func:`keyed_candidates` looks up exact keys in DuckDB (a hash join:
work proportional to the seconds plus the key collisions, not to their product): the key of second
``t`` is the 15-bit low-frequency codes of seconds ``t`` .. ``t + KEY_SECONDS - 1`` (every phase and
scale of a held-out video: 20 keys per second), and each key collision proposes one (pair, offset)
that is then verified like every other candidate. A copy is found when at least one of its keys
survives the edit intact: the benchmark reports that rate per edit, and the candidates at scale.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from .signatures import CODE_BITS, HASH_BITS, SCALES, SecondHashes

RUN_SECONDS = 5  # consecutive seconds that must line up (a copy shorter than this is not recognised)
# of 63, mean over the run: midway between the largest distance of an edited copy (5.6) and the smallest
# between two distinct videos (7.2) measured on the built-in corpus (reports/perf.md "Leakage signatures")
MAX_MEAN_BITS = 6.4
BRUTE_FORCE_LIMIT = 400_000_000  # second pairs; above this the keyed candidate search is used
KEY_SECONDS = 3  # seconds of codes per exact key of the candidate search (see reports/perf.md)
INVALID = HASH_BITS  # distance of a pair involving a uniform second: as far as two hashes can be


@dataclass(frozen=True)
class Match:
    """``b``'s seconds ``[b_start, b_start + seconds)`` show ``a``'s seconds from ``a_start`` (a
    fractional second for a copy trimmed between two), at ``scale`` of ``a``'s border-free frame."""

    a: str
    b: str
    a_start: float
    b_start: int
    seconds: int
    scale: float
    mean_bits: float

    def describe(self) -> str:
        zoom = "" if self.scale == 1.0 else f", its frame = the central {self.scale:.0%}"
        return (
            f"its seconds {self.b_start}-{self.b_start + self.seconds} show {self.a_start:g}-"
            f"{self.a_start + self.seconds:g} s{zoom} (mean {self.mean_bits:.1f} of {HASH_BITS} bits)"
        )


def _variant_distances(a: SecondHashes, b: SecondHashes, p: int, s: int) -> np.ndarray:
    """(a.seconds, b.seconds) float: Hamming distance of ``a`` at phase p, scale s to ``b``'s whole seconds."""
    d = np.bitwise_count(a.hash[p, :, s][:, None] ^ b.hash[0, :, 0][None, :]).astype(np.float64)
    d[~(a.valid[p][:, None] & b.valid[0][None, :])] = INVALID
    return d


def _sheared(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diagonals of d (m, n) as columns -> (m, m + n - 1) with INVALID outside d, and their offsets."""
    m, n = d.shape
    offsets = np.arange(-m + 1, n)
    j = np.arange(m)[:, None] + offsets[None, :]
    ok = (j >= 0) & (j < n)
    return np.where(ok, d[np.arange(m)[:, None], j.clip(0, n - 1)], INVALID), offsets


def _extend(means: np.ndarray, best: int, limit: float) -> tuple[int, int]:
    """The stretch of consecutive windows within ``limit`` around window ``best`` -> (first, count)."""
    ok = means <= limit
    lo, hi = best, best
    while lo > 0 and ok[lo - 1]:
        lo -= 1
    while hi + 1 < len(ok) and ok[hi + 1]:
        hi += 1
    return lo, hi - lo + 1


def best_match(
    a_id: str, a: SecondHashes, b_id: str, b: SecondHashes, offsets: np.ndarray | None = None
) -> tuple[float, Match | None]:
    """Lowest ``RUN_SECONDS``-window mean distance of ``b`` (whole seconds) to ``a`` (every phase and
    scale it was hashed at) over all offsets, or the given ones (``b`` second = ``a`` second + offset)
    -> (that mean, the match when it is within ``MAX_MEAN_BITS``, extended over the whole run)."""
    run = RUN_SECONDS
    if a.seconds < run or b.seconds < run:
        return float("inf"), None
    best: tuple[float, int, int, int, int] | None = None  # (mean, p, s, offset, window)
    best_diag = np.zeros(0)  # (a.seconds,) the best offset's distances, INVALID outside b
    for p in range(a.hash.shape[0]):
        for s in range(a.hash.shape[2]):
            d = _variant_distances(a, b, p, s)
            cols, offs = _sheared(d)
            if offsets is not None:
                keep = np.isin(offs, offsets)
                cols, offs = cols[:, keep], offs[keep]
            if not len(offs):
                continue
            c = np.concatenate([np.zeros((1, cols.shape[1])), np.cumsum(cols, axis=0)])
            means = (c[run:] - c[:-run]) / run  # (m - run + 1, offsets): window starts x offsets
            w, k = np.unravel_index(int(np.argmin(means)), means.shape)
            if best is None or means[w, k] < best[0]:
                best = (float(means[w, k]), p, s, int(offs[k]), int(w))
                best_diag = cols[:, k].copy()
    if best is None:
        return float("inf"), None
    mean, p, s, off, w = best
    if mean > MAX_MEAN_BITS:
        return mean, None
    c = np.concatenate([[0.0], np.cumsum(best_diag)])
    first, count = _extend((c[run:] - c[:-run]) / run, w, MAX_MEAN_BITS)
    phase = p / a.hash.shape[0]
    m = Match(a_id, b_id, round(first + phase, 2), first + off, count + run - 1, SCALES[s], round(mean, 2))
    return mean, m


# --------------------------------------------------------------------------- candidates


def brute_force_candidates(protected: dict[str, SecondHashes], others: dict[str, SecondHashes]) -> list[tuple]:
    """Every (protected, other) pair at every offset: exact, for small collections."""
    return [(p, o, None) for p in protected for o in others if p != o]


def second_keys(sigs: list[SecondHashes], span: int = KEY_SECONDS) -> pa.Table:
    """(vid, t, key) for every phase, scale and second t whose codes at t .. t + span - 1 are valid:
    the codes concatenated (15 bits each). A held-out video gives PHASES x len(SCALES) keys per second
    (a copy may show any of them), every other video one."""
    vids, ts, keys = [], [], []
    for v, s in enumerate(sigs):
        n = s.seconds - span + 1
        if n <= 0:
            continue
        for p in range(s.code.shape[0]):
            ok = np.ones(n, bool)
            for j in range(span):
                ok &= s.valid[p, j : j + n]
            t = np.flatnonzero(ok)
            for k in range(s.code.shape[2]):
                c = s.code[p, :, k].astype(np.int64)
                key = np.zeros(n, np.int64)
                for j in range(span):
                    key = (key << CODE_BITS) | c[j : j + n]
                keys.append(key[t])
                vids.append(np.full(len(t), v, np.int32))
                ts.append(t.astype(np.int32))
    cat = lambda xs, dt: np.concatenate(xs) if xs else np.zeros(0, dt)  # noqa: E731
    return pa.table({"vid": cat(vids, np.int32), "t": cat(ts, np.int32), "key": cat(keys, np.int64)})


def candidate_offsets(q: pa.Table, c: pa.Table, con=None) -> pa.Table:
    """(a, b, off): each distinct (held-out vid, other vid, offset) that shares at least one key (a
    DuckDB hash join of the two key tables of :func:`second_keys`)."""
    import duckdb

    con = con or duckdb.connect()
    con.register("q", q)
    con.register("c", c)
    try:
        return con.sql(
            "SELECT DISTINCT q.vid AS a, c.vid AS b, c.t - q.t AS off FROM q JOIN c USING (key) ORDER BY ALL"
        ).to_arrow_table()
    finally:
        con.unregister("q")
        con.unregister("c")


def keyed_candidates(protected: dict[str, SecondHashes], others: dict[str, SecondHashes], con=None) -> list[tuple]:
    """(protected id, other id, offsets) proposed by at least one shared key. Offsets include the
    neighbours of each voted one: a copy cut half a second off the original lines up with it one second
    earlier or later in places."""
    pids, oids = list(protected), list(others)
    q = second_keys([protected[i] for i in pids])
    c = second_keys([others[i].whole_seconds() for i in oids])
    rows = candidate_offsets(q, c, con).to_pydict()
    by_pair: dict[tuple[int, int], set[int]] = {}
    for a, b, off in zip(rows["a"], rows["b"], rows["off"]):
        by_pair.setdefault((a, b), set()).update((off - 1, off, off + 1))
    return [
        (pids[a], oids[b], np.array(sorted(offs))) for (a, b), offs in sorted(by_pair.items()) if pids[a] != oids[b]
    ]


def find_matches(
    protected: dict[str, SecondHashes], others: dict[str, SecondHashes], keyed: bool | None = None
) -> list[Match]:
    """Every (protected, other) pair that matches (``a`` = the protected video, ``b`` = the other),
    sorted by (b, a). ``keyed`` None: brute force below ``BRUTE_FORCE_LIMIT`` second pairs (counted
    with every phase and scale of the protected side)."""
    if keyed is None:
        pairs = sum(s.hash.size for s in protected.values()) * sum(len(s) for s in others.values())
        keyed = pairs > BRUTE_FORCE_LIMIT
    cands = keyed_candidates(protected, others) if keyed else brute_force_candidates(protected, others)
    out = []
    for p, o, offsets in cands:
        _, m = best_match(p, protected[p], o, others[o].whole_seconds(), offsets)
        if m is not None:
            out.append(m)
    return sorted(out, key=lambda m: (m.b, m.a))
