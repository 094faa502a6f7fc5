"""Bad video files: curation quarantines each with a specific reason, every good file survives,
and the training / evaluation loaders skip or fail clearly (no crash, no hang)."""

from __future__ import annotations

import os
import shutil
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from unisurg.benchmarks import Record, VideoSource
from unisurg.curation.index import curate
from unisurg.curation.sources import Source
from unisurg.evaluation.framestore import Geometry, build_store
from unisurg.media.clips import ClipTable


def _write(
    path: Path,
    n: int,
    w: int = 64,
    h: int = 48,
    fps: float = 25.0,
    codec: str = "libx264",
    pix: str = "yuv420p",
    pts=None,
    faststart: bool = False,
    rotate: int = 0,
) -> Path:
    rng = np.random.default_rng(len(str(path)))
    out = av.open(str(path), "w", options={"movflags": "faststart"} if faststart else {})
    s = out.add_stream(codec, rate=Fraction(fps).limit_denominator(100000))
    s.width, s.height, s.pix_fmt = w, h, pix
    if pts is not None:
        s.codec_context.time_base = Fraction(1, 1000)
    if rotate:
        s.metadata["rotate"] = str(rotate)
    for i in range(n):
        img = np.clip(rng.normal(128, 40, (h, w, 3)) + i, 0, 255).astype(np.uint8)
        fr = av.VideoFrame.from_ndarray(img, format="rgb24")
        if pts is not None:
            fr.pts, fr.time_base = int(pts[i]), Fraction(1, 1000)
        for pkt in s.encode(fr):
            out.mux(pkt)
    for pkt in s.encode():
        out.mux(pkt)
    out.close()
    return path


def _audio_only(path: Path) -> Path:
    out = av.open(str(path), "w")
    s = out.add_stream("aac", rate=16000)
    for i in range(10):
        fr = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        fr.sample_rate, fr.pts = 16000, i * 1024
        for pkt in s.encode(fr):
            out.mux(pkt)
    for pkt in s.encode():
        out.mux(pkt)
    out.close()
    return path


# case -> (expected status, words the reason must contain)
EXPECT = {
    "zero_byte.mp4": ("quarantined", "0 bytes"),
    "truncated_moov.mp4": ("quarantined", "not a readable video container"),
    "truncated_midstream.mp4": ("quarantined", "unreadable video"),
    "random_bytes.mp4": ("quarantined", "not a readable video container"),
    "text_file.mp4": ("quarantined", "not a readable video container"),
    "audio_only.mp4": ("quarantined", "no video stream"),
    "one_frame.mp4": ("quarantined", "shorter than"),
    "tiny_17x9.mov": ("quarantined", "implausible size 17x9"),
    "absurd_fps.mp4": ("quarantined", "implausible"),
    "named_pipe.mp4": ("quarantined", "not a regular file"),
    "caf\udce9_latin1_name.mp4": ("quarantined", "not valid UTF-8"),
    "good_vfr.mp4": ("kept", ""),
    "good_rotated.mp4": ("kept", ""),
    "good_48px_wide.mp4": ("kept", ""),  # decord cannot copy it; PyAV decodes it
    "good_plain.mp4": ("kept", ""),
}


