"""Dense benchmarks: polyp segmentation (CVC-12K, Kvasir-SEG) and depth (C3VD, SCARED).

Each declaration names the decoder of its target files (``read_target``: masks -> {0,1} uint8,
depth -> float32 mm with 0 = invalid), so the harness never needs to know a dataset's encoding.
"""

from __future__ import annotations

import json
import re
import zlib
from pathlib import Path

import cv2
import numpy as np

from .benchmark import Benchmark
from .families import Depth, Segmentation
from .ondisk import DiskLayout
from .parsing import find_files, read_lines
from .problems import Problems
from .records import IdSplit, ImageSource, Record, carve_val


def _imread(path: str) -> np.ndarray:
    arr = cv2.imread(path, cv2.IMREAD_UNCHANGED)
    if arr is None:
        raise ValueError(f"{path}: cannot read image")
    return arr


def read_mask(path: str) -> np.ndarray:
    """A polyp mask file -> uint8 {0,1} (H, W)."""
    arr = _imread(path)
    if arr.ndim == 3:
        arr = arr[..., :3].mean(axis=2)
    return (arr >= 128).astype(np.uint8)  # JPEG masks are not exactly 0/255


# --------------------------------------------------------------------------- CVC-12K (CVC-ClinicDB)


def load_cvc12k(root: Path, problems: Problems) -> list[Record]:
    """``CVC-ClinicDB/Original/N.tif`` + ``CVC-ClinicDB/Ground Truth/N.tif`` grouped into sequences by
    ``videolist.txt`` (``<name> <start> <count> <unused>``, 1-based); Endo-FM's split: the first 20
    sequences train (val = the last 20% of those), the rest test."""
    vl = root / "videolist.txt"
    lines = read_lines(vl, problems) if vl.exists() else None
    if lines is None:
        if not vl.exists():
            problems.add(vl, None, "missing videolist.txt (sequence grouping)")
        return []
    seqs = []
    for ln, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 4 or not parts[1].isdigit() or not parts[2].isdigit():
            problems.add(vl, ln, "expected '<name> <start> <count> <unused>' with integer start/count")
            continue
        seqs.append((int(parts[1]), int(parts[2])))
    train_seqs = [f"{i:03d}" for i in range(min(20, len(seqs)))]
    val = carve_val(train_seqs)
    records = []
    for i, (start, count) in enumerate(seqs):
        split = "test" if i >= 20 else ("val" if f"{i:03d}" in val else "train")
        for n in range(start, start + count):
            img = root / "CVC-ClinicDB" / "Original" / f"{n}.tif"
            msk = root / "CVC-ClinicDB" / "Ground Truth" / f"{n}.tif"
            if not img.exists() or not msk.exists():
                problems.add(vl, None, f"sequence {i + 1}: image or mask {n}.tif missing")
                continue
            records.append(
                Record(f"{n}", split, ImageSource(str(img)), np.zeros(0), target=str(msk), group=f"seq{i + 1:02d}")
            )
    return records


CVC12K = Benchmark(
    number=14,
    name="cvc12k",
    title="CVC-12K",
    family=Segmentation(),
    classes=("polyp",),
    metric="dice",
    higher_is_better=True,
    loader=load_cvc12k,
    disk_layout=DiskLayout(
        folder="CVC-12K",
        files=(
            ("videolist.txt", "'<name> <start> <count> <unused>' per sequence, images numbered from 1"),
            ("CVC-ClinicDB/Original/<N>.tif", "frames"),
            ("CVC-ClinicDB/Ground Truth/<N>.tif", "polyp masks"),
        ),
    ),
    description="CVC-ClinicDB frames grouped into 29 sequences (Endo-FM); Dice/IoU per image",
    read_target=read_mask,
)

# --------------------------------------------------------------------------- Kvasir-SEG


def kvasir_split(image_id: str) -> str:
    """No split ships with Kvasir-SEG: 10% test, 10% val by a stable hash of the image id."""
    b = zlib.crc32(image_id.encode()) % 10
    return "test" if b == 0 else ("val" if b == 1 else "train")


