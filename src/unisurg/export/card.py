"""The model card (``README.md``) of an export folder, generated from what the pipeline recorded:
the ``dvc.lock`` stage that produced the weights, the curation index its clips came from (sources,
regions, licences), and the report's results for the name the weights have in ``evaluate.models``.
Nothing in it is written by hand; what is unknown says so."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..report import baseline_section, beats_null, protocol_lines, results_table
from .formats import VJEPA2_ARCHS, Inputs
from .source import Exportable


@dataclass
class Evidence:
    """What the card can say about the weights, beyond the weights themselves."""

    results: list[dict] = field(default_factory=list)  # the report's per-benchmark results
    model: str | None = None  # the weights' name in those results (evaluate.models)
    baseline: str | None = None  # the model it must beat (report.baselines)
    training: list[dict] = field(default_factory=list)  # per source: region, licence, videos, clips, hours
    index: str | None = None  # the clip table those rows come from


def model_name(src: Exportable, models: dict[str, str], root: Path) -> str | None:
    """The name under which ``evaluate.models`` evaluates these weights (the same spec, or the same file)."""
    for name, spec in models.items():
        if spec == src.spec:
            return name
        if src.path is not None and (root / spec).resolve() == src.path.resolve():
            return name
    return None


def training_data(clips: Path) -> list[dict]:
    """Per source of a curation clip table (and the ``videos.parquet`` beside it): region, licence,
    videos, clips and hours of video."""
    import duckdb

    videos = clips.with_name("videos.parquet")
    con = duckdb.connect()
    rows = con.execute(
        """
        WITH c AS (SELECT source, video_id, count(*) AS clips FROM read_parquet(?) GROUP BY ALL)
        SELECT c.source, any_value(v.region), any_value(v.license), count(*), sum(c.clips),
               sum(v.duration_s) / 3600.0
        FROM c JOIN read_parquet(?) v USING (video_id)
        GROUP BY c.source ORDER BY c.source
        """,
        [str(clips), str(videos)],
    ).fetchall()
    keys = ("source", "region", "license", "videos", "clips", "hours")
    return [dict(zip(keys, r)) for r in rows]


def _training_lines(src: Exportable, prov: dict[str, Any], ev: Evidence) -> list[str]:
    dvc = prov.get("dvc")
    if dvc is None:
        if src.spec.startswith("random:"):
            return ["Untrained: random weights from the seed (the baseline every score is compared with)."]
        return [
            "Not an output of this project's `dvc.lock`: trained elsewhere; its training data are unknown to "
            "unisurg. See the publisher's documentation."
        ]
    lines = [
        f"Produced by the DVC stage `{dvc['stage']}` (`{dvc['path']}`, md5 `{dvc['md5']}`"
        + ("" if dvc.get("matches_file") else "; **the file no longer has that md5: retrained or edited since**")
        + ").",
        "Its inputs: " + ", ".join(f"`{d}`" for d in dvc["deps"] if not d.startswith(("src/", "stages/"))) + ".",
    ]
    if ev.training:
        licences = sorted({str(r["license"]) for r in ev.training})
        hours = sum(r["hours"] or 0 for r in ev.training)
        clips = sum(r["clips"] for r in ev.training)
        lines += [
            "",
            f"Training clips (`{ev.index}`): {clips} clips from {sum(r['videos'] for r in ev.training)} videos, "
            f"{hours:.2f} hours, by source:",
            "",
            "| source | region | licence | videos | clips | hours |",
            "|---|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['source']} | {r['region']} | {r['license']} | {r['videos']} | {r['clips']} | {r['hours']:.2f} |"
            for r in ev.training
        ]
        lines += ["", f"Licences of the training data: {'; '.join(licences)}. The weights may carry their terms."]
    return lines


def _results_lines(ev: Evidence) -> list[str]:
    if ev.model is None or not ev.results:
        return ["These weights are not among the report's evaluated models: no benchmark claim is made for them."]
    cols = [ev.model] + ([ev.baseline] if ev.baseline else [])
    results = [
        {**r, "models": {m: d for m, d in r["models"].items() if m in cols}}
        for r in ev.results
        if ev.model in r["models"]
    ]
    has_null = any(r.get("null") for r in results)
    lines = [*protocol_lines(results), "", *results_table(results, cols, has_null)]
    if ev.baseline:
        lines += baseline_section(results, {ev.model: ev.baseline})
    return lines


def _limitations(src: Exportable, fmt: str, inputs: Inputs, prov: dict[str, Any], ev: Evidence) -> list[str]:
    out = []
    if "data/synth" in (prov.get("dvc") or {}).get("upstream", []):
        out.append(
            "Trained on the built-in synthetic corpus (rendered scenes in the real datasets' formats): a run of "
            "the pipeline, not a surgical model. Its scores say nothing about real surgical video."
        )
    labels = {(r.get("protocol") or {}).get("label") for r in ev.results if ev.model in r["models"]}
    if labels and labels != {"surgmotion"}:
        out.append(
            f"Evaluated under protocol {', '.join(f'`{x}`' for x in sorted(map(str, labels)))}, not the paper's "
            "(`surgmotion`): not comparable with the paper's table."
        )
    weak = [r["benchmark"] for r in ev.results if ev.model in r["models"] and beats_null(r, ev.model) is False]
    if weak:
        out.append(f"At or below the null (a constant output) on: {', '.join(weak)}.")
    if fmt == "transformers":
        out.append(
            f"transformers' VJEPA2Model places RoPE on a square grid of crop_size / patch_size = "
            f"{inputs.size // src.encoder.patch_size}: features equal ours at {inputs.size} px only."
        )
    if src.predictor is None:
        out.append("No predictor: an encoder for features; continued pretraining starts a fresh predictor.")
    out.append("Research use only: not validated for any clinical decision.")
    return [f"- {x}" for x in out]


USAGE = {
    "transformers": [
        "```python",
        "from transformers import AutoModel, AutoVideoProcessor",
        "model = AutoModel.from_pretrained('FOLDER').eval()",
        "processor = AutoVideoProcessor.from_pretrained('FOLDER')",
        "inputs = processor(video, return_tensors='pt')  # video: (T, H, W, 3) uint8 frames",
        "features = model.get_vision_features(inputs['pixel_values_videos'])  # (1, N, D)",
        "```",
        "",
        "In unisurg: `hf:FOLDER` wherever an encoder spec is taken (`evaluate.models`, `--encoder`, `pretrain.init`).",
    ],
    "safetensors": [
        "```python",
        "from unisurg.models.checkpoint import load_encoder",
        "encoder = load_encoder('FOLDER/encoder.safetensors')  # metadata rebuilds the architecture",
        "```",
        "",
        "Any safetensors reader gets the weights; `safe_open(...).metadata()` the description.",
    ],
    "vjepa": [
        "vjepa2 / SurgMotion: point the evaluation config's `pretrain.checkpoint` at `FOLDER/FILE` with "
        "`checkpoint_key: target_encoder` (their loaders strip `module.` and `backbone.`). In unisurg: "
        "`vjepa:ARCH:FOLDER/FILE`.",
    ],
}


def model_card(
    src: Exportable, fmt: str, inputs: Inputs, prov: dict[str, Any], ev: Evidence, files: list[str], out: Path
) -> str:
    enc = src.encoder
    c = enc.config
    params = sum(p.numel() for p in enc.parameters())
    arch = src.arch or "no registered size"
    what = (
        f"A V-JEPA-style video ViT encoder ({arch}: {c['embed_dim']} wide, {c['depth']} blocks, {c['num_heads']} "
        f"heads, {params / 1e6:.2f} M parameters; tubelet {c['tubelet_size']} x patch {c['patch_size']}, 3D RoPE), "
        f"exported by `unisurg export` from `{src.spec}`"
        + (f" with its predictor ({src.predictor.config['depth']} blocks)" if src.predictor is not None else "")
        + "."
        + (
            " Its file records: " + ", ".join(f"{k} {v}" for k, v in sorted(src.extra.items())) + "."
            if src.extra
            else ""
        )
    )
    vjepa_note = []
    if fmt == "vjepa" and src.arch not in VJEPA2_ARCHS:
        vjepa_note = [
            "",
            f"vjepa2's code registers no `{src.arch}`: build its VisionTransformer with embed_dim={c['embed_dim']}, "
            f"depth={c['depth']}, num_heads={c['num_heads']}, mlp_ratio={c['mlp_ratio']:g}, use_rope=True.",
        ]
    file_name = files[0] if files else ""
    usage = [
        line.replace("FOLDER", str(out)).replace("FILE", file_name).replace("ARCH", src.arch or "<arch>")
        for line in USAGE[fmt]
    ]
    lines = [
        f"# {ev.model or src.arch or 'encoder'} ({fmt} export)",
        "",
        what,
        "",
        "## Inputs",
        "",
        f"Clips of {inputs.frames} frames"
        + (f" at {inputs.fps:g} fps" if inputs.fps else "")
        + f", {inputs.size}x{inputs.size} px: the whole frame resized (no crop), RGB scaled to [0, 1], "
        f"normalised with mean {inputs.normalisation['mean']} and std {inputs.normalisation['std']}.",
        "",
        "## Use",
        "",
        *usage,
        *vjepa_note,
        "",
        "## Intended use",
        "",
        "Frozen features of surgical video for research: attentive or linear probes (phase, action, skill, "
        "segmentation, depth), retrieval, and a starting point for continued pretraining.",
        "",
        "## Training data",
        "",
        *_training_lines(src, prov, ev),
        "",
        "## Results",
        "",
        *_results_lines(ev),
        "",
        "## Limitations",
        "",
        *_limitations(src, fmt, inputs, prov, ev),
        "",
        "## Provenance",
        "",
        f"- files: {', '.join(f'`{f}`' for f in files)}",
        f"- weights sha256 (names, dtypes, shapes, bytes): `{src.weights_sha256}`",
        f"- source file sha256: `{src.file_sha256 or 'n/a'}`",
        f"- git commit: `{prov.get('git_commit', 'unknown')}`",
    ]
    return "\n".join(lines) + "\n"
