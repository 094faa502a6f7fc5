"""Curation on real files: inspection, quarantine, dedup, leakage guard, clip table, DuckDB index."""

import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from unisurg.curation.index import curate, open_index
from unisurg.curation.inspection import NEAR_DUP_BITS, dct_hash, hamming, inspect_video, near_duplicate
from unisurg.curation.sources import Source
from unisurg.media.video import VideoWriter, open_video


def _reencode(src, dst, size):
    """Decode a video and write it again at another resolution (a re-encoded, resized copy)."""
    import cv2

    vr = open_video(src)
    frames = vr.get_frames(np.arange(len(vr)))
    with VideoWriter(dst, vr.meta.fps, size, size, crf=30) as w:
        for f in frames:
            w.write(cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA))


@pytest.fixture(scope="module")
def curated(corpus, tmp_path_factory):
    base = tmp_path_factory.mktemp("curate")
    pre = base / "hospital"
    shutil.copytree(corpus / "pretrain" / "hospital_a_lapchole", pre / "lapchole")
    shutil.copytree(corpus / "pretrain" / "gi_unit_colonoscopy", pre / "colon")
    first = sorted(pre.rglob("*.mp4"))[0]
    shutil.copy(first, pre / "exact_copy.mp4")  # exact duplicate
    (pre / "empty.mp4").write_bytes(b"")
    (pre / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (pre / "notes.mp4").write_text("this is a text file renamed to .mp4\n" * 100)
    data = first.read_bytes()
    (pre / "truncated.mp4").write_bytes(data[: len(data) // 3])
    bench = corpus / "benchmarks" / "cholec80"
    test_video = bench / "videos" / "video49.mp4"  # a test-split video of Cholec80
    _reencode(test_video, pre / "leaked_resized.mp4", 48)  # leaked into a pretraining source, resized
    sources = [
        Source(name="hospital", root=str(pre), region="gallbladder", procedure="chole", license="x"),
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
    metrics = curate(
        sources, out, clip_frames=8, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=2, motion_step=2
    )
    return out, metrics


def test_bad_files_are_quarantined_with_reasons_and_good_ones_indexed(curated):
    out, metrics = curated
    q = pq.read_table(out / "quarantine.parquet").to_pylist()
    reasons = {r["path"].rsplit("/", 1)[1]: r["reason"] for r in q}
    assert set(reasons) == {"empty.mp4", "random.mp4", "notes.mp4", "truncated.mp4"}
    assert "0 bytes" in reasons["empty.mp4"]
    assert all(reasons[k] for k in reasons)
    videos = pq.read_table(out / "videos.parquet").to_pylist()
    kept = [v for v in videos if v["status"] == "kept"]
    # both pretraining videos + the Cholec80 training videos (video01, video02) survive
    assert {v["video_id"].split("/")[-1] for v in kept} >= {"video01.mp4", "video02.mp4"}
    assert sum(v["source"] == "hospital" for v in kept) == 2
    assert metrics["quarantined"] == 4 and metrics["videos_kept"] == len(kept)


def test_duplicates_and_leaks_are_excluded_with_reasons(curated, record):
    out, metrics = curated
    videos = {v["video_id"].split("/")[-1]: v for v in pq.read_table(out / "videos.parquet").to_pylist()}
    assert videos["exact_copy.mp4"]["status"] == "duplicate"
    assert videos["video49.mp4"]["status"] == "excluded" and "test" in videos["video49.mp4"]["reason"]
    assert videos["video41.mp4"]["status"] == "excluded" and "val" in videos["video41.mp4"]["reason"]
    leak = videos["leaked_resized.mp4"]
    assert leak["status"] == "excluded" and "video49.mp4" in leak["reason"]
    clips = pq.read_table(out / "clips.parquet").to_pylist()
    assert not any("leaked" in c["path"] or "video49" in c["path"] or "video41" in c["path"] for c in clips)
    assert metrics["duplicates_removed"] == 1
    record(
        "leakage",
        "benchmark test video re-encoded and resized into a pretraining source",
        f"excluded: {leak['reason']}; no pretraining clip from it",
    )
    record("leakage", "exact copy of a pretraining video", f"dropped: {videos['exact_copy.mp4']['reason']}")


def test_clip_table_and_duckdb_index(curated):
    out, _ = curated
    clips = pq.read_table(out / "clips.parquet")
    assert clips.num_rows > 0
    w = clips.to_pandas().groupby("source")["weight"].sum()
    assert np.allclose(w.values, 1.0)  # every source sums to 1: balanced sampling
    c = clips.to_pylist()[0]
    assert c["num_frames"] == 8 and c["frame_step"] == 2 and c["end_s"] > c["start_s"]
    con = open_index(out)
    n = con.sql("SELECT count(*) FROM clips").fetchall()[0][0]
    assert n == clips.num_rows
    by = dict(con.sql("SELECT status, count(*) FROM videos GROUP BY status").fetchall())
    assert by["quarantined"] == 4


def test_perceptual_signature_is_robust_to_resizing(corpus, tmp_path):
    src = sorted((corpus / "pretrain").rglob("*.mp4"))[0]
    other = sorted((corpus / "pretrain").rglob("*.mp4"))[-1]
    _reencode(src, tmp_path / "small.mp4", 40)
    a, b, c = inspect_video(str(src)), inspect_video(str(tmp_path / "small.mp4")), inspect_video(str(other))
    assert a.ok and b.ok and c.ok
    assert near_duplicate(a.signature, b.signature)
    assert not near_duplicate(a.signature, c.signature)
    assert a.sha256 != b.sha256


def test_dct_hash_tracks_content_not_encoding(corpus):
    import cv2

    videos = sorted((corpus / "pretrain").rglob("*.mp4"))
    frames = [open_video(v).get_frames([40])[0] for v in videos]  # one frame of each pretraining video
    hashes = [dct_hash(f) for f in frames]
    for f, h in zip(frames, hashes):
        assert dct_hash(f.copy()) == h  # identical pixels, identical hash
        # the same frame downscaled and JPEG-compressed hard: only a few bits flip
        small = cv2.resize(f, (40, 40), interpolation=cv2.INTER_AREA)
        ok, jpg = cv2.imencode(".jpg", small[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, 30])
        assert ok
        assert hamming(dct_hash(cv2.imdecode(jpg, cv2.IMREAD_COLOR)[..., ::-1]), h) <= NEAR_DUP_BITS
    # different videos: far apart, well beyond the near-duplicate threshold
    apart = [hamming(hashes[i], hashes[j]) for i in range(len(hashes)) for j in range(i)]
    assert len(apart) >= 10 and min(apart) >= 2 * NEAR_DUP_BITS  # at least twice the threshold


def test_outputs_are_byte_deterministic(corpus, tmp_path):
    src = [Source(name="pre", root=str(corpus / "pretrain"), region="mixed", procedure="x", license="x")]
    for name in ("a", "b"):
        curate(
            src,
            tmp_path / name,
            clip_frames=8,
            frame_step=2,
            clip_stride_s=1.0,
            min_seconds=1.0,
            workers=2 if name == "a" else 1,
        )
    for f in ("videos.parquet", "clips.parquet", "quarantine.parquet", "index.sql", "curation.json"):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_quality_gate_passes_a_good_index_and_fails_a_broken_one(curated, tmp_path):
    import pyarrow as pa

    from unisurg.curation.gate import QualityGateError, run_gate

    out, _ = curated
    checks = run_gate(out)
    assert checks and all(c.success for c in checks)
    broken = tmp_path / "broken"
    shutil.copytree(out, broken)
    videos = pq.read_table(broken / "videos.parquet").to_pylist()
    leak = next(v for v in videos if v["status"] == "excluded" and "test" in v["reason"])
    clips = pq.read_table(broken / "clips.parquet").to_pylist()
    clips.append({**clips[0], "clip_id": "leak#0", "video_id": leak["video_id"]})  # a clip from a test video
    for v in videos:
        if v["status"] == "kept":
            v["fps"] = 0.0  # absurd metadata
            break
    pq.write_table(
        pa.Table.from_pylist(videos, schema=pq.read_schema(out / "videos.parquet")), broken / "videos.parquet"
    )
    pq.write_table(pa.Table.from_pylist(clips, schema=pq.read_schema(out / "clips.parquet")), broken / "clips.parquet")
    with pytest.raises(QualityGateError) as err:
        run_gate(broken)
    msg = str(err.value)
    assert "[kept_videos] expect_column_values_to_be_between(fps)" in msg
    assert "[clips] expect_column_values_to_be_in_set(video_id)" in msg and leak["video_id"] in msg


def test_motion_scores_and_balancing_weights(curated):
    out, _ = curated
    clips = pq.read_table(out / "clips.parquet").to_pandas()
    assert clips["motion"].notna().all() and (clips["motion"] >= 0).all()
    # the synthetic videos move (instruments, camera): a motion score of exactly zero everywhere would be a bug
    assert clips["motion"].mean() > 0.1
    # balance=source (the default): a source's clips share one weight, 1 / (clips of the source), so
    # sources with unequal clip counts get equal total weight
    counts = clips.groupby("source").size()
    assert len(counts) >= 2 and counts.nunique() > 1  # unequal sources, or the check would be vacuous
    for src, w in clips.groupby("source")["weight"]:
        assert np.allclose(w, 1.0 / counts[src]), src


def test_the_training_sampler_draws_every_source_equally_often(curated):
    from unisurg.media.clips import StepBatchSampler

    out, _ = curated
    clips = pq.read_table(out / "clips.parquet").to_pandas()
    sources = clips["source"].to_numpy()
    assert len(set(sources)) >= 2
    # pretraining's batch size; 2000 steps = 16000 draws: the share's standard error is 0.004
    sampler = StepBatchSampler(clips["weight"].to_numpy(), batch_size=8, seed=0, start=0, total=2000)
    drawn = sources[np.concatenate(list(sampler))]
    share = {s: float(np.mean(drawn == s)) for s in set(sources)}
    assert all(abs(v - 1 / len(share)) < 0.01 for v in share.values()), share


def _clip_videos():
    """Five videos: clips of two lengths and rates, one too short, one excluded, a region over two sources."""
    import pyarrow as pa

    from unisurg.curation.index import VIDEO_SCHEMA

    rows = [
        {
            "video_id": "a/1",
            "path": "/a/1",
            "source": "a",
            "region": "brain",
            "num_frames": 100,
            "fps": 25.0,
            "status": "kept",
        },
        {
            "video_id": "b/1",
            "path": "/b/1",
            "source": "b",
            "region": "eye",
            "num_frames": 60,
            "fps": 30.0,
            "status": "kept",
        },
        {
            "video_id": "b/2",
            "path": "/b/2",
            "source": "b",
            "region": "eye",
            "num_frames": 10,
            "fps": 30.0,
            "status": "kept",
        },  # too short for one clip
        {
            "video_id": "c/1",
            "path": "/c/1",
            "source": "c",
            "region": "eye",
            "num_frames": 500,
            "fps": 25.0,
            "status": "excluded",
        },
        {
            "video_id": "c/2",
            "path": "/c/2",
            "source": "c",
            "region": "eye",
            "num_frames": 60,
            "fps": 30.0,
            "status": "kept",
        },  # region "eye" spans sources b and c
    ]
    full = [{f: r.get(f, {"signature": []}.get(f)) for f in VIDEO_SCHEMA.names} for r in rows]
    return pa.Table.from_pylist(full, schema=VIDEO_SCHEMA)


def test_clip_table_is_vectorised_and_exact():
    from unisurg.curation.index import build_clip_table

    videos = _clip_videos()
    clips = build_clip_table(
        videos, clip_frames=8, frame_step=2, clip_stride_s=1.0, motion={"a/1": (1.0, 3.0, 5.0, 7.0)}
    ).to_pylist()
    span = 7 * 2 + 1  # 15 native frames
    a = [c for c in clips if c["video_id"] == "a/1"]
    assert [c["start_frame"] for c in a] == [0, 25, 50, 75] and all(c["start_frame"] + span <= 100 for c in a)
    assert a[1]["clip_id"] == "a/1#00001" and a[1]["start_s"] == 1.0 and a[1]["end_s"] == pytest.approx(1.6)
    assert a[1]["motion"] == pytest.approx(3.0)  # second 1 of the profile
    b = [c for c in clips if c["video_id"] == "b/1"]
    assert [c["start_frame"] for c in b] == [0, 30] and np.isnan(b[0]["motion"])
    assert not [c for c in clips if c["video_id"] in ("b/2", "c/1")]

    def totals(table: list[dict], key: str) -> dict[str, float]:
        out: dict[str, float] = {}
        for c in table:
            out[c[key]] = out.get(c[key], 0.0) + c["weight"]
        return out

    # balance=source: each source's clips sum to 1, whatever its clip count (a: 4, b: 2, c: 2)
    assert totals(clips, "source") == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})
    # balance=region: each region sums to 1 ("eye" holds 4 clips from two sources, "brain" 4 from one)
    by_region = build_clip_table(videos, 8, 2, 1.0, balance="region").to_pylist()
    assert totals(by_region, "region") == pytest.approx({"brain": 1.0, "eye": 1.0})
    assert totals(by_region, "source")["b"] == pytest.approx(totals(by_region, "source")["c"])
    # balance=none: every clip weighs the same
    flat = build_clip_table(videos, 8, 2, 1.0, balance="none").to_pylist()
    assert len(flat) == len(clips) and {c["weight"] for c in flat} == {1.0}


def test_the_clip_table_built_and_written_in_row_groups_is_the_whole_table(tmp_path):
    """A large index is built and written a row group at a time (never whole in memory): batches of
    any size give the rows of one batch, video and motion runs cut between batches included; one
    batch writes the bytes of a whole-table write, and the per-group counts match the rows."""
    import pyarrow as pa

    from unisurg.curation.index import build_clip_table, clip_batches, write_clips
    from unisurg.io import write_table

    videos = _clip_videos()
    motion = {"a/1": (1.0, 3.0, 5.0, 7.0), "c/2": (2.0, 4.0)}
    whole = build_clip_table(videos, 8, 2, 1.0, motion)
    batches = list(clip_batches(videos, 8, 2, 1.0, motion, rows=3))  # a/1's 4 clips span two batches
    assert [b.num_rows for b in batches] == [3, 3, 2]
    rows = lambda t: [{k: None if v != v else v for k, v in r.items()} for r in t.to_pylist()]  # noqa: E731 (NaN: None)
    assert rows(pa.Table.from_batches(batches)) == rows(whole)
    counts = write_clips(tmp_path / "parts.parquet", batches)
    assert pq.ParquetFile(tmp_path / "parts.parquet").num_row_groups == 3
    assert rows(pq.read_table(tmp_path / "parts.parquet")) == rows(whole)
    assert counts == {"source": {"a": 4, "b": 2, "c": 2}, "region": {"brain": 4, "eye": 4}}
    write_clips(tmp_path / "one.parquet", clip_batches(videos, 8, 2, 1.0, motion))
    write_table(tmp_path / "table.parquet", whole)
    assert (tmp_path / "one.parquet").read_bytes() == (tmp_path / "table.parquet").read_bytes()
    empty = list(clip_batches(videos.slice(0, 0), 8, 2, 1.0))
    assert len(empty) == 1 and empty[0].num_rows == 0 and empty[0].schema.names == whole.schema.names


def test_extensions_match_in_any_case_and_an_empty_glob_names_its_source(corpus, tmp_path):
    from unisurg.curation.index import extension_insensitive, list_files

    archive = tmp_path / "archive"
    (archive / "case").mkdir(parents=True)
    videos = sorted((corpus / "pretrain" / "hospital_a_lapchole").rglob("*.mp4"))
    shutil.copy(videos[0], archive / "case" / "CASE010.MP4")  # as hospital exports name them
    (archive / "case" / "notes.txt").write_text("not a video\n")
    assert extension_insensitive("**/*.mp4") == "**/*.[mM][pP]4"
    assert extension_insensitive("videos/*.mp4") == "videos/*.[mM][pP]4"
    assert extension_insensitive("**/*") == "**/*" and extension_insensitive("*.[ma][pv]4") == "*.[ma][pv]4"
    src = Source(name="archive", root=str(archive), region="gallbladder", procedure="chole", license="x")
    assert [p.name for p in list_files(src)] == ["CASE010.MP4"]
    metrics = curate(
        [src], tmp_path / "out", clip_frames=8, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1
    )
    assert metrics["videos_kept"] == 1 and metrics["clips"] > 0
    # a glob that matches nothing: the source, its glob and root named, before any inspection
    empty = Source(name="old_pacs", root=str(archive), glob="**/*.avi", region="x", procedure="x", license="x")
    with pytest.raises(
        FileNotFoundError, match=r"source old_pacs: glob '\*\*/\*\.avi' matched no files under .*archive"
    ):
        curate(
            [src, empty], tmp_path / "out2", clip_frames=8, frame_step=2, clip_stride_s=1.0, min_seconds=1.0, workers=1
        )
    assert not (tmp_path / "out2" / "videos.parquet").exists()
