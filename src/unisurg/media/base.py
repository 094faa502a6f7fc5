"""What every reader of the media package shares: the error it raises and the facts it reports."""

from __future__ import annotations

import re
from dataclasses import dataclass


class VideoError(RuntimeError):
    """A video could not be opened or decoded; the message names the file and the reason."""


def decoder_message(err: Exception) -> str:
    """decord's C++ message without its time stamp and source location (stable, readable reasons)."""
    text = str(err).strip().splitlines()[-1] if str(err).strip() else type(err).__name__
    return re.sub(r"\[\d\d:\d\d:\d\d\] \S+:\d+: ", "", text)[:200]


@dataclass(frozen=True)
class VideoMeta:
    num_frames: int
    fps: float
    width: int
    height: int

    @property
    def duration_s(self) -> float:
        return self.num_frames / self.fps if self.fps > 0 else 0.0
