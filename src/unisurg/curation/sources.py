"""The source registry (``sources.yaml``): which video collections feed curation, and their role.

Each entry names a collection (a hospital archive, a public dataset) with its anatomical
region, procedure and licence. ``role`` is ``pretrain`` (unlabelled video) or
``benchmark:<name>`` (a benchmark's videos: only its *training* split may enter pretraining).
``guard_only: true`` registers a benchmark only so that its held-out videos are guarded and its
shared videos reported: none of its videos pretrains.
``kind`` is ``video`` (the glob matches video files) or ``frames`` (the glob matches folders; each
folder of images, sorted by name, is one video at ``fps``: CholecT50 and 1-fps frame exports).
Parsed strictly: unknown keys, missing roots and globs escaping the root are errors.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..config import ConfigError, error_lines, load_yaml, problems_message


class Source(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    root: str
    glob: str | None = None  # default: "**/*.mp4" for videos, "*" (every sub-folder) for frames
    kind: Literal["video", "frames"] = "video"
    fps: float | None = Field(None, gt=0, description="frame rate of a `kind: frames` source's images")
    region: str
    procedure: str
    license: str
    role: str = "pretrain"
    guard_only: bool = False  # a benchmark source whose training split does not pretrain either

    @field_validator("role")
    @classmethod
    def _role(cls, v: str) -> str:
        if v != "pretrain" and not re.fullmatch(r"benchmark:[a-z0-9_]+", v):
            raise ValueError(f"role {v!r}: expected 'pretrain' or 'benchmark:<name>'")
        if v.startswith("benchmark:"):
            from ..benchmarks import get_benchmark  # the registry: a misspelt name is caught here, not mid-run

            try:
                get_benchmark(v.split(":", 1)[1])
            except KeyError as err:
                raise ValueError(f"role {v!r}: {err}") from None
        return v

    @field_validator("glob")
    @classmethod
    def _glob(cls, v: str | None) -> str | None:
        if v is not None and (v.startswith("/") or ".." in Path(v).parts):
            raise ValueError(f"glob {v!r} must stay inside the source root (no absolute paths or '..')")
        return v

    @model_validator(mode="after")
    def _kind(self) -> Source:
        if self.guard_only and self.role == "pretrain":
            raise ValueError("guard_only is for benchmark sources (role: benchmark:<name>)")
        if self.kind == "frames" and self.fps is None:
            raise ValueError("kind: frames needs fps (the images' frame rate, e.g. fps: 1)")
        if self.kind == "video" and self.fps is not None:
            raise ValueError("fps is for kind: frames (a video file states its own frame rate)")
        if self.glob is None:
            object.__setattr__(self, "glob", "**/*.mp4" if self.kind == "video" else "*")
        return self

    @property
    def benchmark(self) -> str | None:
        return self.role.split(":", 1)[1] if self.role.startswith("benchmark:") else None


class Registry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: list[Source]


def registry_path(given: str | None, configured: str) -> str:
    """The registry a curation run reads: the one given on the command line, else ``curate.sources``
    of the parameters, which must then exist (the error says how to name one)."""
    if given is None and not Path(configured).is_file():
        raise ConfigError(f"no source registry {configured} (curate.sources): pass --sources FILE (README 'Curation')")
    return given or configured


def load_sources(path: str | Path, check_roots: bool = True) -> list[Source]:
    """Parse ``sources.yaml``; roots are relative to the file's folder. Errors name the entry and key."""
    path = Path(path)
    data = load_yaml(path)
    try:
        reg = Registry.model_validate(data)
    except ValidationError as err:

        def where(loc: list) -> str:  # sources.3.root -> sources[hospital_a].root
            if len(loc) >= 2 and loc[0] == "sources" and isinstance(loc[1], int):
                entry = data["sources"][loc[1]]
                name = entry.get("name", f"#{loc[1]}") if isinstance(entry, dict) else f"#{loc[1]}"
                loc = [f"sources[{name}]"] + loc[2:]
            return ".".join(str(x) for x in loc)

        raise ConfigError(problems_message(f"invalid source registry {path}", error_lines(err, where))) from None
    names = [s.name for s in reg.sources]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{path}: duplicate source names {dupes}")
    out = []
    for s in reg.sources:
        root = (path.parent / s.root).resolve() if not Path(s.root).is_absolute() else Path(s.root)
        if check_roots and not root.is_dir():
            raise ConfigError(f"{path}: source {s.name!r}: root {s.root!r} is not a directory")
        out.append(s.model_copy(update={"root": str(root)}))
    return out
