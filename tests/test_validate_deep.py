"""`validate(deep=True)` opens every pixel file, and every benchmark declares its on-disk layout.

A shallow validate reads annotations only: each broken download below passes it and fails the
deep check, which names the file and says why. The corrupt copies are made in tmp_path; the
session's synthetic corpus is never modified.
"""

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from unisurg.benchmarks import ImageSource, Record, VideoSource, get_benchmark, list_benchmarks
from unisurg.benchmarks import deep as deep_module
from unisurg.benchmarks.deep import Span, check_pixels, overrun
from unisurg.benchmarks.problems import Problems
from unisurg.media.video import VideoWriter, open_video

ALL = [b.name for b in list_benchmarks()]


@pytest.fixture
def copy_of(bench_root, tmp_path):
    def make(name: str) -> Path:
        dst = tmp_path / name
        shutil.copytree(bench_root(name), dst)
        return dst

    return make


def shallow_ok_deep_problems(name: str, root: Path) -> list[str]:
    """The deep problems of a root that the shallow validate accepts."""
    bench = get_benchmark(name)
    shallow = bench.validate(root)
    assert shallow.ok, shallow.problems
    assert shallow.checked == {}
    rep = bench.validate(root, deep=True)
    assert not rep.ok
    return rep.problems


@pytest.mark.parametrize("size", [200, 5000], ids=["short", "long"])
def test_text_file_named_mp4_fails_only_the_deep_check(copy_of, size):
    root = copy_of("cholec80")
    video = root / "videos" / "video01.mp4"
    video.write_text(("not a video\n" * size)[:size])
    problems = shallow_ok_deep_problems("cholec80", root)
    assert len(problems) == 1, problems
    why = "file too small to be a video" if size < 1024 else "cannot decode"
    assert problems[0].startswith(f"{video}: {why}"), problems


