"""`unisurg features extract` on bad inputs: unreadable videos are skipped and listed, a killed Parquet
run resumes without recomputing (and writes the same bytes), curation's videos.parquet is an input."""

from __future__ import annotations

import logging
import shutil

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import unisurg.evaluation.extract as ex
from unisurg.cli import main
from unisurg.curation.index import curate
from unisurg.curation.sources import Source
from unisurg.errors import UsageError
from unisurg.media.video import VideoError, VideoReader
from unisurg.models import create_model

ARGS = ["--encoder", "random:vit_pico", "--frames", "4", "--fps", "4", "--stride", "2", "--size", "32"]


@pytest.fixture
def videos(bench_root, tmp_path):
    """Three real videos copied to their own folder (each test breaks its copies as it likes)."""
    folder = tmp_path / "videos"
    folder.mkdir()
    src = sorted((bench_root("cholec80") / "videos").glob("*.mp4"))[:3]
    assert len(src) == 3
    for v in src:
        shutil.copy(v, folder / v.name)
    return [folder / v.name for v in src]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _skipped(path):
    return pq.read_table(path).to_pylist()


@pytest.mark.parametrize("kind", ["parquet", "npy"])
def test_an_unreadable_video_is_skipped_listed_and_the_others_written(videos, tmp_path, caplog, record, kind):
    _truncate(videos[1])
    good = {str(videos[0]), str(videos[2])}
    if kind == "parquet":
        out, extra, skipped = tmp_path / "f.parquet", [], tmp_path / "f.skipped.parquet"
    else:
        out, extra, skipped = tmp_path / "npy", ["--pool", "none"], tmp_path / "npy" / "skipped.parquet"
    assert main(["features", "extract", str(videos[0].parent), *ARGS, *extra, "--out", str(out)]) == 0
    rows = pq.read_table(out if kind == "parquet" else out / "windows.parquet")
    assert set(rows.column("video").to_pylist()) == good
    if kind == "npy":
        assert sorted(p.name for p in out.glob("*.npy")) == sorted(f"{v.stem}.npy" for v in (videos[0], videos[2]))
    [bad] = _skipped(skipped)
    assert bad["video"] == str(videos[1]) and "cannot decode" in bad["reason"]
    assert f"1 of 3 videos skipped (unreadable), listed in {skipped}" in caplog.text
    record("features", f"truncated video among 3 (--out {kind})", f"skipped: {bad['reason']}; 2 written")


def test_a_video_failing_midway_is_skipped_without_a_partial_file(videos, tmp_path, monkeypatch):
    real = VideoReader.get_frames
    calls = {"n": 0}

    def flaky(self, indices):  # the second video's second batch of windows fails to decode
        if self.path == videos[1]:
            calls["n"] += 1
            if calls["n"] == 2:
                raise VideoError(f"{self.path}: PyAV decode failed: corrupt packet")
        return real(self, indices)

    monkeypatch.setattr(VideoReader, "get_frames", flaky)
    out = tmp_path / "npy"
    assert main(["features", "extract", *map(str, videos), *ARGS, "--batch-size", "2", "--out", str(out)]) == 0
    assert calls["n"] == 2  # it did fail midway, after one batch
    assert not (out / f"{videos[1].stem}.npy").exists()
    assert _skipped(out / "skipped.parquet") == [
        {"video": str(videos[1]), "reason": "PyAV decode failed: corrupt packet"}
    ]
    assert len(set(pq.read_table(out / "windows.parquet").column("video").to_pylist())) == 2


def test_no_readable_video_is_an_error_that_lists_them(videos, tmp_path, record):
    for v in videos[:2]:
        _truncate(v)
    out = tmp_path / "f.parquet"
    with pytest.raises(UsageError, match="none of the 2 videos could be read"):
        ex.extract(create_model("vit_pico"), videos[:2], out, ex.Windows(4, 4.0, 2.0, 32))
    assert not out.exists()
    assert [r["video"] for r in _skipped(tmp_path / "f.skipped.parquet")] == list(map(str, videos[:2]))
    record("features", "every video truncated", "error (exit 2), all listed in the skipped table")


def test_a_killed_parquet_run_resumes_without_recomputing_and_writes_the_same_bytes(videos, tmp_path, monkeypatch):
    run = ["features", "extract", str(videos[0].parent), *ARGS]
    assert main([*run, "--out", str(tmp_path / "clean.parquet")]) == 0
    assert not (tmp_path / "clean.parts").exists()  # the sidecar goes once the file is whole
    real, done = ex.video_embeddings, []

    def killed_at_third(encoder, path, *a):
        if len(done) == 2:
            raise KeyboardInterrupt  # the run is killed while embedding the third video
        done.append(path)
        return real(encoder, path, *a)

    out = tmp_path / "f.parquet"
    monkeypatch.setattr(ex, "video_embeddings", killed_at_third)
    with pytest.raises(KeyboardInterrupt):
        main([*run, "--out", str(out)])
    assert not out.exists() and len(list((tmp_path / "f.parts").rglob("*.npy"))) == 2

    def counted(encoder, path, *a):
        done.append(path)
        return real(encoder, path, *a)

    done.clear()
    monkeypatch.setattr(ex, "video_embeddings", counted)
    shutil.copytree(tmp_path / "f.parts", tmp_path / "other.parts")  # the killed run's parts, other weights:
    assert main([*run, "--seed", "1", "--out", str(tmp_path / "other.parquet")]) == 0
    assert done == videos  # parts of other settings are never reused
    done.clear()
    assert main([*run, "--out", str(out)]) == 0
    assert done == [videos[2]]  # only the video the killed run had not finished
    assert out.read_bytes() == (tmp_path / "clean.parquet").read_bytes()
    assert not (tmp_path / "f.parts").exists() and _skipped(tmp_path / "f.skipped.parquet") == []


def test_curations_videos_parquet_lists_the_kept_videos(videos, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    shutil.copy(videos[0], videos[0].parent / "z_copy.mp4")  # a duplicate: curation drops it
    _truncate(videos[2])  # quarantined by curation: never even tried here
    src = Source(name="or", root=str(videos[0].parent), region="gallbladder", procedure="chole", license="x")
    curate([src], tmp_path / "curate", clip_frames=4, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1)
    listed = tmp_path / "curate" / "videos.parquet"
    assert ex.find_videos([listed]) == [videos[0], videos[1]]  # curation's absolute paths, its order
    assert "2 of the 4 videos" in caplog.text and "1 duplicate" in caplog.text and "1 quarantined" in caplog.text
    assert main(["features", "extract", str(listed), *ARGS, "--out", str(tmp_path / "f.parquet")]) == 0
    rows = pq.read_table(tmp_path / "f.parquet")
    assert set(rows.column("video").to_pylist()) == {str(videos[0]), str(videos[1])}
    assert _skipped(tmp_path / "f.skipped.parquet") == []
    pq.write_table(pa.table({"video": ["a.mp4"]}), tmp_path / "features.parquet")
    with pytest.raises(UsageError, match="no 'path' column"):
        ex.find_videos([tmp_path / "features.parquet"])
