"""Named evaluation protocols: every number in a result file says which one produced it.

A protocol fixes everything that changes a score besides the encoder and the data: how clips
are sampled around a labelled instant (:class:`Sampling`), the probe grid and how it is trained
(:class:`ProbeGrid`), how the head is chosen, the bootstrap, and which weights a V-JEPA
checkpoint is read from. ``params.yaml`` names one (``evaluate.protocol``); fields it overrides
are recorded, and the result's protocol name says so (``mini+probe.lrs``).

``surgmotion``
    The SurgMotion authors' protocol as their code runs it (``docs/protocols.md`` lists every point
    and where it comes from): windows of 64 frames on a 1-fps grid cut by their loader's index rule
    (:mod:`.windows`), frames kept 512 wide and squashed to 512² as their loader does, then resized
    to 292 and centre-cropped to 256; training clips augmented (RandAugment, RandomResizedCrop,
    RandomErasing: :mod:`.augment`) and encoded online every epoch; vjepa2's AttentiveClassifier
    (depth 4, 16 heads); 20 heads (5 lr x 4 wd), cosine to 0 stepped before each update, batch 4,
    1 epoch (SurgicalActions160: 40), fp16 autocast with a gradient scaler on CUDA; class-weighted
    cross-entropy; the benchmarks' splits as the authors' preparation scripts make them
    (:class:`~unisurg.benchmarks.AuthorsRecipe`); checkpoint key ``encoder``; 1,000 bootstrap
    resamples, seed 42. Heads are chosen on a held-out validation split unless ``select_on: test``
    is set — what the authors' configs do (their ``dataset_val`` is the test CSV), only for
    comparing with their table.
``mini``
    The built-in corpus on 2 CPU cores: the same code paths at a size that fits (``docs/protocols.md``):
    no augmentation, so every sample's tokens are extracted once and cached.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UsageError

SelectOn = Literal["val", "test"]
Window = Literal["end", "authors"]
Tokens = Literal["cached", "online"]


@dataclass(frozen=True)
class Sampling:
    """Probe samples and the pixels of their clips.

    A sample is a labelled instant (``label_fps`` per second of video), a clip or an image; its clip
    has ``frames`` frames on a grid of ``fps`` frames per second, cut by the ``window`` rule
    (:mod:`.windows`): ``end``, the clip ends at the labelled frame and repeats frame 0 before the
    video starts; ``authors``, the SurgMotion loader's rule over the sample's list of grid frames.
    Field of view: frames are kept ``source_width`` wide with their aspect ratio and squashed to
    ``source_width``² (the authors' extraction and loader), or squashed directly (None); then resized
    to ``int(size / crop_fraction)`` and centre-cropped to ``size`` (vjepa2's eval transform keeps
    224/256 of each side; 1.0 = no crop).
    """

    frames: int
    fps: float
    size: int
    label_fps: float = 1.0
    window: Window = "end"
    crop_fraction: float = 1.0
    source_width: int | None = None

    @property
    def resize(self) -> int:
        """Side the frames are resized to before the centre crop (vjepa2: ``int(crop * 256 / 224)``)."""
        return int(self.size / self.crop_fraction + 1e-9)

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ClipAugment:
    """The probe-training augmentation of a clip (the authors' ``make_transforms(training=True)``):
    RandAugment ``rand_augment`` with the same ops on every frame, a RandomResizedCrop of the clip
    (area ``scale``, aspect ``ratio``), RandomErasing with probability ``erase`` (the same box in every
    frame, per-pixel normal noise), a horizontal flip with probability 1/2 if ``flip``."""

    rand_augment: str = "rand-m7-n4-mstd0.5-inc1"
    scale: tuple[float, float] = (0.08, 1.0)
    ratio: tuple[float, float] = (0.75, 4 / 3)
    erase: float = 0.25
    flip: bool = False

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "scale": list(self.scale), "ratio": list(self.ratio)}


@dataclass(frozen=True)
class ProbeGrid:
    """The grid of heads (lrs x weight_decays x seeds) trained as one bank, and how it is trained.

    ``min_steps``: whole epochs are repeated until at least this many updates (tiny training
    splits); ``seeds``: grids whose chosen heads' outputs are averaged (1 = V-JEPA 2);
    ``class_weighted``: cross-entropy weighted by scikit-learn's "balanced" class weights,
    normalised to a smallest weight of 1 (phase and clip-classification tasks); ``precision``: the
    autocast of the bank on CUDA (``fp16`` with a gradient scaler per head, as the authors' eval.py
    runs when its ``use_bfloat16`` is set, or ``bf16``; the CPU trains in float32); ``lr_step_first``:
    the cosine schedule is stepped before each update, so update i (0-based) of T uses the rate at
    (i + 1) / T and the last update uses 0 (the authors' ``WarmupCosineLRSchedule``); otherwise at i / T."""

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
    precision: Literal["bf16", "fp16"] = "bf16"
    lr_step_first: bool = False

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
    """A named evaluation protocol (module docstring).

    ``tokens``: ``cached``, every sample's frozen tokens are extracted once into an on-disk store and
    the heads train on them for every epoch (no augmentation can apply); ``online``, the encoder runs
    on every batch of every epoch, training clips augmented by ``augment`` (non-dense tasks).
    ``recipe``: ``authors``, benchmarks that declare the SurgMotion authors' preparation
    (:class:`~unisurg.benchmarks.AuthorsRecipe`) are split and labelled as their scripts do; ``ours``,
    as the benchmarks' loaders do."""

    name: str
    sampling: Sampling
    probe: ProbeGrid
    bootstrap: int = 1000  # resamples of the test units for every CI
    bootstrap_seed: int | None = None  # None: the pipeline's base seed
    select_on: SelectOn = "val"
    checkpoint_key: str = "target_encoder"  # which weights of a vjepa: checkpoint are the encoder
    tokens: Tokens = "cached"
    augment: ClipAugment | None = None
    recipe: Literal["ours", "authors"] = "ours"
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
            "tokens": self.tokens,
            "augment": None if self.augment is None else self.augment.as_dict(),
            "recipe": self.recipe,
        }


SURGMOTION = Protocol(
    name="surgmotion",
    sampling=Sampling(
        frames=64, fps=1.0, size=256, label_fps=1.0, window="authors", crop_fraction=224 / 256, source_width=512
    ),
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
        precision="fp16",
        lr_step_first=True,
    ),
    bootstrap=1000,
    bootstrap_seed=42,
    checkpoint_key="encoder",
    tokens="online",
    augment=ClipAugment(),
    recipe="authors",
)

# What differs from SURGMOTION, and why, is the table of docs/protocols.md.
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
