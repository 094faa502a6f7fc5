"""Phase / step recognition benchmarks (temporal, one class per labelled instant).

Each loader reads the dataset's published layout (see ``shared/reference/benchmarks.md``)
and returns one :class:`Record` per video with its label timeline in seconds.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import re
from pathlib import Path

import numpy as np

from .base import (
    Benchmark,
    FramesSource,
    Problems,
    Record,
    VideoSource,
    carve_val,
    check_header,
    find_casefold,
    find_files,
    parse_int,
    read_lines,
    register,
    timeline_from_frames,
)

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


def cholec80_split(num: int) -> str:
    """The 40/8/32 split: videos 1-40 train, 41-48 val, 49-80 test."""
    return "train" if num <= 40 else ("val" if num <= 48 else "test")


def _named_phase_file(
    path: Path, names: tuple[str, ...], problems: Problems, sep: str | None, header: list[str] | None
) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse a ``frame<sep>phase_name`` file -> (frames, class ids); phases keyed by name."""
    lines = read_lines(path, problems)
    if lines is None:
        return None
    index = {n.casefold(): i for i, n in enumerate(names)}
    start = 0
    if header is not None:
        if not check_header(path, lines[0], header, problems, sep):
            return None
        start = 1
    frames, labels, seen = [], [], set()
    for ln, line in enumerate(lines[start:], start=start + 1):
        if not line.strip():
            continue
        parts = line.split(sep) if sep else line.split()
        if len(parts) != 2:
            problems.add(path, ln, f"expected 2 fields separated by {sep or 'whitespace'!r}, found {len(parts)}")
            continue
        f = parse_int(path, ln, parts[0], "frame", problems)
        name = parts[1].strip()
        if f is None:
            continue
        if name.casefold() not in index:
            problems.add(path, ln, f"unknown phase {name!r}")
            continue
        if f in seen:
            problems.add(path, ln, f"frame {f} listed twice")
            continue
        seen.add(f)
        frames.append(f)
        labels.append(index[name.casefold()])
    if not frames:
        problems.add(path, None, "no labelled frames")
        return None
    return np.asarray(frames, np.int64), np.asarray(labels, np.int64)


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
        parsed = _named_phase_file(ann, CHOLEC80_PHASES, problems, "\t", ["Frame", "Phase"])
        if parsed is None:
            continue
        times, labels = timeline_from_frames(*parsed, CHOLEC80_FPS)
        records.append(Record(vp.stem, cholec80_split(int(m.group(1))), VideoSource(str(vp)), labels, times))
    return records


register(
    Benchmark(
        "cholec80",
        "Cholec80",
        "phase",
        CHOLEC80_PHASES,
        "accuracy",
        True,
        load_cholec80,
        "laparoscopic cholecystectomy phases; 25 fps per-frame labels; split 40/8/32",
    )
)

# --------------------------------------------------------------------------- M2CAI16-workflow

M2CAI_PHASES = ("TrocarPlacement", *CHOLEC80_PHASES)  # the official order: trocar placement first


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
        # One header line, then "frame phase_name" per frame at 25 fps (whitespace-separated).
        parsed = _named_phase_file(ann, M2CAI_PHASES, problems, None, ["Frame", "Phase"])
        if parsed is None:
            continue
        times, labels = timeline_from_frames(*parsed, 25.0)
        name = vp.stem
        records.append(Record(name, "val" if name in val else split, VideoSource(str(vp)), labels, times))
    return records


