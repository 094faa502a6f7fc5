"""The mini benchmarks are written in each dataset's real layout, and the real loaders read them.

Format rules are checked on the bytes (headers, separators, indexing, naming), not through
the loaders, so a writer and a loader cannot agree on a wrong format unnoticed.
"""

import json
import pickle
import re

import cv2
import numpy as np
import pytest

from unisurg.benchmarks import AnnotationError, get_benchmark, list_benchmarks
from unisurg.media.video import open_video


def lines(path):
    data = path.read_bytes()
    assert b"\r" not in data, f"{path} has CR line endings"
    assert data.endswith(b"\n"), f"{path} lacks a final newline"
    return data.decode("utf-8").split("\n")[:-1]


def test_registry_has_the_17_benchmarks():
    names = [b.name for b in list_benchmarks()]
    assert len(names) == 17 == len(set(names))


@pytest.mark.parametrize("bench", [b.name for b in list_benchmarks()])
def test_every_mini_benchmark_parses_with_its_real_loader(bench, bench_root):
    b = get_benchmark(bench)
    rep = b.validate(bench_root(bench))
    assert rep.ok, rep.problems
    records = b.load(bench_root(bench))
    assert records and all(r.labels is not None for r in records)
    if b.family.temporal:
        for r in records:
            assert len(r.times) == len(r.labels) > 0 and np.all(np.diff(r.times) >= 0)
    if b.family.class_labels:
        ids = np.concatenate([r.labels for r in records])
        assert ids.min() >= 0 and ids.max() < b.num_classes


def test_cholec80_bytes(bench_root):
    root = bench_root("cholec80")
    vids = sorted((root / "videos").glob("video*.mp4"))
    # real split ranges; video06 is also CholecT50's VID06 (the corpus's cross-benchmark overlap)
    assert [v.name for v in vids] == ["video01.mp4", "video02.mp4", "video06.mp4", "video41.mp4", "video49.mp4"]
    ph = lines(root / "phase_annotations" / "video01-phase.txt")
    assert ph[0] == "Frame\tPhase"
    assert len(ph) - 1 == len(open_video(vids[0]))  # one row per native frame
    for k, row in enumerate(ph[1:]):
        f, name = row.split("\t")
        assert int(f) == k and name in get_benchmark("cholec80").classes
    tool = lines(root / "tool_annotations" / "video01-tool.txt")
    assert tool[0] == "Frame\tGrasper\tBipolar\tHook\tScissors\tClipper\tIrrigator\tSpecimenBag"
    assert [int(r.split("\t")[0]) for r in tool[1:]] == list(range(0, 25 * (len(tool) - 1), 25))  # 1 fps
    assert all(set(r.split("\t")[1:]) <= {"0", "1"} for r in tool[1:])
    assert any(r.split("\t")[1] == "1" for r in tool[1:])  # the grasper appears


def test_m2cai_autolaparo_heichole_bytes(bench_root):
    m2 = bench_root("m2cai16")
    assert (m2 / "train_dataset" / "workflow_video_01.mp4").exists()
    assert (m2 / "test_dataset" / "test_workflow_video_01.txt").exists()
    rows = lines(m2 / "train_dataset" / "workflow_video_01.txt")
    assert rows[0] == "Frame\tPhase" and rows[1].startswith("0\t")

    al = lines(bench_root("autolaparo") / "labels" / "label_01.txt")
    assert al[0] == "Frame\tPhase"
    frames = [int(r.split("\t")[0]) for r in al[1:]]
    assert frames == list(range(1, len(frames) + 1))  # 1 fps, 1-based
    assert {int(r.split("\t")[1]) for r in al[1:]} <= set(range(1, 8))  # ids 1..7

    hc = bench_root("heichole")
    names = sorted(p.name for p in (hc / "Annotations" / "Phase").iterdir())
    assert "hei-chole16_annotation_phase.csv" in names  # a lower-cased copy, matched case-insensitively
    rows = lines(hc / "Annotations" / "Phase" / "Hei-Chole1_Annotation_Phase.csv")
    assert re.fullmatch(r"0,[0-6]", rows[0])  # no header
    vr50 = open_video(hc / "Videos" / "Full" / "Hei-Chole16.mp4")
    assert vr50.meta.fps == pytest.approx(50.0)
    assert len(lines(hc / "Annotations" / "Phase" / "hei-chole16_annotation_phase.csv")) == len(vr50)
    rec = {r.id: r for r in get_benchmark("heichole").load(hc)}
    # same number of seconds of labels at 25 and 50 fps: the frame rate was read from the video
    assert rec["Hei-Chole16"].times[-1] == pytest.approx(rec["Hei-Chole1"].times[-1], abs=0.1)


