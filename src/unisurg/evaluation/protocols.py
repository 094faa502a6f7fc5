"""Named evaluation protocols: every number in a result file says which one produced it.

A protocol fixes everything that changes a score besides the encoder and the data: how clips
are sampled around a labelled instant (:class:`Sampling`), the probe grid and how it is trained
(:class:`ProbeGrid`), how the head is chosen, the bootstrap, and which weights a V-JEPA
checkpoint is read from. ``params.yaml`` names one (``evaluate.protocol``); fields it overrides
are recorded, and the result's protocol name says so (``mini+probe.lrs``).

``surgmotion``
    The SurgMotion authors' settings (``../shared/reference/protocol.md``, read from their
    configs and ``eval.py``): 64 frames at 1 fps, 256 px; vjepa2's AttentiveClassifier (depth 4,
    16 heads); 20 heads (5 lr x 4 wd), cosine to 0, batch 4, 1 epoch (SurgicalActions160: 40);
    class-weighted cross-entropy; checkpoint key ``encoder``; 1,000 bootstrap resamples, seed 42.
    Heads are chosen on the held-out validation split unless ``select_on: test`` is set — what the
    authors' configs do (their ``dataset_val`` is the test CSV), only for comparing with their table.
``mini``
    The built-in corpus on 2 CPU cores: the same code paths at a size that fits (README, "Protocols").
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UsageError

SelectOn = Literal["val", "test"]


@dataclass(frozen=True)
class Sampling:
    """Probe samples: a clip of ``frames`` frames at ``fps`` and ``size`` px ends at each labelled
    instant; ``label_fps`` labelled instants per second of video."""

    frames: int
    fps: float
    size: int
    label_fps: float = 1.0

    def as_dict(self) -> dict:
        return {"frames": self.frames, "fps": self.fps, "size": self.size, "label_fps": self.label_fps}


@dataclass(frozen=True)
class ProbeGrid:
    """The grid of heads (lrs x weight_decays x seeds) trained as one bank, and how it is trained.

    ``min_steps``: whole epochs are repeated until at least this many updates (tiny training
    splits); ``seeds``: grids whose chosen heads' outputs are averaged (1 = V-JEPA 2);
    ``class_weighted``: cross-entropy weighted by scikit-learn's "balanced" class weights,
    normalised to a smallest weight of 1 (phase and clip-classification tasks)."""

    lrs: tuple[float, ...]
    weight_decays: tuple[float, ...]
    epochs: int
    batch_size: int
    depth: int
    num_heads: int
    min_steps: int = 0
    seeds: int = 1
    mlp_ratio: float = 4.0
    class_weighted: bool = False
    epochs_by_benchmark: tuple[tuple[str, int], ...] = ()  # (benchmark name, epochs) exceptions

    def epochs_for(self, benchmark: str) -> int:
        return dict(self.epochs_by_benchmark).get(benchmark, self.epochs)

    def as_dict(self) -> dict:
        """The grid as recorded in every result, so that results trained otherwise are told apart.
        ``seed_batches``: how the seeds' heads are fed (``shared``: one batch order, init differs)."""
        d = dataclasses.asdict(self)
        d.update(lrs=list(self.lrs), weight_decays=list(self.weight_decays), seed_batches="shared")
        d["epochs_by_benchmark"] = dict(self.epochs_by_benchmark)
        return d


