"""Phase / step recognition benchmarks (temporal, one class per labelled instant).

Each loader reads the dataset's published layout (``unisurg benchmarks layout NAME`` prints it)
and returns one :class:`Record` per video with its label timeline in seconds. Frame-indexed
label files are all read by :func:`~.parsing.read_frame_labels`; a loader states their layout.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np

from .benchmark import Benchmark
from .families import Phase
from .ondisk import DiskLayout
from .parsing import (
    ClassIds,
    ClassNames,
    FrameNumbers,
    ImageStems,
    LabelFile,
    find_casefold,
    find_files,
    id_problem,
    parse_int,
    read_frame_labels,
    read_lines,
    timeline_from_frames,
)
from .problems import Problems
from .records import AuthorsRecipe, FramesSource, IdSplit, Record, VideoSource, by_test_ids, carve_val


def _arrays(parsed: tuple[list, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(frame numbers, class ids) as int64 arrays."""
    frames, labels = parsed
    return np.asarray(frames, np.int64), np.asarray(labels, np.int64)


# --------------------------------------------------------------------------- Cholec80

CHOLEC80_PHASES = (
    "Preparation",
    "CalotTriangleDissection",
    "ClippingCutting",
    "GallbladderDissection",
    "GallbladderPackaging",
    "CleaningCoagulation",
    "GallbladderRetraction",
)
CHOLEC80_TOOLS = ("Grasper", "Bipolar", "Hook", "Scissors", "Clipper", "Irrigator", "SpecimenBag")
CHOLEC80_FPS = 25.0
# The 40/8/32 split: videos 1-40 train, 41-48 val, 49-80 test.
CHOLEC80_SPLIT = IdSplit(train=tuple(range(1, 41)), val=tuple(range(41, 49)), test=tuple(range(49, 81)), default="test")
CHOLEC80_LABELS = LabelFile(sep="\t", header=("Frame", "Phase"))  # a row per native frame, phases by name


def load_cholec80(root: Path, problems: Problems) -> list[Record]:
    records = []
    videos = find_files(root / "videos", "video*.mp4")
    if not videos:
        problems.add(root / "videos", None, "no videoNN.mp4 files")
    for vp in videos:
        m = re.fullmatch(r"video(\d+)\.mp4", vp.name)
        if not m:
            continue
        ann = root / "phase_annotations" / f"{vp.stem}-phase.txt"
        if not ann.exists():
            problems.add(ann, None, "missing phase annotation for " + vp.name)
            continue
        parsed = read_frame_labels(ann, CHOLEC80_LABELS, FrameNumbers(), ClassNames(CHOLEC80_PHASES), problems)
        if parsed is None:
            continue
        times, labels = timeline_from_frames(*_arrays(parsed), CHOLEC80_FPS)
        records.append(Record(vp.stem, CHOLEC80_SPLIT.of(int(m.group(1))), VideoSource(str(vp)), labels, times))
    return records


CHOLEC80 = Benchmark(
    number=1,
    name="cholec80",
    title="Cholec80",
    # Relaxed boundaries: dissection/packaging (3, 4) and cleaning/retraction (5, 6) may jump two phases.
    family=Phase(relaxed_jumps=((3, 4), (5, 6))),
    classes=CHOLEC80_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_cholec80,
    disk_layout=DiskLayout(
        folder="cholec80",
        files=(
            ("videos/video<NN>.mp4", "25 fps; NN = 01..80 (split 1-40 / 41-48 / 49-80)"),
            ("phase_annotations/video<NN>-phase.txt", "header Frame<TAB>Phase, a row per frame from 0, phase names"),
        ),
    ),
    description="laparoscopic cholecystectomy phases; 25 fps per-frame labels; split 40/8/32",
    split=CHOLEC80_SPLIT,
    # cholect80_prepare.py: videos 1-40 train, 41-80 test
    authors=AuthorsRecipe(split=by_test_ids(lambda r: int(r.id.removeprefix("video")) > 40)),
)