register(
    Benchmark(
        "m2cai16",
        "M2CAI16-workflow",
        "phase",
        M2CAI_PHASES,
        "accuracy",
        True,
        load_m2cai16,
        "cholecystectomy workflow challenge; 27 train / 14 test videos; val = last 20% of train",
    )
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


def autolaparo_split(num: int) -> str:
    return "train" if num <= 10 else ("val" if num <= 14 else "test")


def load_autolaparo(root: Path, problems: Problems) -> list[Record]:
    records = []
    videos = find_files(root / "videos", "*.mp4")
    if not videos:
        problems.add(root / "videos", None, "no NN.mp4 videos")
    for vp in videos:
        if not vp.stem.isdigit():
            continue
        num = int(vp.stem)
        ann = root / "labels" / f"label_{vp.stem}.txt"
        lines = read_lines(ann, problems) if ann.exists() else None
        if lines is None:
            if not ann.exists():
                problems.add(ann, None, "missing label file for " + vp.name)
            continue
        if not check_header(ann, lines[0], ["Frame", "Phase"], problems, "\t"):
            continue
        secs, labels = [], []
        seen: set = set()
        for ln, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split("\t")
            if len(parts) != 2:
                problems.add(ann, ln, f"expected 2 tab-separated fields, found {len(parts)}")
                continue
            f = parse_int(ann, ln, parts[0], "frame", problems)
            ph = parse_int(ann, ln, parts[1], "phase id", problems)
            if f is None or ph is None:
                continue
            if f < 1:
                problems.add(ann, ln, f"frame {f} < 1 (AutoLaparo frames are 1-based)")
                continue
            if not 1 <= ph <= 7:
                problems.add(ann, ln, f"phase id {ph} outside 1..7")
                continue
            if f - 1 in seen:
                problems.add(ann, ln, f"frame {f} listed twice")
                continue
            seen.add(f - 1)
            secs.append(f - 1)  # one row per second, 1-based
            labels.append(ph - 1)
        if not secs:
            problems.add(ann, None, "no labelled frames")
            continue
        times, lab = timeline_from_frames(np.asarray(secs), np.asarray(labels), 1.0)
        records.append(Record(vp.stem, autolaparo_split(num), VideoSource(str(vp)), lab, times))
    return records


register(
    Benchmark(
        "autolaparo",
        "AutoLaparo",
        "phase",
        AUTOLAPARO_PHASES,
        "accuracy",
        True,
        load_autolaparo,
        "laparoscopic hysterectomy, task 1; 1 fps labels, 1-based frames, ids 1..7; split 10/4/7",
    )
)

# --------------------------------------------------------------------------- PmLR50

PMLR50_PHASES = (  # ids 0-4; names as listed by the SurgMotion preparation script
    "Preparation stage",
    "Knotting of the Foley catheter",
    "Procedure of the liver resection",
    "Release of the Foley catheter",
    "Postprocessing stage",
)


def pmlr50_split(num: int) -> str:
    """Official PmNet split: train 1-33, 49, 50; validation 34-37, 48; test 38-47."""
    if 34 <= num <= 37 or num == 48:
        return "val"
    if 38 <= num <= 47:
        return "test"
    return "train"


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
        lines = read_lines(ann, problems)
        if lines is None:
            continue
        ids, labels = [], []
        seen: set = set()
        # The first line is a header (PmNet skips it unread); then "<frame_id> <phase_id>", 1 fps, 0-based.
        for ln, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split()
            if len(parts) != 2:
                problems.add(ann, ln, f"expected '<frame_id> <phase_id>', found {len(parts)} fields")
                continue
            f = parse_int(ann, ln, parts[0], "frame id", problems)
            ph = parse_int(ann, ln, parts[1], "phase id", problems)
            if f is None or ph is None:
                continue
            if not 0 <= ph < len(PMLR50_PHASES):
                problems.add(ann, ln, f"phase id {ph} outside 0..{len(PMLR50_PHASES) - 1}")
                continue
            if not 0 <= f < len(frames):
                problems.add(ann, ln, f"frame id {f} has no image (video has {len(frames)} frames)")
                continue
            if f in seen:
                problems.add(ann, ln, f"frame id {f} listed twice")
                continue
            seen.add(f)
            ids.append(f)
            labels.append(ph)
        if not ids:
            continue
        times, lab = timeline_from_frames(np.asarray(ids), np.asarray(labels), 1.0)
        src = FramesSource(tuple(str(p) for p in frames), 1.0)
        records.append(Record(ann.stem, pmlr50_split(int(ann.stem)), src, lab, times))
    return records


register(
    Benchmark(
        "pmlr50",
        "PmLR50",
        "phase",
        PMLR50_PHASES,
        "accuracy",
        True,
        load_pmlr50,
        "laparoscopic liver resection; 1 fps frames frames/NN/NNNNNNNN.jpg; official PmNet split",
    )
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
            problems.add(ann, ln, f"phase_id {pid} outside 0..{OPHNET_NUM_PHASES - 1}")
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


register(
    Benchmark(
        "ophnet2024",
        "OphNet2024",
        "phase",
        OPHNET_PHASES,
        "accuracy",
        True,
        load_ophnet,
        "ophthalmic surgery phase localisation; segments in seconds, split column in the CSV",
    )
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


def heichole_split(num: int) -> str:
    """24 public videos, no official split: 1-12 train, 13-16 val, 17-24 test (ours, documented)."""
    return "train" if num <= 12 else ("val" if num <= 16 else "test")


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
        lines = read_lines(ann, problems)
        if lines is None:
            continue
        frames, labels = [], []
        seen: set = set()
        for ln, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 2:
                problems.add(ann, ln, f"expected 'frame,phase_id', found {len(parts)} comma-separated fields")
                continue
            f = parse_int(ann, ln, parts[0], "frame", problems)
            ph = parse_int(ann, ln, parts[1], "phase id", problems)
            if f is None or ph is None:
                continue
            if not 0 <= ph < len(HEICHOLE_PHASES):
                problems.add(ann, ln, f"phase id {ph} outside 0..6")
                continue
            if f in seen:
                problems.add(ann, ln, f"frame {f} listed twice")
                continue
            seen.add(f)
            frames.append(f)
            labels.append(ph)
        if not frames:
            continue
        times, lab = timeline_from_frames(np.asarray(frames), np.asarray(labels), fps)
        records.append(Record(f"Hei-Chole{num}", heichole_split(num), VideoSource(str(vp)), lab, times))
    return records


register(
    Benchmark(
        "heichole",
        "HeiChole",
        "phase",
        HEICHOLE_PHASES,
        "f1",
        True,
        load_heichole,
        "cholecystectomy (EndoVis 2019); per-frame labels at 25 or 50 fps; split 12/4/8 (ours)",
    )
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
                    problems.add(ann, None, f"phases[{i}] label_id {lid} outside 0..11")
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


register(
    Benchmark(
        "multibypass140",
        "MultiBypass140",
        "phase",
        MULTIBYPASS_PHASES,
        "accuracy",
        True,
        load_multibypass,
        "gastric bypass (Bern + Strasbourg); ms phase segments; official fold-0 split pickles",
    )
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
PITVIS_TEST = {2, 6, 12, 13, 24}  # the 5 held-out videos used by PitVQA and SurgMotion
PITVIS_FPS = 24.0


def pitvis_label(step: int) -> int:
    """Annotation step (-1, 1..14) -> class id (0..13, 14 = background)."""
    return PITVIS_BACKGROUND if step == -1 else step - 1


def load_pitvis(root: Path, problems: Problems) -> list[Record]:
    records = []
    videos = sorted(p for p in root.rglob("video_*.mp4") if re.fullmatch(r"video_\d+\.mp4", p.name))
    if not videos:
        problems.add(root, None, "no video_NN.mp4 files")
    nums = [int(p.stem.split("_")[1]) for p in videos]
    val = {int(n) for n in carve_val(f"{n:03d}" for n in nums if n not in PITVIS_TEST)}
    for vp, num in zip(videos, nums):
        ann = find_casefold(root, f"annotations_{num:02d}.csv")
        if ann is None:
            problems.add(root, None, f"missing annotations_{num:02d}.csv for {vp.name}")
            continue
        lines = read_lines(ann, problems)
        if lines is None or not check_header(ann, lines[0], PITVIS_COLUMNS, problems, ","):
            continue
        secs, labels = [], []
        seen: set = set()
        for ln, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != len(PITVIS_COLUMNS):
                problems.add(ann, ln, f"expected {len(PITVIS_COLUMNS)} comma-separated fields, found {len(parts)}")
                continue
            t = parse_int(ann, ln, parts[1], "int_time", problems)
            step = parse_int(ann, ln, parts[2], "int_step", problems)
            if t is None or step is None:
                continue
            if step != -1 and not 1 <= step <= 14:
                problems.add(ann, ln, f"int_step {step} is not -1 or 1..14")
                continue
            if t in seen:
                problems.add(ann, ln, f"int_time {t} listed twice")
                continue
            seen.add(t)
            secs.append(t)
            labels.append(pitvis_label(step))
        if not secs:
            continue
        times, lab = timeline_from_frames(np.asarray(secs), np.asarray(labels), 1.0)
        split = "test" if num in PITVIS_TEST else ("val" if num in val else "train")
        records.append(Record(f"video_{num:02d}", split, VideoSource(str(vp)), lab, times))
    return records


register(
    Benchmark(
        "pitvis",
        "PitVis-2023",
        "phase",
        PITVIS_STEPS,
        "pitvis_score",
        True,
        load_pitvis,
        "endoscopic pituitary surgery steps; 1 fps CSV; score = (macro F1 + edit)/2 without -1, 11, 13",
    )
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
EGOSURGERY_SPLIT = {  # as published with SurgMotion's preparation script ("official splits")
    "train": {1, 2, 3, 4, 8, 9, 11, 13, 14, 15, 17, 20, 21},
    "val": {5, 19},
    "test": {6, 7, 10, 12, 18},
}
EGOSURGERY_FPS = 1.0  # frame rate of the released images is not documented; clips step one image at a time


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
    index = {n: i for i, n in enumerate(EGOSURGERY_PHASES)}
    for ann in anns:
        m = re.fullmatch(r"(\d+)_(\d+)", ann.stem)
        if not m:
            problems.add(ann, None, "annotation name is not VV_S.csv")
            continue
        vid = int(m.group(1))
        split = next((s for s, ids in EGOSURGERY_SPLIT.items() if vid in ids), None)
        if split is None:
            problems.add(ann, None, f"video {vid} is in no split")
            continue
        lines = read_lines(ann, problems)
        if lines is None or not check_header(ann, lines[0], ["Frame", "Phase"], problems, ","):
            continue
        paths, labels = [], []
        seen: set = set()
        for ln, line in enumerate(lines[1:], start=2):
            if not line.strip():
                continue
            parts = line.split(",")
            if len(parts) != 2:
                problems.add(ann, ln, f"expected 'Frame,Phase', found {len(parts)} fields")
                continue
            stem, phase = parts[0].strip(), parts[1].strip().lower()
            if phase not in index:
                problems.add(ann, ln, f"unknown phase {parts[1].strip()!r}")
                continue
            img = root / "images" / m.group(1) / f"{stem}.jpg"
            if not img.exists():
                problems.add(ann, ln, f"image {img.name} missing")
                continue
            if str(img) in seen:
                problems.add(ann, ln, f"frame {stem} listed twice")
                continue
            seen.add(str(img))
            paths.append(str(img))
            labels.append(index[phase])
        if not paths:
            continue
        times = np.arange(len(paths), dtype=np.float64) / EGOSURGERY_FPS
        src = FramesSource(tuple(paths), EGOSURGERY_FPS)
        records.append(Record(ann.stem, split, src, np.asarray(labels), times, group=m.group(1)))
    return records


register(
    Benchmark(
        "egosurgery",
        "EgoSurgery-Phase",
        "phase",
        EGOSURGERY_PHASES,
        "f1",
        True,
        load_egosurgery,
        "egocentric open surgery; per-image phase CSVs; split by video",
    )
)
