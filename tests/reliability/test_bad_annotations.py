"""Malformed annotations: every loader names the file, the line and the problem, keeps going, and
`validate` lists every problem of a download instead of stopping at the first."""

from __future__ import annotations

import json
import shutil

import pytest

from unisurg.benchmarks import AnnotationError, get_benchmark

# benchmark -> (annotation file in the mini layout, separator, header?, class field, bad class value, frame-indexed?)
TEXT = {
    "cholec80": ("phase_annotations/video01-phase.txt", "\t", True, 1, "NotAPhase", True),
    "m2cai16": ("train_dataset/workflow_video_01.txt", "\t", True, 1, "NotAPhase", True),
    "autolaparo": ("labels/label_01.txt", "\t", True, 1, "9", True),
    "heichole": ("Annotations/Phase/Hei-Chole1_Annotation_Phase.csv", ",", False, 1, "9", True),
    "pitvis": ("annotations_01.csv", ",", True, 2, "15", True),
    "egosurgery": ("annotations/phase/01_1.csv", ",", True, 1, "napping", True),
    "pmlr50": ("phase_annotations/01.txt", "\t", True, 1, "9", True),
    "ophnet2024": ("annotation/OphNet2024_loca_challenge_phase.csv", ",", True, 5, "77", False),
    "polypdiag": ("splits/train.txt", ",", False, 1, "2", False),
    "jigsaws": ("Suturing/meta_file_Suturing.txt", "\t", False, 2, "X", False),
    "cvc12k": ("videolist.txt", " ", False, 2, "x", False),
}
EXTRA_COLUMNS_ALLOWED = {"ophnet2024"}  # the trimmed OphNet CSV adds a segment_path column

# Frame-indexed label files share one parser, so one wording per problem:
# benchmark -> (fields per row, how they are separated, frame column and its name, the bad class's message)
FRAME_FILES = {
    "cholec80": (2, "tab", 0, "frame", "unknown phase 'NotAPhase'"),
    "m2cai16": (2, "whitespace", 0, "frame", "unknown phase 'NotAPhase'"),
    "autolaparo": (2, "tab", 0, "frame", "phase id 9 is not one of 1..7"),
    "heichole": (2, "comma", 0, "frame", "phase id 9 is not one of 0..6"),
    "pitvis": (5, "comma", 1, "int_time", "int_step 15 is not one of -1, 1..14"),
    "egosurgery": (2, "comma", 0, "frame", "unknown phase 'napping'"),
    "pmlr50": (2, "whitespace", 0, "frame", "phase id 9 is not one of 0..4"),
}


def _expected_message(bench: str, kind: str, line: str) -> str:
    """The exact problem the shared parser reports for mutation ``kind`` of data line ``line``."""
    n, sep, col, word, unknown = FRAME_FILES[bench]
    found = {"wrong_separator": 1, "extra_column": n + 1, "missing_column": n - 1}
    if kind in found:
        return f"expected {n} {sep}-separated fields, found {found[kind]}"
    if kind == "unknown_class":
        return unknown
    frame = line.split(TEXT[bench][1])[col].strip()
    return f"{word} {int(frame) if frame.isdigit() else frame} listed twice"


def _mutate(kind: str, lines: list[str], k: int, sep: str, field: int, bad: str) -> tuple[list[str], int]:
    """Apply one mutation to data line index ``k``; returns new lines and the 1-based line number hit."""
    out = list(lines)
    if kind == "wrong_separator":
        out[k] = out[k].replace(sep, ";")
    elif kind == "extra_column":
        out[k] = out[k] + sep + "1"
    elif kind == "missing_column":
        out[k] = out[k].rsplit(sep, 1)[0]
    elif kind == "unknown_class":
        parts = out[k].split(sep)
        parts[field] = bad
        out[k] = sep.join(parts)
    elif kind == "duplicate_frame":
        out.insert(k + 1, out[k])
        return out, k + 2
    return out, k + 1


CASES = [
    (b, kind)
    for b, spec in TEXT.items()
    for kind in ("wrong_separator", "extra_column", "missing_column", "unknown_class", "duplicate_frame")
    if not (kind == "extra_column" and b in EXTRA_COLUMNS_ALLOWED) and not (kind == "duplicate_frame" and not spec[5])
]


@pytest.fixture
def copy_of(bench_root, tmp_path):
    def make(name: str):
        dst = tmp_path / name
        shutil.copytree(bench_root(name), dst)
        return dst

    return make


