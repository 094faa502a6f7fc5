"""Clip-level benchmarks: one label per clip (action, diagnosis) or per trial (skill)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from .benchmark import Benchmark
from .families import ClipClassification, Skill
from .parsing import find_files, read_lines
from .problems import Problems
from .records import Record, VideoSource, carve_val

# --------------------------------------------------------------------------- SurgicalActions160

SURGICAL_ACTIONS = (
    "abdominal_access",
    "injection",
    "cutting",
    "blunt_dissection",
    "dissection_thermal",
    "irrigation",
    "coagulation",
    "suction",
    "needle_positioning",
    "needle_puncture",
    "knot_pushing",
    "knotting",
    "thread_cut",
    "sling-in",
    "endobag-in",
    "endobag-out",
)
SURGICAL_ACTIONS_FOLDS = 4


def load_surgical_actions(root: Path, problems: Problems) -> list[Record]:
    """``<CC>_<name>/<CC>_<VV>.mp4``; the class is the folder's number (1-based) -> id CC-1.

    There is no official split: we use 4 folds stratified by class, fold = (VV - 1) mod 4.
    """
    records = []
    dirs = (
        [d for d in sorted(root.iterdir()) if d.is_dir() and re.fullmatch(r"\d\d_.+", d.name)] if root.is_dir() else []
    )
    if not dirs:
        problems.add(root, None, "no class folders named like '01_abdominal_access'")
    for d in dirs:
        cls = int(d.name[:2]) - 1
        if not 0 <= cls < len(SURGICAL_ACTIONS):
            problems.add(d, None, f"class number {cls + 1} outside 1..{len(SURGICAL_ACTIONS)}")
            continue
        if d.name[3:].casefold() != SURGICAL_ACTIONS[cls].casefold():
            problems.add(d, None, f"folder name does not match class {cls + 1} '{SURGICAL_ACTIONS[cls]}'")
            continue
        for vp in find_files(d, "*.mp4"):
            m = re.fullmatch(r"(\d\d)_(\d\d)", vp.stem)
            if not m or int(m.group(1)) != cls + 1:
                problems.add(vp, None, f"expected a name like {cls + 1:02d}_VV.mp4")
                continue
            fold = (int(m.group(2)) - 1) % SURGICAL_ACTIONS_FOLDS
            records.append(Record(vp.stem, "train", VideoSource(str(vp)), np.array([cls]), fold=fold))
    return records


SURGICALACTIONS160 = Benchmark(
    number=10,
    name="surgicalactions160",
    title="SurgicalActions160",
    family=ClipClassification(),
    classes=SURGICAL_ACTIONS,
    metric="accuracy",
    higher_is_better=True,
    loader=load_surgical_actions,
    description="gynaecologic laparoscopy actions, 16 classes x 10 clips; 4-fold CV",
    folds=SURGICAL_ACTIONS_FOLDS,
)

# --------------------------------------------------------------------------- PolypDiag

POLYPDIAG_CLASSES = ("normal", "abnormal")


def load_polypdiag(root: Path, problems: Problems) -> list[Record]:
    """``videos/<name>.mp4`` + ``splits/{train,val}.txt`` lines ``<name>.mp4,<label>`` (Endo-FM)."""
    records: list[Record] = []
    raw: dict[str, list[tuple[str, int]]] = {}
    for split_file in ("train", "val"):
        path = root / "splits" / f"{split_file}.txt"
        if not path.exists():
            problems.add(path, None, "missing split file")
            continue
        lines = read_lines(path, problems)
        for ln, line in enumerate(lines or [], start=1):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 2:
                problems.add(path, ln, f"expected '<video>.mp4,<label>', found {len(parts)} comma-separated fields")
                continue
            name, lab = parts[0].strip(), parts[1].strip()
            if lab not in ("0", "1"):
                problems.add(path, ln, f"label {lab!r} is not 0 or 1")
                continue
            if not (root / "videos" / name).exists():
                problems.add(path, ln, f"video {name} not found in videos/")
                continue
            raw.setdefault(split_file, []).append((name, int(lab)))
    # Endo-FM evaluates on val.txt: that is our test split; validation comes from train.txt.
    val = carve_val(n for n, _ in raw.get("train", []))
    for split_file, items in raw.items():
        for name, lab in items:
            split = "test" if split_file == "val" else ("val" if name in val else "train")
            records.append(Record(Path(name).stem, split, VideoSource(str(root / "videos" / name)), np.array([lab])))
    return records


POLYPDIAG = Benchmark(
    number=11,
    name="polypdiag",
    title="PolypDiag",
    family=ClipClassification(),
    classes=POLYPDIAG_CLASSES,
    metric="f1",
    higher_is_better=True,
    loader=load_polypdiag,
    description="colonoscopy video diagnosis (normal/abnormal); Endo-FM splits; test = val.txt",
)

# --------------------------------------------------------------------------- JIGSAWS

JIGSAWS_TASKS = ("Suturing", "Knot_Tying", "Needle_Passing")
JIGSAWS_USERS = ("B", "C", "D", "E", "F", "G", "H", "I")


def load_jigsaws(root: Path, problems: Problems) -> list[Record]:
    """Global Rating Score per trial from ``<Task>/meta_file_<Task>.txt``; leave-one-user-out folds."""
    records = []
    tasks = [t for t in JIGSAWS_TASKS if (root / t).is_dir()]
    if not tasks:
        problems.add(root, None, f"none of the task folders {JIGSAWS_TASKS} found")
    for task in tasks:
        meta = root / task / f"meta_file_{task}.txt"
        lines = read_lines(meta, problems) if meta.exists() else None
        if lines is None:
            if not meta.exists():
                problems.add(meta, None, "missing meta file")
            continue
        for ln, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            fields = [f for f in line.split("\t") if f.strip()]  # empty fields between tabs are padding
            if len(fields) != 9:
                problems.add(meta, ln, f"expected 9 non-empty tab-separated fields, found {len(fields)}")
                continue
            trial, level = fields[0].strip(), fields[1].strip()
            m = re.fullmatch(rf"{task}_([B-I])(\d{{3}})", trial)
            if not m:
                problems.add(meta, ln, f"trial name {trial!r} is not {task}_<User B-I><NNN>")
                continue
            if level not in ("N", "I", "E"):
                problems.add(meta, ln, f"experience {level!r} is not N/I/E")
                continue
            try:
                grs = float(fields[2])
                items = [float(x) for x in fields[3:]]
            except ValueError:
                problems.add(meta, ln, "GRS and item scores must be numbers")
                continue
            if abs(sum(items) - grs) > 1e-6:
                problems.add(meta, ln, f"GRS {grs} != sum of item scores {sum(items)}")
                continue
            video = root / task / "video" / f"{trial}_capture1.avi"
            if not video.exists():
                problems.add(meta, ln, f"video {video.name} missing")
                continue
            fold = JIGSAWS_USERS.index(m.group(1))
            records.append(Record(trial, "train", VideoSource(str(video)), np.array([grs], np.float64), fold=fold))
    return records


JIGSAWS = Benchmark(
    number=13,
    name="jigsaws",
    title="JIGSAWS",
    family=Skill(),
    classes=(),
    metric="spearman",
    higher_is_better=True,
    loader=load_jigsaws,
    description="bench-top robotic skill (GRS regression); leave-one-user-out over users B-I",
    folds=len(JIGSAWS_USERS),
)

# The suite's clip-level benchmarks (the registry collects every loader module's BENCHMARKS).
BENCHMARKS = (SURGICALACTIONS160, POLYPDIAG, JIGSAWS)