def load_kvasir(root: Path, problems: Problems) -> list[Record]:
    records = []
    images = find_files(root / "images", "*.jpg")
    if not images:
        problems.add(root / "images", None, "no <id>.jpg images")
    boxes = root / "kavsir_bboxes.json"
    if boxes.exists():
        try:
            json.loads(boxes.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.add(boxes, None, f"not valid JSON ({err})")
    for img in images:
        msk = root / "masks" / img.name
        if not msk.exists():
            problems.add(msk, None, "missing mask for " + img.name)
            continue
        records.append(
            Record(
                img.stem, kvasir_split(img.stem), ImageSource(str(img)), np.zeros(0), target=str(msk), group=img.stem
            )
        )
    return records


KVASIRSEG = Benchmark(
    number=15,
    name="kvasirseg",
    title="Kvasir-SEG",
    family=Segmentation(),
    classes=("polyp",),
    metric="dice",
    higher_is_better=True,
    loader=load_kvasir,
    disk_layout=DiskLayout(
        folder="Kvasir-SEG",
        files=(
            ("images/<id>.jpg", ""),
            ("masks/<id>.jpg", "JPEG masks, thresholded at 128"),
            ("kavsir_bboxes.json", "(sic) optional; checked to be JSON when present"),
        ),
    ),
    description="colonoscopy polyp masks (JPEG, threshold 128); Dice/IoU per image",
    read_target=read_mask,
)

# --------------------------------------------------------------------------- C3VD

C3VD_TEST = (
    "cecum_t1_a",
    "cecum_t2_a",
    "cecum_t3_a",
    "sigmoid_t1_a",
    "sigmoid_t3_b",
    "trans_t2_b",
    "trans_t3_b",
    "trans_t4_b",
)
# Test: these 8 of the 22 phantom video sequences; validation: the last 20% of the training sequences.
# The independent unit (Record.group, what CIs resample) is the sequence, never its frames.
C3VD_SPLIT = IdSplit(test=C3VD_TEST, default="train")
C3VD_MAX_MM = 100.0


def read_c3vd_depth(path: str) -> np.ndarray:
    """``NNNN_depth.tiff`` (uint16, 0..65535 -> 0..100 mm; 0 and 65535 invalid) -> float32 mm, 0 = invalid."""
    arr = _imread(path)
    d = arr.astype(np.float32)
    invalid = (arr == 0) | (arr == 65535)
    d = d / 65535.0 * C3VD_MAX_MM
    d[invalid] = 0.0
    return d


def load_c3vd(root: Path, problems: Problems) -> list[Record]:
    """Sequences ``<segment>_t<k>_<v>/`` with ``N_color.png`` (padding varies: parse the number)
    and ``NNNN_depth.tiff`` (uint16, 0..65535 -> 0..100 mm; 0 and 65535 invalid). Split by sequence
    (``C3VD_SPLIT``); each record's group is its sequence, the evaluation unit."""
    records = []
    seqs = (
        [d for d in sorted(root.iterdir()) if d.is_dir() and re.fullmatch(r"[a-z]+_t\d_[a-z]", d.name)]
        if root.is_dir()
        else []
    )
    if not seqs:
        problems.add(root, None, "no sequence folders like cecum_t1_a")
    val = carve_val(d.name for d in seqs if C3VD_SPLIT.of(d.name) == "train")
    for d in seqs:
        split = "val" if d.name in val else C3VD_SPLIT.of(d.name)
        for img in sorted(d.glob("*_color.png")):
            m = re.fullmatch(r"(\d+)_color", img.stem)
            if not m:
                continue
            dep = d / f"{int(m.group(1)):04d}_depth.tiff"
            if not dep.exists():
                problems.add(dep, None, "missing depth for " + img.name)
                continue
            records.append(
                Record(
                    f"{d.name}/{m.group(1)}", split, ImageSource(str(img)), np.zeros(0), target=str(dep), group=d.name
                )
            )
    return records


C3VD = Benchmark(
    number=16,
    name="c3vd",
    title="C3VD",
    family=Depth(max_depth=C3VD_MAX_MM),
    classes=(),
    metric="abs_rel",
    higher_is_better=False,
    loader=load_c3vd,
    disk_layout=DiskLayout(
        folder="C3VD",
        files=(
            ("<segment>_t<k>_<v>/<N>_color.png", "e.g. cecum_t1_a/0_color.png (padding varies)"),
            ("<segment>_t<k>_<v>/<NNNN>_depth.tiff", "uint16, 0..65535 = 0..100 mm"),
        ),
    ),
    description="colonoscopy phantom depth (16-bit TIFF, 0-100 mm); median-scaled AbsRel/RMSE/delta",
    split=C3VD_SPLIT,
    read_target=read_c3vd_depth,
)

# --------------------------------------------------------------------------- SCARED

SCARED_MAX_MM = 150.0
# Datasets 1-6 train, 7 val, 8-9 test (keyframes never cross splits). The test set is two datasets
# (two porcine subjects) of several keyframes each; a keyframe is its own camera sequence with its
# own structured-light ground truth, and the independent unit (Record.group, what CIs resample) is
# the keyframe (``datasetN/keyframeM``): never a frame, nor the dataset (2 units give no CI).
# Keyframes of one dataset share the subject, so that CI is somewhat optimistic.
SCARED_SPLIT = IdSplit(train=(1, 2, 3, 4, 5, 6), val=(7,), test=(8, 9), default="test")


def read_scared_depth(path: str, shape: tuple[int, int] | None = None) -> np.ndarray:
    """A ``scene_points`` TIFF -> float32 depth mm (H, W), 0 = invalid: the Z channel of the top
    ``shape[0]`` rows (default: the top half, the left view)."""
    arr = _imread(path)
    # cv2 returns channels as BGR: index 0 is the third TIFF channel, Z.
    z = arr[..., 0].astype(np.float32)
    h = shape[0] if shape is not None else z.shape[0] // 2
    z = z[:h]
    z[~np.isfinite(z)] = 0.0
    return z


def load_scared(root: Path, problems: Problems) -> list[Record]:
    """``datasetN/keyframeM/image_02/data/%010d.png`` (1-based) with ground truth
    ``.../image_02/data/groundtruth/scene_points%06d.tiff`` (index = frame - 1): a 3-channel float
    point map whose Z channel, top rows (the left view), is depth in mm. Split by dataset
    (``SCARED_SPLIT``); each record's group is its keyframe sequence, the evaluation unit."""
    records = []
    kfs = sorted(root.glob("dataset*/keyframe*"))
    if not kfs:
        problems.add(root, None, "no datasetN/keyframeM folders")
    for kf in kfs:
        m = re.fullmatch(r"dataset(\d+)", kf.parent.name)
        if not m:
            continue
        data = kf / "image_02" / "data"
        for img in sorted(data.glob("*.png")):
            if not img.stem.isdigit():
                continue
            gt = data / "groundtruth" / f"scene_points{int(img.stem) - 1:06d}.tiff"
            if not gt.exists():
                problems.add(gt, None, "missing ground truth for " + img.name)
                continue
            rid = f"{kf.parent.name}/{kf.name}/{img.stem}"
            records.append(
                Record(
                    rid,
                    SCARED_SPLIT.of(int(m.group(1))),
                    ImageSource(str(img)),
                    np.zeros(0),
                    target=str(gt),
                    group=f"{kf.parent.name}/{kf.name}",
                )
            )
    return records


SCARED = Benchmark(
    number=17,
    name="scared",
    title="SCARED",
    family=Depth(max_depth=SCARED_MAX_MM),
    classes=(),
    metric="abs_rel",
    higher_is_better=False,
    loader=load_scared,
    disk_layout=DiskLayout(
        folder="SCARED",
        files=(
            ("dataset<N>/keyframe<M>/image_02/data/<NNNNNNNNNN>.png", "frames numbered from 1"),
            (
                "dataset<N>/keyframe<M>/image_02/data/groundtruth/scene_points<NNNNNN>.tiff",
                "frame - 1; Z of the top half (left view) in mm",
            ),
        ),
    ),
    description="da Vinci stereo keyframes with structured-light depth; median-scaled depth metrics",
    split=SCARED_SPLIT,
    read_target=read_scared_depth,
)

BENCHMARKS = (CVC12K, KVASIRSEG, C3VD, SCARED)
