"""The decoder interface and the deterministic H.264 writer."""

import hashlib

import numpy as np
import pytest
import torch

from unisurg.media.video import VideoError, VideoWriter, clip_indices, open_video


def _frames(seed: int, n: int = 30, size: int = 64) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 255, (size, size, 3)).astype(np.int16)
    return [np.clip(base + t * 3, 0, 255).astype(np.uint8) for t in range(n)]


def _encode(path, frames, fps=25.0):
    with VideoWriter(path, fps, frames[0].shape[1], frames[0].shape[0]) as w:
        for f in frames:
            w.write(f)
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_writer_is_byte_deterministic_whatever_was_encoded_before(tmp_path):
    a = _frames(1)
    first = _encode(tmp_path / "a.mp4", a)
    _encode(tmp_path / "b.mp4", _frames(2, n=7, size=48))
    assert _encode(tmp_path / "a2.mp4", a) == first


def test_roundtrip_metadata_and_batched_decode(tmp_path):
    _encode(tmp_path / "v.mp4", _frames(0, n=40), fps=24.0)
    vr = open_video(tmp_path / "v.mp4")
    assert (vr.meta.num_frames, vr.meta.fps, vr.meta.width, vr.meta.height) == (40, 24.0, 64, 64)
    out = vr.get_frames([0, 39, 5])
    assert out.shape == (3, 64, 64, 3) and out.dtype == np.uint8
    assert out[1].mean() > out[0].mean()  # frame 39 is brighter than frame 0


def test_odd_widths_fall_back_to_pyav(tmp_path):
    # decord cannot copy frames whose rows need padding (e.g. 48 px wide); PyAV steps in
    _encode(tmp_path / "odd.mp4", _frames(3, n=12, size=48))
    vr = open_video(tmp_path / "odd.mp4")
    frames = vr.get_frames([0, 11])
    assert frames.shape == (2, 48, 48, 3)


@pytest.mark.parametrize("content", [b"", b"x" * 10, b"not a video at all\n" * 200])
def test_unreadable_files_raise_videoerror_naming_the_file(tmp_path, content):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    with pytest.raises(VideoError, match="bad.mp4"):
        open_video(p)


def test_clip_indices_end_at_the_labelled_frame_and_clamp():
    assert clip_indices(10, 4, 2.0).tolist() == [4, 6, 8, 10]
    assert clip_indices(2, 4, 2.0).tolist() == [0, 0, 0, 2]
    assert clip_indices(50, 3, 3.125).tolist() == [44, 47, 50]


def test_to_tensor_is_the_torch_normalisation_bit_for_bit():
    """The per-clip conversion runs in NumPy (no torch thread-pool wake-up per clip) and must give
    exactly the float32 tensor of uint8 -> float, * SCALE, - SHIFT computed in torch."""
    from unisurg.media.clips import _SCALE, _SHIFT, resize_frames, to_tensor

    rng = np.random.default_rng(0)
    for size, shape in [(64, (16, 64, 64, 3)), (32, (4, 48, 80, 3)), (64, (8, 128, 96, 3))]:
        frames = (rng.random(shape) * 255).astype(np.uint8)
        want = torch.from_numpy(resize_frames(frames, size)).permute(3, 0, 1, 2).float().mul_(_SCALE).sub_(_SHIFT)
        got = to_tensor(frames, size)
        assert got.dtype == torch.float32 and got.shape == want.shape and torch.equal(got, want)
