"""Leakage across benchmarks and formats: edited copies of a held-out video never reach pretraining.

A Cholec80 *test* video whose content changes every second (letterboxed, as endoscopic video often
is) is copied into a pretraining source the ways public collections re-host benchmark videos:
(a) its middle third re-encoded, (b) borders removed and an 85 % centre crop resized back,
(c) re-timed to 10 fps, (d) a 1-fps PNG frame folder (a ``kind: frames`` source). Each must end
excluded with its reason and route; unrelated videos must stay.
"""

import shutil

import cv2
import numpy as np
import pyarrow.parquet as pq
import pytest

from unisurg.benchmarks.phase import CHOLEC80_PHASES
from unisurg.curation.index import curate
from unisurg.curation.matching import best_match, find_matches
from unisurg.curation.signatures import border_box, frame_codes, instants
from unisurg.curation.sources import Source
from unisurg.media.frames import FrameFolderReader
from unisurg.media.video import VideoWriter

FPS, SECONDS, H, W, PAD = 25, 45, 96, 128, 14


def scene(seconds: int = SECONDS, seed: int = 7) -> np.ndarray:
    """(seconds * FPS, H + 2 PAD, W, 3) uint8: a new random smooth image every second, drifting a
    little within it, between black letterbox bars."""
    rng = np.random.default_rng(seed)
    out = np.zeros((seconds * FPS, H + 2 * PAD, W, 3), np.uint8)
    for s in range(seconds):
        base = cv2.resize(rng.integers(30, 255, (6, 8, 3), dtype=np.uint8), (W + 24, H + 24), cv2.INTER_CUBIC)
        for f in range(FPS):
            dx = f * 24 // FPS
            out[s * FPS + f, PAD : PAD + H] = base[12 : 12 + H, dx : dx + W]
    return out


def write(path, frames, fps, crf=23):
    with VideoWriter(path, fps, frames.shape[2], frames.shape[1], crf=crf) as w:
        for f in frames:
            w.write(np.ascontiguousarray(f))


def crop85(frame: np.ndarray) -> np.ndarray:
    top, bottom, left, right = border_box(cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY).astype(np.float32))
    inner = frame[top:bottom, left:right]
    h, w = inner.shape[:2]
    dh, dw = round(h * 0.075), round(w * 0.075)
    return cv2.resize(inner[dh : h - dh, dw : w - dw], (frame.shape[1], frame.shape[0]), cv2.INTER_AREA)


