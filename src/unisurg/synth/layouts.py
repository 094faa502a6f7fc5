"""Writers for the mini version of each of the 17 benchmarks, in the dataset's real layout.

Every writer renders synthetic videos/images with exact labels and writes them with the
real file names, headers, separators, frame indexing, label rates and split conventions
read by the loaders in :mod:`unisurg.benchmarks` (the same loaders a user points at a real
download). Videos are numbered inside each split's real id range so the official split
rules apply unchanged.
"""

from __future__ import annotations

import json
import pickle
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..benchmarks import Benchmark, clips, dense, phase, triplets
from ..benchmarks.dense import kvasir_split
from ..media.video import VideoWriter
from .looks import LOOKS
from .procedure import (
    Action,
    Segment,
    active_actions,
    class_signatures,
    fill_segments,
    make_track,
    new_plan,
    stable_seed,
    tools_present,
    workflow_segments,
)
from .scene import ScenePlan, SceneRenderer, stable_cos, stable_exp, stable_sin
from .static import DenseScene


@dataclass(frozen=True)
class SynthSpec:
    size: int = 128
    seconds: float = 28.0
    videos_per_split: tuple[int, int, int] = (3, 1, 2)
    images_per_split: tuple[int, int, int] = (24, 8, 12)
    archive_seed: int = 0  # seeds the videos two benchmarks share (CHOLEC_ARCHIVE_SHARED)


# --------------------------------------------------------------------------- helpers


def write_text(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text.encode("utf-8"))  # bytes: no platform newline translation


def render_to_video(
    plan: ScenePlan, path: Path, every: int = 1, container: str | None = None, mirror_path: Path | None = None
) -> None:
    """Encode frames 0, every, 2*every, ... of ``plan`` as H.264 at ``plan.fps / every``."""
    r = SceneRenderer(plan)
    fps = plan.fps / every
    with VideoWriter(path, fps, plan.size, plan.size, container=container) as w:
        mw = VideoWriter(mirror_path, fps, plan.size, plan.size, container=container) if mirror_path else None
        for t in range(0, plan.num_frames, every):
            f = r.frame(t)
            w.write(f)
            if mw is not None:
                mw.write(np.ascontiguousarray(f[:, ::-1]))  # a second camera: mirrored view
        if mw is not None:
            mw.close()


def render_to_images(plan: ScenePlan, paths: list[Path], every: int) -> None:
    r = SceneRenderer(plan)
    for k, p in enumerate(paths):
        p.parent.mkdir(parents=True, exist_ok=True)
        ext = p.suffix.lower()
        params = [cv2.IMWRITE_JPEG_QUALITY, 92] if ext == ".jpg" else [cv2.IMWRITE_PNG_COMPRESSION, 6]
        cv2.imwrite(str(p), r.frame(k * every)[..., ::-1], params)


def declared_split(bench: Benchmark) -> dict[str, list]:
    """The benchmark's split as declared (split -> ids in published order): the writers pick from it."""
    assert bench.split is not None, f"{bench.name} declares no id split"
    return bench.split.table()


def first(ids: list, *front: int) -> list:
    """``ids`` with ``front`` moved to the start (which videos the mini corpus renders first)."""
    return [*front, *(i for i in ids if i not in front)]


def split_ids(ranges: dict[str, list[int]], counts: tuple[int, int, int]) -> list[tuple[int, str]]:
    """Pick the first ``counts`` ids of each split's real id list -> [(id, split)]."""
    out = []
    for split, n in zip(("train", "val", "test"), counts):
        ids = ranges[split]
        if n > len(ids):
            raise ValueError(f"{n} {split} videos requested but the real split has only {len(ids)}")
        out += [(i, split) for i in ids[:n]]
    return out


def frame_labels(segments: list[Segment], n: int) -> np.ndarray:
    y = np.full(n, -1, np.int64)
    for s in segments:
        y[s.start : s.end] = s.label
    return y


# Cholecystectomy: one set of phase semantics shared by Cholec80, M2CAI16 and HeiChole, so the
# same phase looks the same in every dataset (as in reality).
CHOLE_TOOLS = ["grasper", "bipolar", "hook", "scissors", "clipper", "irrigator", "specimen_bag"]
CHOLE_TARGETS = ["gallbladder", "cystic_duct", "cystic_artery", "cystic_plate", "liver", "omentum"]
CHOLE_ASSISTANT: Action = ("grasper", "retract", "gallbladder")
_ALIASES = {"carlot": "calot", "galbladder": "gallbladder", "and": "", "extraction": "retraction"}


def canonical_phase(name: str) -> str:
    s = re.sub(r"[^a-z ]", " ", name.lower())
    words = [_ALIASES.get(w, w) for w in s.split()]
    return "".join(words)


CHOLE_CANON = [canonical_phase(n) for n in phase.M2CAI_PHASES]


def chole_signatures(class_names: tuple[str, ...]) -> dict[int, list[Action]]:
    canon = class_signatures("cholecystectomy", len(CHOLE_CANON), CHOLE_TOOLS, CHOLE_TARGETS)
    return {i: canon[CHOLE_CANON.index(canonical_phase(n))] for i, n in enumerate(class_names)}


