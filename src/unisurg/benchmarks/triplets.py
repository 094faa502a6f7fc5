"""CholecT50: action triplets <instrument, verb, target> at 1 fps (multi-label, 100 classes)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from .benchmark import Benchmark
from .families import Triplets
from .ondisk import DiskLayout
from .parsing import find_files
from .problems import Problems
from .records import FramesSource, IdSplit, Record

INSTRUMENTS = ("grasper", "bipolar", "hook", "scissors", "clipper", "irrigator")
VERBS = ("grasp", "retract", "dissect", "coagulate", "clip", "cut", "aspirate", "irrigate", "pack", "null_verb")
TARGETS = (
    "gallbladder",
    "cystic_plate",
    "cystic_duct",
    "cystic_artery",
    "cystic_pedicle",
    "blood_vessel",
    "fluid",
    "abdominal_wall_cavity",
    "liver",
    "adhesion",
    "omentum",
    "peritoneum",
    "gut",
    "specimen_bag",
    "null_target",
)
CHOLECT50_PHASES = (
    "preparation",
    "carlot-triangle-dissection",
    "clipping-and-cutting",
    "gallbladder-dissection",
    "gallbladder-packaging",
    "cleaning-and-coagulation",
    "gallbladder-extraction",
)
# The dataset's triplet -> (instrument, verb, target) mapping (label_mapping.txt), triplet ids 0..99,
# encoded per triplet as "<instrument id><verb id><target letter a=0..o=14>".
_IVT = (
    "02b;02a;02k;00d;00c;00e;00b;00a;00m;00i;00k;00l;00n;08a;01c;01e;01b;01a;01m;01i;01k;01l;13h;13f;13d;13c;"
    "13e;13b;13a;13i;13k;13l;12j;12d;12c;12b;12a;12k;10b;10i;10n;11c;11e;11a;11i;11k;23f;23d;23c;23e;23b;23a;"
    "23i;23k;25f;25l;22f;22d;22c;22b;22a;22k;22l;21a;21i;33k;35j;35f;35d;35c;35b;35i;35k;35l;32b;32a;32k;44f;"
    "44d;44c;44e;44b;56g;52c;52e;52b;52a;52k;57h;57e;57i;51a;51i;51k;09o;19o;29o;39o;49o;59o"
)
TRIPLET_IVT: tuple[tuple[int, int, int], ...] = tuple(
    (int(c[0]), int(c[1]), ord(c[2]) - ord("a")) for c in _IVT.split(";")
)
TRIPLETS = tuple(f"{INSTRUMENTS[i]},{VERBS[v]},{TARGETS[t]}" for i, v, t in TRIPLET_IVT)

# The 50 released videos (the Rendezvous data loader's list).
CHOLECT50_VIDEOS = (
    *(1, 2, 4, 5, 6, 8, 10, 12, 13, 14, 15, 18, 22, 23, 25, 26, 27, 29, 31, 32, 35, 36, 40, 42, 43, 47, 48),
    *(49, 50, 51, 52, 56, 57, 60, 62, 65, 66, 68, 70, 73, 74, 75, 78, 79, 80, 92, 96, 103, 110, 111),
)
_CHOLECT50_VAL = (8, 12, 29, 50, 78)
_CHOLECT50_TEST = (6, 10, 14, 32, 42, 51, 73, 74, 80, 111)
# Rendezvous split (the one the headline CholecT50 numbers use): every other video trains.
CHOLECT50_SPLIT = IdSplit(
    train=tuple(v for v in CHOLECT50_VIDEOS if v not in _CHOLECT50_VAL + _CHOLECT50_TEST),
    val=_CHOLECT50_VAL,
    test=_CHOLECT50_TEST,
    default="train",
)


def load_cholect50(root: Path, problems: Problems) -> list[Record]:
    """``labels/VIDxx.json`` (string frame keys, 15-number instances, -1 = absent) and
    ``videos/VIDxx/NNNNNN.png`` at 1 fps. Triplet ids are mapped through the file's own
    ``categories.triplet`` names, so a re-ordered release still decodes correctly."""
    records = []
    labels = find_files(root / "labels", "VID*.json")
    if not labels:
        problems.add(root / "labels", None, "no VIDxx.json label files")
    name_to_id = {n: i for i, n in enumerate(TRIPLETS)}
    for path in labels:
        m = re.fullmatch(r"VID(\d+)", path.stem)
        if not m:
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            cats = data["categories"]["triplet"]
            ann = data["annotations"]
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            problems.add(path, None, f"not valid JSON ({err})")
            continue
        except (KeyError, TypeError) as err:
            problems.add(path, None, f"missing key {err} (need categories.triplet and annotations)")
            continue
        remap = {}
        for k, name in cats.items():
            if name not in name_to_id:
                problems.add(path, None, f"unknown triplet name {name!r} for id {k}")
                continue
            remap[int(k)] = name_to_id[name]
        frame_dir = root / "videos" / path.stem
        frames = sorted((p for p in frame_dir.glob("*.png") if p.stem.isdigit()), key=lambda p: int(p.stem))
        if not frames:
            problems.add(frame_dir, None, "no frame images NNNNNN.png")
            continue
        keys = sorted(ann, key=lambda s: int(s) if str(s).isdigit() else -1)
        y = np.zeros((len(keys), len(TRIPLETS)), np.uint8)
        times = np.zeros(len(keys), np.float64)
        ok = np.ones(len(keys), bool)
        for row, key in enumerate(keys):
            if not str(key).isdigit():
                problems.add(path, None, f"annotation key {key!r} is not a frame number")
                ok[row] = False
                continue
            f = int(key)
            if f >= len(frames):
                problems.add(path, None, f"frame {f} has no image in {frame_dir.name}/")
                ok[row] = False
                continue
            times[row] = f  # 1 fps: frame index == seconds
            for inst in ann[key]:
                if not isinstance(inst, list) or len(inst) != 15:
                    problems.add(path, None, f"frame {key}: instance is not a 15-number list")
                    continue
                tid = int(inst[0])
                if tid == -1:
                    continue
                if tid not in remap:
                    problems.add(path, None, f"frame {key}: triplet id {tid} not in categories")
                    continue
                y[row, remap[tid]] = 1
        src = FramesSource(tuple(str(p) for p in frames), 1.0)
        records.append(Record(path.stem, CHOLECT50_SPLIT.of(int(m.group(1))), src, y[ok], times[ok]))
    return records


CHOLECT50 = Benchmark(
    number=12,
    name="cholect50",
    title="CholecT50",
    family=Triplets(ivt=TRIPLET_IVT),
    classes=TRIPLETS,
    metric="map_ivt",
    higher_is_better=True,
    loader=load_cholect50,
    disk_layout=DiskLayout(
        folder="CholecT50",
        files=(
            ("videos/VID<NN>/<NNNNNN>.png", "1 fps, numbered from 0"),
            ("labels/VID<NN>.json", "categories.triplet and annotations {frame: [[15 numbers], ...]}"),
        ),
    ),
    description="action triplets at 1 fps; video-wise AP with absent classes excluded; Rendezvous split",
    split=CHOLECT50_SPLIT,
)

BENCHMARKS = (CHOLECT50,)