@pytest.fixture(scope="module")
def leaked(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("leak")
    bench = base / "cholec80"
    shutil.copytree(corpus / "benchmarks" / "cholec80", bench)
    frames = scene()
    write(bench / "videos" / "video49.mp4", frames, FPS)  # Cholec80 test split: 49-80
    rows = "".join(f"{i}\t{CHOLEC80_PHASES[min(i * 7 // len(frames), 6)]}\n" for i in range(len(frames)))
    (bench / "phase_annotations" / "video49-phase.txt").write_text("Frame\tPhase\n" + rows)
    pre = base / "collection"
    shutil.copytree(corpus / "pretrain" / "hospital_a_lapchole", pre / "unrelated_a")
    shutil.copytree(corpus / "pretrain" / "gyn_laparoscopy", pre / "unrelated_b")
    n = len(frames)
    write(pre / "a_middle_third.mp4", frames[n // 3 + 7 : 2 * n // 3 + 7], FPS, crf=30)  # cut mid-second
    write(pre / "b_crop85.mp4", np.stack([crop85(f) for f in frames]), FPS)
    write(pre / "c_10fps.mp4", frames[np.round(np.arange(SECONDS * 10) * FPS / 10).astype(int)], 10)
    folder = base / "exports" / "d_frames"
    folder.mkdir(parents=True)
    for k in range(SECONDS):
        cv2.imwrite(str(folder / f"{k:05d}.png"), frames[k * FPS][..., ::-1])
    sources = [
        Source(name="collection", root=str(pre), region="mixed", procedure="mixed", license="x"),
        Source(
            name="exports", root=str(base / "exports"), kind="frames", fps=1, region="m", procedure="m", license="x"
        ),
        Source(
            name="cholec80",
            root=str(bench),
            glob="videos/*.mp4",
            region="gallbladder",
            procedure="chole",
            license="x",
            role="benchmark:cholec80",
        ),
    ]
    out = base / "out"
    metrics = curate(sources, out, clip_frames=8, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=2)
    videos = {v["video_id"].split("/")[-1]: v for v in pq.read_table(out / "videos.parquet").to_pylist()}
    return out, metrics, videos


@pytest.mark.parametrize(
    "name, route",
    [
        ("a_middle_third.mp4", "collection pretrain a_middle_third = cholec80 test video49"),
        ("b_crop85.mp4", "collection pretrain b_crop85 = cholec80 test video49"),
        ("c_10fps.mp4", "collection pretrain c_10fps = cholec80 test video49"),
        ("d_frames", "exports pretrain d_frames = cholec80 test video49"),
    ],
)
def test_an_edited_copy_of_a_test_video_is_excluded_with_its_route(leaked, name, route, record):
    out, metrics, videos = leaked
    v = videos[name]
    assert v["status"] == "excluded", v
    assert v["reason"].startswith("shows held-out benchmark:cholec80 test video video49.mp4: its seconds")
    assert route in [leak["route"] for leak in metrics["leaks"]]
    clips = pq.read_table(out / "clips.parquet").column("path").to_pylist()
    assert not any(name in p for p in clips)
    record("leakage", f"held-out test video copied as {name}", f"excluded: {v['reason']}")


def test_unrelated_videos_stay_and_only_copies_are_leaks(leaked):
    _, metrics, videos = leaked
    unrelated = [k for k in videos if k.startswith(("hospital_a", "gyn_lap"))]
    assert unrelated and all(videos[k]["status"] == "kept" for k in unrelated)
    assert len(metrics["leaks"]) == 4  # the four copies, nothing else
    assert videos["d_frames"]["codec"] == "frames" and videos["d_frames"]["fps"] == 1.0


def test_a_trim_mid_second_lines_up_at_a_quarter_second(tmp_path):
    """The middle third starts 7 frames (0.28 s) into a second: matched at phase 1/4, within a bit or two."""
    frames = scene(12, seed=3)
    write(tmp_path / "orig.mp4", frames, FPS)
    write(tmp_path / "trim.mp4", frames[7 + 2 * FPS :], FPS)
    from unisurg.curation.inspection import scan
    from unisurg.media.video import open_video

    a = scan(open_video(tmp_path / "orig.mp4"), 0, held_out=True)[0]
    b = scan(open_video(tmp_path / "trim.mp4"), 0)[0]
    mean, m = best_match("orig", a, "trim", b)
    assert m is not None and m.a_start == pytest.approx(2.25) and m.b_start == 0 and mean <= 2.0
    # the keyed candidate search (DuckDB, what runs above BRUTE_FORCE_LIMIT) finds the same match
    assert find_matches({"orig": a}, {"trim": b}, keyed=True) == find_matches({"orig": a}, {"trim": b}, keyed=False)
    assert find_matches({"orig": a}, {"trim": b}, keyed=True) == [m]


def test_frame_folders_read_as_videos(tmp_path):
    for k in (0, 1, 2, 10):  # natural order: 10 after 2, not after 1
        cv2.imwrite(str(tmp_path / f"f{k}.png"), np.full((20, 24, 3), 10 * k, np.uint8))
    r = FrameFolderReader(tmp_path, fps=1)
    assert len(r) == 4 and r.meta.width == 24 and r.meta.height == 20
    assert [int(x[0, 0, 0]) for x in r.get_frames([0, 3, 2])] == [0, 100, 20]
    (tmp_path / "f11.png").write_bytes(b"not an image")
    with pytest.raises(Exception, match="f11.png: not a readable image"):
        FrameFolderReader(tmp_path, fps=1).get_frames([4])


def test_uniform_seconds_never_match():
    black = np.zeros((40, 60, 3), np.uint8)
    h, c, valid = frame_codes(black)
    assert not valid
    idx = instants(num_frames=90, fps=25, phases=4)
    assert idx.shape == (4, 4) and idx[0].tolist() == [0, 25, 50, 75] and idx[3, -1] == -1  # 3.75 s is past frame 89


def test_the_built_in_corpus_has_one_known_overlap_and_no_other(corpus, tmp_path):
    """Cholec80 video06 (train) is CholecT50 VID06 (test): the only leak; no distinct video merged."""
    b = corpus / "benchmarks"
    sources = [
        Source(name="pre", root=str(corpus / "pretrain"), region="m", procedure="m", license="x"),
        Source(name="cholec80", root=str(b / "cholec80"), glob="videos/*.mp4", region="g", procedure="c",
               license="x", role="benchmark:cholec80"),
        Source(name="cholect50", root=str(b / "CholecT50"), glob="videos/*", kind="frames", fps=1, region="g",
               procedure="c", license="x", role="benchmark:cholect50"),
        Source(name="pitvis", root=str(b / "PitVis"), glob="*.mp4", region="b", procedure="p", license="x",
               role="benchmark:pitvis"),
        Source(name="autolaparo", root=str(b / "autolaparo"), glob="videos/*.mp4", region="u", procedure="h",
               license="x", role="benchmark:autolaparo"),
        Source(name="m2cai16", root=str(b / "m2cai16-workflow"), glob="*_dataset/*.mp4", region="g",
               procedure="c", license="x", role="benchmark:m2cai16", guard_only=True),
    ]  # fmt: skip
    metrics = curate(sources, tmp_path, clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=2)
    assert [x["route"] for x in metrics["leaks"]] == ["cholec80 train video06 = cholect50 test VID06"]
    assert metrics["duplicates_removed"] == 0 and metrics["excluded_leaks"] == 1
    assert metrics["excluded_guard_only"] == sum(1 for v in m2cai_rows(tmp_path) if v["split"] == "train")
    videos = pq.read_table(tmp_path / "videos.parquet").to_pylist()
    m2cai = [v for v in videos if v["source"] == "m2cai16"]
    assert m2cai and all(v["status"] == "excluded" for v in m2cai)  # guard_only: none of it pretrains
    assert any("guard_only" in v["reason"] for v in m2cai if v["split"] == "train")


def m2cai_rows(out) -> list[dict]:
    return [v for v in pq.read_table(out / "videos.parquet").to_pylist() if v["source"] == "m2cai16"]
