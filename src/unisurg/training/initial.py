"""Continued pretraining: start the encoder, its EMA teacher and the predictor from released weights.

``pretrain.init`` names the starting point in the grammar of ``evaluate.models``:

``none``
    random initialisation from the seed (the default).
``vjepa:<arch>:<path>[:<key>]``
    a V-JEPA 2 / SurgMotion file: ``encoder`` -> the online encoder, ``target_encoder`` -> the EMA
    teacher (a copy of the encoder when the file has none), ``predictor`` -> the predictor when the
    file has one whose names and shapes match ``pretrain.predictor`` (otherwise a fresh predictor,
    said once in the log). With ``:<key>`` both encoders start from that key. ``<arch>`` must be
    ``pretrain.arch``.
``hf:<folder>``
    a local transformers V-JEPA 2 folder (``unisurg export --format transformers``, Meta's published
    weights): its encoder -> encoder and teacher, its predictor when it has one (an export without one
    holds a placeholder, never loaded). Converted by :mod:`unisurg.models.hf`.
``path/to/checkpoint.pt``
    one of ours: an exported ``encoder.pt`` (encoder and teacher from it) or a pretraining
    ``checkpoint.pt`` (encoder, teacher and predictor).

Prefixes ``module.`` / ``backbone.`` are stripped. Any mismatch between the file's encoder and
``pretrain.arch`` is an error naming the keys and shapes: never a half-loaded encoder. The
optimizer always starts fresh (with its warmup); the run's checkpoints record the spec and the
file's sha256.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..errors import UsageError
from ..io import sha256_file
from ..models.checkpoint import FORMAT, load_checkpoint, strip_prefixes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InitialWeights:
    spec: str
    sha256: str
    encoder: dict[str, torch.Tensor]
    target: dict[str, torch.Tensor]
    predictor: dict[str, torch.Tensor] | None  # None: the file has none

    @property
    def record(self) -> dict[str, str]:
        """What checkpoints and metrics say about the starting point."""
        return {"spec": self.spec, "sha256": self.sha256}


def load_initial(spec: str, arch: str) -> InitialWeights | None:
    """The weights ``spec`` names for a run of encoder ``arch`` (None for ``none``); see the module docstring."""
    if spec == "none":
        return None
    kind, _, rest = spec.partition(":")
    if kind == "vjepa":
        parts = rest.split(":")
        if len(parts) not in (2, 3) or not parts[1]:
            raise UsageError(f"pretrain.init {spec!r}: expected vjepa:<arch>:<path>[:<key>]")
        if parts[0] != arch:
            raise UsageError(f"pretrain.init {spec!r} names {parts[0]}, pretrain.arch is {arch}: they must agree")
        path, key = Path(parts[1]), parts[2] if len(parts) == 3 else None
        ck = _read(path, spec)
        if key is not None:
            enc = tgt = _entry(ck, key, path)
        else:
            enc = _entry(ck, "encoder" if "encoder" in ck else "target_encoder", path)
            tgt = _entry(ck, "target_encoder", path) if "target_encoder" in ck else enc
        pred = ck.get("predictor")
    elif kind == "hf":
        from ..models.hf import load_hf

        if not rest:
            raise UsageError(f"pretrain.init {spec!r}: expected hf:<folder>")
        hf = load_hf(rest)
        enc = tgt = hf.encoder.state_dict()
        pred = hf.predictor.state_dict() if hf.predictor is not None else None
        return InitialWeights(spec, hf.digest, enc, tgt, pred)
    else:
        path = Path(spec)
        ck = _read(path, spec)
        if ck.get("format") != FORMAT:
            raise UsageError(
                f"pretrain.init {spec!r}: not a unisurg checkpoint; a released file is vjepa:<arch>:<path>"
            )
        if ck.get("arch") != arch:
            raise UsageError(f"pretrain.init {spec!r} holds {ck.get('arch')}, pretrain.arch is {arch}: they must agree")
        enc = ck["encoder"]
        tgt = ck.get("target_encoder") or enc
        pred = ck.get("predictor")
    strip = lambda sd: strip_prefixes(sd) if sd is not None else None  # noqa: E731
    return InitialWeights(spec, sha256_file(path), strip(enc), strip(tgt), strip(pred))


def _read(path: Path, spec: str) -> dict:
    if not path.is_file():
        raise FileNotFoundError(f"pretrain.init {spec!r}: no file {path}")
    return load_checkpoint(path)


def _entry(ck: dict, key: str, path: Path) -> dict[str, torch.Tensor]:
    if key not in ck:
        raise UsageError(f"{path}: no {key!r} in the checkpoint (it has {sorted(ck)[:8]})")
    return ck[key]


def mismatch(module: nn.Module, state: dict[str, torch.Tensor]) -> list[str]:
    """Every difference between ``module``'s parameters and ``state``: missing, unexpected, wrong shape."""
    own = module.state_dict()
    out = [  # shape differences first: they say most about which architecture the file holds
        f"{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and own[k].shape != v.shape
    ]
    out += [f"missing {k} {tuple(v.shape)}" for k, v in own.items() if k not in state]
    out += [f"unexpected {k} {tuple(v.shape)}" for k, v in state.items() if k not in own]
    return out


def apply_initial(
    init: InitialWeights, encoder: nn.Module, predictor: nn.Module, target: nn.Module | None, arch: str
) -> None:
    """Load ``init`` into the freshly built modules (before any device move or sharding)."""
    for name, module, state in (("encoder", encoder, init.encoder), ("target_encoder", target, init.target)):
        if module is None:  # the pixel objective has no teacher
            continue
        problems = mismatch(module, state)
        if problems:
            raise UsageError(
                f"pretrain.init {init.spec!r}: its {name} is not a {arch}: {len(problems)} differences, e.g. "
                + "; ".join(problems[:6])
            )
        module.load_state_dict(state)
    if init.predictor is not None and not mismatch(predictor, init.predictor):
        predictor.load_state_dict(init.predictor)
        log.info("pretrain.init: encoder, teacher and predictor loaded from %s", init.spec)
    else:
        why = (
            "has no predictor" if init.predictor is None else "has a predictor of another shape than pretrain.predictor"
        )
        log.warning("pretrain.init: %s %s: starting a fresh predictor (encoder and teacher loaded)", init.spec, why)
