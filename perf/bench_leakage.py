"""Leakage signatures: where the matching thresholds come from, and what the candidate search costs.

1. **Distinct videos** of the built-in corpus (every video file and frame folder under ``data/synth``,
   rendered from different scene seeds; the documented overlap pairs of ``KNOWN_OVERLAPS`` aside):
   the best window mean of every pair at every offset. A false positive is a pair within
   ``MAX_MEAN_BITS``.
2. **Edited copies** of ``--copies`` corpus videos, made the way re-hosting makes them: (a) the middle
   third re-encoded, (b) an 85 % centre crop of a letterboxed copy with the borders removed, resized
   back, (c) re-timed to 10 fps, (d) a 1-fps PNG frame folder. A false negative is a copy above the
   threshold. Also: how often one 2- or 3-second key of a copy survives intact (the keyed search's
   recall per position).
3. **10,000 synthetic unrelated videos**: per-second hashes drawn from the corpus's per-bit rates with
   a per-second change rate measured on the corpus; every pair at every offset (blocked numpy).
4. **Candidate search at scale**: ``--videos`` x ``--seconds`` corpus seconds (codes bootstrapped from
   the built-in corpus's real per-second codes, so collisions are as frequent as between its videos)
   against ``--protected`` held-out videos, with planted copies; DuckDB hash join timed, candidates
   counted, planted copies found.

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

from unisurg.curation.inspection import scan
from unisurg.curation.matching import MAX_MEAN_BITS, RUN_SECONDS, best_match
from unisurg.curation.signatures import SecondHashes
from unisurg.media.video import VideoWriter, open_video

# Pairs of the built-in corpus that show the same content on purpose (see KNOWN_OVERLAPS in
# unisurg.benchmarks.overlaps): excluded from the distinct-pairs count, required to match.
OVERLAP_PAIRS = {("benchmarks/CholecT50/videos/VID06", "benchmarks/cholec80/videos/video06.mp4")}


def corpus_videos(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.mp4"))
    folders = sorted(p for p in (root / "benchmarks" / "CholecT50" / "videos").iterdir() if p.is_dir())
    return files + folders


def signatures_of(path: Path, fps: float = 1.0) -> SecondHashes:
    return scan(open_video(path, fps=fps), 0)[0]


def write(path: Path, frames: np.ndarray, fps: float) -> None:
    with VideoWriter(path, fps, frames.shape[2], frames.shape[1]) as w:
        for f in frames:
            w.write(np.ascontiguousarray(f))


def letterbox(f: np.ndarray, pad: int) -> np.ndarray:
    return cv2.copyMakeBorder(f, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0))


def centre_crop(f: np.ndarray, frac: float, size: tuple[int, int]) -> np.ndarray:
    h, w = f.shape[:2]
    dh, dw = int(round(h * (1 - frac) / 2)), int(round(w * (1 - frac) / 2))
    return cv2.resize(f[dh : h - dh, dw : w - dw], size, interpolation=cv2.INTER_AREA)


def edited_copies(video: Path, tmp: Path) -> dict[str, tuple[Path, Path, float]]:
    """name -> (original, copy, copy fps) for the four edits; frame folders get fps 1."""
    vr = open_video(video)
    frames, fps = vr.get_frames(np.arange(len(vr))), vr.fps
    n, h, w = len(frames), frames.shape[1], frames.shape[2]
    out = {}
    third = tmp / "third.mp4"
    write(third, frames[n // 3 : 2 * n // 3], fps)
    out["a middle third"] = (video, third, 0.0)
    boxed, crop = tmp / "boxed.mp4", tmp / "crop.mp4"
    pad = h // 8
    write(boxed, np.stack([letterbox(f, pad) for f in frames]), fps)
    write(crop, np.stack([centre_crop(f, 0.85, (w + 2 * pad, h + 2 * pad)) for f in frames]), fps)
    out["b 85% crop, borders removed"] = (boxed, crop, 0.0)
    retimed = tmp / "retimed.mp4"
    write(retimed, frames[np.round(np.arange(0, n / fps, 0.1) * fps).astype(int).clip(0, n - 1)], 10.0)
    out["c re-timed to 10 fps"] = (video, retimed, 0.0)
    folder = tmp / "frames"
    folder.mkdir()
    for k, i in enumerate(np.round(np.arange(0, n / fps) * fps).astype(int).clip(0, n - 1)):
        cv2.imwrite(str(folder / f"{k:06d}.png"), frames[i][..., ::-1])
    out["d 1-fps PNG frames"] = (video, folder, 1.0)
    return out


def key_survival(a: SecondHashes, b: SecondHashes, m, seconds: int) -> float:
    """Of the copy's aligned positions, the fraction whose ``seconds``-second key equals the original's."""
    if m is None or m.seconds < seconds:
        return 0.0
    hits = [
        bool(np.all(a.code[m.a_start + i : m.a_start + i + seconds] == b.code[m.b_start + i : m.b_start + i + seconds]))
        for i in range(m.seconds - seconds + 1)
    ]
    return float(np.mean(hits))


def distinct_pairs(root: Path, sigs: dict[str, SecondHashes]) -> dict:
    names = sorted(sigs)
    best = []
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            if (a, b) in OVERLAP_PAIRS or (b, a) in OVERLAP_PAIRS:
                continue
            best.append(best_match(a, sigs[a], b, sigs[b])[0])
    best = np.array(best)
    known = [best_match(a, sigs[a], b, sigs[b])[0] for a, b in sorted(OVERLAP_PAIRS) if a in sigs and b in sigs]
    return {
        "videos": len(names),
        "pairs": int(len(best)),
        "false_positives": int((best <= MAX_MEAN_BITS).sum()),
        "min_mean_bits": round(float(best.min()), 2),
        "p1_mean_bits": round(float(np.percentile(best, 1)), 2),
        "known_overlaps_mean_bits": [round(float(x), 2) for x in known],
    }


def copies(root: Path, count: int) -> dict:
    videos = sorted(root.rglob("*.mp4"))
    pick = [videos[i] for i in np.linspace(0, len(videos) - 1, count).round().astype(int)]
    rows: dict[str, list] = {}
    for v in pick:
        with tempfile.TemporaryDirectory() as tmp:
            for name, (orig, copy, fps) in edited_copies(v, Path(tmp)).items():
                a, b = signatures_of(orig), signatures_of(copy, fps or 1.0)
                mean, m = best_match("orig", a, "copy", b)
                rows.setdefault(name, []).append((mean, key_survival(a, b, m, 2), key_survival(a, b, m, 3)))
    out = {}
    for name, r in rows.items():
        arr = np.array(r)
        out[name] = {
            "copies": len(r),
            "false_negatives": int((arr[:, 0] > MAX_MEAN_BITS).sum()),
            "max_mean_bits": round(float(arr[:, 0].max()), 2),
            "key2_survival": round(float(arr[:, 1].mean()), 3),
            "key3_survival": round(float(arr[:, 2].mean()), 3),
        }
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--root", default="data/synth", help="the built-in corpus (dvc repro synth)")
    ap.add_argument("--copies", type=int, default=24, help="corpus videos edited in each of the four ways")
    ap.add_argument("--out", default="reports/perf_leakage.json")
    args = ap.parse_args()
    root = Path(args.root)
    t0 = time.perf_counter()
    sigs = {}
    for p in corpus_videos(root):
        sigs[str(p.relative_to(root))] = signatures_of(p)
    result = {
        "run_seconds": RUN_SECONDS,
        "max_mean_bits": MAX_MEAN_BITS,
        "distinct": distinct_pairs(root, sigs),
        "copies": copies(root, args.copies),
    }
    result["seconds"] = round(time.perf_counter() - t0, 1)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
