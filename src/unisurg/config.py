"""Typed, strict configuration: ``params.yaml`` is parsed once, here, at the stage entry point.

Every section is a frozen pydantic model with ``extra="forbid"``, so a misspelled key
(``mpl_ratio``) is an error naming the key instead of a silently ignored option. Code
below the entry point receives explicit arguments, never the raw dict.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import UsageError

log = logging.getLogger(__name__)


class ConfigError(UsageError):
    """A configuration file is malformed; the message names the file and the offending key."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# --------------------------------------------------------------------------- base
class BaseParams(Strict):
    seed: int = 0


# --------------------------------------------------------------------------- synth
class SynthParams(Strict):
    """Size of the built-in synthetic corpus (see ``unisurg.synth``)."""

    size: int = Field(128, ge=32, le=512, description="frame side in pixels (square frames)")
    pretrain_videos_per_source: int = Field(3, ge=1)
    pretrain_seconds: float = Field(20.0, gt=0)
    # Videos per split of each video benchmark mini version (train, val, test).
    videos_per_split: tuple[int, int, int] = (3, 1, 2)
    benchmark_seconds: float = Field(28.0, gt=0, description="length of one labelled benchmark video")
    images_per_split: tuple[int, int, int] = (24, 8, 12)
    benchmarks: list[str] | None = Field(None, description="subset of benchmark names; null = all 17")


# --------------------------------------------------------------------------- curate
class CurateParams(Strict):
    sources: str = "sources.yaml"
    clip_frames: int = Field(16, ge=2)
    frame_step: int = Field(2, ge=1, description="native frames between two sampled frames")
    clip_stride_s: float = Field(1.0, gt=0, description="seconds between consecutive clip starts")
    workers: int = Field(2, ge=1)
    min_seconds: float = Field(1.0, ge=0, description="shorter videos are quarantined")
    motion_step: int = Field(2, ge=0, description="frames between the pair measured for motion scores; 0 = off")
    balance: Literal["source", "region", "none"] = "source"


# --------------------------------------------------------------------------- devices
# `device` of every stage: auto | cpu | cuda | cuda:N (unisurg.runtime.resolve_device)
DEVICE = Field("auto", pattern=r"^(auto|cpu|cuda(:\d+)?)$", description="auto = the GPU when torch sees one")
BF16 = Field(True, description="bf16 autocast on CUDA (V-JEPA 2's mixed precision); the CPU always runs float32")


# --------------------------------------------------------------------------- pretrain
class MaskGenParams(Strict):
    """One multiblock 3D mask generator (V-JEPA 2: short-range 8×0.15, long-range 2×0.7)."""

    num_blocks: int = Field(ge=1)
    spatial_scale: tuple[float, float]
    temporal_scale: tuple[float, float] = (1.0, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.5)

    @model_validator(mode="after")
    def _leaves_context(self):
        if self.spatial_scale[1] >= 1.0 and self.temporal_scale[1] >= 1.0:
            raise ValueError(
                f"spatial_scale {list(self.spatial_scale)} with temporal_scale {list(self.temporal_scale)}: one block "
                "could cover the whole clip and leave no context; keep one of the two maxima below 1"
            )
        return self


class PredictorParams(Strict):
    embed_dim: int = 96
    depth: int = 2
    num_heads: int = 4


class ClipParams(Strict):
    frames: int = Field(16, ge=2)
    size: int = Field(64, ge=16)


class AugmentParams(Strict):
    """V-JEPA's pretraining augmentation (vjepa2's video transforms); evaluation clips are never augmented."""

    random_resized_crop: bool = True
    scale: tuple[float, float] = (0.3, 1.0)
    aspect_ratio: tuple[float, float] = (0.75, 1.35)
    horizontal_flip: bool = True

    @model_validator(mode="after")
    def _ranges(self):
        lo, hi = self.scale
        if not 0 < lo <= hi <= 1:
            raise ValueError(f"scale {list(self.scale)}: need 0 < min <= max <= 1 (area fraction of the frame)")
        if not 0 < self.aspect_ratio[0] <= self.aspect_ratio[1]:
            raise ValueError(f"aspect_ratio {list(self.aspect_ratio)}: need 0 < min <= max")
        return self


