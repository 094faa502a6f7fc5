"""Leakage signatures: where the matching threshold comes from, and what the candidate search costs.

1. **Distinct videos** of the built-in corpus (every video file and frame-folder video under
   ``data/synth``, rendered from different scene seeds; the documented overlap ``OVERLAP_PAIRS``
   aside): every ordered pair, the first hashed as a held-out video (quarter seconds, five crop
   scales), the second once per second, at every offset. A false positive is a pair within
   ``MAX_MEAN_BITS``; the known overlap must match.
2. **Edited copies** of ``--copies`` corpus videos, made the way re-hosting makes them: (a) the middle
   third re-encoded, cut mid-second, (b) an 85 % centre crop of a letterboxed copy with the borders
   removed, resized back, (c) re-timed to 10 fps, (d) a 1-fps PNG frame folder. A false negative is a
   copy above the threshold; also whether the keyed search (``KEY_SECONDS``-second keys) proposes it.
3. **10,000 synthetic unrelated videos** (60 s): hashes drawn bit by bit from the corpus's per-bit rates,
   each bit redrawn per second at the corpus's rate, held-out variants (phases, scales) flipped at the
   corpus's rate; ``--pairs`` random ordered pairs of them compared at every offset.
4. **Candidate search at scale**: ``--videos`` x ``--seconds`` seconds of codes (same model, fitted to the
   corpus's codes) against ``--held-out`` held-out videos of the same length (20 keys per second), with
   planted copies (segments of 30, 60 and 300 s whose codes flip at the rate measured on the real edited
   copies of part 2); the DuckDB join timed, candidates counted, planted copies found.

    python perf/bench_leakage.py --out reports/perf_leakage.json
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
from perf_report import machine  # beside this script
import pyarrow as pa

from unisurg.curation.inspection import scan
from unisurg.curation.matching import (
    HASH_BITS,
    KEY_SECONDS,
    MAX_MEAN_BITS,
    RUN_SECONDS,
    best_match,
    candidate_offsets,
    keyed_candidates,
)
from unisurg.curation.signatures import CODE_BITS, PHASES, SCALES, SecondHashes
from unisurg.media.video import VideoWriter, open_video

# The corpus's documented overlap (unisurg.synth.layouts.CHOLEC_ARCHIVE_SHARED): must match, is no false positive.
OVERLAP_PAIRS = {("benchmarks/CholecT50/videos/VID06", "benchmarks/cholec80/videos/video06.mp4")}
VARIANTS = PHASES * len(SCALES)


def corpus_videos(root: Path) -> list[Path]:
    """Every video file (``.mp4``, ``.avi``) and the frame-folder videos (CholecT50, PmLR50) of the corpus."""
    files = sorted([*root.rglob("*.mp4"), *root.rglob("*.avi")])
    bench = root / "benchmarks"
    folders = [p for d in (bench / "CholecT50" / "videos", bench / "PmLR50" / "frames") for p in sorted(d.iterdir())]
    return files + [p for p in folders if p.is_dir()]


def signatures_of(path: Path, held_out: bool, fps: float = 1.0) -> SecondHashes:
    return scan(open_video(path, fps=fps), 0, held_out)[0]


def overlap(a: str, b: str) -> bool:
    return (a, b) in OVERLAP_PAIRS or (b, a) in OVERLAP_PAIRS


# --------------------------------------------------------------------------- 1. distinct videos


def distinct_pairs(sigs: dict[str, SecondHashes]) -> dict:
    names = sorted(sigs)
    best = []
    for a in names:
        for b in names:
            if a != b and not overlap(a, b):
                best.append((best_match(a, sigs[a], b, sigs[b].whole_seconds())[0], a, b))
    means = np.array([x[0] for x in best])
    finite = means[np.isfinite(means)]
    closest = min(best)
    known = [best_match(a, sigs[a], b, sigs[b].whole_seconds())[0] for a, b in sorted(OVERLAP_PAIRS)]
    return {
        "videos": len(names),
        "ordered_pairs": len(best),
        "pairs_too_short": int((~np.isfinite(means)).sum()),
        "false_positives": int((finite <= MAX_MEAN_BITS).sum()),
        "min_mean_bits": round(float(finite.min()), 2),
        "p01_mean_bits": round(float(np.percentile(finite, 0.1)), 2),
        "closest_pair": [closest[1], closest[2]],
        "known_overlap_mean_bits": [round(float(x), 2) for x in known],
    }


# --------------------------------------------------------------------------- 2. edited copies


def write(path: Path, frames: np.ndarray, fps: float) -> None:
    with VideoWriter(path, fps, frames.shape[2], frames.shape[1], crf=28) as w:
        for f in frames:
            w.write(np.ascontiguousarray(f))


def edited_copies(video: Path, tmp: Path) -> dict[str, tuple[Path, Path, float]]:
    """edit -> (held-out original, copy, copy's frame-folder fps or 0)."""
    vr = open_video(video)
    frames, fps = vr.get_frames(np.arange(len(vr))), vr.fps
    n, h, w = len(frames), frames.shape[1], frames.shape[2]
    cut = int(round(fps * 0.4))  # the trim starts 0.4 s into a second
    write(tmp / "third.mp4", frames[n // 3 + cut : 2 * n // 3 + cut], fps)
    pad = h // 8
    boxed = np.stack([cv2.copyMakeBorder(f, pad, pad, 0, 0, cv2.BORDER_CONSTANT, value=(0, 0, 0)) for f in frames])
    write(tmp / "boxed.mp4", boxed, fps)
    dh, dw = round(h * 0.075), round(w * 0.075)
    crop = [cv2.resize(f[dh : h - dh, dw : w - dw], (w, h + 2 * pad), interpolation=cv2.INTER_AREA) for f in frames]
    write(tmp / "crop.mp4", np.stack(crop), fps)
    write(tmp / "retimed.mp4", frames[np.round(np.arange(0, n / fps, 0.1) * fps).astype(int).clip(0, n - 1)], 10.0)
    folder = tmp / "frames"
    folder.mkdir()
    for k, i in enumerate(np.round(np.arange(0, (n - 1) / fps + 1e-9) * fps).astype(int)):
        cv2.imwrite(str(folder / f"{k:06d}.png"), frames[i][..., ::-1])
    return {
        "a middle third, cut mid-second": (video, tmp / "third.mp4", 0.0),
        "b 85% crop, borders removed": (tmp / "boxed.mp4", tmp / "crop.mp4", 0.0),
        "c re-timed to 10 fps": (video, tmp / "retimed.mp4", 0.0),
        "d 1-fps PNG frames": (video, folder, 1.0),
    }


def code_flips(a: SecondHashes, b: SecondHashes, m) -> list[float]:
    """Per aligned second of a match: fraction of code bits that differ between the copy and the
    held-out variant it matched (the noise the keyed search must survive)."""
    p = int(round((m.a_start % 1) * PHASES)) % PHASES
    s = SCALES.index(m.scale)
    out = []
    for i in range(m.seconds):
        ta, tb = int(m.a_start) + i, m.b_start + i
        if ta < a.seconds and tb < b.seconds and a.valid[p, ta] and b.valid[0, tb]:
            out.append(bin(int(a.code[p, ta, s]) ^ int(b.code[0, tb, 0])).count("1") / CODE_BITS)
    return out


def copies(root: Path, count: int) -> tuple[dict, float]:
    videos = [v for v in sorted(root.rglob("*.mp4")) if open_video(v).meta.duration_s >= 3 * RUN_SECONDS + 2]
    pick = [videos[i] for i in np.linspace(0, len(videos) - 1, count).round().astype(int)]
    rows: dict[str, list] = {}
    flips: list[float] = []
    for v in pick:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (orig, copy, fps) in edited_copies(v, Path(tmp)).items():
                a, b = signatures_of(orig, True), signatures_of(copy, False, fps or 1.0)
                mean, m = best_match("orig", a, "copy", b)
                keyed = any(
                    best_match("orig", a, "copy", b, o)[1] for _, _, o in keyed_candidates({"orig": a}, {"copy": b})
                )
                rows.setdefault(name, []).append((mean, bool(keyed), b.seconds))
                if m is not None:
                    flips += code_flips(a, b, m)
    out = {}
    for name, r in rows.items():
        means = np.array([x[0] for x in r])
        out[name] = {
            "copies": len(r),
            "false_negatives": int((means > MAX_MEAN_BITS).sum()),
            "max_mean_bits": round(float(means.max()), 2),
            "median_seconds": float(np.median([x[2] for x in r])),
            "found_by_keyed_search": int(sum(x[1] for x in r)),
        }
    return out, float(np.mean(flips)) if flips else 0.0


# --------------------------------------------------------------------------- 3. synthetic unrelated videos


def fit_model(sigs: dict[str, SecondHashes], field: str, bits: int) -> dict:
    """Per-bit ones rate, per-second redraw rate and held-out variant flip rate of ``field`` (hash or code)."""
    whole = [getattr(s, field)[0, :, 0][s.valid[0]] for s in sigs.values() if s.valid[0].sum() > 1]
    x = np.concatenate(whole).astype(np.uint64)
    ones = np.array([((x >> np.uint64(i)) & np.uint64(1)).mean() for i in range(bits)])
    adjacent = np.concatenate([np.bitwise_count(w[1:] ^ w[:-1]) for w in whole]).mean()
    dist, count = 0.0, 0
    for sig in sigs.values():
        x = getattr(sig, field).astype(np.uint64)  # (P, T, S)
        both = sig.valid & sig.valid[:1]  # (P, T): the variant and the whole second both exist
        d = np.bitwise_count(x ^ x[:1, :, :1])[both]  # (n, S) distances of every variant to the whole second
        dist, count = dist + float(d.sum()), count + d.size - int(both[0].sum())  # the whole second itself: 0
    return {
        "ones": ones.tolist(),
        "redraw": float(adjacent / (2 * ones * (1 - ones)).sum()),
        "variant_flip": dist / max(count, 1) / bits,
    }


def draw(rng: np.random.Generator, model: dict, videos: int, seconds: int, bits: int) -> np.ndarray:
    """(videos, seconds) uint64 codes: Bernoulli(ones) bits, each redrawn per second at ``redraw``."""
    ones = np.asarray(model["ones"])
    weights = (np.uint64(1) << np.arange(bits, dtype=np.uint64))[None, :]

    def fresh() -> np.ndarray:
        return ((rng.random((videos, bits)) < ones).astype(np.uint64) * weights).sum(1).astype(np.uint64)

    out = np.zeros((videos, seconds), np.uint64)
    out[:, 0] = fresh()
    for t in range(1, seconds):
        mask = ((rng.random((videos, bits)) < model["redraw"]).astype(np.uint64) * weights).sum(1).astype(np.uint64)
        out[:, t] = (out[:, t - 1] & ~mask) | (fresh() & mask)
    return out


def flip(rng: np.random.Generator, x: np.ndarray, rate: float, bits: int) -> np.ndarray:
    weights = np.uint64(1) << np.arange(bits, dtype=np.uint64)
    mask = ((rng.random(x.shape + (bits,)) < rate).astype(np.uint64) * weights).sum(-1).astype(np.uint64)
    return x ^ mask


def synthetic_unrelated(model: dict, videos: int, seconds: int, pairs: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    base = draw(rng, model, videos, seconds, HASH_BITS)  # (videos, seconds)
    a_idx = rng.integers(0, videos, pairs)
    b_idx = (a_idx + rng.integers(1, videos, pairs)) % videos  # never the same video
    best = np.full(pairs, np.inf)
    valid = np.ones((1, seconds), bool)  # b: one whole second each
    for lo in range(0, pairs, 200):
        for k in range(lo, min(lo + 200, pairs)):
            var = flip(rng, np.repeat(base[a_idx[k]][None, :, None], VARIANTS, 0), model["variant_flip"], HASH_BITS)
            var = var.reshape(PHASES, len(SCALES), seconds).transpose(0, 2, 1)  # (P, T, S) like a held-out video
            var[0, :, 0] = base[a_idx[k]]  # phase 0 at scale 1.0 is the whole second itself
            a = SecondHashes(var, np.zeros(var.shape, np.uint16), np.ones((PHASES, seconds), bool))
            b = SecondHashes(base[b_idx[k]][None, :, None], np.zeros((1, seconds, 1), np.uint16), valid)
            best[k] = best_match("a", a, "b", b)[0]
    return {
        "videos": videos,
        "seconds": seconds,
        "ordered_pairs_compared": pairs,
        "false_positives": int((best <= MAX_MEAN_BITS).sum()),
        "min_mean_bits": round(float(best.min()), 2),
    }


# --------------------------------------------------------------------------- 4. candidate search at scale


def keys(codes: np.ndarray, span: int) -> np.ndarray:
    """codes (..., T) -> (..., T - span + 1) int64 keys of ``span`` consecutive codes."""
    n = codes.shape[-1] - span + 1
    key = np.zeros(codes.shape[:-1] + (n,), np.int64)
    for j in range(span):
        key = (key << CODE_BITS) | codes[..., j : j + n].astype(np.int64)
    return key


def table(key: np.ndarray) -> pa.Table:
    """key (videos, [variants,] positions) -> (vid, t, key) Arrow table."""
    vid = np.broadcast_to(np.arange(key.shape[0], dtype=np.int32).reshape((-1,) + (1,) * (key.ndim - 1)), key.shape)
    t = np.broadcast_to(np.arange(key.shape[-1], dtype=np.int32), key.shape)
    return pa.table({"vid": vid.ravel(), "t": t.ravel(), "key": key.ravel()})


def at_scale(model: dict, flips: float, videos: int, held: int, seconds: int, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    t0 = time.perf_counter()
    corpus = draw(rng, model, videos, seconds, CODE_BITS)
    heldout = draw(rng, model, held, seconds, CODE_BITS)
    variants = flip(rng, np.repeat(heldout[:, None, :], VARIANTS, 1), model["variant_flip"], CODE_BITS)
    planted = []
    for i, length in enumerate([30, 60, 300] * 34):  # 102 copies
        a, v, b = i % held, int(rng.integers(VARIANTS)), int(rng.integers(videos))
        sa, sb = int(rng.integers(0, seconds - length)), int(rng.integers(0, seconds - length))
        corpus[b, sb : sb + length] = flip(rng, variants[a, v, sa : sa + length], flips, CODE_BITS)
        planted.append((a, b, sb - sa, length))
    generate_s = time.perf_counter() - t0
    q, c = table(keys(variants, KEY_SECONDS)), table(keys(corpus, KEY_SECONDS))
    t1 = time.perf_counter()
    cand = candidate_offsets(q, c)
    join_s = time.perf_counter() - t1
    found_set = set(zip(cand["a"].to_pylist(), cand["b"].to_pylist(), cand["off"].to_pylist()))
    found = {length: 0 for length in (30, 60, 300)}
    for a, b, off, length in planted:
        found[length] += any((a, b, off + d) in found_set for d in (-1, 0, 1))
    return {
        "corpus_videos": videos,
        "held_out_videos": held,
        "seconds_each": seconds,
        "key_seconds": KEY_SECONDS,
        "corpus_keys": c.num_rows,
        "held_out_keys": q.num_rows,
        "generate_s": round(generate_s, 1),
        "join_s": round(join_s, 1),
        "candidates": cand.num_rows,
        "planted_found": {f"{k} s": f"{v}/34" for k, v in found.items()},
    }


def collision_rate(sigs: dict[str, SecondHashes]) -> float:
    """Fraction of whole-second code pairs of different corpus videos that are equal (sampled)."""
    rng = np.random.default_rng(0)
    names = sorted(sigs)
    owner = np.concatenate([np.full(s.seconds, i) for i, s in enumerate(sigs[n] for n in names)])
    code = np.concatenate([sigs[n].code[0, :, 0] for n in names])
    i, j = rng.integers(0, len(code), 400_000), rng.integers(0, len(code), 400_000)
    keep = owner[i] != owner[j]
    return float((code[i][keep] == code[j][keep]).mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/synth", help="the built-in corpus (dvc repro synth)")
    ap.add_argument("--copies", type=int, default=24, help="corpus videos edited in each of the four ways")
    ap.add_argument("--synthetic", type=int, default=10_000, help="synthetic unrelated videos")
    ap.add_argument("--pairs", type=int, default=20_000, help="ordered pairs of them compared")
    ap.add_argument("--videos", type=int, default=50_000, help="corpus videos of the scale run")
    ap.add_argument("--held-out", type=int, default=1_000, help="held-out videos of the scale run")
    ap.add_argument("--seconds", type=int, default=1_800, help="seconds per video of the scale run")
    ap.add_argument("--out", default="reports/perf_leakage.json")
    args = ap.parse_args()
    root = Path(args.root)
    t0 = time.perf_counter()
    sigs = {str(p.relative_to(root)): signatures_of(p, True) for p in corpus_videos(root)}
    result: dict = {"run_seconds": RUN_SECONDS, "max_mean_bits": MAX_MEAN_BITS, "hash_bits": HASH_BITS}
    result["distinct"] = distinct_pairs(sigs)
    result["copies"], flips = copies(root, args.copies)
    result["copy_code_flip_rate"] = round(flips, 4)
    hash_model, code_model = fit_model(sigs, "hash", HASH_BITS), fit_model(sigs, "code", CODE_BITS)
    result["model"] = {
        "hash_redraw": round(hash_model["redraw"], 3),
        "hash_variant_flip": round(hash_model["variant_flip"], 3),
        "code_redraw": round(code_model["redraw"], 3),
        "corpus_code_collision_rate": round(collision_rate(sigs), 5),
        "model_code_collision_rate": round(float(np.prod([p * p + (1 - p) ** 2 for p in code_model["ones"]])), 6),
    }
    result["synthetic"] = synthetic_unrelated(hash_model, args.synthetic, 60, args.pairs)
    result["scale"] = at_scale(code_model, flips, args.videos, args.held_out, args.seconds)
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps({"machine": machine(), **result}, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
