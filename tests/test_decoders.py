"""The `decoder` setting: decord, PyAV and torchcodec give the same frames through one interface, count
what they hand out, and a decoder that cannot load here says why (`make` installs FFmpeg's libraries)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from unisurg.config import parse_params
from unisurg.media.decoders import PyAVReader, reader_for
from unisurg.media.video import VideoError, VideoWriter


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("dec") / "v.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, 25.0, 64, 48) as w:
        for k in range(60):
            img = np.clip(rng.normal(120, 30, (48, 64, 3)) + 2 * k, 0, 255).astype(np.uint8)
            w.write(img)
    return path


COMPARE = """
import json, sys
import numpy as np
from unisurg.media.decoders import torchcodec_error
from unisurg.media.video import VideoReader, open_video

video, idx = sys.argv[1], np.array([0, 7, 7, 31, 59])
decord = open_video(video)
ref = decord.get_frames(idx)
out = {"decord": {"type": type(decord).__name__, "count": decord.frames_decoded}}
names = ["pyav"] + (["torchcodec"] if torchcodec_error() is None else [])
for name in names:
    r = open_video(video, decoder=name)
    got = r.get_frames(idx)
    out[name] = {"len": len(r), "fps": r.fps, "shape": list(got.shape), "dtype": str(got.dtype),
                 "diff": float(np.abs(got.astype(int) - ref.astype(int)).mean()), "count": r.frames_decoded}
out["auto"] = type(open_video(video, decoder="auto")).__name__
try:
    open_video(video, decoder="torchcodec")
    out["torchcodec_error"] = None
except RuntimeError as err:
    out["torchcodec_error"] = str(err)
print(json.dumps(out))
"""


def test_every_decoder_gives_the_same_frames_and_counts_them(video):
    # in a process of its own: FFmpeg's threads in this one would make later fork()s unsafe
    done = subprocess.run([sys.executable, "-c", COMPARE, str(video)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["decord"] == {"type": "VideoReader", "count": 5}
    if out["torchcodec_error"] is None:
        assert out["auto"] == "TorchCodecReader" and "torchcodec" in out
    else:  # without FFmpeg's shared libraries torchcodec is an error naming the reason, and auto is decord
        assert "torchcodec cannot load here" in out["torchcodec_error"] and out["auto"] == "VideoReader"
    for name in ("pyav", "torchcodec"):
        if name not in out:
            continue
        r = out[name]
        assert (r["len"], r["fps"], r["shape"], r["dtype"]) == (60, 25.0, [5, 48, 64, 3], "uint8"), name
        # the same frames: YUV -> RGB conversions differ by at most a few levels, never by a frame
        assert r["diff"] < 2.0 and r["count"] == 5, name


def test_torchcodec_loads_in_the_projects_environment():
    """`make test` / `make bench` install Debian's FFmpeg libraries and the pinned torchcodec wheel."""
    code = "from unisurg.media.decoders import torchcodec_error; print(torchcodec_error())"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "None", f"torchcodec does not load: {done.stdout.strip()} (run make ffmpeg)"


def test_pyav_decodes_forward_and_stops_where_the_data_does(video, tmp_path):
    r = PyAVReader(video)
    got, why = r.until_error([3, 10, 20])
    assert sorted(got) == [3, 10, 20] and why is None
    got, why = r.until_error([30, 40])  # forward from where it stopped, no restart
    assert sorted(got) == [30, 40] and why is None
    with pytest.raises(VideoError, match="missing.mp4"):
        PyAVReader(tmp_path / "missing.mp4")


def test_the_decoder_is_a_checked_setting():
    assert parse_params({"evaluate": {"decoder": "torchcodec"}}).evaluate.decoder == "torchcodec"
    with pytest.raises(ValueError, match="evaluate.decoder"):
        parse_params({"evaluate": {"decoder": "ffmpeg"}})
    with pytest.raises(ValueError, match="decoder 'ffmpeg'"):
        reader_for("x.mp4", "ffmpeg")


STORES = """
import json, sys
from pathlib import Path
import numpy as np
from unisurg.benchmarks import get_benchmark
from unisurg.evaluation.media import prepare_media
from unisurg.evaluation.protocols import Sampling
from unisurg.evaluation.samples import make_samples

bench = get_benchmark("cholec80")
recs = bench.load(Path(sys.argv[1]))
samples = make_samples(bench, recs)
s = Sampling(frames=4, fps=5.0, size=32)
out = {}
for decoder, workers in (("decord", 0), ("torchcodec", 1)):  # torchcodec: built in a spawned worker
    cache = Path(sys.argv[2]) / decoder
    m = prepare_media(bench, recs, samples, s, 0, cache, workers=workers, decoder=decoder)
    out[decoder] = np.concatenate([m.stores[r].read(m.stores[r].frames) for r in sorted(m.stores)])
diff = float(np.abs(out["decord"].astype(int) - out["torchcodec"]).mean())
print(json.dumps({"rows": len(out["decord"]), "diff": diff}))
"""


def test_frame_stores_build_with_torchcodec_in_spawned_workers(bench_root, tmp_path):
    done = subprocess.run(
        [sys.executable, "-c", STORES, str(bench_root("cholec80")), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["rows"] > 0 and out["diff"] < 2.0  # the same frames as decord's, within YUV->RGB rounding