@dataclass(frozen=True)
class Protocol:
    """A named evaluation protocol (module docstring)."""

    name: str
    sampling: Sampling
    probe: ProbeGrid
    bootstrap: int = 1000  # resamples of the test units for every CI
    bootstrap_seed: int | None = None  # None: the pipeline's base seed
    select_on: SelectOn = "val"
    checkpoint_key: str = "target_encoder"  # which weights of a vjepa: checkpoint are the encoder
    overridden: tuple[str, ...] = field(default=())  # fields set in params.yaml over the preset

    @property
    def label(self) -> str:
        """The name results and reports print: the preset, ``+`` every overridden field, and a loud
        mark when heads are chosen on the test split."""
        name = "+".join((self.name, *self.overridden))
        return f"{name} [heads chosen on TEST]" if self.select_on == "test" else name

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "label": self.label,
            "overridden": list(self.overridden),
            "sampling": self.sampling.as_dict(),
            "probe": self.probe.as_dict(),
            "bootstrap": self.bootstrap,
            "bootstrap_seed": self.bootstrap_seed,
            "select_on": self.select_on,
            "checkpoint_key": self.checkpoint_key,
        }


SURGMOTION = Protocol(
    name="surgmotion",
    sampling=Sampling(frames=64, fps=1.0, size=256, label_fps=1.0),
    probe=ProbeGrid(
        lrs=(5e-3, 3e-3, 1e-3, 3e-4, 1e-4),
        weight_decays=(0.01, 0.1, 0.4, 0.8),
        epochs=1,
        batch_size=4,
        depth=4,
        num_heads=16,
        mlp_ratio=4.0,
        class_weighted=True,
        epochs_by_benchmark=(("surgicalactions160", 40),),
    ),
    bootstrap=1000,
    bootstrap_seed=42,
    checkpoint_key="encoder",
)

# What differs from SURGMOTION, and why, is the README's "Protocols" table.
MINI = Protocol(
    name="mini",
    sampling=Sampling(frames=16, fps=8.0, size=64, label_fps=1.0),
    probe=ProbeGrid(
        lrs=(0.01, 0.001),
        weight_decays=(0.01,),
        epochs=20,
        batch_size=16,
        depth=1,
        num_heads=4,
        min_steps=300,
        seeds=3,
        mlp_ratio=4.0,
        class_weighted=True,
    ),
    bootstrap=1000,
)

PROTOCOLS: dict[str, Protocol] = {p.name: p for p in (SURGMOTION, MINI)}


def resolve(
    name: str,
    sampling: dict | None = None,
    probe: dict | None = None,
    bootstrap: int | None = None,
    select_on: SelectOn = "val",
) -> Protocol:
    """The preset ``name`` with the fields ``params.yaml`` overrides (each dict holds only the
    fields set there); every overridden field is named in the protocol's label."""
    try:
        base = PROTOCOLS[name]
    except KeyError:
        raise UsageError(f"unknown evaluation protocol {name!r}; known: {', '.join(PROTOCOLS)}") from None
    sampling, probe = dict(sampling or {}), dict(probe or {})
    changed = [f"clip.{k}" for k, v in sampling.items() if getattr(base.sampling, k) != v]
    changed += [f"probe.{k}" for k, v in probe.items() if getattr(base.probe, k) != _tuple(v)]
    if bootstrap is not None and bootstrap != base.bootstrap:
        changed.append("bootstrap")
    probe = {k: _tuple(v) for k, v in probe.items()}
    return dataclasses.replace(
        base,
        sampling=dataclasses.replace(base.sampling, **sampling),
        probe=dataclasses.replace(base.probe, **probe),
        bootstrap=base.bootstrap if bootstrap is None else bootstrap,
        select_on=select_on,
        overridden=tuple(changed),
    )


def from_params(evaluate) -> Protocol:
    """The protocol ``params.yaml``'s ``evaluate`` section (a :class:`unisurg.config.EvaluateParams`) names."""
    clip, probe = evaluate.clip.model_dump(exclude_none=True), evaluate.probe.model_dump(exclude_none=True)
    return resolve(evaluate.protocol, clip, probe, evaluate.bootstrap, evaluate.select_on)


def _tuple(v):
    """YAML lists -> tuples (the dataclasses are frozen and hashable); dicts -> sorted pairs."""
    if isinstance(v, dict):
        return tuple(sorted(v.items()))
    return tuple(v) if isinstance(v, list) else v