@pytest.fixture(scope="module")
def zoo(tmp_path_factory):
    root = tmp_path_factory.mktemp("zoo") / "archive"
    root.mkdir()
    good = _write(root / "good_plain.mp4", 60)
    (root / "zero_byte.mp4").write_bytes(b"")
    data = good.read_bytes()
    (root / "truncated_moov.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end is lost
    fast = _write(root / "tmp_fast.mp4", 60, faststart=True)
    fdata = fast.read_bytes()
    (root / "truncated_midstream.mp4").write_bytes(fdata[: int(len(fdata) * 0.6)])  # index intact, frames cut
    fast.unlink()
    (root / "random_bytes.mp4").write_bytes(np.random.default_rng(0).bytes(20000))
    (root / "text_file.mp4").write_text("surgical notes, renamed to .mp4 by mistake\n" * 200)
    _audio_only(root / "audio_only.mp4")
    _write(root / "one_frame.mp4", 1)
    _write(root / "tiny_17x9.mov", 30, w=17, h=9, codec="png", pix="rgb24")
    _write(root / "absurd_fps.mp4", 30, fps=Fraction(1, 3600))  # one frame per hour: "30 hours" long
    os.mkfifo(root / "named_pipe.mp4")
    shutil.copy(good, os.fsencode(root) + b"/caf\xe9_latin1_name.mp4")
    _write(root / "good_vfr.mp4", 60, pts=np.cumsum(np.r_[0, np.random.default_rng(1).integers(20, 70, 59)]))
    _write(root / "good_rotated.mp4", 60, rotate=90)
    _write(root / "good_48px_wide.mp4", 60, w=48, h=48)
    loop = root / "sub"
    loop.mkdir()
    (loop / "loop").symlink_to("..")  # a symlink loop must not hang the listing
    out = root.parent / "index"
    curate(
        [Source(name="archive", root=str(root), glob="**/*", region="x", procedure="x", license="x")],
        out,
        clip_frames=8,
        frame_step=2,
        clip_stride_s=1.0,
        min_seconds=1.0,
        workers=2,
    )
    return root, out


@pytest.mark.parametrize("name", sorted(EXPECT))
def test_each_bad_file_is_quarantined_with_its_reason(zoo, name, record):
    _, out = zoo
    videos = {v["video_id"].split("/", 1)[1]: v for v in pq.read_table(out / "videos.parquet").to_pylist()}
    key = name.replace("\udce9", "\\xe9")
    assert key in videos, sorted(videos)
    status, words = EXPECT[name]
    v = videos[key]
    record(
        "videos",
        name,
        f"{v['status']}: {v['reason'] or 'indexed, ' + str(v['num_frames']) + ' frames'}",
        v["status"] == status and words in v["reason"],
    )
    assert v["status"] == status, v["reason"]
    assert words in v["reason"]


def test_every_good_file_is_indexed_and_clipped(zoo, record):
    _, out = zoo
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    good = {n for n, (st, _) in EXPECT.items() if st == "kept"}
    clipped = {c["video_id"].split("/", 1)[1] for c in clips}
    record(
        "videos",
        "good files among bad ones",
        f"{len(clipped)} of {len(good)} good files indexed with clips",
        clipped == good,
    )
    assert clipped == good
    q = pq.read_table(out / "quarantine.parquet").to_pylist()
    assert len(q) == sum(st == "quarantined" for st, _ in EXPECT.values())


def _decode_clip_independently(path: str, start: int, step: int, frames: int, size: int) -> torch.Tensor:
    """The clip a row of clips.parquet names, decoded here with PyAV frame by frame (not through the
    loader's reader), area-resized to ``size`` -> uint8 (3, frames, size, size)."""
    import cv2

    wanted = [start + k * step for k in range(frames)]
    with av.open(path) as c:
        decoded = [f.to_ndarray(format="rgb24") for _, f in zip(range(wanted[-1] + 1), c.decode(video=0))]
    picked = np.stack([cv2.resize(decoded[i], (size, size), interpolation=cv2.INTER_AREA) for i in wanted])
    return torch.from_numpy(picked).permute(3, 0, 1, 2)


def test_training_loader_skips_a_clip_that_breaks_after_curation(zoo, tmp_path, record):
    root, out = zoo
    table = pq.read_table(out / "clips.parquet")
    bad = tmp_path / "clips.parquet"
    rows = table.to_pylist()
    broken = tmp_path / "vanished.mp4"
    shutil.copy(root / "good_plain.mp4", broken)
    rows[0] = {**rows[0], "path": str(broken)}
    pq.write_table(type(table).from_pylist(rows, schema=table.schema), bad)
    broken.write_bytes(b"")  # the file is emptied after curation (e.g. a failed sync)
    ds = ClipTable(str(bad), frames=8, size=32)
    item = ds[0]  # replaced by the next readable clip, with a warning; no crash
    # the substitute is exactly the clip of the next row (row 1), decoded independently of the loader
    nxt = rows[1]
    want = _decode_clip_independently(nxt["path"], nxt["start_frame"], nxt["frame_step"], 8, 32)
    other = _decode_clip_independently(rows[2]["path"], rows[2]["start_frame"], rows[2]["frame_step"], 8, 32)
    assert not torch.equal(want, other)  # neighbouring rows are distinguishable clips
    got = item["clip"]
    same = got.shape == want.shape and torch.equal(got, want)
    record(
        "loaders",
        "training clip emptied after curation",
        "skipped, the next row's clip returned (warning logged)" if same else "substitute is not the next row's clip",
        same,
    )
    assert got.dtype == torch.uint8 and got.shape == (3, 8, 32, 32)
    assert torch.equal(got, want)


def test_evaluation_frame_store_records_why_a_file_does_not_decode(zoo, tmp_path, record):
    """A benchmark video that is not a video, or stops decoding part-way: its store keeps what
    decoded and names the reason; nothing raises (the harness skips the affected windows)."""
    root, _ = zoo
    frames = np.arange(0, 60, 5)
    text, cut = (
        build_store(
            Record(name, "test", VideoSource(str(root / name)), np.zeros(1)),
            frames,
            Geometry(32, 32),
            tmp_path,
            key * 40,
            "decord",
        )
        for name, key in (("text_file.mp4", "a"), ("truncated_midstream.mp4", "b"))
    )
    assert text.missing == [(0, len(frames))] and "text_file.mp4" in text.error
    assert cut.missing and cut.missing[-1][1] == len(frames) and "truncated_midstream.mp4" in cut.error
    record(
        "loaders",
        "evaluation video that is not a video / stops part-way",
        f"stored as missing frames with the reason ({len(frames) - cut.missing[0][0]} of {len(frames)} missing)",
    )
