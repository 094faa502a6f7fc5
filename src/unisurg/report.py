"""Benchmark report: Markdown table + self-contained HTML (plots embedded as PNG, no network).

Inputs are the stage outputs (evaluation results per benchmark, training logs, curation
metrics); the report is a pure function of them, so regenerating it with nothing changed
gives byte-identical files.
"""

from __future__ import annotations

import base64
import csv
import html
import io
from pathlib import Path

from .io import atomic_write_text, read_json

TASK_FAMILY = {
    "phase": "phase / step",
    "multilabel": "action triplets",
    "clip": "clip classification",
    "skill": "skill",
    "segmentation": "segmentation",
    "depth": "depth",
}


def load_results(metrics_dir: Path) -> list[dict]:
    """Results of every evaluated benchmark (``<benchmark>.json``), in the registry's (the paper's) order."""
    from .benchmarks import list_benchmarks

    order = {b.name: i for i, b in enumerate(list_benchmarks())}
    results = [read_json(p) for p in metrics_dir.glob("*.json")]
    return sorted(results, key=lambda r: (order.get(r["name"], len(order)), r["name"]))


def fmt(v: float | None, ci: list | None = None) -> str:
    if v is None:
        return "n/a"
    s = f"{v:.3f}"
    if ci and ci[0] is not None and ci[1] is not None:
        s += f" [{ci[0]:.3f}, {ci[1]:.3f}]"
    return s


def best_model(r: dict) -> str | None:
    vals = {m: d["value"] for m, d in r["models"].items() if d["value"] is not None}
    if not vals:
        return None
    pick = max if r["higher_is_better"] else min
    return pick(vals, key=vals.get)


def markdown(results: list[dict], models: list[str], curation: dict | None, title: str) -> str:
    lines = [
        f"# {title}",
        "",
        "Frozen encoders, attentive probes (dense tasks: linear patch decoder); test split, per-video metric "
        "averaged over videos, 95% bootstrap CI over test videos in brackets. Best per row in bold.",
        "",
        "| benchmark | task | metric | " + " | ".join(models) + " |",
        "|---|---|---|" + "---|" * len(models),
    ]
    for r in results:
        best = best_model(r)
        cells = []
        for m in models:
            d = r["models"].get(m)
            c = fmt(d["value"], d["ci"]) if d else "n/a"
            cells.append(f"**{c}**" if m == best else c)
        arrow = "↑" if r["higher_is_better"] else "↓"
        lines.append(
            f"| {r['benchmark']} | {TASK_FAMILY[r['task']]} | {r['metric']} {arrow} | " + " | ".join(cells) + " |"
        )
    lines += [
        "",
        "## Per task family (mean of the primary metric)",
        "",
        "| family | " + " | ".join(models) + " |",
        "|---|" + "---|" * len(models),
    ]
    for task, fam in TASK_FAMILY.items():
        rs = [r for r in results if r["task"] == task]
        if not rs:
            continue
        cells = []
        for m in models:
            vals = [r["models"][m]["value"] for r in rs if m in r["models"] and r["models"][m]["value"] is not None]
            cells.append(f"{sum(vals) / len(vals):.3f}" if vals else "n/a")
        lines.append(f"| {fam} ({len(rs)}) | " + " | ".join(cells) + " |")
    if curation:
        lines += [
            "",
            "## Curation",
            "",
            f"- videos kept: {curation['videos_kept']} of {curation['videos_total']}; "
            f"clips: {curation['clips']}; hours kept: {curation['hours_kept']}",
            f"- duplicates removed: {curation['duplicates_removed']}; held-out benchmark videos excluded: "
            f"{curation['excluded_benchmark_heldout']}; quarantined: {curation['quarantined']}",
            "",
            "| region | videos | clips | hours |",
            "|---|---|---|---|",
        ]
        for reg, g in curation["by_region"].items():
            lines.append(f"| {reg} | {g['videos']} | {g['clips']} | {g['hours']} |")
        lines += ["", "| source | videos | clips | hours |", "|---|---|---|---|"]
        for src, g in curation["by_source"].items():
            lines.append(f"| {src} | {g['videos']} | {g['clips']} | {g['hours']} |")
    return "\n".join(lines) + "\n"