def workflow_plan(
    look: str,
    spec: SynthSpec,
    fps: float,
    seed: int,
    order: list[int],
    signatures: dict[int, list[Action]],
    targets: list[str],
    assistant: Action | None,
    seconds: float | None = None,
    skip_prob: float = 0.1,
) -> tuple[ScenePlan, np.ndarray]:
    n = int(round((seconds or spec.seconds) * fps))
    plan = new_plan(LOOKS[look], spec.size, fps, n, seed, targets)
    rng = np.random.default_rng(seed + 1)
    segs = workflow_segments(n, fps, order, rng, skip_prob=skip_prob)
    fill_segments(plan, segs, signatures, rng, assistant=assistant)
    return plan, frame_labels(segs, n)


# --------------------------------------------------------------------------- 1. Cholec80


def write_cholec80(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = chole_signatures(phase.CHOLEC80_PHASES)
    tool_col = {t.lower().replace("specimenbag", "specimen_bag"): i for i, t in enumerate(phase.CHOLEC80_TOOLS)}
    ids = split_ids(declared_split(phase.CHOLEC80), spec.videos_per_split)
    ids += [(n, "train") for n in CHOLEC_ARCHIVE_SHARED if n not in dict(ids)]  # in every corpus, however small
    for num, _ in ids:
        if num in CHOLEC_ARCHIVE_SHARED:  # CholecT50 holds this video's frames (as in reality)
            plan, y = cholect50_plan(spec, stable_seed(spec.archive_seed, "cholec-archive", num))
        else:
            plan, y = workflow_plan(
                "lap_chole", spec, 25.0, seed + num, list(range(7)), sig, CHOLE_TARGETS, CHOLE_ASSISTANT
            )
        render_to_video(plan, root / "videos" / f"video{num:02d}.mp4")
        rows = "".join(f"{f}\t{phase.CHOLEC80_PHASES[c]}\n" for f, c in enumerate(y))
        write_text(root / "phase_annotations" / f"video{num:02d}-phase.txt", "Frame\tPhase\n" + rows)
        tool_rows = []
        for f in range(0, plan.num_frames, 25):  # tool presence at 1 fps
            v = [0] * len(phase.CHOLEC80_TOOLS)
            for tool in tools_present(plan, f):
                if tool in tool_col:
                    v[tool_col[tool]] = 1
            tool_rows.append("\t".join([str(f)] + [str(x) for x in v]) + "\n")
        write_text(
            root / "tool_annotations" / f"video{num:02d}-tool.txt",
            "\t".join(["Frame", *phase.CHOLEC80_TOOLS]) + "\n" + "".join(tool_rows),
        )


def write_cholec80_long(root: Path, seconds: int, videos: tuple[int, ...], size: int = 64) -> None:
    """A Cholec80 download in its real layout with plain pictures that cost nothing to draw, for scale
    tests and benches (any length, any video numbers): the phase changes every ``seconds`` / 7 s and
    sets the red level, a green bar moves with time, a blue line marks the video."""
    n = seconds * 25
    phases = np.minimum(np.arange(n) * 7 // n, 6)
    for v in videos:
        with VideoWriter(root / "videos" / f"video{v:02d}.mp4", 25.0, size, size) as w:
            for k in range(n):
                img = np.zeros((size, size, 3), np.uint8)
                img[..., 0] = 30 * phases[k]
                img[:, (k // 5) % size, 1] = 255
                img[(v * 7) % size, :, 2] = 200
                w.write(img)
        rows = "".join(f"{k}\t{phase.CHOLEC80_PHASES[phases[k]]}\n" for k in range(n))
        write_text(root / "phase_annotations" / f"video{v:02d}-phase.txt", "Frame\tPhase\n" + rows)


# --------------------------------------------------------------------------- 2. M2CAI16-workflow


def write_m2cai16(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = chole_signatures(phase.M2CAI_PHASES)
    n_train = spec.videos_per_split[0] + spec.videos_per_split[1]  # val is carved from train
    items = [(f"train_dataset/workflow_video_{i:02d}", i) for i in range(1, n_train + 1)]
    items += [(f"test_dataset/test_workflow_video_{i:02d}", 100 + i) for i in range(1, spec.videos_per_split[2] + 1)]
    for stem, k in items:
        plan, y = workflow_plan("lap_chole", spec, 25.0, seed + k, list(range(8)), sig, CHOLE_TARGETS, CHOLE_ASSISTANT)
        render_to_video(plan, root / f"{stem}.mp4")
        write_text(
            root / f"{stem}.txt", "Frame\tPhase\n" + "".join(f"{f}\t{phase.M2CAI_PHASES[c]}\n" for f, c in enumerate(y))
        )


# --------------------------------------------------------------------------- 3. AutoLaparo

HYST_TOOLS = ["grasper", "bipolar", "scissors", "suction", "needle_driver", "irrigator", "forceps"]
HYST_TARGETS = ["uterus", "ligament", "vessel", "vagina", "peritoneum"]


def write_autolaparo(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("hysterectomy", 7, HYST_TOOLS, HYST_TARGETS)
    ids = split_ids(declared_split(phase.AUTOLAPARO), spec.videos_per_split)
    for num, _ in ids:
        plan, y = workflow_plan(
            "lap_gyn", spec, 25.0, seed + num, list(range(7)), sig, HYST_TARGETS, ("grasper", "retract", "uterus")
        )
        render_to_video(plan, root / "videos" / f"{num:02d}.mp4")
        secs = plan.num_frames // 25
        rows = "".join(f"{k + 1}\t{y[k * 25] + 1}\n" for k in range(secs))  # 1 fps, 1-based frames and ids
        write_text(root / "labels" / f"label_{num:02d}.txt", "Frame\tPhase\n" + rows)


# --------------------------------------------------------------------------- 4. HeiChole

HEICHOLE_50FPS = {16, 17, 18, 19, 20, 23, 24}


def write_heichole(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = chole_signatures(phase.HEICHOLE_PHASES)
    split = declared_split(phase.HEICHOLE)
    # rendered first: val 16 (50 fps, a lower-cased annotation file), test 17 (50 fps) and 21 (25 fps)
    split = {"train": split["train"], "val": first(split["val"], 16), "test": first(split["test"], 17, 21)}
    ids = split_ids(split, spec.videos_per_split)
    for num, split in ids:
        fps = 50.0 if num in HEICHOLE_50FPS else 25.0
        plan, y = workflow_plan("lap_chole", spec, fps, seed + num, list(range(7)), sig, CHOLE_TARGETS, CHOLE_ASSISTANT)
        render_to_video(plan, root / "Videos" / "Full" / f"Hei-Chole{num}.mp4")
        name = f"Hei-Chole{num}_Annotation_Phase.csv"
        if split == "val":
            name = name.lower()  # some copies of the dataset are lower-cased
        write_text(root / "Annotations" / "Phase" / name, "".join(f"{f},{c}\n" for f, c in enumerate(y)))


# --------------------------------------------------------------------------- 5. MultiBypass140

BYPASS_TOOLS = ["grasper", "bipolar", "scissors", "needle_driver", "suction", "clipper", "irrigator", "forceps"]
BYPASS_TARGETS = ["stomach", "jejunum", "omentum", "mesentery", "anastomosis"]


def write_multibypass(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("bypass", 12, BYPASS_TOOLS, BYPASS_TARGETS)
    counts = spec.videos_per_split
    nums = list(range(1, sum(counts) + 1))
    split_of = dict(zip(nums, ["train"] * counts[0] + ["val"] * counts[1] + ["test"] * counts[2]))
    per_split: dict[str, dict[str, list[dict]]] = {"train": {}, "val": {}, "test": {}}
    for num in nums:
        name = f"BBP{num:02d}"
        plan, y = workflow_plan(
            "lap_bypass",
            spec,
            25.0,
            seed + num,
            list(range(12)),
            sig,
            BYPASS_TARGETS,
            ("grasper", "retract", "stomach"),
            skip_prob=0.0,
        )
        render_to_video(plan, root / "BernBypass70" / "videos" / f"{name}.mp4")
        phases, start = [], 0
        for f in range(1, len(y) + 1):
            if f == len(y) or y[f] != y[start]:
                phases.append(
                    {
                        "start": int(start * 40),
                        "end": int(f * 40),
                        "label_name": phase.MULTIBYPASS_PHASES[y[start]],
                        "label_id": int(y[start]),
                    }
                )  # 25 fps -> 40 ms per frame
                start = f
        # an overlay event (not a phase target): the camera briefly leaves the body
        phases.append({"start": 2000, "end": 3000, "label_name": "out_of_body", "label_id": 12})
        doc = {
            "phases": phases,
            "steps": [{"start": 0, "end": int(len(y) * 40), "label_name": "s1_cavity_exploration", "label_id": 1}],
        }
        write_text(root / "labels" / "bern" / "labels_by70" / f"{name}.mp4.json", json.dumps(doc) + "\n")
        per_split[split_of[num]][name] = [
            {
                "Frame_id": f"{name}_{k + 1:08d}",
                "Original_frame_id": k * 25,
                "Phase_gt": int(y[k * 25]),
                "Step_gt": 1,
                "unique_id": num * 100000 + k,
            }
            for k in range(len(y) // 25)
        ]
    base = root / "labels" / "bern" / "labels_by70_splits" / "labels"
    for split, fname in (("train", "1fps_100_0.pickle"), ("val", "1fps_0.pickle"), ("test", "1fps_0.pickle")):
        p = base / split / fname
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pickle.dumps(per_split[split], protocol=4))


# --------------------------------------------------------------------------- 6. PitVis-2023

PIT_TOOLS = ["curette", "drill", "suction", "forceps", "scissors", "knife", "irrigator", "bipolar"]
PIT_TARGETS = ["sella", "septum", "tumour", "dura", "sphenoid"]
PIT_TOOL_IDS = {t: i + 1 for i, t in enumerate(PIT_TOOLS)}


def write_pitvis(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("pituitary", 14, PIT_TOOLS, PIT_TARGETS)
    test = declared_split(phase.PITVIS)["test"]
    train_pool = [i for i in range(1, 26) if i not in test]  # 25 public videos; val is carved from train
    ids = split_ids(
        {"train": train_pool, "val": train_pool[spec.videos_per_split[0] :], "test": test}, spec.videos_per_split
    )
    fps = phase.PITVIS_FPS
    for num, _ in ids:
        rng = np.random.default_rng(seed + num)
        n = int(spec.seconds * fps)
        plan = new_plan(LOOKS["neuro_endo"], spec.size, fps, n, seed + num, PIT_TARGETS)
        # background (-1) at both ends, then a subset of the 14 steps in order
        steps = sorted(rng.choice(14, size=6, replace=False).tolist())
        bg = int(2 * fps)
        segs = (
            [Segment(-1, 0, bg)]
            + [Segment(s.label, s.start + bg, s.end + bg) for s in workflow_segments(n - 2 * bg, fps, steps, rng)]
            + [Segment(-1, n - bg, n)]
        )
        fill_segments(plan, segs, sig, rng, assistant=("suction", "aspirate", "sella"))
        y = frame_labels(segs, n)
        render_to_video(plan, root / f"video_{num:02d}.mp4")
        rows = []
        secs = int(np.ceil(n / fps))
        for t in range(secs + 1):  # one row per second, plus one trailing row
            f = min(int(t * fps), n - 1)
            step = -1 if y[f] < 0 else int(y[f]) + 1
            tools = sorted(PIT_TOOL_IDS[x] for x in tools_present(plan, f) if x in PIT_TOOL_IDS)
            i1, i2 = (tools + [0, 0])[:2]
            rows.append(f"{num},{t},{step},{i1},{i2}\n")
        write_text(root / f"annotations_{num:02d}.csv", ",".join(phase.PITVIS_COLUMNS) + "\n" + "".join(rows))


# --------------------------------------------------------------------------- 7. EgoSurgery-Phase

EGO_TOOLS = ["knife", "forceps", "scissors", "needle_driver", "bipolar", "suction", "irrigator"]
EGO_TARGETS = ["skin", "flap", "wound", "dressing"]


def write_egosurgery(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("open_surgery", 9, EGO_TOOLS, EGO_TARGETS)
    ids = split_ids(declared_split(phase.EGOSURGERY), spec.videos_per_split)
    every = 25  # rendered at 25 fps, released as one image per second
    for num, _ in ids:
        plan, y = workflow_plan(
            "open_ego",
            spec,
            25.0,
            seed + num,
            list(range(9)),
            sig,
            EGO_TARGETS,
            ("forceps", "grasp", "skin"),
            seconds=2 * spec.seconds,
        )
        session = f"{num:02d}_1"
        stems = [f"{session}_{k + 1:04d}" for k in range(plan.num_frames // every)]
        render_to_images(plan, [root / "images" / f"{num:02d}" / f"{s}.jpg" for s in stems], every)
        rows = "".join(f"{s},{phase.EGOSURGERY_PHASES[y[k * every]]}\n" for k, s in enumerate(stems))
        write_text(root / "annotations" / "phase" / f"{session}.csv", "Frame,Phase\n" + rows)


# --------------------------------------------------------------------------- 8. PmLR50

LIVER_TOOLS = ["grasper", "bipolar", "scissors", "suction", "clipper", "irrigator", "needle_driver"]
LIVER_TARGETS = ["liver", "hepatic_vein", "foley_catheter", "resection_plane"]


def write_pmlr50(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("liver_resection", 5, LIVER_TOOLS, LIVER_TARGETS)
    ids = split_ids(declared_split(phase.PMLR50), spec.videos_per_split)
    every = 25
    for num, _ in ids:
        plan, y = workflow_plan(
            "lap_liver",
            spec,
            25.0,
            seed + num,
            list(range(5)),
            sig,
            LIVER_TARGETS,
            ("grasper", "retract", "liver"),
            seconds=2 * spec.seconds,
            skip_prob=0.0,
        )
        k = plan.num_frames // every
        render_to_images(plan, [root / "frames" / f"{num:02d}" / f"{i:08d}.jpg" for i in range(k)], every)
        write_text(
            root / "phase_annotations" / f"{num:02d}.txt",
            "Frame\tPhase\n" + "".join(f"{i}\t{y[i * every]}\n" for i in range(k)),
        )


# --------------------------------------------------------------------------- 9. OphNet2024

OPH_TOOLS = ["phaco", "forceps", "knife", "irrigator", "suction", "scissors", "needle_driver", "trocar"]
OPH_TARGETS = ["lens", "capsule", "cornea", "iris"]
OPH_COMMON = [0, 1, 4, 5, 6, 7, 8, 51]  # frequent phases (cf. the long-tailed OphNet distribution)


def write_ophnet(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("ophthalmic", phase.OPHNET_NUM_PHASES, OPH_TOOLS, OPH_TARGETS)
    rows = []
    n_vid = sum(spec.videos_per_split)
    splits = (
        ["train"] * spec.videos_per_split[0] + ["val"] * spec.videos_per_split[1] + ["test"] * spec.videos_per_split[2]
    )
    for k in range(n_vid):
        vid = f"case_{k * 7 + 2:04d}"
        rng = np.random.default_rng(seed + 1000 + k)
        fps = 25.0
        n = int(spec.seconds * fps)
        order = sorted(rng.choice(OPH_COMMON, size=5, replace=False).tolist())
        plan = new_plan(LOOKS["ophtho_micro"], spec.size, fps, n, seed + 1000 + k, OPH_TARGETS)
        segs = workflow_segments(n, fps, order, rng)
        # short unlabelled gaps between annotated segments, as in the localisation CSV
        segs = [Segment(s.label, s.start, max(s.start + 1, s.end - int(0.3 * fps))) for s in segs]
        fill_segments(plan, segs, sig, rng, assistant=None)
        render_to_video(plan, root / "OphNet2024_all" / f"{vid}.mp4")
        for s in segs:
            rows.append(f"{vid},{s.start / fps:g},{s.end / fps:g},{splits[k]},{k % 3},{s.label}\n")
    write_text(root / phase.OPHNET_CSV, ",".join(phase.OPHNET_COLUMNS) + "\n" + "".join(rows))


# --------------------------------------------------------------------------- 10. SurgicalActions160

ACTION_TOOLS = ["grasper", "scissors", "bipolar", "suction", "irrigator", "needle_driver", "specimen_bag", "trocar"]
ACTION_TARGETS = ["uterus", "peritoneum", "suture", "vessel"]


def write_surgical_actions(root: Path, spec: SynthSpec, seed: int) -> None:
    sig = class_signatures("gyn_actions", len(clips.SURGICAL_ACTIONS), ACTION_TOOLS, ACTION_TARGETS, per_class=1)
    per_class = max(sum(spec.videos_per_split) // 2 + 1, clips.SURGICAL_ACTIONS_FOLDS)
    fps, n = 25.0, int(5 * 25)
    for c, name in enumerate(clips.SURGICAL_ACTIONS):
        for v in range(1, per_class + 1):
            s = stable_seed(seed, "action", c, v)
            plan = new_plan(LOOKS["lap_gyn"], spec.size, fps, n, s, ACTION_TARGETS)
            fill_segments(plan, [Segment(c, 0, n)], sig, np.random.default_rng(s), assistant=None)
            render_to_video(plan, root / f"{c + 1:02d}_{name}" / f"{c + 1:02d}_{v:02d}.mp4")


# --------------------------------------------------------------------------- 11. PolypDiag


def write_polypdiag(root: Path, spec: SynthSpec, seed: int) -> None:
    n_train = 4 * (spec.videos_per_split[0] + spec.videos_per_split[1])
    n_val = 4 * spec.videos_per_split[2]
    lines = {"train": [], "val": []}
    fps, secs = 25.0, 3.0
    for k in range(n_train + n_val):
        label = k % 2
        name = f"{'abnormal' if label else 'normal'}_{k + 1:04d}.mp4"
        scene = DenseScene("lumen", spec.size, stable_seed(seed, "polypdiag", k), polyps=label)
        with VideoWriter(root / "videos" / name, fps, spec.size, spec.size) as w:
            for t in range(int(fps * secs)):
                w.write(scene.render(t / fps).rgb)
        lines["train" if k < n_train else "val"].append(f"{name},{label}\n")
    for split, ls in lines.items():
        write_text(root / "splits" / f"{split}.txt", "".join(ls))


# --------------------------------------------------------------------------- 12. CholecT50


def cholect50_signatures() -> dict[int, list[tuple[int, Action]]]:
    """Per CholecT50 phase, two valid triplets (id, action) performed in that phase."""
    rng = np.random.default_rng(stable_seed("cholect50"))
    candidates = [k for k, (i, v, t) in enumerate(triplets.TRIPLET_IVT) if v != 9 and t != 14]
    out = {}
    for p in range(len(triplets.CHOLECT50_PHASES)):
        picks = rng.choice(candidates, size=2, replace=False)
        out[p] = [
            (
                int(k),
                (
                    triplets.INSTRUMENTS[triplets.TRIPLET_IVT[k][0]],
                    triplets.VERBS[triplets.TRIPLET_IVT[k][1]],
                    triplets.TARGETS[triplets.TRIPLET_IVT[k][2]],
                ),
            )
            for k in picks
        ]
    return out


# Cholec80 video NN and CholecT50 VIDNN are one recording (CholecT50's 1-fps frames are extracted from
# Cholec80's videos): the built-in corpus renders these numbers once and writes them into both, a
# Cholec80 *training* video that is a CholecT50 *test* video, so curation's cross-benchmark leakage
# route is exercised end to end (docs/overlaps.md).
CHOLEC_ARCHIVE_SHARED = (6,)


def cholect50_plan(spec: SynthSpec, seed: int) -> tuple[ScenePlan, np.ndarray]:
    """A CholecT50 procedure: 25-fps scene of twice the benchmark length, phases 0-6 in order, every
    phase's two triplet actions (``cholect50_signatures``)."""
    actions = {p: [a for _, a in v] for p, v in cholect50_signatures().items()}
    targets = sorted({a[2] for v in actions.values() for a in v})
    return workflow_plan(
        "lap_chole", spec, 25.0, seed, list(range(7)), actions, targets, None, seconds=2 * spec.seconds, skip_prob=0.0
    )


def write_cholect50(root: Path, spec: SynthSpec, seed: int) -> None:
    sigs = cholect50_signatures()
    act_to_id = {a: k for v in sigs.values() for k, a in v}
    ids = split_ids(declared_split(triplets.CHOLECT50), spec.videos_per_split)
    inames = {n: i for i, n in enumerate(triplets.INSTRUMENTS)}
    vnames = {n: i for i, n in enumerate(triplets.VERBS)}
    tnames = {n: i for i, n in enumerate(triplets.TARGETS)}
    every = 25
    for num, _ in ids:
        vid = f"VID{num:02d}"
        shared = num in CHOLEC_ARCHIVE_SHARED
        plan, y = cholect50_plan(spec, stable_seed(spec.archive_seed, "cholec-archive", num) if shared else seed + num)
        k = plan.num_frames // every
        render_to_images(plan, [root / "videos" / vid / f"{i:06d}.png" for i in range(k)], every)
        ann = {}
        for i in range(k):
            inst = []
            for a in sorted(active_actions(plan, i * every)):
                tid = act_to_id[a]
                inst.append(
                    [
                        tid,
                        inames[a[0]],
                        1,
                        -1,
                        -1,
                        -1,
                        -1,
                        vnames[a[1]],
                        tnames[a[2]],
                        1,
                        -1,
                        -1,
                        -1,
                        -1,
                        int(y[i * every]),
                    ]
                )
            ann[str(i)] = inst or [[-1] * 14 + [int(y[i * every])]]
        doc = {
            "video": num,
            "fps": 1,
            "num_frames": k,
            "categories": {
                "instrument": {str(i): n for i, n in enumerate(triplets.INSTRUMENTS)},
                "verb": {str(i): n for i, n in enumerate(triplets.VERBS)},
                "target": {str(i): n for i, n in enumerate(triplets.TARGETS)},
                "triplet": {str(i): n for i, n in enumerate(triplets.TRIPLETS)},
                "phase": {str(i): n for i, n in enumerate(triplets.CHOLECT50_PHASES)},
            },
            "annotations": ann,
        }
        write_text(root / "labels" / f"{vid}.json", json.dumps(doc) + "\n")


# --------------------------------------------------------------------------- 13. JIGSAWS


def _min_jerk(p0: np.ndarray, p1: np.ndarray, n: int) -> np.ndarray:
    s = np.linspace(0, 1, n, dtype=np.float32)[:, None]
    s3 = s * s * s  # products, not np.power: NumPy dispatches it to CPU-specific kernels (SVML on AVX-512)
    return p0 + (p1 - p0) * (10 * s3 - 15 * s3 * s + 6 * s3 * s * s)


def skill_trajectory(quality: float, n: int, size: int, rng: np.random.Generator) -> np.ndarray:
    """Tip path of one hand over ``n`` frames: minimum-jerk moves between suture waypoints, with
    tremor and detours that grow as ``quality`` (0..1) falls -> (n, 2) world coords."""
    centre = np.array([size, size], np.float32)
    n_way = int(6 + round((1 - quality) * 6))  # unskilled: more, wandering sub-movements
    way = [centre + rng.normal(0, size * (0.08 + 0.12 * (1 - quality)), 2).astype(np.float32) for _ in range(n_way + 1)]
    cuts = np.linspace(0, n, n_way + 1).astype(int)
    path = np.concatenate([_min_jerk(way[i], way[i + 1], cuts[i + 1] - cuts[i]) for i in range(n_way)])
    tremor = (1 - quality) * size * 0.02
    path += tremor * np.stack([stable_sin(np.arange(n) * 1.7 + rng.uniform(0, 6)), stable_cos(np.arange(n) * 2.3)], 1)
    return path.astype(np.float32)


def motion_quality(path: np.ndarray, fps: float, size: float) -> tuple[float, float]:
    """(smoothness, economy) in [0, 1] measured on a trajectory: low jerk and short path are good."""
    v = np.diff(path, axis=0) * fps / size
    jerk = np.diff(v, n=2, axis=0) * fps * fps
    smooth = float(stable_exp(-np.sqrt(np.mean(np.sum(jerk * jerk, axis=1))) / 4000.0))
    length = float(np.sum(np.linalg.norm(np.diff(path, axis=0), axis=1))) / size
    economy = float(stable_exp(-length / 6.0))
    return smooth, economy


JIGSAWS_LEVEL = {"B": "N", "C": "N", "D": "E", "E": "E", "F": "I", "G": "N", "H": "I", "I": "N"}
JIGSAWS_SKILL = {"N": 0.3, "I": 0.55, "E": 0.85}


def write_jigsaws(root: Path, spec: SynthSpec, seed: int) -> None:
    """Suturing: every user B-I performs trials 001-005 (the 5 supertrials of the leave-one-
    supertrial-out folds: 40 trials, 8 per fold). A trial is 6 s at 30 fps: 40 short trials cost
    about what 16 trials of 12 s did, and the probe's clip spans the whole video either way."""
    task = "Suturing"
    fps, n = 30.0, int(6 * 30)
    meta = []
    for user in clips.JIGSAWS_USERS:
        level = JIGSAWS_LEVEL[user]
        for trial in range(1, clips.JIGSAWS_SUPERTRIALS + 1):
            name = f"{task}_{user}{trial:03d}"
            s = stable_seed(seed, name)
            rng = np.random.default_rng(s)
            quality = float(np.clip(JIGSAWS_SKILL[level] + rng.normal(0, 0.1), 0.05, 0.98))
            plan = new_plan(LOOKS["bench_skill"], spec.size, fps, n, s, ["pad", "incision"])
            paths = []
            for hand, tool in enumerate(("needle_driver", "needle_driver")):
                tr = make_track(tool, "grasp", plan.target("incision"), 0, n, plan, rng)
                tr.tip = skill_trajectory(quality, n, spec.size, rng) + np.float32(hand * 2 - 1) * spec.size * 0.1
                tr.jaw = (0.5 + 0.5 * stable_sin(np.arange(n) / fps * 2 * np.pi * 0.5)).astype(np.float32)
                tr.entry = np.array([spec.size * (0.4 + 1.2 * hand), spec.size * 1.9], np.float32)
                plan.tracks.append(tr)
                paths.append(tr.tip)
            render_to_video(
                plan,
                root / task / "video" / f"{name}_capture1.avi",
                container="avi",
                mirror_path=root / task / "video" / f"{name}_capture2.avi",
            )
            sm, ec = zip(*(motion_quality(p, fps, spec.size) for p in paths))
            measured = 0.5 * np.mean(sm) + 0.5 * np.mean(ec)
            items = [int(np.clip(round(1 + 4 * measured + rng.normal(0, 0.3)), 1, 5)) for _ in range(6)]
            meta.append(f"{name}\t\t{level}\t{sum(items)}\t\t" + "\t".join(map(str, items)) + "\n")
            # kinematics: 76 columns (4 manipulators x 19); we fill the PSM tip positions (cols 39-41, 58-60)
            kin = np.zeros((n, 76), np.float32)
            kin[:, 38:40] = paths[0] / spec.size * 0.05
            kin[:, 57:59] = paths[1] / spec.size * 0.05
            write_text(
                root / task / "kinematics" / "AllGestures" / f"{name}.txt",
                "".join("     ".join(f"{v:.6e}" for v in row) + "\n" for row in kin),
            )
            cuts = np.linspace(1, n, 5).astype(int)
            write_text(
                root / task / "transcriptions" / f"{name}.txt",
                "".join(f"{cuts[i]} {cuts[i + 1] - 1} G{[1, 5, 8, 2][i]} \n" for i in range(4)),
            )
    write_text(root / task / f"meta_file_{task}.txt", "".join(meta))


# --------------------------------------------------------------------------- 14-17. dense


def _polyp_frames(seed: int, size: int, count: int, polyps: int = 1):
    scene = DenseScene("lumen", size, seed, polyps=polyps)
    return [scene.render(0.7 * k) for k in range(count)]


def write_cvc12k(root: Path, spec: SynthSpec, seed: int) -> None:
    tr, va, te = spec.images_per_split
    n_seq = 20 + max(te // 2, 2)  # Endo-FM: the first 20 sequences train, the rest test
    per_seq = max((tr + va) // 20, 2)
    lines, idx = [], 1
    for q in range(n_seq):
        frames = _polyp_frames(stable_seed(seed, "cvc", q), spec.size, per_seq)
        lines.append(f"CVC-ClinicVideoDB/indexed {idx} {per_seq} -1\n")
        for fr in frames:
            for sub, arr in (("Original", fr.rgb[..., ::-1]), ("Ground Truth", fr.mask * 255)):
                p = root / "CVC-ClinicDB" / sub / f"{idx}.tif"
                p.parent.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(p), np.ascontiguousarray(arr))
            idx += 1
    write_text(root / "videolist.txt", "".join(lines))


def write_kvasir(root: Path, spec: SynthSpec, seed: int) -> None:
    rng = np.random.default_rng(stable_seed(seed, "kvasir"))
    quota = dict(zip(("train", "val", "test"), spec.images_per_split))
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    boxes = {}
    while any(quota.values()):
        iid = "".join(rng.choice(alphabet, 25))
        split = kvasir_split(iid)
        if quota[split] == 0:
            continue
        quota[split] -= 1
        fr = _polyp_frames(stable_seed(seed, iid), spec.size, 1, polyps=int(rng.integers(1, 3)))[0]
        for sub, arr in (("images", fr.rgb[..., ::-1]), ("masks", np.repeat(fr.mask[..., None] * 255, 3, 2))):
            p = root / sub / f"{iid}.jpg"
            p.parent.mkdir(parents=True, exist_ok=True)
            cv2.imwrite(str(p), np.ascontiguousarray(arr), [cv2.IMWRITE_JPEG_QUALITY, 95])
        ys, xs = np.nonzero(fr.mask)
        bb = (
            [
                {
                    "label": "polyp",
                    "xmin": int(xs.min()),
                    "ymin": int(ys.min()),
                    "xmax": int(xs.max()),
                    "ymax": int(ys.max()),
                }
            ]
            if len(xs)
            else []
        )
        boxes[iid] = {"height": spec.size, "width": spec.size, "bbox": bb}
    write_text(root / "kavsir_bboxes.json", json.dumps(boxes, sort_keys=True) + "\n")


# Dense CIs resample sequences, the independent unit (never the frames of one sequence), and a CI
# needs at least 3: the depth writers spread their test images over this many test sequences.
DENSE_TEST_SEQUENCES = 4


def write_c3vd(root: Path, spec: SynthSpec, seed: int) -> None:
    """Three training sequences, one more that the loader carves into validation (the last 20% of
    the training sequences by name), and the first DENSE_TEST_SEQUENCES of the official test
    sequences; images_per_split (train, val, test) images are spread over each split's sequences."""
    train = ["cecum_t1_b", "cecum_t2_b", "cecum_t2_c", "desc_t4_a", "sigmoid_t2_a", "trans_t1_a"]
    test = declared_split(dense.C3VD)["test"]
    tr, va, te = spec.images_per_split
    train_seqs = train[: 3 + (1 if va else 0)]
    val = dense.carve_val(train_seqs)
    test_seqs = test[:DENSE_TEST_SEQUENCES]
    frames = {q: max(va, 2) if q in val else max(tr // 3, 2) for q in train_seqs}
    frames.update({q: max(te // len(test_seqs), 1) for q in test_seqs})
    for seq, count in frames.items():
        scene = DenseScene(
            "lumen", spec.size, stable_seed(seed, "c3vd", seq), polyps=0, tissue=((200, 150, 120), (240, 205, 170))
        )
        d = root / seq
        d.mkdir(parents=True, exist_ok=True)
        for k in range(count):
            fr = scene.render(0.5 * k)
            cv2.imwrite(str(d / f"{k:04d}_color.png"), fr.rgb[..., ::-1])
            dep = np.clip(np.round(fr.depth_mm / 100.0 * 65535), 1, 65534).astype(np.uint16)
            cv2.imwrite(str(d / f"{k:04d}_depth.tiff"), dep)


def write_scared(root: Path, spec: SynthSpec, seed: int) -> None:
    """Keyframe 1 of three training datasets and of the validation dataset, and DENSE_TEST_SEQUENCES
    test keyframes alternating over the test datasets (8/1, 9/1, 8/2, 9/2): a keyframe is its own
    camera sequence with its own ground truth, the unit the loader groups by."""
    tr, va, te = spec.images_per_split
    split = declared_split(dense.SCARED)
    keyframes = [(ds, 1, max(tr // 3, 2)) for ds in split["train"][:3]]
    keyframes += [(ds, 1, max(va, 2)) for ds in (split["val"] if va else [])]
    tests = split["test"]
    keyframes += [
        (tests[i % len(tests)], 1 + i // len(tests), max(te // DENSE_TEST_SEQUENCES, 1))
        for i in range(DENSE_TEST_SEQUENCES)
    ]
    for ds, kf_num, count in keyframes:
        kf = root / f"dataset{ds}" / f"keyframe{kf_num}" / "image_02" / "data"
        scene = DenseScene("surface", spec.size, stable_seed(seed, "scared", ds, kf_num), polyps=0)
        (kf / "groundtruth").mkdir(parents=True, exist_ok=True)
        for k in range(count):
            fr = scene.render(0.8 * k)
            cv2.imwrite(str(kf / f"{k + 1:010d}.png"), fr.rgb[..., ::-1])
            s = spec.size
            yy, xx = np.mgrid[0:s, 0:s].astype(np.float32)
            z = fr.depth_mm
            pts = np.stack([(xx - s / 2) * z / s, (yy - s / 2) * z / s, z], axis=-1)  # X, Y, Z
            full = np.concatenate([pts, np.zeros_like(pts)], axis=0)  # left view on top, right view below
            cv2.imwrite(str(kf / "groundtruth" / f"scene_points{k:06d}.tiff"), full[..., ::-1].astype(np.float32))


# --------------------------------------------------------------------------- registry

# benchmark name -> (folder under benchmarks/, writer)
WRITERS: dict[str, tuple[str, Callable[[Path, SynthSpec, int], None]]] = {
    "cholec80": ("cholec80", write_cholec80),
    "m2cai16": ("m2cai16-workflow", write_m2cai16),
    "autolaparo": ("autolaparo", write_autolaparo),
    "heichole": ("HeiChole", write_heichole),
    "multibypass140": ("MultiBypass140", write_multibypass),
    "pitvis": ("PitVis", write_pitvis),
    "egosurgery": ("EgoSurgery", write_egosurgery),
    "pmlr50": ("PmLR50", write_pmlr50),
    "ophnet2024": ("OphNet2024", write_ophnet),
    "surgicalactions160": ("SurgicalActions160", write_surgical_actions),
    "polypdiag": ("PolypDiag", write_polypdiag),
    "cholect50": ("CholecT50", write_cholect50),
    "jigsaws": ("JIGSAWS", write_jigsaws),
    "cvc12k": ("CVC-12K", write_cvc12k),
    "kvasirseg": ("Kvasir-SEG", write_kvasir),
    "c3vd": ("C3VD", write_c3vd),
    "scared": ("SCARED", write_scared),
}
