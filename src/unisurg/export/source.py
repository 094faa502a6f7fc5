"""What an export reads: the encoder an encoder spec names, with its predictor and online encoder when
the file holds them, and where it came from (git commit, the ``dvc.lock`` stage that produced it)."""

from __future__ import annotations

import hashlib
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import nn

from ..errors import UsageError
from ..io import sha256_file
from ..models import Predictor, VisionTransformer, create_model, list_models
from ..models.checkpoint import FORMAT, load_checkpoint, state_digest, strip_prefixes


@dataclass
class Exportable:
    """An encoder to export."""

    spec: str
    arch: str  # the registered name whose architecture it has ("" when none has it)
    encoder: VisionTransformer  # what is evaluated: V-JEPA's EMA target encoder where there are two
    predictor: Predictor | None = None
    context: dict[str, torch.Tensor] | None = None  # the online (context) encoder, when the file has it apart
    path: Path | None = None  # the file or folder read
    file_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)  # what the file says about itself (steps, objective, ...)

    @property
    def weights_sha256(self) -> str:
        return state_digest(self.encoder.state_dict())


def registered_arch(config: dict[str, Any]) -> str:
    """The registered encoder with these constructor arguments ("" when none), built on the meta device
    (no memory, whatever the size)."""
    for name in list_models():
        with torch.device("meta"):
            if create_model(name).config == config:
                return name
    return ""


def not_exportable(model: nn.Module, spec: str) -> UsageError:
    what = type(model).__name__
    if hasattr(model, "model") and hasattr(model, "tubelet_size"):
        what = f"a timm image backbone applied frame by frame ({type(model.model).__name__})"
    return UsageError(
        f"{spec}: {what} is not a V-JEPA video ViT (tubelet patch embedding, 3D-RoPE blocks, final norm): the "
        "transformers, safetensors and vjepa layouts hold unisurg's VisionTransformer only; save a timm model "
        "with timm itself"
    )


def resolve(spec: str, seed: int = 0) -> Exportable:
    """The :class:`Exportable` an encoder spec names (every form ``evaluate.models`` takes)."""
    kind, _, rest = spec.partition(":")
    if kind == "hf" and rest:
        from ..models.hf import load_hf

        hf = load_hf(rest)
        arch = (hf.config.get("unisurg") or {}).get("arch") or registered_arch(hf.encoder.config)
        return Exportable(spec, arch, hf.encoder, hf.predictor, None, Path(rest), hf.digest)
    if kind == "vjepa" and rest:
        return _vjepa(spec, rest)
    if kind in ("random", "timm"):
        from ..evaluation.encoders import load_encoder_spec

        model, _ = load_encoder_spec(spec, seed)
        if not isinstance(model, VisionTransformer):
            raise not_exportable(model, spec)
        return Exportable(spec, rest, model, extra={"weights": f"random, seed {seed}"})
    path = Path(spec)
    if not path.is_file():
        raise FileNotFoundError(f"encoder {spec!r}: no file {path}")
    if path.suffix == ".safetensors":
        from ..models.checkpoint import load_safetensors, read_safetensors_meta

        model = load_safetensors(path)
        return Exportable(
            spec, read_safetensors_meta(path).get("arch", ""), model, path=path, file_sha256=sha256_file(path)
        )
    ck = load_checkpoint(path)
    if ck.get("format") != FORMAT:
        raise UsageError(f"{spec}: not a unisurg checkpoint; a released V-JEPA 2 file is vjepa:<arch>:{spec}")
    model = VisionTransformer(**ck["config"])
    # a pretraining checkpoint holds both encoders: the EMA target is the one V-JEPA evaluates and exports
    target = ck.get("target_encoder") or ck["encoder"]
    model.load_state_dict(target)
    context = ck["encoder"] if "target_encoder" in ck else None
    predictor = None
    if ck.get("predictor") is not None and ck.get("predictor_config"):
        predictor = Predictor(**ck["predictor_config"])
        predictor.load_state_dict(ck["predictor"])
    extra = {k: v for k, v in (ck.get("meta") or {}).items() if isinstance(v, (str, int, float, bool))}
    if "step" in ck:
        extra["steps"] = int(ck["step"])
    extra["kind"] = ck.get("kind", "encoder")
    return Exportable(
        spec, ck.get("arch") or registered_arch(model.config), model, predictor, context, path, sha256_file(path), extra
    )