def _read_log(path: Path) -> tuple[list[float], list[float]]:
    if not path.exists():
        return [], []
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [float(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode()


def plots(
    results: list[dict], models: list[str], logs: dict[str, Path], curation: dict | None
) -> list[tuple[str, str]]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = []
    fig, ax = plt.subplots(figsize=(7, 3))
    for name, path in logs.items():
        x, y = _read_log(path)
        if x:
            ax.plot(x, y, label=name)
    ax.set_xlabel("step")
    ax.set_ylabel("training loss")
    ax.legend()
    fig.tight_layout()
    out.append(("Training curves", _png(fig)))
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(10, 3.5))
    width = 0.8 / max(len(models), 1)
    for k, m in enumerate(models):
        vals = [(r["models"].get(m) or {}).get("value") or 0.0 for r in results]
        ax.bar([i + k * width for i in range(len(results))], vals, width, label=m)
    ax.set_xticks(
        [i + 0.4 - width / 2 for i in range(len(results))],
        [r["benchmark"] for r in results],
        rotation=60,
        ha="right",
        fontsize=7,
    )
    ax.set_ylabel("primary metric")
    ax.legend()
    fig.tight_layout()
    out.append(("Primary metric per benchmark", _png(fig)))
    plt.close(fig)
    if curation:
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.2))
        for ax, key in zip(axes, ("by_region", "by_source")):
            groups = curation[key]
            names = sorted(groups, key=lambda k: -groups[k]["hours"])
            ax.barh(names[::-1], [groups[n]["hours"] for n in names[::-1]])
            ax.set_xlabel("hours kept")
            ax.tick_params(axis="y", labelsize=7)
            ax.set_title(key.replace("_", " "))
        fig.tight_layout()
        out.append(("Curated hours per region and per source", _png(fig)))
        plt.close(fig)
    return out


def render_html(md: str, figures: list[tuple[str, str]], title: str) -> str:
    body = []
    table: list[str] = []

    def flush() -> None:
        if table:
            rows = [r.strip().strip("|").split("|") for r in table if not set(r.replace("|", "").strip()) <= {"-"}]
            head, *rest = rows
            body.append(
                "<table><tr>"
                + "".join(f"<th>{html.escape(c.strip())}</th>" for c in head)
                + "</tr>"
                + "".join("<tr>" + "".join(_cell(c) for c in r) + "</tr>" for r in rest)
                + "</table>"
            )
            table.clear()

    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>• {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    for cap, data in figures:
        body.append(f'<h2>{html.escape(cap)}</h2><img alt="{html.escape(cap)}" src="data:image/png;base64,{data}">')
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px}b{color:#064}"
    )
    return (
        f'<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def _cell(c: str) -> str:
    c = c.strip()
    if c.startswith("**") and c.endswith("**"):
        return f"<td><b>{html.escape(c[2:-2])}</b></td>"
    return f"<td>{html.escape(c)}</td>"


def build_report(
    metrics_dir: Path, out_dir: Path, logs: dict[str, Path], curation_path: Path | None, title: str
) -> dict:
    results = load_results(metrics_dir)
    if not results:
        raise FileNotFoundError(f"no <benchmark>.json results under {metrics_dir}")
    models = sorted({m for r in results for m in r["models"]})
    curation = read_json(curation_path) if curation_path and curation_path.exists() else None
    md = markdown(results, models, curation, title)
    atomic_write_text(out_dir / "benchmark.md", md)
    atomic_write_text(out_dir / "index.html", render_html(md, plots(results, models, logs, curation), title))
    return {"benchmarks": len(results), "models": models}