def test_multibypass_pitvis_ego_pmlr_ophnet_bytes(bench_root):
    mb = bench_root("multibypass140")
    doc = json.loads((mb / "labels" / "bern" / "labels_by70" / "BBP01.mp4.json").read_text())
    assert set(doc) == {"phases", "steps"}
    assert all(set(s) == {"start", "end", "label_name", "label_id"} for s in doc["phases"])
    assert any(s["label_id"] == 12 for s in doc["phases"])  # overlay event present (and ignored by the loader)
    with open(mb / "labels" / "bern" / "labels_by70_splits" / "labels" / "train" / "1fps_100_0.pickle", "rb") as fh:
        train = pickle.load(fh)
    item = next(iter(train.values()))[0]
    assert set(item) == {"Frame_id", "Original_frame_id", "Phase_gt", "Step_gt", "unique_id"}

    pv = bench_root("pitvis")
    rows = lines(pv / "annotations_01.csv")
    assert rows[0] == "int_video,int_time,int_step,int_instrument1,int_instrument2"
    vr = open_video(pv / "video_01.mp4")
    assert vr.meta.fps == pytest.approx(24.0)
    secs = [int(r.split(",")[1]) for r in rows[1:]]
    assert secs == list(range(len(secs))) and len(secs) == int(np.ceil(len(vr) / 24)) + 1  # + trailing row
    steps = {int(r.split(",")[2]) for r in rows[1:]}
    assert -1 in steps and steps <= {-1, *range(1, 15)}

    eg = bench_root("egosurgery")
    rows = lines(eg / "annotations" / "phase" / "01_1.csv")
    assert rows[0] == "Frame,Phase"
    stem, phase = rows[1].split(",")
    assert stem == "01_1_0001" and (eg / "images" / "01" / f"{stem}.jpg").exists() and phase == phase.lower()

    pm = bench_root("pmlr50")
    assert (pm / "frames" / "01" / "00000000.jpg").exists()  # 8 digits, 0-based
    rows = lines(pm / "phase_annotations" / "01.txt")
    assert rows[1].split() == ["0", rows[1].split()[1]] and len(rows) - 1 == len(
        list((pm / "frames" / "01").glob("*.jpg"))
    )

    op = lines(bench_root("ophnet2024") / "annotation" / "OphNet2024_loca_challenge_phase.csv")
    assert op[0] == "video_id,start,end,split,surgery_id,phase_id"
    assert {r.split(",")[3] for r in op[1:]} == {"train", "val", "test"}


def test_clip_and_triplet_bytes(bench_root):
    sa = bench_root("surgicalactions160")
    folders = sorted(p.name for p in sa.iterdir())
    assert len(folders) == 16 and folders[0] == "01_abdominal_access" and folders[-1] == "16_endobag-out"
    assert (sa / "03_cutting" / "03_01.mp4").exists()

    for line in lines(bench_root("polypdiag") / "splits" / "train.txt"):
        assert re.fullmatch(r"[\w-]+\.mp4,[01]", line)

    ct = bench_root("cholect50")
    doc = json.loads((ct / "labels" / "VID01.json").read_text())
    assert set(doc["categories"]) == {"instrument", "verb", "target", "triplet", "phase"}
    assert doc["categories"]["triplet"]["0"] == "grasper,dissect,cystic_plate"
    assert doc["categories"]["triplet"]["99"] == "irrigator,null_verb,null_target"
    assert all(isinstance(k, str) and k.isdigit() for k in doc["annotations"])
    assert all(len(inst) == 15 for v in doc["annotations"].values() for inst in v)
    assert (ct / "videos" / "VID01" / "000000.png").exists()
    assert len(list((ct / "videos" / "VID01").glob("*.png"))) == doc["num_frames"] == len(doc["annotations"])

    jg = bench_root("jigsaws") / "Suturing"
    meta = lines(jg / "meta_file_Suturing.txt")
    for row in meta:
        f = row.split("\t")
        assert f[1] == "" and f[4] == "" and f[2] in "NIE" and len(f) == 11  # empty padding fields
        assert int(f[3]) == sum(int(x) for x in f[5:])  # GRS = sum of the six items
    vr = open_video(jg / "video" / "Suturing_B001_capture2.avi")
    assert vr.meta.fps == pytest.approx(30.0)
    kin = lines(jg / "kinematics" / "AllGestures" / "Suturing_B001.txt")
    assert len(kin[0].split()) == 76
    assert re.fullmatch(r"\d+ \d+ G\d+ ", lines(jg / "transcriptions" / "Suturing_B001.txt")[0])