def _vjepa(spec: str, rest: str) -> Exportable:
    """``vjepa:<arch>:<path>[:<key>]``: the evaluated key (default ``target_encoder``) and the online
    ``encoder``; the predictor stays behind (a V-JEPA file does not record its heads)."""
    parts = rest.split(":")
    if len(parts) not in (2, 3) or parts[0] not in list_models():
        raise UsageError(f"encoder spec {spec!r}: expected vjepa:<arch>:<path>[:<key>]")
    arch, path = parts[0], Path(parts[1])
    if not path.is_file():
        raise FileNotFoundError(f"encoder {spec!r}: no file {path}")
    ck = load_checkpoint(path)
    key = parts[2] if len(parts) == 3 else ("target_encoder" if "target_encoder" in ck else "encoder")
    if key not in ck:
        raise UsageError(f"{path}: no key {key!r} in the checkpoint (it has {', '.join(sorted(map(str, ck))[:8])})")
    model = create_model(arch)
    model.load_state_dict(strip_prefixes(ck[key]))
    context = strip_prefixes(ck["encoder"]) if key != "encoder" and "encoder" in ck else None
    return Exportable(spec, arch, model, None, context, path, sha256_file(path), {"key": key})


# --------------------------------------------------------------------------- provenance


def _git(root: Path, *args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


LOCKS = ("dvc.lock", "ablation/dvc.lock")  # the main pipeline's, and the ablation / seeds / continued grid's


def _stages(root: Path) -> list[tuple[str, dict]]:
    """Every locked stage, its paths made relative to ``root`` (ablation/dvc.lock's are relative to ablation/)."""
    out = []
    for lock in LOCKS:
        path = root / lock
        if not path.is_file():
            continue
        base = Path(lock).parent
        for name, stage in ((yaml.safe_load(path.read_text()) or {}).get("stages") or {}).items():
            fix = [dict(e, path=(base / e["path"]).as_posix()) for e in stage.get("outs", [])]
            deps = [(base / d["path"]).as_posix() for d in stage.get("deps", [])]
            out.append((f"{lock}:{name}" if str(base) != "." else name, {**stage, "outs": fix, "deps": deps}))
    return out


def provenance(src: Exportable, root: Path) -> dict[str, Any]:
    """Where the weights came from: the git commit of ``root``; the locked DVC stage whose output is the
    file read (its md5 there, whether the file still has it, its deps and params) and every path
    upstream of it (deps of deps)."""
    out: dict[str, Any] = {"spec": src.spec, "git_commit": _git(root, "rev-parse", "HEAD") or "unknown"}
    if src.file_sha256:
        out["file_sha256"] = src.file_sha256
    if src.path is None:
        return out
    try:
        rel = src.path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return out  # a file outside the project: no stage of ours produced it
    stages = _stages(root)
    producer = {o["path"]: (name, stage, o) for name, stage in stages for o in stage["outs"]}
    if rel not in producer:
        return out
    name, stage, o = producer[rel]
    md5 = hashlib.md5(src.path.read_bytes()).hexdigest() if src.path.is_file() else None
    upstream, todo = set(), list(stage["deps"])
    while todo:  # deps of deps: a path produced by another stage brings that stage's deps
        d = todo.pop()
        if d not in upstream:
            upstream.add(d)
            todo += producer[d][1]["deps"] if d in producer else []
    out["dvc"] = {
        "stage": name,
        "path": rel,
        "md5": o.get("md5"),
        "matches_file": md5 == o.get("md5"),
        "deps": stage["deps"],
        "params": stage.get("params", {}),
        "upstream": sorted(upstream),
    }
    return out