class OptimParams(Strict):
    lr: float = Field(5e-4, ge=0, description="peak learning rate (0 freezes the weights: a check, not a run)")
    start_lr: float = Field(1e-4, ge=0)
    final_lr: float = Field(1e-6, ge=0)
    weight_decay: float = Field(0.04, ge=0)
    warmup_steps: int = Field(10, ge=0)
    schedule: Literal["constant", "cosine"] = "cosine"
    clip_grad: float | None = Field(1.0, gt=0)
    betas: tuple[float, float] = (0.9, 0.999)


class MotionParams(Strict):
    """Motion-guided latent prediction (UniSurg addition 1)."""

    enabled: bool = True
    source: Literal["flow", "framediff"] = "flow"
    loss_alpha: float = Field(1.0, ge=0, description="target-token loss weight w = 1 + alpha * motion")
    mask_bias: float = Field(1.0, ge=0, description="mask block placement prob ∝ motion^bias; 0 = uniform")
    cache_mb: float = Field(
        2048, ge=0, description="per loader process: each clip's optical flow is kept up to this size (0 = recompute)"
    )


class AffinityParams(Strict):
    """Spatiotemporal affinity self-distillation (UniSurg addition 2); weight 0 disables."""

    weight: float = Field(0.5, ge=0)
    tau: float = Field(0.1, gt=0)
    max_tokens: int = Field(256, ge=2)


class DiversityParams(Strict):
    """Feature diversity regularisation (UniSurg addition 3); weight 0 disables."""

    weight: float = Field(0.1, ge=0)
    cov_weight: float = Field(0.04, ge=0)
    gamma: float = Field(1.0, gt=0)
    scope: Literal["clip", "batch"] = Field(
        "clip", description="variance/covariance over each clip's tokens, or across the batch's pooled clips"
    )


class DiagnosticsParams(Strict):
    """Learning diagnostics in log.csv (:mod:`unisurg.training.diagnostics`); no benchmark = off."""

    benchmark: str | None = Field(None, description="phase benchmark whose train/val clips the probe reads")
    root: str | None = Field(None, description="its dataset root (the same one evaluate.benchmarks names)")
    every: int = Field(100, ge=1, description="steps between diagnostics (and step 0, and the last step)")
    per_video: int = Field(20, ge=1, description="labelled instants probed per video, evenly spaced")

    @model_validator(mode="after")
    def _root_with_benchmark(self) -> DiagnosticsParams:
        if self.benchmark is not None and self.root is None:
            raise ValueError("pretrain.diagnostics.benchmark needs pretrain.diagnostics.root")
        return self


class PretrainParams(Strict):
    device: str = DEVICE
    bf16: bool = BF16
    init: str = Field(
        "none",
        description="start from: none (random), vjepa:<arch>:<path>[:<key>], hf:<folder> or one of our checkpoints",
    )
    objective: Literal["latent", "pixel"] = "latent"
    motion: MotionParams = MotionParams()
    affinity: AffinityParams = AffinityParams()
    diversity: DiversityParams = DiversityParams()
    export: Literal["target", "context"] = "target"
    parallel: Literal["ddp", "fsdp"] = Field(
        "ddp", description="multi-process strategy under torchrun: replicated (ddp) or sharded weights (fsdp)"
    )
    activation_checkpointing: bool = False
    probe_every: int = Field(100, ge=0, description="steps between region-probe evaluations; 0 = off")
    diagnostics: DiagnosticsParams = DiagnosticsParams()
    arch: str = "vit_micro"
    predictor: PredictorParams = PredictorParams()
    clip: ClipParams = ClipParams()
    augment: AugmentParams = AugmentParams()
    masks: list[MaskGenParams] = Field(
        default_factory=lambda: [
            MaskGenParams(num_blocks=8, spatial_scale=(0.15, 0.15)),
            MaskGenParams(num_blocks=2, spatial_scale=(0.7, 0.7)),
        ]
    )
    steps: int = Field(100, ge=1)
    batch_size: int = Field(8, ge=1)
    optim: OptimParams = OptimParams()
    ema: tuple[float, float] = (0.996, 1.0)
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int = Field(50, ge=1)
    log_every: int = Field(5, ge=1)