def test_truncated_video_is_caught(copy_of):
    root = copy_of("autolaparo")
    video = root / "videos" / "01.mp4"
    data = video.read_bytes()
    video.write_bytes(data[: len(data) // 2])
    problems = shallow_ok_deep_problems("autolaparo", root)
    assert len(problems) == 1 and problems[0].startswith(f"{video}: cannot decode"), problems


def test_video_that_opens_but_breaks_before_its_end_is_caught(copy_of):
    """Its index (at the end of the file) is intact, its frame data zeroed from the middle on:
    it opens with the right frame count, and only decoding the last frame finds the damage."""
    root = copy_of("cholec80")
    video = root / "videos" / "video02.mp4"
    data = bytearray(video.read_bytes())
    moov = data.rfind(b"moov") - 4  # the index box, written last by the muxer
    assert moov > len(data) // 2
    data[len(data) // 3 : moov] = bytes(moov - len(data) // 3)
    video.write_bytes(bytes(data))
    assert len(open_video(video)) == 300  # 12 s at 25 fps: the index still opens
    problems = shallow_ok_deep_problems("cholec80", root)
    assert len(problems) == 1 and problems[0].startswith(f"{video}: "), problems
    assert "decode" in problems[0]


def test_annotations_longer_than_the_video_are_caught(copy_of):
    """video01 is re-encoded 2 s long; its phase file still labels 12 s (300 frames at 25 fps)."""
    root = copy_of("cholec80")
    video = root / "videos" / "video01.mp4"
    with VideoWriter(video, 25.0, 64, 64) as w:
        for k in range(50):
            w.write(np.full((64, 64, 3), 4 * k, np.uint8))
    problems = shallow_ok_deep_problems("cholec80", root)
    assert problems == [
        f"{video}: annotations reach 11.96 s but the video lasts 2.00 s (50 frames at 25 fps): 9.96 s past its end"
    ]


def test_unreadable_frame_and_target_are_caught(copy_of):
    frames = copy_of("cholect50")
    frame = frames / "videos" / "VID01" / "000003.png"
    frame.write_text("not an image")
    problems = shallow_ok_deep_problems("cholect50", frames)
    assert problems == [f"{frame}: cv2 cannot decode this image (12 bytes: not an image, or damaged)"]
    dense = copy_of("kvasirseg")
    mask = sorted((dense / "masks").glob("*.jpg"))[0]
    mask.write_bytes(b"")
    problems = shallow_ok_deep_problems("kvasirseg", dense)
    assert problems == [f"{mask}: cannot decode the target (ValueError: cannot read image)"]


@pytest.mark.parametrize("bench", ALL)
def test_deep_validate_of_every_intact_benchmark_is_ok(bench, bench_root):
    b = get_benchmark(bench)
    rep = b.validate(bench_root(bench), deep=True)
    assert rep.ok, rep.problems
    records = b.load(bench_root(bench))
    videos = {r.source.path for r in records if isinstance(r.source, VideoSource)}
    images = {p for r in records for p in getattr(r.source, "paths", ())}
    images |= {r.source.path for r in records if isinstance(r.source, ImageSource)}
    targets = {r.target for r in records if r.target is not None}
    # every file opened, each once
    assert rep.checked == {"videos": len(videos), "images": len(images), "targets": len(targets)}
    assert sum(rep.checked.values()) > 0


def test_a_shared_video_is_opened_once(bench_root, monkeypatch):
    path = str(bench_root("cholec80") / "videos" / "video01.mp4")
    opened = []

    def counting_open(p):
        opened.append(p)
        return open_video(p)

    monkeypatch.setattr(deep_module, "open_video", counting_open)
    records = [Record(f"clip{k}", "train", VideoSource(path), np.array([0]), np.array([float(k)])) for k in range(3)]
    problems = Problems()
    assert check_pixels(records, problems) == {"videos": 1, "images": 0, "targets": 0}
    assert opened == [path] and not problems


@pytest.mark.parametrize(
    "times, expected",
    [
        (np.arange(250) / 25, None),  # per-frame labels of a 10 s video
        (np.arange(251) / 25, None),  # one frame past: rounding
        (np.arange(260) / 25, "annotations reach 10.36 s but the video lasts 10.00 s"),
        (np.arange(11.0), None),  # 1 fps with a trailing row at the end (PitVis)
        (np.arange(12.0), None),  # a trailing row one second past the end: rounded up
        (np.arange(13.0), "annotations reach 12.00 s but the video lasts 10.00 s"),
    ],
)
def test_overrun_tolerates_one_labelling_interval(times, expected):
    got = overrun(times, Span(250, 25.0, "video"))
    assert got is None if expected is None else (got or "").startswith(expected), got


@pytest.mark.parametrize("bench", ALL)
def test_every_benchmark_declares_the_layout_its_loader_reads(bench, bench_root):
    """Each pattern matches a file of the mini download (written in the real layout), and every
    file the loader's records name fits a pattern."""
    b = get_benchmark(bench)
    root = bench_root(bench)
    assert b.disk_layout is not None and b.layout.startswith(f"{b.disk_layout.folder}/\n")
    assert b.disk_layout.unmatched(root) == []
    named = set()
    for r in b.load(root):
        named |= {getattr(r.source, "path", None), *getattr(r.source, "paths", ()), r.target} - {None}
    assert named
    unfit = sorted(p for p in named if not b.disk_layout.matches(Path(os.path.relpath(p, root)).as_posix()))
    assert not unfit, unfit[:3]


def test_layout_names_what_a_broken_download_lacks(copy_of):
    root = copy_of("cholec80")
    shutil.rmtree(root / "phase_annotations")
    layout = get_benchmark("cholec80").disk_layout
    assert layout.unmatched(root) == ["phase_annotations/video<NN>-phase.txt"]
    assert not layout.matches("videos/sub/video01.mp4") and layout.matches("videos/video01.mp4")
