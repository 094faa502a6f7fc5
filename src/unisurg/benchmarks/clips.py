"""Clip-level benchmarks: one label per clip (action, diagnosis) or per trial (skill)."""

from __future__ import annotations

import random
import re
from pathlib import Path

import numpy as np

from .benchmark import Benchmark
from .families import ClipClassification, Skill
from .ondisk import DiskLayout
from .parsing import find_files, read_lines
from .problems import Problems
from .records import AuthorsRecipe, Record, Split, VideoSource, by_test_ids, carve_val

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


def authors_surgical_actions_split(records: list[Record], seed: int = 42) -> list[Split]:
    """The SurgMotion authors' fold 0 (surgicalactions160_prepare.py): one ``random.Random(seed)``
    shuffles each class's clips in turn (classes in folder order, clips in name order), clip i of a
    shuffled class goes to fold i mod 4; their configs train on folds 1-3 and test on fold 0."""
    rng = random.Random(seed)
    by_class: dict[int, list[int]] = {}
    for i in sorted(range(len(records)), key=lambda i: (int(records[i].labels[0]), records[i].id)):
        by_class.setdefault(int(records[i].labels[0]), []).append(i)
    fold = [0] * len(records)
    for cls in sorted(by_class):
        members = by_class[cls]
        rng.shuffle(members)
        for k, i in enumerate(members):
            fold[i] = k % SURGICAL_ACTIONS_FOLDS
    return ["test" if f == 0 else "train" for f in fold]


SURGICALACTIONS160 = Benchmark(
    number=10,
    name="surgicalactions160",
    title="SurgicalActions160",
    family=ClipClassification(),
    classes=SURGICAL_ACTIONS,
    metric="accuracy",
    higher_is_better=True,
    loader=load_surgical_actions,
    disk_layout=DiskLayout(
        folder="SurgicalActions160",
        files=(("<CC>_<action>/<CC>_<VV>.mp4", "class CC = 01..16 (01_abdominal_access, ...), clip VV = 01..10"),),
    ),
    description="gynaecologic laparoscopy actions, 16 classes x 10 clips; 4-fold CV",
    folds=SURGICAL_ACTIONS_FOLDS,
    # 64 consecutive frames at the clip's native rate (their frames: ffmpeg at 25 fps)
    authors=AuthorsRecipe(split=authors_surgical_actions_split),
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
    disk_layout=DiskLayout(
        folder="PolypDiag",
        files=(
            ("videos/<name>.mp4", ""),
            ("splits/{train,val}.txt", "'<name>.mp4,<label>' per line, label 0 or 1; val.txt is the test set"),
        ),
    ),
    description="colonoscopy video diagnosis (normal/abnormal); Endo-FM splits; test = val.txt",
    # polypdiag_prepare.py: all of train.txt trains; frames at 15 fps (their v1 extraction script)
    authors=AuthorsRecipe(split=by_test_ids(lambda r: r.split == "test"), clip_fps=15.0),
)

# --------------------------------------------------------------------------- JIGSAWS

JIGSAWS_TASKS = ("Suturing", "Knot_Tying", "Needle_Passing")
JIGSAWS_USERS = ("B", "C", "D", "E", "F", "G", "H", "I")
# Each user repeats each task up to 5 times; the k-th trial of every user is "supertrial" k, and
# the dataset's Experimental_setup/<Task>/.../SuperTrialOut/<k>_Out holds supertrial k out.
JIGSAWS_SUPERTRIALS = 5

# The skill protocol (GRS regression), as the JIGSAWS skill-assessment papers run it:
# - folds: leave-one-supertrial-out (LOSO, 5 folds; fold k-1 = trial k of every user), one of the
#   dataset's official schemes (JIGSAWS Experimental_setup: SuperTrialOut/<k>_Out, UserOut/<u>_Out).
#   Every fold spans all users, so its held-out trials compare surgeons of every level. ViSA (Li et
#   al., MICCAI 2022; github shinkyo0513/Surgical-Skill-Assessment-via-Video-Semantic-Aggregation,
#   main_jigsaws_group.py) defaults to 'SuperTrialOut' with 5 splits.
# - score: Spearman rho between predicted and true GRS computed *within* each fold on its held-out
#   trials, then averaged over the folds: ViSA averages its 5 per-split rhos; MUSDL (Tang et al.,
#   CVPR 2020; github nzl-thu/MUSDL, JIGSAWS/main.py) averages the per-fold rhos of its 4 folds and
#   averages across tasks through Fisher's z; Liu et al. (CVPR 2021; github Finspire13/Towards-
#   Unified-Surgical-Skill-Assessment, main.py) compute rho on each fold's test trials. We average
#   the folds through Fisher's z (arctanh of rho clipped to +-0.9999, mean, tanh back), the usual
#   way to average correlations (the plain mean differs by a few hundredths); a fold whose
#   prediction is constant has an undefined rho, counted as 0 (unisurg.evaluation.tasks.SkillTask).
# Pooling the test predictions of leave-one-user-out folds into one rho is biased negative: a head
# that outputs each fold's training mean scores about -0.6 on the built-in corpus, because the
# training mean falls as the held-out user's scores rise. Within-fold rho scores that null at 0.


def load_jigsaws(root: Path, problems: Problems) -> list[Record]:
    """Global Rating Score per trial from ``<Task>/meta_file_<Task>.txt``; leave-one-supertrial-out
    folds: trial ``<Task>_<User><NNN>`` is in fold NNN - 1 (NNN in 1..5)."""
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
        supertrials = set()
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
            supertrial = int(m.group(2))
            if not 1 <= supertrial <= JIGSAWS_SUPERTRIALS:
                problems.add(
                    meta,
                    ln,
                    f"trial {trial!r} is numbered {supertrial}: JIGSAWS has trials 1..{JIGSAWS_SUPERTRIALS} per "
                    "user and task (the supertrials of the leave-one-supertrial-out folds)",
                )
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
            supertrials.add(supertrial)
            records.append(
                Record(trial, "train", VideoSource(str(video)), np.array([grs], np.float64), fold=supertrial - 1)
            )
        missing = sorted(set(range(1, JIGSAWS_SUPERTRIALS + 1)) - supertrials)
        if missing:  # an empty fold: nothing to test on in that round
            problems.add(
                meta,
                None,
                f"no usable trial numbered {', '.join(f'{k:03d}' for k in missing)}: each of the "
                f"{JIGSAWS_SUPERTRIALS} leave-one-supertrial-out folds needs trials",
            )
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
    disk_layout=DiskLayout(
        folder="JIGSAWS",
        files=(
            ("<Task>/meta_file_<Task>.txt", "Task = Suturing, Knot_Tying or Needle_Passing; GRS per trial"),
            ("<Task>/video/<Task>_<User><NNN>_capture1.avi", "user B..I, trial 001..005; 30 fps"),
        ),
    ),
    description="bench-top robotic skill (GRS regression); leave-one-supertrial-out (5 folds), "
    "Spearman rho within each fold, Fisher-z mean over folds",
    folds=JIGSAWS_SUPERTRIALS,
)

# The suite's clip-level benchmarks (the registry collects every loader module's BENCHMARKS).
BENCHMARKS = (SURGICALACTIONS160, POLYPDIAG, JIGSAWS)