# --------------------------------------------------------------------------- M2CAI16-workflow

M2CAI_PHASES = ("TrocarPlacement", *CHOLEC80_PHASES)  # the official order: trocar placement first
M2CAI_LABELS = LabelFile(sep=None, header=("Frame", "Phase"))  # "frame phase_name" per frame at 25 fps


def load_m2cai16(root: Path, problems: Problems) -> list[Record]:
    records = []
    entries = [(p, "train") for p in find_files(root / "train_dataset", "workflow_video_*.mp4")]
    entries += [(p, "test") for p in find_files(root / "test_dataset", "test_workflow_video_*.mp4")]
    if not entries:
        problems.add(root, None, "no train_dataset/workflow_video_NN.mp4 or test_dataset/test_workflow_video_NN.mp4")
    val = carve_val(p.stem for p, s in entries if s == "train")
    for vp, split in entries:
        ann = vp.with_suffix(".txt")
        if not ann.exists():
            problems.add(ann, None, "missing label file for " + vp.name)
            continue
        parsed = read_frame_labels(ann, M2CAI_LABELS, FrameNumbers(), ClassNames(M2CAI_PHASES), problems)
        if parsed is None:
            continue
        times, labels = timeline_from_frames(*_arrays(parsed), 25.0)
        name = vp.stem
        records.append(Record(name, "val" if name in val else split, VideoSource(str(vp)), labels, times))
    return records


M2CAI16 = Benchmark(
    number=2,
    name="m2cai16",
    title="M2CAI16-workflow",
    # TrocarPlacement comes first, so Cholec80's two-phase jumps shift by one.
    family=Phase(relaxed_jumps=((4, 5), (6, 7))),
    classes=M2CAI_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_m2cai16,
    disk_layout=DiskLayout(
        folder="m2cai16-workflow",
        files=(
            ("train_dataset/workflow_video_<NN>.mp4", "25 fps; 27 training videos"),
            ("train_dataset/workflow_video_<NN>.txt", "a header line, then 'frame phase_name' per frame"),
            ("test_dataset/test_workflow_video_<NN>.mp4", "14 test videos"),
            ("test_dataset/test_workflow_video_<NN>.txt", "as the training label files"),
        ),
    ),
    description="cholecystectomy workflow challenge; 27 train / 14 test videos; val = last 20% of train",
    # m2cai2016_prepare.py: every training video trains; a second is labelled by its last annotated frame
    authors=AuthorsRecipe(split=by_test_ids(lambda r: r.split == "test"), label_at="last"),
)

# --------------------------------------------------------------------------- AutoLaparo

AUTOLAPARO_PHASES = (
    "Preparation",
    "Dividing Ligament and Peritoneum",
    "Dividing Uterine Vessels and Ligament",
    "Transecting the Vagina",
    "Specimen Removal",
    "Suturing",
    "Washing",
)
AUTOLAPARO_SPLIT = IdSplit(
    train=tuple(range(1, 11)), val=tuple(range(11, 15)), test=tuple(range(15, 22)), default="test"
)
AUTOLAPARO_LABELS = LabelFile(sep="\t", header=("Frame", "Phase"))  # one row per second


def load_autolaparo(root: Path, problems: Problems) -> list[Record]:
    records = []
    videos = find_files(root / "videos", "*.mp4")
    if not videos:
        problems.add(root / "videos", None, "no NN.mp4 videos")
    for vp in videos:
        if not vp.stem.isdigit():
            continue
        ann = root / "labels" / f"label_{vp.stem}.txt"
        if not ann.exists():
            problems.add(ann, None, "missing label file for " + vp.name)
            continue
        # frames and phase ids are both 1-based
        ids = ClassIds.counting(len(AUTOLAPARO_PHASES), first=1)
        parsed = read_frame_labels(ann, AUTOLAPARO_LABELS, FrameNumbers(first=1), ids, problems)
        if parsed is None:
            continue
        frames, labels = _arrays(parsed)
        times, lab = timeline_from_frames(frames - 1, labels, 1.0)
        records.append(Record(vp.stem, AUTOLAPARO_SPLIT.of(int(vp.stem)), VideoSource(str(vp)), lab, times))
    return records