def test_dense_bytes(bench_root):
    cvc = bench_root("cvc12k")
    assert (cvc / "CVC-ClinicDB" / "Ground Truth" / "1.tif").exists()  # the space in the folder name
    first = lines(cvc / "videolist.txt")[0].split()
    assert first[0] == "CVC-ClinicVideoDB/indexed" and first[1] == "1" and first[3] == "-1"
    mask = cv2.imread(str(cvc / "CVC-ClinicDB" / "Ground Truth" / "1.tif"), cv2.IMREAD_UNCHANGED)
    assert set(np.unique(mask)) <= {0, 255}

    kv = bench_root("kvasirseg")
    boxes = json.loads((kv / "kavsir_bboxes.json").read_text())
    some = next(iter(boxes))
    assert (kv / "images" / f"{some}.jpg").exists() and (kv / "masks" / f"{some}.jpg").exists()
    assert set(boxes[some]) == {"height", "width", "bbox"}

    c3 = bench_root("c3vd")
    seq = sorted(p for p in c3.iterdir() if p.is_dir())[0]
    d = cv2.imread(str(seq / "0000_depth.tiff"), cv2.IMREAD_UNCHANGED)
    assert d.dtype == np.uint16 and (seq / "0000_color.png").exists()

    sc = bench_root("scared") / "dataset1" / "keyframe1" / "image_02" / "data"
    assert (sc / "0000000001.png").exists() and (sc / "groundtruth" / "scene_points000000.tiff").exists()
    pts = cv2.imread(str(sc / "groundtruth" / "scene_points000000.tiff"), cv2.IMREAD_UNCHANGED)
    img = cv2.imread(str(sc / "0000000001.png"))
    assert pts.dtype == np.float32 and pts.shape == (2 * img.shape[0], img.shape[1], 3)


def test_malformed_annotations_name_file_and_line(tmp_path, bench_root):
    import shutil

    root = tmp_path / "cholec80"
    shutil.copytree(bench_root("cholec80"), root)
    ann = root / "phase_annotations" / "video02-phase.txt"
    rows = ann.read_text().split("\n")
    rows[5] = "4\tNotAPhase"
    rows[9] = "8 Preparation"  # wrong separator
    ann.write_text("\n".join(rows))
    with pytest.raises(AnnotationError) as err:
        get_benchmark("cholec80").load(root)
    msg = str(err.value)
    assert f"{ann}:6: unknown phase 'NotAPhase'" in msg
    assert f"{ann}:10: expected 2 tab-separated fields, found 1" in msg
    rep = get_benchmark("cholec80").validate(root)  # validate lists every problem, does not raise
    assert len(rep.problems) == 2


# --------------------------------------------------------------------------- test units
# CIs resample independent units (videos, sequences, trials, clips), and give none under 3.


def _test_units(bench, records) -> list[int]:
    """Distinct units (Record.video) of the test split, or of each fold's held-out records."""
    if bench.folds:
        return [len({r.video for r in records if r.fold == f}) for f in range(bench.folds)]
    return [len({r.video for r in records if r.split == "test"})]


def test_depth_benchmarks_test_on_several_sequences(bench_root):
    """Depth units are sequences (C3VD) and keyframes (SCARED datasetN/keyframeM), never frames;
    even the tiny test corpus (3 test images) spreads its test images over 4 of them."""
    for name, unit in (("c3vd", r"[a-z]+_t\d_[a-z]"), ("scared", r"dataset[89]/keyframe\d")):
        bench = get_benchmark(name)
        records = bench.load(bench_root(name))
        test = {r.video for r in records if r.split == "test"}
        assert len(test) >= 4 and all(re.fullmatch(unit, v) for v in test), test
        assert all(r.group for r in records)  # every image belongs to its sequence


@pytest.mark.slow
def test_every_built_in_benchmark_has_at_least_4_test_units(tmp_path):
    """The built-in corpus at params.yaml's counts (frames shrunk to 32 px and 6 s: counts only):
    every benchmark tests on >= 4 independent units, per fold for the cross-validated ones."""
    from pathlib import Path

    from unisurg.config import load_params
    from unisurg.synth.corpus import CorpusSpec, build_corpus
    from unisurg.synth.layouts import WRITERS, SynthSpec

    s = load_params(Path(__file__).resolve().parents[1] / "params.yaml").synth
    spec = SynthSpec(size=32, seconds=6.0, videos_per_split=s.videos_per_split, images_per_split=s.images_per_split)
    build_corpus(tmp_path / "synth", CorpusSpec(spec, 0, 1.0, tuple(WRITERS), seed=0), workers=2)
    few = {}
    for bench in list_benchmarks():
        units = _test_units(bench, bench.load(tmp_path / "synth" / "benchmarks" / WRITERS[bench.name][0]))
        if min(units) < 4:
            few[bench.name] = units
    assert not few, f"fewer than 4 test units: {few}"
