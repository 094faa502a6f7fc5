"""A folder of images read as one video: the layout of datasets distributed as extracted frames.

CholecT50 (``videos/VID01/000000.png`` at 1 fps) and the 1-fps frame exports most surgical-video
repositories publish are folders of numbered images. :class:`FrameFolderReader` gives them the
:class:`~unisurg.media.video.VideoReader` interface (length, rate, batched ``get_frames``), so
curation, clip loading and feature extraction read them with the code that reads video files.
Images carry no frame rate: whoever knows it (a ``kind: frames`` source entry, a benchmark
loader) passes it; index-based reads (the clip loader) do not need it.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .base import VideoError, VideoMeta

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def natural_key(name: str) -> tuple:
    """Sort key ordering ``frame_2`` before ``frame_10`` (exports are not always zero-padded)."""
    return tuple(int(t) if t.isdigit() else t for t in re.split(r"(\d+)", name))


def list_frames(folder: str | os.PathLike[str]) -> list[Path]:
    """The image files directly inside ``folder``, in natural name order (extension in any case)."""
    folder = Path(folder)
    try:
        entries = list(folder.iterdir())
    except OSError as err:
        raise VideoError(f"{folder}: cannot list the frame folder ({err.strerror or err})") from None
    frames = [p for p in entries if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(frames, key=lambda p: natural_key(p.name))


def is_frame_folder(path: str | os.PathLike[str]) -> bool:
    return Path(path).is_dir()


class FrameFolderReader:
    """Random-access reader over a folder of images, one image per frame at ``fps``."""

    def __init__(self, folder: str | os.PathLike[str], fps: float = 1.0) -> None:
        self.path = Path(folder)
        self.frames = list_frames(self.path)
        if not self.frames:
            raise VideoError(f"{self.path}: no images ({', '.join(sorted(IMAGE_EXTENSIONS))}) in the frame folder")
        self._fps = float(fps)
        self._hw: tuple[int, int] | None = None
        self.frames_decoded = 0

    @property
    def meta(self) -> VideoMeta:
        if self._hw is None:
            self._hw = self.get_frames([0]).shape[1:3]
        return VideoMeta(num_frames=len(self.frames), fps=self._fps, width=int(self._hw[1]), height=int(self._hw[0]))

    @property
    def fps(self) -> float:
        return self._fps

    def __len__(self) -> int:
        return len(self.frames)

    def read(self, i: int) -> np.ndarray:
        """Image ``i`` -> (H, W, 3) uint8 RGB; an unreadable or differently sized image is a VideoError."""
        import cv2

        p = self.frames[i]
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:
            raise VideoError(f"{p}: not a readable image")
        if self._hw is not None and img.shape[:2] != self._hw:
            raise VideoError(f"{p}: {img.shape[1]}x{img.shape[0]} differs from the folder's first frame")
        self._hw = self._hw or img.shape[:2]
        return img[..., ::-1]

    def get_frames(self, indices: np.ndarray | list[int], strict: bool = False) -> np.ndarray:
        """Images at ``indices`` -> (T, H, W, 3) uint8 RGB (indices clamped to the folder, like videos;
        an unreadable image is a VideoError whether ``strict`` or not)."""
        idx = np.clip(np.asarray(indices, dtype=np.int64), 0, len(self.frames) - 1)
        cache: dict[int, np.ndarray] = {}
        for i in idx.tolist():
            if i not in cache:
                cache[i] = self.read(i)
        self.frames_decoded += len(cache)
        return np.stack([cache[i] for i in idx.tolist()])

    def decode_last(self) -> np.ndarray:
        return self.get_frames([len(self.frames) - 1])

    def release(self) -> None:
        """Nothing to reset: each read opens its own image."""