AUTOLAPARO = Benchmark(
    number=3,
    name="autolaparo",
    title="AutoLaparo",
    family=Phase(),
    classes=AUTOLAPARO_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_autolaparo,
    disk_layout=DiskLayout(
        folder="autolaparo",
        files=(
            ("videos/<NN>.mp4", "25 fps; NN = 01..21 (split 1-10 / 11-14 / 15-21)"),
            ("labels/label_<NN>.txt", "header Frame<TAB>Phase, a row per second; frames and phase ids 1-based"),
        ),
    ),
    description="laparoscopic hysterectomy, task 1; 1 fps labels, 1-based frames, ids 1..7; split 10/4/7",
    split=AUTOLAPARO_SPLIT,
    authors=AuthorsRecipe(),  # autolaparo_prepare.py: the official 10/4/7 split, as the loader's
)

# --------------------------------------------------------------------------- HeiChole

HEICHOLE_PHASES = (  # ids 0-6 as in Cholec80 (spelling of the EndoVis 2019 readme)
    "Preparation",
    "Calot triangle dissection",
    "Clipping and cutting",
    "Galbladder dissection",
    "Galbladder packaging",
    "Cleaning and coagulation",
    "Galbladder retraction",
)
# 24 public videos, no official split: 1-12 train, 13-16 val, 17-24 test (ours, documented).
HEICHOLE_SPLIT = IdSplit(train=tuple(range(1, 13)), val=tuple(range(13, 17)), test=tuple(range(17, 25)), default="test")
HEICHOLE_LABELS = LabelFile(sep=",")  # "frame,phase_id" for every native frame, no header


def load_heichole(root: Path, problems: Problems) -> list[Record]:
    """``Hei-CholeN.mp4`` + ``Hei-CholeN_Annotation_Phase.csv`` (``frame,phase_id``, no header, every
    native frame). Names are matched case-insensitively; the frame rate (25 or 50 fps) is read from
    each video, not assumed."""
    from ..media.video import VideoError, open_video

    records = []
    videos: dict[int, Path] = {}
    for p in sorted(root.rglob("*")):
        m = re.fullmatch(r"hei-chole(\d+)\.mp4", p.name, flags=re.IGNORECASE)
        if m and p.parent.name.casefold() != "hd":  # the HD copies duplicate the Full ones
            videos.setdefault(int(m.group(1)), p)
    if not videos:
        problems.add(root, None, "no Hei-CholeN.mp4 videos")
    for num, vp in sorted(videos.items()):
        ann = find_casefold(root, f"Hei-Chole{num}_Annotation_Phase.csv")
        if ann is None:
            problems.add(root, None, f"missing Hei-Chole{num}_Annotation_Phase.csv")
            continue
        try:
            fps = open_video(vp).fps
        except VideoError as err:
            problems.add(vp, None, str(err))
            continue
        ids = ClassIds.counting(len(HEICHOLE_PHASES))
        parsed = read_frame_labels(ann, HEICHOLE_LABELS, FrameNumbers(), ids, problems)
        if parsed is None:
            continue
        times, lab = timeline_from_frames(*_arrays(parsed), fps)
        records.append(Record(f"Hei-Chole{num}", HEICHOLE_SPLIT.of(num), VideoSource(str(vp)), lab, times))
    return records


HEICHOLE = Benchmark(
    number=4,
    name="heichole",
    title="HeiChole",
    family=Phase(),
    classes=HEICHOLE_PHASES,
    metric="f1",
    higher_is_better=True,
    loader=load_heichole,
    disk_layout=DiskLayout(
        folder="HeiChole",
        files=(
            ("Videos/Full/Hei-Chole<N>.mp4", "25 or 50 fps; found anywhere under the root, any case; HD/ skipped"),
            ("Annotations/Phase/Hei-Chole<N>_Annotation_Phase.csv", "'frame,phase_id' per frame, no header; anywhere"),
        ),
    ),
    description="cholecystectomy (EndoVis 2019); per-frame labels at 25 or 50 fps; split 12/4/8 (ours)",
    split=HEICHOLE_SPLIT,
)