# --------------------------------------------------------------------------- distill
# Distillation's own optimiser defaults (a small student takes a higher lr and a shorter warmup).
DISTILL_OPTIM = {"lr": 1e-3, "warmup_steps": 5}


class DistillParams(Strict):
    device: str = DEVICE
    bf16: bool = BF16
    mode: Literal["feature", "self"] = Field(
        "feature",
        description="feature: a small student regresses the teacher's tokens; self: self-distillation for further "
        "pretraining (student = the teacher's architecture from pretrain.init, trained by the pretrain recipe + "
        "self_weight x the pull toward the teacher)",
    )
    self_weight: float = Field(1.0, ge=0, description="mode self: weight of the pull toward the teacher")
    student_arch: str = "vit_nano"
    steps: int = Field(60, ge=1)
    batch_size: int = Field(8, ge=1)
    optim: OptimParams = OptimParams(**DISTILL_OPTIM)
    cosine_weight: float = Field(1.0, ge=0)
    smooth_l1_weight: float = Field(1.0, ge=0)
    num_workers: int = Field(0, ge=0)
    checkpoint_every: int = Field(50, ge=1)
    log_every: int = Field(5, ge=1)

    @field_validator("optim", mode="before")
    @classmethod
    def _distill_optim_defaults(cls, v):
        # a partial `distill.optim` keeps distillation's defaults for what it leaves out, not OptimParams'
        return {**DISTILL_OPTIM, **v} if isinstance(v, dict) else v


# --------------------------------------------------------------------------- evaluate
class ProbeParams(Strict):
    """Overrides of the protocol's probe grid (:class:`unisurg.evaluation.protocols.ProbeGrid`);
    a field left out (or null) keeps the preset's value."""

    lrs: list[float] | None = None
    weight_decays: list[float] | None = None
    epochs: int | None = Field(None, ge=1)
    min_steps: int | None = Field(
        None, ge=0, description="whole epochs are repeated until at least this many updates (tiny datasets)"
    )
    seeds: int | None = Field(
        None, ge=1, description="independent probe grids whose chosen heads' outputs are averaged (1 = V-JEPA 2)"
    )
    batch_size: int | None = Field(None, ge=1)
    depth: int | None = Field(None, ge=1, description="1 = one cross-attention block; >1 adds self-attention blocks")
    num_heads: int | None = Field(None, ge=1)
    mlp_ratio: float | None = Field(None, gt=0)
    class_weighted: bool | None = None


class EvalClipParams(Strict):
    """Overrides of the protocol's clip sampling; a field left out keeps the preset's value."""

    frames: int | None = Field(None, ge=2)
    fps: float | None = Field(None, gt=0, description="clips sampled at this rate, ending at the labelled frame")
    size: int | None = Field(None, ge=16)
    label_fps: float | None = Field(None, gt=0, description="labelled instants probed per second of video")


class DeviceBatch(Strict):
    """Clips per forward pass of the frozen encoders, per device type; one integer sets both."""

    cpu: int = Field(16, ge=1)
    cuda: int = Field(32, ge=1, description="halved automatically while a batch does not fit in GPU memory")

    def on(self, device_type: str) -> int:
        return self.cuda if device_type == "cuda" else self.cpu