@pytest.mark.parametrize("bench, kind", CASES)
def test_malformed_line_is_reported_with_file_and_line(bench, kind, copy_of, record):
    root = copy_of(bench)
    rel, sep, header, field, bad, _ = TEXT[bench]
    path = root / rel
    lines = path.read_text().split("\n")[:-1]
    k = 3 if header else 2  # a data line in the middle of the file
    new, lineno = _mutate(kind, lines, k, sep, field, bad)
    path.write_text("\n".join(new) + "\n")
    with pytest.raises(AnnotationError) as err:
        get_benchmark(bench).load(root)
    msg = str(err.value)
    where = f"{path}:{lineno}:"
    record(
        "annotations",
        f"{bench}: {kind}",
        msg.split(where, 1)[-1].split("\n")[0].strip() if where in msg else msg[:150],
        where in msg,
    )
    assert where in msg, msg
    if bench in FRAME_FILES:
        assert f"{where} {_expected_message(bench, kind, lines[k])}\n" in msg + "\n", msg


@pytest.mark.parametrize("bench", sorted(TEXT))
@pytest.mark.parametrize("kind", ["empty", "utf16", "missing"])
def test_unusable_annotation_files_are_named(bench, kind, copy_of, record):
    root = copy_of(bench)
    path = root / TEXT[bench][0]
    if kind == "empty":
        path.write_text("")
    elif kind == "utf16":
        path.write_bytes(path.read_text().encode("utf-16"))
    else:
        path.unlink()
    rep = get_benchmark(bench).validate(root)
    # the problem names the file, or (image-folder layouts) the folder left without annotation
    hits = [p for p in rep.problems if str(path) in p or path.name in p or f"images/{path.stem.split('_')[0]}" in p]
    words = {"empty": "empty", "utf16": "not UTF-8", "missing": "missing"}[kind]
    record(
        "annotations",
        f"{bench}: {kind} file",
        hits[0] if hits else "; ".join(rep.problems)[:150],
        bool(hits) and any(words in h for h in hits),
    )
    assert hits, rep.problems
    assert any(words in h for h in hits), hits


@pytest.mark.parametrize("bench", ["cholec80", "pitvis", "jigsaws"])
def test_validate_lists_every_problem(bench, copy_of, record):
    root = copy_of(bench)
    rel, sep, header, field, bad, _ = TEXT[bench]
    path = root / rel
    lines = path.read_text().split("\n")[:-1]
    k = 3 if header else 2
    lines, l1 = _mutate("unknown_class", lines, k, sep, field, bad)
    lines, l2 = _mutate("wrong_separator", lines, k + 2, sep, field, bad)
    path.write_text("\n".join(lines) + "\n")
    rep = get_benchmark(bench).validate(root)
    record(
        "annotations",
        f"{bench}: two problems in one file",
        f"validate listed {len(rep.problems)} problems",
        len(rep.problems) >= 2,
    )
    assert any(f"{path}:{l1}:" in p for p in rep.problems) and any(f"{path}:{l2}:" in p for p in rep.problems)


@pytest.mark.parametrize(
    "bench, rel", [("cholect50", "labels/VID01.json"), ("multibypass140", "labels/bern/labels_by70/BBP01.mp4.json")]
)
@pytest.mark.parametrize("kind", ["truncated", "utf16", "unknown_label"])
def test_json_annotations(bench, rel, kind, copy_of, record):
    root = copy_of(bench)
    path = root / rel
    text = path.read_text()
    if kind == "truncated":
        path.write_text(text[: len(text) // 2])
    elif kind == "utf16":
        path.write_bytes(text.encode("utf-16"))
    else:
        doc = json.loads(text)
        if bench == "cholect50":
            doc["categories"]["triplet"]["5"] = "scalpel,juggle,moon"
        else:
            doc["phases"][1]["label_id"] = 42
        path.write_text(json.dumps(doc))
    rep = get_benchmark(bench).validate(root)
    hits = [p for p in rep.problems if str(path) in p]
    record("annotations", f"{bench}: {kind} JSON", hits[0][:150] if hits else "; ".join(rep.problems)[:150], bool(hits))
    assert hits, rep.problems


@pytest.mark.parametrize(
    "bench, victim",
    [("kvasirseg", "masks"), ("c3vd", "depth"), ("scared", "groundtruth"), ("surgicalactions160", "misnamed")],
)
def test_missing_or_misnamed_targets(bench, victim, copy_of, record):
    root = copy_of(bench)
    if victim == "masks":
        gone = sorted((root / "masks").glob("*.jpg"))[0]
    elif victim == "depth":
        gone = sorted(root.glob("*/0001_depth.tiff"))[0]
    elif victim == "groundtruth":
        gone = sorted(root.glob("dataset*/keyframe*/image_02/data/groundtruth/*.tiff"))[0]
    else:
        src = sorted((root / "03_cutting").glob("*.mp4"))[0]
        gone = src.with_name("cutting_clip.mp4")
        src.rename(gone)
    if victim != "misnamed":
        gone.unlink()
    rep = get_benchmark(bench).validate(root)
    hits = [p for p in rep.problems if gone.name in p]
    record("annotations", f"{bench}: {victim}", hits[0][:150] if hits else "; ".join(rep.problems)[:150], bool(hits))
    assert hits, rep.problems