# --------------------------------------------------------------------------- MultiBypass140

MULTIBYPASS_PHASES = (
    "preparation",
    "gastric_pouch_creation",
    "omentum_division",
    "gastrojejunal_anastomosis",
    "anastomosis_test",
    "jejunal_separation",
    "closure_petersen_space",
    "jejunojejunal_anastomosis",
    "closure_mesenteric_defect",
    "cleaning_coagulation",
    "disassembling",
    "other_intervention",
)
MULTIBYPASS_CENTRES = {"bern": ("BernBypass70", "BBP"), "strasbourg": ("StrasBypass70", "SBP")}


class _SafeUnpickler(pickle.Unpickler):
    """Split pickles hold only dicts/lists/strings/numbers: refuse anything that could run code."""

    _ALLOWED = {
        ("builtins", "dict"),
        ("builtins", "list"),
        ("builtins", "str"),
        ("builtins", "int"),
        ("builtins", "float"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # noqa: D102
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a split pickle")


def _split_videos(path: Path, problems: Problems) -> set[str] | None:
    try:
        with open(path, "rb") as fh:
            data = _SafeUnpickler(fh).load()
    except (OSError, pickle.UnpicklingError, EOFError) as err:
        problems.add(path, None, f"cannot read split pickle: {err}")
        return None
    if not isinstance(data, dict):
        problems.add(path, None, "split pickle is not a mapping video -> frames")
        return None
    return {str(k) for k in data}


def load_multibypass(root: Path, problems: Problems, fold: int = 0, label_fps: float = 1.0) -> list[Record]:
    """Videos ``<Centre>70/videos/XBPnn.mp4``; labels ``labels/<centre>/labels_by70/XBPnn.mp4.json``
    (phase segments in milliseconds; ids 12/13 are overlay events, not phases); official split
    pickles ``labels/<centre>/labels_by70_splits/labels/{train,val,test}/...{fold}.pickle``."""
    records = []
    found = False
    for centre, (vdir, prefix) in MULTIBYPASS_CENTRES.items():
        vids = find_files(root / vdir / "videos", f"{prefix}*.mp4")
        if not vids:
            continue
        found = True
        split_dir = root / "labels" / centre / "labels_by70_splits" / "labels"
        split_of: dict[str, str] = {}
        for split, fname in (
            ("train", f"1fps_100_{fold}.pickle"),
            ("val", f"1fps_{fold}.pickle"),
            ("test", f"1fps_{fold}.pickle"),
        ):
            names = _split_videos(split_dir / split / fname, problems)
            for n in names or ():
                split_of[n] = split
        for vp in vids:
            name = vp.stem
            ann = root / "labels" / centre / "labels_by70" / f"{vp.name}.json"
            if name not in split_of:
                problems.add(vp, None, f"video not listed in any fold-{fold} split pickle")
                continue
            try:
                data = json.loads(ann.read_text(encoding="utf-8"))
                segs = data["phases"]
            except FileNotFoundError:
                problems.add(ann, None, "missing label JSON for " + vp.name)
                continue
            except (json.JSONDecodeError, KeyError, UnicodeDecodeError) as err:
                problems.add(ann, None, f"malformed label JSON ({type(err).__name__}: {err})")
                continue
            spans = []
            for i, s in enumerate(segs):
                try:
                    a, b, lid = float(s["start"]) / 1000, float(s["end"]) / 1000, int(s["label_id"])
                except (KeyError, TypeError, ValueError):
                    problems.add(ann, None, f"phases[{i}] lacks numeric start/end/label_id")
                    continue
                if lid in (12, 13):  # out_of_body / severe_index overlays
                    continue
                if not 0 <= lid < len(MULTIBYPASS_PHASES):
                    problems.add(ann, None, id_problem(f"phases[{i}] label_id", lid, range(len(MULTIBYPASS_PHASES))))
                    continue
                spans.append((a, b, lid))
            if not spans:
                problems.add(ann, None, "no phase segments")
                continue
            end = max(b for _, b, _ in spans)
            times = np.arange(0.0, end, 1.0 / label_fps)
            labels = np.full(len(times), -1, np.int64)
            for a, b, lid in spans:
                labels[(times >= a) & (times < b)] = lid
            keep = labels >= 0
            records.append(Record(name, split_of[name], VideoSource(str(vp)), labels[keep], times[keep]))
    if not found:
        problems.add(root, None, "no BernBypass70/videos/BBPnn.mp4 or StrasBypass70/videos/SBPnn.mp4")
    return records


MULTIBYPASS140 = Benchmark(
    number=5,
    name="multibypass140",
    title="MultiBypass140",
    family=Phase(),
    classes=MULTIBYPASS_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_multibypass,
    disk_layout=DiskLayout(
        folder="MultiBypass140",
        files=(
            ("{BernBypass70,StrasBypass70}/videos/{BBP,SBP}<NN>.mp4", "one folder per centre"),
            ("labels/{bern,strasbourg}/labels_by70/{BBP,SBP}<NN>.mp4.json", "phases: start/end in ms, label_id"),
            ("labels/{bern,strasbourg}/labels_by70_splits/labels/train/1fps_100_0.pickle", "fold-0 split"),
            ("labels/{bern,strasbourg}/labels_by70_splits/labels/{val,test}/1fps_0.pickle", "fold-0 split"),
        ),
    ),
    description="gastric bypass (Bern + Strasbourg); ms phase segments; official fold-0 split pickles",
)

# --------------------------------------------------------------------------- PitVis-2023

PITVIS_STEPS = (
    "nasal_corridor_creation",
    "anterior_sphenoidotomy",
    "septum_displacement",
    "sphenoid_sinus_clearance",
    "sellotomy",
    "durotomy",
    "tumour_excision",
    "haemostasis",
    "synthetic_graft_placement",
    "fat_graft_placement",
    "gasket_seal_construct",
    "dural_sealant",
    "nasal_packing",
    "debris_clearance",
    "background",  # int_step -1 (operation not started / ended / out of patient)
)
PITVIS_BACKGROUND = len(PITVIS_STEPS) - 1
PITVIS_COLUMNS = ["int_video", "int_time", "int_step", "int_instrument1", "int_instrument2"]
# The 5 held-out videos used by PitVQA and SurgMotion; validation is carved from the others.
PITVIS_SPLIT = IdSplit(test=(2, 6, 12, 13, 24), default="train")
PITVIS_FPS = 24.0
PITVIS_LABELS = LabelFile(sep=",", header=tuple(PITVIS_COLUMNS), columns=len(PITVIS_COLUMNS), frame=1, label=2)
# Annotation step (-1, 1..14) -> class id (0..13, 14 = background).
PITVIS_STEP_IDS = ClassIds({-1: PITVIS_BACKGROUND, **{s: s - 1 for s in range(1, 15)}}, word="int_step")


def load_pitvis(root: Path, problems: Problems) -> list[Record]:
    records = []
    videos = sorted(p for p in root.rglob("video_*.mp4") if re.fullmatch(r"video_\d+\.mp4", p.name))
    if not videos:
        problems.add(root, None, "no video_NN.mp4 files")
    nums = [int(p.stem.split("_")[1]) for p in videos]
    val = {int(n) for n in carve_val(f"{n:03d}" for n in nums if PITVIS_SPLIT.of(n) == "train")}
    for vp, num in zip(videos, nums):
        ann = find_casefold(root, f"annotations_{num:02d}.csv")
        if ann is None:
            problems.add(root, None, f"missing annotations_{num:02d}.csv for {vp.name}")
            continue
        # one row per second (int_time), plus one trailing row
        parsed = read_frame_labels(ann, PITVIS_LABELS, FrameNumbers(word="int_time"), PITVIS_STEP_IDS, problems)
        if parsed is None:
            continue
        times, lab = timeline_from_frames(*_arrays(parsed), 1.0)
        split = "val" if num in val else PITVIS_SPLIT.of(num)
        records.append(Record(f"video_{num:02d}", split, VideoSource(str(vp)), lab, times))
    return records


PITVIS = Benchmark(
    number=6,
    name="pitvis",
    title="PitVis-2023",
    # The official step score leaves out background and steps 11 and 13 (class ids 10 and 12).
    family=Phase(ignore=frozenset({PITVIS_BACKGROUND, 10, 12}), edit_score=True),
    classes=PITVIS_STEPS,
    metric="pitvis_score",
    higher_is_better=True,
    loader=load_pitvis,
    disk_layout=DiskLayout(
        folder="PitVis",
        files=(
            ("video_<NN>.mp4", "24 fps; found anywhere under the root"),
            ("annotations_<NN>.csv", "header int_video,int_time,int_step,...; a row per second; anywhere"),
        ),
    ),
    description="endoscopic pituitary surgery steps; 1 fps CSV; score = (macro F1 + edit)/2 without -1, 11, 13",
    split=PITVIS_SPLIT,
    # pitvis_prepare.py: every non-test video trains; rows of steps -1, 11 and 13 are dropped
    authors=AuthorsRecipe(split=by_test_ids(lambda r: r.split == "test"), drop_ignored=True),
)

# --------------------------------------------------------------------------- EgoSurgery-Phase

EGOSURGERY_PHASES = (
    "disinfection",
    "design",
    "anesthesia",
    "incision",
    "dissection",
    "hemostasis",
    "irrigation",
    "closure",
    "dressing",
)
EGOSURGERY_SPLIT = IdSplit(  # as published with SurgMotion's preparation script ("official splits")
    train=(1, 2, 3, 4, 8, 9, 11, 13, 14, 15, 17, 20, 21),
    val=(5, 19),
    test=(6, 7, 10, 12, 18),
)
EGOSURGERY_FPS = 1.0  # frame rate of the released images is not documented; clips step one image at a time
EGOSURGERY_LABELS = LabelFile(sep=",", header=("Frame", "Phase"))  # Frame = image stem VV_S_FFFF


def load_egosurgery(root: Path, problems: Problems) -> list[Record]:
    """``annotations/phase/VV_S.csv`` (header ``Frame,Phase``; Frame = image stem) and
    ``images/VV/<Frame>.jpg``; phases are lower-case names."""
    records = []
    anns = find_files(root / "annotations" / "phase", "*.csv")
    if not anns:
        problems.add(root / "annotations" / "phase", None, "no VV_S.csv phase annotations")
    annotated = {a.stem.split("_")[0] for a in anns}
    for d in sorted(p for p in (root / "images").glob("*") if p.is_dir()):
        if d.name not in annotated:
            problems.add(
                root / "annotations" / "phase", None, f"missing annotation for images/{d.name} ({d.name}_S.csv)"
            )
    for ann in anns:
        m = re.fullmatch(r"(\d+)_(\d+)", ann.stem)
        if not m:
            problems.add(ann, None, "annotation name is not VV_S.csv")
            continue
        vid = int(m.group(1))
        split = EGOSURGERY_SPLIT.of(vid)
        if split is None:
            problems.add(ann, None, f"video {vid} is in no split")
            continue
        folder = root / "images" / m.group(1)
        parsed = read_frame_labels(ann, EGOSURGERY_LABELS, ImageStems(folder), ClassNames(EGOSURGERY_PHASES), problems)
        if parsed is None:
            continue
        stems, labels = parsed
        paths = tuple(str(folder / f"{stem}.jpg") for stem in stems)
        times = np.arange(len(paths), dtype=np.float64) / EGOSURGERY_FPS  # images in file order
        src = FramesSource(paths, EGOSURGERY_FPS)
        records.append(Record(ann.stem, split, src, np.asarray(labels), times, group=m.group(1)))
    return records


EGOSURGERY = Benchmark(
    number=7,
    name="egosurgery",
    title="EgoSurgery-Phase",
    family=Phase(),
    classes=EGOSURGERY_PHASES,
    metric="f1",
    higher_is_better=True,
    loader=load_egosurgery,
    disk_layout=DiskLayout(
        folder="EgoSurgery",
        files=(
            ("images/<VV>/<VV>_<S>_<FFFF>.jpg", "the frames of video VV, session S"),
            ("annotations/phase/<VV>_<S>.csv", "header Frame,Phase; Frame = image stem; lower-case phase names"),
        ),
    ),
    description="egocentric open surgery; per-image phase CSVs; split by video",
    split=EGOSURGERY_SPLIT,
    # egosurgery_prepare.py + gen_clips.py: the loader's split; a video's sessions form one sequence
    authors=AuthorsRecipe(sequence="group"),
)

# --------------------------------------------------------------------------- PmLR50

PMLR50_PHASES = (  # ids 0-4; names as listed by the SurgMotion preparation script
    "Preparation stage",
    "Knotting of the Foley catheter",
    "Procedure of the liver resection",
    "Release of the Foley catheter",
    "Postprocessing stage",
)
# The official PmNet split: train 1-33, 49, 50; validation 34-37, 48; test 38-47.
PMLR50_SPLIT = IdSplit(
    train=(*range(1, 34), 49, 50), val=(34, 35, 36, 37, 48), test=tuple(range(38, 48)), default="train"
)
# A header PmNet skips unread, then "<frame_id> <phase_id>" at 1 fps, 0-based.
PMLR50_LABELS = LabelFile(sep=None, header=("Frame", "Phase"), skip_header=True)


def load_pmlr50(root: Path, problems: Problems) -> list[Record]:
    records = []
    anns = find_files(root / "phase_annotations", "*.txt")
    if not anns:
        problems.add(root / "phase_annotations", None, "no <video>.txt phase annotations")
    for d in sorted(p for p in (root / "frames").glob("*") if p.is_dir()):
        if not (root / "phase_annotations" / f"{d.name}.txt").exists():
            problems.add(root / "phase_annotations" / f"{d.name}.txt", None, f"missing annotation for frames/{d.name}")
    for ann in anns:
        if not ann.stem.isdigit():
            problems.add(ann, None, "annotation name is not a video number")
            continue
        frame_dir = root / "frames" / ann.stem
        frames = sorted((p for p in frame_dir.glob("*.jpg") if p.stem.isdigit()), key=lambda p: int(p.stem))
        if not frames:
            problems.add(frame_dir, None, "no extracted frames (<8 digits>.jpg)")
            continue
        ids = ClassIds.counting(len(PMLR50_PHASES))
        parsed = read_frame_labels(ann, PMLR50_LABELS, FrameNumbers(count=len(frames)), ids, problems)
        if parsed is None:
            continue
        times, lab = timeline_from_frames(*_arrays(parsed), 1.0)
        src = FramesSource(tuple(str(p) for p in frames), 1.0)
        records.append(Record(ann.stem, PMLR50_SPLIT.of(int(ann.stem)), src, lab, times))
    return records


PMLR50 = Benchmark(
    number=8,
    name="pmlr50",
    title="PmLR50",
    family=Phase(),
    classes=PMLR50_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_pmlr50,
    disk_layout=DiskLayout(
        folder="PmLR50",
        files=(
            ("frames/<NN>/<NNNNNNNN>.jpg", "1 fps, numbered from 0"),
            ("phase_annotations/<NN>.txt", "a header line, then 'frame phase_id' at 1 fps; ids 0..4"),
        ),
    ),
    description="laparoscopic liver resection; 1 fps JPEG frames in frames/NN/; official PmNet split",
    split=PMLR50_SPLIT,
    authors=AuthorsRecipe(),  # pmlr50_prepare.py: PmNet's pickles, the loader's split
)

# --------------------------------------------------------------------------- OphNet2024

OPHNET_NUM_PHASES = 52  # ids 0-51; 51 = "Others" (rare labels merged by the authors)
OPHNET_PHASES = tuple(f"phase_{i:02d}" for i in range(OPHNET_NUM_PHASES - 1)) + ("Others",)
OPHNET_CSV = "annotation/OphNet2024_loca_challenge_phase.csv"
OPHNET_COLUMNS = ["video_id", "start", "end", "split", "surgery_id", "phase_id"]


def load_ophnet(root: Path, problems: Problems, label_fps: float = 1.0) -> list[Record]:
    ann = root / OPHNET_CSV
    lines = read_lines(ann, problems) if ann.exists() else None
    if lines is None:
        if not ann.exists():
            problems.add(ann, None, "missing phase localisation CSV")
        return []
    reader = csv.reader(io.StringIO("\n".join(lines)))
    header = next(reader)
    if header[: len(OPHNET_COLUMNS)] != OPHNET_COLUMNS:
        problems.add(ann, 1, f"expected columns {OPHNET_COLUMNS}, found {header}")
        return []
    per_video: dict[str, dict] = {}
    for ln, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) < len(OPHNET_COLUMNS):
            problems.add(ann, ln, f"expected {len(OPHNET_COLUMNS)} fields, found {len(row)}")
            continue
        vid, start, end, split, _, ph = row[:6]
        try:
            a, b = float(start), float(end)
        except ValueError:
            problems.add(ann, ln, f"start/end {start!r}/{end!r} are not numbers")
            continue
        pid = parse_int(ann, ln, ph, "phase_id", problems)
        if pid is None:
            continue
        if not 0 <= pid < OPHNET_NUM_PHASES:
            problems.add(ann, ln, id_problem("phase_id", pid, range(OPHNET_NUM_PHASES)))
            continue
        if split not in ("train", "val", "test"):
            problems.add(ann, ln, f"split {split!r} is not train/val/test")
            continue
        if b <= a:
            problems.add(ann, ln, f"segment end {b} <= start {a}")
            continue
        v = per_video.setdefault(vid, {"split": split, "times": [], "labels": [], "line": ln})
        if v["split"] != split:
            problems.add(ann, ln, f"video {vid} is in split {v['split']!r} and {split!r}")
            continue
        t = np.arange(a, b, 1.0 / label_fps)
        v["times"].extend(t.tolist())
        v["labels"].extend([pid] * len(t))
    records = []
    for vid, v in sorted(per_video.items()):
        vp = root / "OphNet2024_all" / f"{vid}.mp4"
        if not vp.exists():
            problems.add(ann, v["line"], f"video {vp.name} listed but missing from OphNet2024_all/")
            continue
        times = np.asarray(v["times"], np.float64)
        order = np.argsort(times, kind="stable")
        records.append(Record(vid, v["split"], VideoSource(str(vp)), np.asarray(v["labels"])[order], times[order]))
    return records


OPHNET2024 = Benchmark(
    number=9,
    name="ophnet2024",
    title="OphNet2024",
    family=Phase(),
    classes=OPHNET_PHASES,
    metric="accuracy",
    higher_is_better=True,
    loader=load_ophnet,
    disk_layout=DiskLayout(
        folder="OphNet2024",
        files=(
            ("OphNet2024_all/<video_id>.mp4", "the videos the CSV names"),
            (OPHNET_CSV, "header " + ",".join(OPHNET_COLUMNS) + "; segments in seconds"),
        ),
    ),
    description="ophthalmic surgery phase localisation; segments in seconds, split column in the CSV",
    authors=AuthorsRecipe(),  # ophnet_prepare.py: the CSV's split column, as the loader's
)


# The suite's phase / step benchmarks (the registry collects every loader module's BENCHMARKS).
BENCHMARKS = (CHOLEC80, M2CAI16, AUTOLAPARO, HEICHOLE, MULTIBYPASS140, PITVIS, EGOSURGERY, PMLR50, OPHNET2024)