class EvaluateParams(Strict):
    device: str = DEVICE
    bf16: bool = BF16
    benchmarks: dict[str, str] = Field(
        default_factory=dict, description="benchmark name -> dataset root (the real download or the mini version)"
    )
    models: dict[str, str] = Field(
        default_factory=lambda: {
            "unisurg": "data/pretrain/encoder.pt",
            "student": "data/distill/student.pt",
        },
        description="model name -> checkpoint path; 'random:<arch>' evaluates an untrained encoder",
    )
    protocol: Literal["mini", "surgmotion"] = Field(
        "mini", description="named evaluation protocol (unisurg.evaluation.protocols); README 'Protocols'"
    )
    select_on: Literal["val", "test"] = Field(
        "val", description="split the heads are chosen on; 'test' only to compare with the paper's table"
    )
    clip: EvalClipParams = EvalClipParams()
    probe: ProbeParams = ProbeParams()
    bootstrap: int | None = Field(None, ge=0, description="resamples for 95% CIs (null: the protocol's)")
    layers: list[int] | None = Field(
        None, description="blocks whose tokens the probes see, concatenated (e.g. [-4, -3, -2, -1]); null: the last"
    )
    batch_size: DeviceBatch = DeviceBatch()
    workers: int = Field(2, ge=0, description="processes decoding frame stores and preparing clips (0: in the stage's)")
    decoder: Literal["decord", "pyav", "torchcodec", "torchcodec-cuda", "auto"] = Field(
        "decord", description="video decoder (unisurg.media.decoders; docs/performance.md compares them)"
    )
    cache_dir: str = "data/cache/evaluate"

    @field_validator("batch_size", mode="before")
    @classmethod
    def _one_batch_size(cls, v):
        return {"cpu": v, "cuda": v} if isinstance(v, int) else v


class ReportParams(Strict):
    title: str = "UniSurg benchmark report"
    baselines: dict[str, str] = Field(
        default_factory=lambda: {"unisurg": "random_init", "student": "random_student"},
        description="model -> the baseline it must beat (evaluate.models names); the report names every loss",
    )
    teacher: str = Field("unisurg", description="evaluate.models name of the distillation teacher")
    student: str = Field("student", description="evaluate.models name of the distilled student")


class OrchestrationParams(Strict):
    """Prefect deployments (flows/serve.py): schedules as cron strings, in ``timezone``."""

    curation_cron: str = "0 2 * * *"  # nightly: index new hospital video
    benchmark_cron: str = "0 4 * * 0"  # weekly: full pipeline and report
    timezone: str = "UTC"


class Params(Strict):
    base: BaseParams = BaseParams()
    synth: SynthParams = SynthParams()
    curate: CurateParams = CurateParams()
    pretrain: PretrainParams = PretrainParams()
    distill: DistillParams = DistillParams()
    evaluate: EvaluateParams = EvaluateParams()
    report: ReportParams = ReportParams()
    orchestration: OrchestrationParams = OrchestrationParams()

    @model_validator(mode="after")
    def _consistent(self) -> Params:
        if (self.evaluate.clip.size or 16) % 16 or self.pretrain.clip.size % 16:
            raise ValueError("clip sizes must be multiples of the patch size 16")
        return self


