"""Hand an encoder to the ecosystem: the transformers, safetensors and vjepa2 layouts
(:mod:`.formats`), each with a generated model card (:mod:`.card`), from any encoder spec
(:mod:`.source`). The way back in is the ``hf:<folder>`` encoder spec (:mod:`unisurg.models.hf`)."""

from __future__ import annotations

from pathlib import Path

from ..io import atomic_write_text
from .card import Evidence, model_card, model_name, training_data
from .formats import FORMATS, Inputs, export
from .source import Exportable, provenance, resolve

__all__ = ["FORMATS", "Evidence", "Inputs", "Exportable", "export", "export_encoder", "provenance", "resolve"]


def evidence(src: Exportable, prov: dict, params, metrics_dir: Path, root: Path) -> Evidence:
    """What the card says beyond the weights: the report's results under the weights' name in
    ``evaluate.models`` and its baseline, and the training clips of the stage that produced them."""
    from ..report import load_results

    ev = Evidence()
    name = model_name(src, params.evaluate.models, root)
    if name is not None and metrics_dir.is_dir():
        ev.results, ev.model = load_results(metrics_dir), name
        ev.baseline = params.report.baselines.get(name)
    clips = [d for d in (prov.get("dvc") or {}).get("deps", []) if d.endswith("clips.parquet")]
    if clips and (root / clips[0]).is_file() and (root / clips[0]).with_name("videos.parquet").is_file():
        ev.training, ev.index = training_data(root / clips[0]), clips[0]
    return ev


def export_encoder(
    spec: str,
    fmt: str,
    out: Path,
    size: int,
    frames: int,
    fps: float | None,
    params,
    metrics_dir: Path,
    root: Path,
    seed: int = 0,
    encoder_only: bool = False,
) -> list[str]:
    """Export the encoder ``spec`` names as ``fmt`` into ``out`` with its model card -> the files written."""
    src = resolve(spec, seed)
    if encoder_only:
        src.predictor = None
    inputs = Inputs(size, frames, fps)
    prov = provenance(src, root)
    files = export(src, fmt, out, inputs, prov)
    card = model_card(src, fmt, inputs, prov, evidence(src, prov, params, metrics_dir, root), files, out)
    atomic_write_text(out / "README.md", card)
    return [*files, "README.md"]
