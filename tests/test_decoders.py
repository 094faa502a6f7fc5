"""The `decoder` setting: decord, PyAV and torchcodec give the same frames through one interface, count
what they hand out, and a decoder that cannot load here says why (`make` installs FFmpeg's libraries)."""

from __future__ import annotations

import numpy as np
import pytest

from unisurg.config import parse_params
from unisurg.media.decoders import PyAVReader, reader_for, torchcodec_error
from unisurg.media.video import VideoError, VideoReader, VideoWriter, open_video


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    path = tmp_path_factory.mktemp("dec") / "v.mp4"
    rng = np.random.default_rng(0)
    with VideoWriter(path, 25.0, 64, 48) as w:
        for k in range(60):
            img = np.clip(rng.normal(120, 30, (48, 64, 3)) + 2 * k, 0, 255).astype(np.uint8)
            w.write(img)
    return path


def test_every_decoder_gives_the_same_frames_and_counts_them(video):
    idx = np.array([0, 7, 7, 31, 59])
    decord = open_video(video)
    assert isinstance(decord, VideoReader)
    ref = decord.get_frames(idx)
    assert decord.frames_decoded == len(idx)
    readers = {"pyav": open_video(video, decoder="pyav")}
    if torchcodec_error() is None:
        readers["torchcodec"] = open_video(video, decoder="torchcodec")
        assert type(open_video(video, decoder="auto")).__name__ == "TorchCodecReader"
    else:  # without FFmpeg's shared libraries torchcodec is an error naming the reason, and auto is decord
        with pytest.raises(RuntimeError, match="torchcodec cannot load here"):
            open_video(video, decoder="torchcodec")
        assert isinstance(open_video(video, decoder="auto"), VideoReader)
    for name, r in readers.items():
        assert (len(r), r.fps) == (60, 25.0), name
        got = r.get_frames(idx)
        assert got.shape == ref.shape and got.dtype == np.uint8, name
        # the same frames: YUV -> RGB conversions differ by at most a few levels, never by a frame
        assert np.abs(got.astype(int) - ref.astype(int)).mean() < 2.0, name
        assert r.frames_decoded == len(idx), name


def test_torchcodec_loads_in_the_projects_environment():
    """`make test` / `make bench` install Debian's FFmpeg libraries and the pinned torchcodec wheel."""
    assert torchcodec_error() is None, f"torchcodec does not load: {torchcodec_error()} (run make ffmpeg)"


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