def error_lines(err: ValidationError, where=lambda loc: ".".join(str(p) for p in loc)) -> list[str]:
    """``key.path: message`` per problem (pydantic's "Value error, " prefix dropped); ``where``
    names a location tuple."""
    return [f"{where(list(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in err.errors()]


def problems_message(head: str, lines: list[str]) -> str:
    """One line for one problem (``head: problem``), else the head and one indented line each."""
    return f"{head}: {lines[0]}" if len(lines) == 1 else f"{head}:\n" + "\n".join(f"  {ln}" for ln in lines)


def parse_params(data: dict, source: str = "<dict>") -> Params:
    """Validate a params mapping; raises ConfigError that names the file and every bad key."""
    try:
        return Params.model_validate(data or {})
    except ValidationError as err:
        raise ConfigError(problems_message(f"invalid parameters in {source}", error_lines(err))) from None


def load_yaml(path: str | Path) -> dict:
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level, got {type(data).__name__}")
    return data


def apply_overrides(data: dict, overrides: list[str] | tuple[str, ...]) -> dict:
    """``["pretrain.motion.enabled=false", "evaluate.models={a: x.pt}"]`` -> a copy of ``data`` with
    those keys set (values parsed as YAML). The result is validated as strictly as the file: a
    misspelled key is still an error naming it."""
    import copy

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected key.path=value")
        *parents, leaf = key.strip().split(".")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {p} is not a section")
        try:
            node[leaf] = yaml.safe_load(value)
        except yaml.YAMLError as err:
            raise ConfigError(f"override {item!r}: value is not valid YAML: {err}") from None
    return out


PARAMS_FILE = "params.yaml"


def load_params(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = ()) -> Params:
    """Parse the pipeline parameters (then ``overrides``, see :func:`apply_overrides`) into typed ones.

    ``path`` None: ``./params.yaml`` when the working directory has one, else the built-in defaults,
    so that commands needing no pipeline parameters run anywhere. Relative paths are relative to
    where they are written: in a parameters file to that file's folder (as in ``sources.yaml``, see
    :func:`rebase_paths`), in a ``--set`` value to the working directory.
    """
    if path is None:
        if not Path(PARAMS_FILE).is_file():
            log.info("no %s in %s: built-in default parameters (--params FILE to use others)", PARAMS_FILE, Path.cwd())
            return parse_params(apply_overrides({}, overrides), source=f"the defaults with {' '.join(overrides)}")
        path = PARAMS_FILE
    data = apply_overrides(rebase_paths(load_yaml(path), Path(path).parent), overrides)
    source = f"{path} with {' '.join(overrides)}" if overrides else str(path)
    return parse_params(data, source=source)


# The keys holding paths (or encoder specs naming files); "*": every entry of the mapping.
PATH_KEYS = ("curate.sources", "evaluate.cache_dir", "evaluate.benchmarks.*")
SPEC_KEYS = ("pretrain.init", "evaluate.models.*")


def rebase_paths(data: dict, base: Path) -> dict:
    """A copy of the raw parameters ``data`` (as written in a file in ``base``) with their relative
    paths taken relative to ``base`` (defaults, not written there, stay as they are).

    Returned relative to the working directory, and unchanged when ``base`` is the working
    directory (the DVC stages' case), so a run's recorded parameters read as written.
    """
    if base.resolve() == Path.cwd().resolve():
        return data
    import copy

    out = copy.deepcopy(data)
    for keys, fix in ((PATH_KEYS, _rebase), (SPEC_KEYS, rebase_spec)):
        for key in keys:
            *parents, leaf = key.split(".")
            node = out
            for k in parents:
                node = node.get(k) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                continue
            names = list(node) if leaf == "*" else [leaf]
            for k in names:
                if isinstance(node.get(k), str):
                    node[k] = fix(node[k], base)
    return out


def _rebase(path: str, base: Path) -> str:
    return path if Path(path).is_absolute() else str(base / path)


def spec_file(spec: str) -> tuple[str, str, str] | None:
    """The file an encoder spec names, as (prefix, path, suffix) with ``spec == prefix + path + suffix``;
    None when it names none (``random:<arch>``, ``timm:<name>``, ``none``)."""
    kind, _, rest = spec.partition(":")
    if spec == "none" or kind == "random":
        return None
    if kind == "vjepa":  # vjepa:<arch>:<path>[:<key>]
        arch, _, tail = rest.partition(":")
        path, sep, key = tail.partition(":")
        return (f"vjepa:{arch}:", path, f"{sep}{key}") if path else None
    if kind == "hf":  # hf:<folder>
        return ("hf:", rest, "") if rest else None
    if kind == "timm":  # timm:<name>[:<path>]
        name, _, path = rest.partition(":")
        return (f"timm:{name}:", path, "") if path else None
    return "", spec, ""


def rebase_spec(spec: str, base: Path) -> str:
    """An encoder spec with its file taken relative to ``base``."""
    parts = spec_file(spec)
    return spec if parts is None else f"{parts[0]}{_rebase(parts[1], base)}{parts[2]}"
