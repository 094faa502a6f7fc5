"""Benchmark report: Markdown table + self-contained HTML (plots embedded as PNG, no network).

Inputs are the stage outputs (evaluation results per benchmark, training logs, curation and
distillation metrics) and their provenance (git commit, ``dvc.lock`` hashes, params); the
report is a pure function of them, so regenerating it with nothing changed gives
byte-identical files.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from .benchmarks.families import FAMILIES
from .io import atomic_write_text, read_json, write_json

TASK_FAMILY = {f.name: f.title for f in FAMILIES}  # task name in results -> as the tables name the family


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
    elif ci is not None:
        s += " (no CI)"
    return s


def best_model(r: dict) -> str | None:
    vals = {m: d["value"] for m, d in r["models"].items() if d["value"] is not None}
    if not vals:
        return None
    pick = max if r["higher_is_better"] else min
    return pick(vals, key=vals.get)


def clear_best(r: dict) -> str | None:
    """The best model of a row when its paired 95% CI against every other model excludes 0 in its
    favour, else None: the one a table may bold (a best point estimate inside overlapping CIs is not)."""
    best = best_model(r)
    if best is None:
        return None
    for other in r["models"]:
        if other == best:
            continue
        lo, hi = (paired(r, best, other) or {}).get("ci") or (None, None)
        if lo is None or hi is None or not (lo > 0 if r["higher_is_better"] else hi < 0):
            return None
    return best


def better(r: dict, a: float | None, b: float | None) -> bool | None:
    """Is value a strictly better than b on r's primary metric? None when either is missing."""
    if a is None or b is None:
        return None
    return a > b if r["higher_is_better"] else a < b


def beats_null(r: dict, m: str) -> bool | None:
    """Does model m score strictly better than the benchmark's null row? None without a null row."""
    null = (r.get("null") or {}).get("value")
    return better(r, (r["models"].get(m) or {}).get("value"), null) if r.get("null") else None


def _units(r: dict) -> str:
    d = r.get("null") or next(iter(r["models"].values()), {})
    n, unit = d.get("n_test_units"), d.get("unit")
    return f"{n} {unit}{'' if n == 1 else 's'}" if n is not None and unit else "n/a"


def protocol_lines(results: list[dict]) -> list[str]:
    """Which protocol produced the table (README "Protocols"), benchmarks counted per protocol."""
    labels: dict[str, list[str]] = {}
    for r in results:
        label = (r.get("protocol") or {}).get("label") or "unnamed (results older than named protocols)"
        labels.setdefault(label, []).append(r["benchmark"])
    parts = [
        f"`{k}` ({len(v)} benchmarks)" if len(labels) > 1 else f"`{k}` (every benchmark)" for k, v in labels.items()
    ]
    lines = [f'Protocol: {"; ".join(parts)}; README "Protocols" lists what each fixes.']
    if any("TEST" in k for k in labels):
        lines.append("**Heads chosen on the test split (as the paper's configs): these are not held-out estimates.**")
    return lines


def results_table(results: list[dict], models: list[str], has_null: bool) -> list[str]:
    """The headline: one row per benchmark, primary metric with its CI per model and the null."""
    cols = [*models, "null"] if has_null else models
    lines = [
        "Frozen encoders, attentive probes (dense tasks: linear patch decoder); test split, primary metric with "
        "its 95% bootstrap CI over the independent test units (videos, sequences, trials, clips) in brackets; "
        "fewer than 3 units: no CI. Best per row in bold. `null`: the best constant output given the training "
        "labels (prior class scores, all-foreground or all-background, constant depth, training-mean score), "
        "scored by the same harness; † marks a score at or below it, and a benchmark where no model beats "
        "it is marked in its name. Bold: the best model, only where its paired 95% CI against every other "
        "model excludes 0.",
        "",
        "| benchmark | task | metric | test units | " + " | ".join(cols) + " |",
        "|---|---|---|---|" + "---|" * len(cols),
    ]
    for r in results:
        best = clear_best(r)
        cells = []
        for m in models:
            d = r["models"].get(m)
            c = fmt(d["value"], d["ci"]) if d else "n/a"
            c = f"**{c}**" if m == best else c
            cells.append(c + " †" if beats_null(r, m) is False else c)
        if has_null:
            n = r.get("null")
            cells.append(fmt(n["value"], n["ci"]) if n else "n/a")
        arrow = "↑" if r["higher_is_better"] else "↓"
        none_beat = has_null and r.get("null") and not any(beats_null(r, m) for m in r["models"])
        name = f"{r['benchmark']} (no model beats the null)" if none_beat else r["benchmark"]
        lines.append(
            f"| {name} | {TASK_FAMILY[r['task']]} | {r['metric']} {arrow} | {_units(r)} | " + " | ".join(cells) + " |"
        )
    return lines


def family_groups(results: list[dict]) -> dict[tuple[str, str, bool], list[dict]]:
    """(task family title, metric, higher is better) -> its benchmarks, in the families' order."""
    groups: dict[tuple[str, str, bool], list[dict]] = {}
    for task, fam in TASK_FAMILY.items():
        for r in results:
            if r["task"] == task:
                groups.setdefault((fam, r["metric"], bool(r["higher_is_better"])), []).append(r)
    return groups


def markdown(results: list[dict], models: list[str], x: Extras, title: str) -> str:
    curation = x.curation
    has_null = any(r.get("null") for r in results)
    cols = [*models, "null"] if has_null else models
    lines = [f"# {title}", "", *protocol_lines(results), "", *results_table(results, models, has_null)]
    lines += [
        "",
        "## Per task family (mean of the primary metric)",
        "",
        "Benchmarks of one family that share a metric; a mean never mixes metrics.",
        "",
        "| family | metric | benchmarks | " + " | ".join(cols) + " |",
        "|---|---|---|" + "---|" * len(cols),
    ]
    for (fam, metric, higher), rs in family_groups(results).items():
        cells = []
        for m in cols:
            rows = [r.get("null") if m == "null" else r["models"].get(m) for r in rs]
            vals = [d["value"] for d in rows if d and d["value"] is not None]
            cells.append(f"{sum(vals) / len(vals):.3f}" if vals else "n/a")
        arrow = "↑" if higher else "↓"
        lines.append(f"| {fam} | {metric} {arrow} | {len(rs)} | " + " | ".join(cells) + " |")
    baselines = {m: b for m, b in x.baselines.items() if m in models and b in models}
    if baselines:
        lines += baseline_section(results, baselines)
    lines += challenge_section(results, models)
    lines += relaxed_section(results, models)
    if x.distill and x.teacher in models and x.student in models:
        lines += distill_section(results, x)
    lines += random_teacher_section(x)
    if x.ablation:
        lines += ablation_section(results, x)
    lines += learning_section(x.learning)
    lines += seeds_section(results, x)
    lines += continued_section(results, x)
    if curation:
        lines += [
            "",
            "## Curation",
            "",
            f"- videos kept: {curation['videos_kept']} of {curation['videos_total']}; "
            f"clips: {curation['clips']}; hours kept: {curation['hours_kept']}",
            f"- duplicates removed: {curation['duplicates_removed']}; held-out benchmark videos excluded: "
            f"{curation['excluded_benchmark_heldout']}; quarantined: {curation['quarantined']}",
            *guard_only_lines(curation),
            *leak_lines(curation),
            "",
            "| region | videos | clips | hours |",
            "|---|---|---|---|",
        ]
        for reg, g in curation["by_region"].items():
            lines.append(f"| {reg} | {g['videos']} | {g['clips']} | {g['hours']} |")
        lines += ["", "| source | videos | clips | hours |", "|---|---|---|---|"]
        for src, g in curation["by_source"].items():
            lines.append(f"| {src} | {g['videos']} | {g['clips']} | {g['hours']} |")
    if x.provenance:
        lines += provenance_section(x.provenance, machines(results), other_machines(x))
    return "\n".join(lines) + "\n"


def guard_only_lines(curation: dict) -> list[str]:
    n = curation.get("excluded_guard_only")
    if not n:
        return []
    return [f"- training videos of `guard_only` benchmark sources (registered to guard, not to pretrain): {n}"]


def leak_lines(curation: dict) -> list[str]:
    """The curation's leaks by route: videos that show a held-out benchmark video's content (matched on
    per-second signatures, whatever the format), each excluded from pretraining."""
    leaks = curation.get("leaks")
    if leaks is None:  # an index curated before leak routes were recorded
        return []
    if not leaks:
        return ["- leaks: no video shows a held-out benchmark video's content"]
    lines = [
        f"- leaks: {len(leaks)} video(s) show a held-out benchmark video's content; each is excluded from "
        "pretraining (a benchmark's own training video among them also leaks across benchmarks in evaluation):",
        "",
        "| route | where |",
        "|---|---|",
    ]
    return lines + [f"| {x['route']} | {x['how']} |" for x in leaks]


@dataclass
class Extras:
    """Everything beyond the benchmark results that the report shows."""

    curation: dict | None = None
    distill: dict | None = None  # data/distill/metrics.json
    baselines: dict[str, str] = field(default_factory=dict)  # model -> baseline it must beat
    teacher: str = "unisurg"
    student: str = "student"
    provenance: dict | None = None
    ablation: dict[str, list[dict]] = field(default_factory=dict)  # variant -> its benchmark results
    seeds: dict[str, list[dict]] = field(default_factory=dict)  # seed run -> its results (`make seeds`)
    continued: dict | None = None  # `make continued`: {"experiment": its grid entry, "results": [...]}
    seed: int = 0  # the main pipeline's base.seed
    learning: list[dict] = field(default_factory=list)  # data/pretrain/log.csv rows (:func:`load_log`)
    seeds_pretrain: dict[str, dict] = field(default_factory=dict)  # seed run -> its pretraining metrics.json
    random_teacher: list[dict] = field(default_factory=list)  # `make ablation`: the random-teacher student's results


# The paper's ablation order; other variants follow alphabetically.
ABLATION_ORDER = ("pixel", "vjepa", "no_motion", "no_affinity", "no_diversity")
ABLATION_LABELS = {
    "pixel": "pixel reconstruction (VideoMAE-style)",
    "vjepa": "V-JEPA (latent prediction only)",
    "no_motion": "full recipe − motion-guided prediction",
    "no_affinity": "full recipe − affinity self-distillation",
    "no_diversity": "full recipe − feature diversity",
}
FULL = "full"  # the main pipeline's encoder as each ablation run names it (ablation/dvc.yaml evaluate)


def load_ablation(ablation_dir: Path) -> dict[str, list[dict]]:
    """``<dir>/<variant>/<benchmark>.json`` -> {variant: results}, variants in the paper's order."""
    if not ablation_dir.is_dir():
        return {}
    found = {d.name: load_results(d) for d in ablation_dir.iterdir() if d.is_dir()}
    found = {k: v for k, v in found.items() if v}
    order = [v for v in ABLATION_ORDER if v in found] + sorted(v for v in found if v not in ABLATION_ORDER)
    return {v: found[v] for v in order}


def collect_ablation(results_root: Path, variants: list[str], dest: Path) -> int:
    """Copy ``<results_root>/<variant>/results/*.json`` of the listed variants to ``dest/<variant>/``
    (the versioned input of the report), dropping variants no longer in the grid -> files copied."""
    import shutil

    missing = [v for v in variants if not (results_root / v / "results").is_dir()]
    if missing:
        raise FileNotFoundError(
            f"no ablation results for {missing} under {results_root}: run dvc repro ablation/dvc.yaml first"
        )
    if dest.is_dir():
        for old in dest.iterdir():
            if old.is_dir():
                shutil.rmtree(old)
    n = 0
    for v in variants:
        (dest / v).mkdir(parents=True, exist_ok=True)
        for src in sorted((results_root / v / "results").glob("*.json")):
            shutil.copyfile(src, dest / v / src.name)
            n += 1
    return n


def collect_results(src: Path, dest: Path) -> int:
    """Replace ``dest`` with a copy of ``src/*.json`` (one evaluate run's results) -> files copied."""
    import shutil

    if not src.is_dir():
        raise FileNotFoundError(f"no results under {src}: run `make ablation` (dvc repro ablation/dvc.yaml) first")
    if dest.is_dir():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    files = sorted(src.glob("*.json"))
    for f in files:
        shutil.copyfile(f, dest / f.name)
    return len(files)


def collect_seed_metrics(results_root: Path, seeds: list[str], dest: Path) -> None:
    """Copy each seed run's pretraining ``metrics.json`` (its learning diagnostics) to ``dest/<seed>.pretrain.json``."""
    import shutil

    for old in dest.glob("*.pretrain.json"):
        old.unlink()
    for name in seeds:
        src = results_root / name / "metrics.json"
        if src.is_file():
            shutil.copyfile(src, dest / f"{name}.pretrain.json")


def load_seed_metrics(folder: Path) -> dict[str, dict]:
    """``collect_seed_metrics``'s files -> {seed run: its pretraining metrics}."""
    if not folder.is_dir():
        return {}
    return {f.name.removesuffix(".pretrain.json"): read_json(f) for f in sorted(folder.glob("*.pretrain.json"))}


def collect_continued(results_root: Path, experiment: dict, dest: Path) -> int:
    """Copy the continued-pretraining experiment's ``<results_root>/results/*.json`` to ``dest/results/``
    and its description (``ablation/params.yaml``'s ``continued``) to ``dest/experiment.json`` -> files copied."""
    src = results_root / "results"
    if not src.is_dir():
        raise FileNotFoundError(f"no results under {src}: run `make continued` (dvc repro ablation/dvc.yaml) first")
    n = collect_results(src, dest / "results")
    write_json(dest / "experiment.json", experiment)
    return n


def load_continued(folder: Path) -> dict | None:
    """``collect_continued``'s folder -> {"experiment": ..., "results": [...]}, or None when absent."""
    if not (folder / "experiment.json").is_file():
        return None
    return {"experiment": read_json(folder / "experiment.json"), "results": load_results(folder / "results")}


def ablation_section(results: list[dict], x: Extras) -> list[str]:
    heads: dict[str, dict] = {}  # benchmark name -> a result (for its title and metric), first seen order
    for rs in x.ablation.values():
        for r in rs:
            heads.setdefault(r["name"], r)
    by_name = {r["name"]: r for r in results}

    def col(h: dict) -> str:
        return f"{h['benchmark']} {h['metric']} {'↑' if h['higher_is_better'] else '↓'}"

    stale = _protocol_mismatches(x.ablation, by_name, x.teacher)
    # the built-in corpus behind each set of rows (rendering differs across CPUs, so a rerun elsewhere changes it)
    main_corpus, abl_corpus = (x.provenance or {}).get("corpus"), (x.provenance or {}).get("ablation_corpus")
    other_corpus = main_corpus and abl_corpus and main_corpus != abl_corpus
    if stale:
        same = (
            f"**Not comparable with the main rows:** the variants were evaluated under another protocol than the "
            f"main pipeline ({', '.join(stale)}; `make ablation` reruns them); they remain comparable with each other."
        )
    elif other_corpus:
        same = (
            f"**Not comparable with the main rows:** the variants ran on another render of the built-in corpus "
            f"(data/synth {abl_corpus[:8]}, main rows {main_corpus[:8]}; `make ablation` reruns them); they "
            "remain comparable with each other."
        )
    elif changed := sorted({k for keys in ((x.provenance or {}).get("ablation_recipe") or {}).values() for k in keys}):
        same = (
            f"**Not comparable with the main rows:** the variants were pretrained with other `pretrain` params than "
            f"params.yaml's (pretrain.{{{', '.join(changed)}}}, besides each variant's own overrides; `make ablation` "
            "reruns them); they remain comparable with each other."
        )
    else:
        same = "Every row: the same frozen evaluation protocol, corpus and pretraining recipe."
    lines = [
        "",
        "## Ablation",
        "",
        "Each variant pretrained on the same curated clips with the same budget (`make ablation`, "
        "ablation/params.yaml); primary metric with 95% CI. The last rows are the main pipeline's full "
        f"model and its distilled student. {same}",
        "",
        "| variant | " + " | ".join(col(h) for h in heads.values()) + " |",
        "|---|" + "---|" * len(heads),
    ]
    rows: list[tuple[str, dict[str, tuple]]] = []
    for variant, rs in x.ablation.items():
        # an ablation result holds the variant's encoder (named after it) and, since the grid pairs them, the full one
        cells = {r["name"]: _primary(r, _variant_model(r, variant)) for r in rs if r["models"]}
        rows.append((ABLATION_LABELS.get(variant, variant), cells))
    for model, label in ((x.teacher, "full UniSurg (main pipeline)"), (x.student, "distilled student (main pipeline)")):
        cells = {n: _primary(by_name[n], model) for n in heads if n in by_name and model in by_name[n]["models"]}
        if cells:
            rows.append((f"{label}: {model}", cells))
    for label, cells in rows:
        lines.append(f"| {label} | " + " | ".join(fmt(*cells[n]) if n in cells else "n/a" for n in heads) + " |")
    return lines + _ablation_paired(x.ablation, heads)


def _variant_model(r: dict, variant: str) -> str:
    """The model of an ablation result that is the variant (results before the grid was paired hold it alone)."""
    return variant if variant in r["models"] else next(iter(r["models"]))


def _ablation_paired(ablation: dict[str, list[dict]], heads: dict[str, dict]) -> list[str]:
    """Each variant against the full recipe evaluated in the same run (same test units, same bootstrap
    resamples): the paired difference per benchmark, and the counts of :func:`baseline_section`."""
    paired_runs = {v: rs for v, rs in ablation.items() if any(FULL in r["models"] for r in rs)}
    if not paired_runs:
        return []
    lines = [
        "",
        f"Each variant − the full recipe ({FULL}: the main pipeline's encoder, evaluated in the variant's run on the "
        "same test units): paired difference in the primary metric with its 95% bootstrap CI (for ↓ metrics a "
        "negative difference is better). A variant *worse* than the full recipe means the switched-off part helped.",
        "",
        "| variant − full | better on (counted) | worse on | ties | not counted (better, at or below null) "
        "| sign test p | separated wins | separated losses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for v, rs in paired_runs.items():
        t = tally([r for r in rs if FULL in r["models"]], _variant_model(rs[0], v), FULL)
        if t.rows:
            lines.append(f"| {ABLATION_LABELS.get(v, v)} | {t.cells} |")
    lines += ["", "| variant − full | " + " | ".join(h["benchmark"] for h in heads.values()) + " |"]
    lines.append("|---|" + "---|" * len(heads))
    for v, rs in paired_runs.items():
        by = {r["name"]: r for r in rs}
        cells = [paired_cell(by[n], _variant_model(by[n], v), FULL) if n in by else "n/a" for n in heads]
        lines.append(f"| {ABLATION_LABELS.get(v, v)} | " + " | ".join(cells) + " |")
    return lines


def _probe_signature(r: dict, model: str) -> tuple:
    """What a result records of its protocol: clip sampling, the probe grid (lrs, weight decays,
    steps, seeds, how seeds share batches), the number of chosen heads (seeds x folds) and the
    fields each head records. Two results with different signatures are not comparable."""
    heads = r["models"][model].get("heads", [])
    return (
        tuple(sorted(r.get("protocol", {}).items())),
        json.dumps(r.get("probe"), sort_keys=True),
        len(heads),
        tuple(sorted({k for h in heads for k in h})),
    )


def _protocol_mismatches(ablation: dict[str, list[dict]], main: dict[str, dict], model: str) -> list[str]:
    """Benchmarks on which an ablation variant's protocol differs from the main pipeline's ``model``."""
    out = []
    for variant, rs in ablation.items():
        for r in rs:
            ref = main.get(r["name"])
            if not r["models"] or ref is None or model not in ref["models"]:
                continue
            if _probe_signature(r, _variant_model(r, variant)) != _probe_signature(ref, model) and (
                r["benchmark"] not in out
            ):
                out.append(r["benchmark"])
    return out


def _primary(r: dict, m: str) -> tuple[float | None, list | None]:
    d = r["models"].get(m)
    return (d["value"], d["ci"]) if d else (None, None)


def paired(r: dict, m: str, base: str) -> dict | None:
    """The paired difference m - base recorded by the evaluate stage (``diff``, ``ci``, ``separated``)."""
    return ((r["models"].get(m) or {}).get("paired") or {}).get(base)


@dataclass(frozen=True)
class Verdict:
    """One benchmark's comparison of a model with its baseline."""

    better: bool | None  # point estimate strictly better (None: a score missing)
    worse: bool | None  # point estimate strictly worse
    separated: bool  # the paired 95% CI excludes 0
    above_null: bool  # the model beats the null row (True where there is none)
    has_ci: bool

    @property
    def counted_win(self) -> bool:
        return bool(self.better) and self.above_null

    @property
    def label(self) -> str:
        if self.better is None:
            return "n/a"
        if self.better and not self.above_null:
            return "better, but not above the null (not counted)"
        word = "better" if self.better else "worse" if self.worse else "tie"
        if not self.has_ci:
            return f"{word} (no CI)"
        return f"{word}, CI excludes 0" if self.separated else word


def verdict(r: dict, m: str, base: str) -> Verdict:
    (a, _), (b, _) = _primary(r, m), _primary(r, base)
    p = paired(r, m, base) or {}
    ci = p.get("ci") or [None, None]
    above = beats_null(r, m) is not False
    return Verdict(better(r, a, b), better(r, b, a), bool(p.get("separated")), above, None not in ci)


def baseline_section(results: list[dict], baselines: dict[str, str]) -> list[str]:
    lines = ["", "## Against the baselines", ""]
    lines += [
        "Paired comparisons on the same test units: the difference model − baseline in the primary metric "
        "(for ↓ metrics a negative difference is better) with its 95% CI from bootstrap resamples of the test "
        "units drawn once for both models; *separated* = that CI excludes 0. A win counts only where the model "
        "also beats the null row. Sign test: exact two-sided binomial p of counted wins against losses "
        "(uncounted wins and ties left out); it asks whether the model is better on more benchmarks than chance "
        "would give, not whether any one difference is real.",
        "",
        "| model | baseline | better on (counted) | worse on | ties | not counted (better, at or below null) "
        "| sign test p | separated wins | separated losses |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    detail: list[str] = []
    for m, base in baselines.items():
        t = tally(results, m, base)
        if not t.rows:
            continue
        lines.append(f"| {m} | {base} | {t.cells} |")
        detail += ["", f"### {m} − {base}", "", "| benchmark | metric | difference [95% CI] | verdict |"]
        detail.append("|---|---|---|---|")
        for r, v in t.rows:
            arrow = "↑" if r["higher_is_better"] else "↓"
            detail.append(f"| {r['benchmark']} | {r['metric']} {arrow} | {paired_cell(r, m, base)} | {v.label} |")
    return lines + detail


@dataclass(frozen=True)
class Tally:
    """A model against another over several benchmarks: the counts of :func:`baseline_section`'s table."""

    rows: list[tuple[dict, Verdict]]  # the benchmarks with both scores, and their verdicts

    @property
    def cells(self) -> str:
        """ "better on (counted) | worse on | ties | not counted | sign test p | separated wins | separated losses"."""
        from .evaluation.stats import sign_test

        vs = [v for _, v in self.rows]
        wins, losses = sum(v.counted_win for v in vs), sum(bool(v.worse) for v in vs)
        ties = sum(not v.better and not v.worse for v in vs)
        skipped = [r["benchmark"] for r, v in self.rows if v.better and not v.above_null]
        sep_w = sum(v.counted_win and v.separated for v in vs)
        sep_l = sum(bool(v.worse) and v.separated for v in vs)
        return (
            f"{wins} of {len(vs)} | {losses} | {ties} | {', '.join(skipped) or '-'} | {sign_test(wins, losses):.3g} "
            f"| {sep_w} | {sep_l}"
        )


def tally(results: list[dict], m: str, base: str) -> Tally:
    rows = [(r, verdict(r, m, base)) for r in results]
    return Tally([(r, v) for r, v in rows if v.better is not None])


def paired_cell(r: dict, m: str, base: str) -> str:
    """The paired difference m − base with its 95% CI, as the report writes it."""
    d = paired(r, m, base)
    return fmt(d["diff"], d["ci"]) if d else "n/a"


def continued_section(results: list[dict], x: Extras) -> list[str]:
    """`make continued`: the main encoder further pretrained on one region, without and with
    self-distillation, on every benchmark; gains in the region, forgetting elsewhere, in paired terms."""
    if not x.continued or not x.continued["results"]:
        return []
    e, rs = x.continued["experiment"], x.continued["results"]
    start, further, selfd = x.teacher, "further", "self_distilled"
    inside = [r for r in rs if r["name"] in set(e["in_region"])]
    outside = [r for r in rs if r["name"] not in set(e["in_region"])]
    main_label = {(r.get("protocol") or {}).get("label") for r in results}
    lines = [
        "",
        f"## Continued pretraining on one region ({e['region']})",
        "",
        f"`make continued`: the main encoder's checkpoint (`{start}`: encoder, EMA teacher, predictor) further "
        f"pretrained for {e['steps']} steps on the clips of one region only (`{e['where']}`, the main recipe, a "
        f"fresh optimizer with its warmup) — `{further}`; and a student of the same architecture trained the same "
        f"way from the same start plus the self-distillation pull toward `{further}` (distill.mode self, Lee et al. "
        f'2023; README "Continue from released weights") — `{selfd}`. All three on every benchmark under the '
        f"main protocol. The region's benchmarks: {', '.join(r['benchmark'] for r in inside) or 'none'}; the "
        f"other {len(outside)} measure forgetting.",
        "",
        *protocol_lines(rs),
    ]
    if {(r.get("protocol") or {}).get("label") for r in rs} != main_label:
        lines.append("**Another protocol than the main table's: compare within this section only.**")
    ran, now = (x.provenance or {}).get("continued_start"), (x.provenance or {}).get("main_checkpoint")
    if ran and now and ran != now:
        lines.append(
            f"**From an earlier main encoder:** the experiment started from a checkpoint ({CHECKPOINT} "
            f"{ran[:8]}) that the main pipeline has since replaced ({now[:8]}), so `{start}` here is not the main "
            "table's encoder: compare within this section only; `make continued` reruns it."
        )
    lines += [
        "",
        "| comparison | benchmarks | better on (counted) | worse on | ties | not counted (better, at or below null) "
        "| sign test p | separated wins | separated losses |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for m, base in ((further, start), (selfd, start), (selfd, further)):
        for label, group in ((e["region"], inside), ("other regions", outside)):
            t = tally(group, m, base)
            if t.rows:
                lines.append(f"| {m} − {base} | {label} | {t.cells} |")
    lines += [
        "",
        f"| benchmark | region | metric | {start} | {further} | {selfd} | {further} − {start} | {selfd} − {further} |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in inside + outside:
        cells = []
        for m in (start, further, selfd):
            d = r["models"].get(m)
            cells.append(fmt(d["value"], d["ci"]) if d else "n/a")
        arrow = "↑" if r["higher_is_better"] else "↓"
        where = e["region"] if r in inside else "other"
        lines.append(
            f"| {r['benchmark']} | {where} | {r['metric']} {arrow} | "
            + " | ".join(cells)
            + f" | {paired_cell(r, further, start)} | {paired_cell(r, selfd, further)} |"
        )
    return lines


def counted_wins(results: list[dict], m: str, base: str) -> tuple[int, int]:
    """(benchmarks where m beats base and the null, benchmarks with both scores)."""
    vs = [verdict(r, m, base) for r in results]
    vs = [v for v in vs if v.better is not None]
    return sum(v.counted_win for v in vs), len(vs)


def seeds_section(results: list[dict], x: Extras) -> list[str]:
    """The spread over pretraining seeds: the main run plus each `make seeds` run, per benchmark
    and for the headline count; runs under another protocol, corpus render or pretraining recipe
    are left out, named."""
    m, base = x.teacher, x.baselines.get(x.teacher)
    if not x.seeds or base is None:
        return []
    label = lambda rs: {(r.get("protocol") or {}).get("label") for r in rs}  # noqa: E731
    # each seed run's corpus and recipe, as ablation/dvc.lock records its stages: a run on another
    # render of the corpus, or with other `pretrain` params, is not comparable (a stale lock entry
    # of a seed left out of the grid, too)
    main_corpus = (x.provenance or {}).get("corpus")
    corpora = (x.provenance or {}).get("seeds_corpus") or {}
    recipes = (x.provenance or {}).get("seeds_recipe") or {}
    elsewhere = [n for n in x.seeds if main_corpus and corpora.get(n) not in (None, main_corpus)]
    other_recipe = [n for n in x.seeds if recipes.get(n) and n not in elsewhere]
    if len(elsewhere) + len(other_recipe) == len(x.seeds):
        why = [f"{n}: data/synth {corpora[n][:8]}, main rows {main_corpus[:8]}" for n in elsewhere]
        why += [f"{n}: pretrain.{{{', '.join(recipes[n])}}} differ from params.yaml" for n in other_recipe]
        return [
            "",
            "## Pretraining seeds",
            "",
            f"**Not shown:** no seed run is comparable with the main rows ({'; '.join(why)}): rerun `make seeds`.",
        ]
    skipped = [name for name, rs in x.seeds.items() if label(rs) != label(results)]
    elsewhere += other_recipe
    runs = {f"seed {x.seed} (main)": results, **{n: rs for n, rs in x.seeds.items() if n not in skipped + elsewhere}}
    counts = {name: counted_wins(rs, m, base) for name, rs in runs.items()}
    c = [w for w, _ in counts.values()]
    lines = [
        "",
        "## Pretraining seeds",
        "",
        f"The main recipe rerun with other seeds (`make seeds`: pretraining, the random baseline and the probes "
        f"reseeded; same corpus and protocol). Counted wins of {m} over {base} per run: "
        + ", ".join(f"{n}: {w} of {k}" for n, (w, k) in counts.items())
        + f"; mean {sum(c) / len(c):.1f}, range {min(c)}–{max(c)}."
        + (f" Left out (another protocol): {', '.join(skipped)}." if skipped else "")
        + (f" Left out (another corpus render or recipe): {', '.join(elsewhere)}." if elsewhere else ""),
        "",
        f"| benchmark | metric | {m}: mean [min, max] | {base}: mean [min, max] | {m} better in |",
        "|---|---|---|---|---|",
    ]
    by_run = {name: {r["name"]: r for r in rs} for name, rs in runs.items()}
    for r in results:
        cells, better_in = [], 0
        for model in (m, base):
            vals = [by_run[n][r["name"]]["models"][model]["value"] for n in runs if _has(by_run[n], r["name"], model)]
            vals = [v for v in vals if v is not None]
            cells.append(f"{sum(vals) / len(vals):.3f} [{min(vals):.3f}, {max(vals):.3f}]" if vals else "n/a")
        for n in runs:
            rr = by_run[n].get(r["name"])
            better_in += bool(rr and verdict(rr, m, base).better)
        arrow = "↑" if r["higher_is_better"] else "↓"
        lines.append(
            f"| {r['benchmark']} | {r['metric']} {arrow} | {cells[0]} | {cells[1]} | {better_in} of {len(runs)} |"
        )
    return lines + pooled_section(runs, m, base) + seed_learning_lines(x)


@dataclass(frozen=True)
class Pooled:
    """The pooled paired test over seeds x benchmarks (:func:`pooled_over_seeds`)."""

    gains: dict[str, float]  # benchmark -> mean over seeds of the paired difference, signed so > 0 = m better
    seeds: int  # runs each mean is taken over

    @property
    def wins(self) -> int:
        return sum(g > 0 for g in self.gains.values())

    @property
    def losses(self) -> int:
        return sum(g < 0 for g in self.gains.values())

    @property
    def p(self) -> float:
        from .evaluation.stats import sign_test

        return sign_test(self.wins, self.losses)


def pooled_over_seeds(runs: dict[str, list[dict]], m: str, base: str) -> Pooled:
    """Per benchmark, the mean over seed runs of the paired difference m − base each run recorded (each run
    pairs m with the baseline of its own seed), signed so that > 0 means m is better; benchmarks missing a
    paired difference in any run are left out. The sign test over those means is the pooled test."""
    by_run = [{r["name"]: r for r in rs} for rs in runs.values()]
    names = [r["name"] for r in next(iter(runs.values()), [])]
    gains: dict[str, float] = {}
    for name in names:
        ds = [paired(run[name], m, base) if name in run else None for run in by_run]
        if any(d is None or d.get("diff") is None for d in ds):
            continue
        sign = 1.0 if by_run[0][name]["higher_is_better"] else -1.0
        gains[by_run[0][name]["benchmark"]] = sign * sum(d["diff"] for d in ds) / len(ds)
    return Pooled(gains, len(by_run))


def pooled_section(runs: dict[str, list[dict]], m: str, base: str) -> list[str]:
    t = pooled_over_seeds(runs, m, base)
    if not t.gains:
        return []
    verdict_word = "beats" if t.p < 0.05 and t.wins > t.losses else "does not beat"
    return [
        "",
        f"**Pooled paired test over {t.seeds} seeds × {len(t.gains)} benchmarks.** Per benchmark, the paired "
        f"difference {m} − {base} of each run (each seed against the random baseline of the same seed, on the "
        "same test units) is averaged over the seeds; the exact two-sided sign test then asks whether those means "
        f"favour {m} on more benchmarks than chance would. {m} is better on {t.wins}, worse on {t.losses} "
        f"({len(t.gains) - t.wins - t.losses} ties): p = {t.p:.3g}, so pooled over seeds {m} {verdict_word} "
        f"{base} at p < 0.05. The test weighs each benchmark once, however large its difference.",
        "",
        f"| benchmark | mean paired gain of {m} over {base} (> 0: better) |",
        "|---|---|",
        *(f"| {b} | {g:+.4f} |" for b, g in t.gains.items()),
    ]


def seed_learning_lines(x: Extras) -> list[str]:
    """The EMA encoder's validation probe at step 0 and at the last step, per seed run (its metrics.json)."""
    runs = {f"seed {x.seed} (main)": _final_probe(x.learning), **x.seeds_pretrain}
    rows = [(n, d.get("probe_ema_step0"), d.get("final_probe_ema")) for n, d in runs.items() if d]
    rows = [(n, a, b) for n, a, b in rows if a is not None and b is not None]
    if not rows:
        return []
    above = sum(float(b) > float(a) for _, a, b in rows)
    return [
        "",
        f"Learning diagnostic per seed: the EMA encoder's phase probe on validation clips (never test) at step 0 "
        f"and at the last step; above its step-0 score in {above} of {len(rows)} runs.",
        "",
        "| run | probe EMA, step 0 | probe EMA, last |",
        "|---|---|---|",
        *(f"| {n} | {float(a):.4f} | {float(b):.4f} |" for n, a, b in rows),
    ]


def _final_probe(rows: list[dict]) -> dict:
    """The main run's step-0 and last EMA probe scores from its log (as a seed run's metrics.json names them)."""
    diag = [r for r in learning_rows(rows) if r["probe_ema"]]
    if len(diag) < 2:
        return {}
    return {"probe_ema_step0": diag[0]["probe_ema"], "final_probe_ema": diag[-1]["probe_ema"]}


def _has(by_name: dict[str, dict], bench: str, model: str) -> bool:
    return bench in by_name and model in by_name[bench]["models"]


def distill_section(results: list[dict], x: Extras) -> list[str]:
    d = x.distill
    lines = ["", "## Distillation: teacher vs student", ""]
    shape = "x".join(str(v) for v in d.get("clip_shape", []))
    lines += [
        f"Teachers in the ensemble: {d.get('teachers', 1)}. FLOPs: forward pass of one {shape} clip "
        "(torch FLOP counter). Throughput: clips/s measured by the distill stage on the machine that ran it.",
        "",
        "| model | arch | parameters | GFLOPs / clip | clips / s |",
        "|---|---|---|---|---|",
        f"| teacher ({x.teacher}) | - | {d['teacher_params']:,} | {d.get('teacher_gflops_per_clip', 'n/a')} | "
        f"{d['teacher_clips_per_s']} |",
        f"| student ({x.student}) | {d.get('student_arch', '-')} | {d['student_params']:,} | "
        f"{d.get('student_gflops_per_clip', 'n/a')} | {d['student_clips_per_s']} |",
    ]
    ratios = []
    for r in results:
        (t, _), (s, _) = _primary(r, x.teacher), _primary(r, x.student)
        if t is not None and s is not None and t != 0:
            ratios.append((s / t) if r["higher_is_better"] else (t / s if s else float("nan")))
    if ratios:
        ratios.sort()
        lines += [
            "",
            f"Student quality relative to the teacher (primary metric, higher = better, 1 = equal), median over "
            f"{len(ratios)} benchmarks: {ratios[len(ratios) // 2]:.2f}; "
            f"speed-up {d['student_clips_per_s'] / d['teacher_clips_per_s']:.2f}x; "
            f"parameters {d['teacher_params'] / d['student_params']:.1f}x fewer.",
        ]
    return lines


RANDOM_TEACHER = "random_teacher"  # the student distilled from a random teacher, as ablation/dvc.yaml names it


def random_teacher_section(x: Extras) -> list[str]:
    """`make ablation`'s random-teacher control: the main student, the student distilled from an untrained
    teacher and the untrained student, evaluated in one run, compared in paired terms."""
    rs, student, untrained = x.random_teacher, x.student, x.baselines.get(x.student, "random_student")
    if not rs or not any(RANDOM_TEACHER in r["models"] for r in rs):
        return []
    lines = [
        "",
        "### Is it the teacher? A random-teacher control",
        "",
        f"`make ablation`: `{RANDOM_TEACHER}` is the student's architecture distilled with the same recipe from "
        "an *untrained* teacher of the pretrained teacher's architecture (ablation/params.yaml `random_teacher`). "
        "A student distilled from a random teacher is already better than an untrained one (Sarfi et al., "
        f"*Random teachers are good teachers*), so {student} beating {untrained} alone says nothing about what the "
        f"teacher learned; {student} − {RANDOM_TEACHER} does. The three were evaluated in one run "
        "(same test units, paired 95% bootstrap CIs).",
        "",
        *protocol_lines(rs),
        "",
        "| comparison | better on (counted) | worse on | ties | not counted (better, at or below null) "
        "| sign test p | separated wins | separated losses |",
        "|---|---|---|---|---|---|---|---|",
    ]
    pairs = ((student, RANDOM_TEACHER), (RANDOM_TEACHER, untrained), (student, untrained))
    for m, base in pairs:
        t = tally(rs, m, base)
        if t.rows:
            lines.append(f"| {m} − {base} | {t.cells} |")
    lines += [
        "",
        f"| benchmark | metric | {student} − {RANDOM_TEACHER} | {RANDOM_TEACHER} − {untrained} |",
        "|---|---|---|---|",
    ]
    for r in rs:
        arrow = "↑" if r["higher_is_better"] else "↓"
        lines.append(
            f"| {r['benchmark']} | {r['metric']} {arrow} | {paired_cell(r, student, RANDOM_TEACHER)} "
            f"| {paired_cell(r, RANDOM_TEACHER, untrained)} |"
        )
    return lines


def secondary_section(
    results: list[dict], models: list[str], title: str, note: str, keys: tuple[str, str]
) -> list[str]:
    """A labelled table of two secondary metrics per model ("a / b" per cell), for the benchmarks
    whose results carry the first key; never mixed into the headline table."""
    rs = [r for r in results if any(keys[0] in d["metrics"] for d in r["models"].values())]
    if not rs:
        return []
    lines = ["", f"## {title} (secondary, not the headline)", "", note, ""]
    lines += ["| benchmark | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
    for r in rs:
        cells = []
        for m in models:
            a, b = ((r["models"].get(m) or {}).get("metrics", {}).get(k) for k in keys)
            cells.append(f"{a:.3f} / {b:.3f}" if a is not None and b is not None else "n/a")
        lines.append(f"| {r['benchmark']} | " + " | ".join(cells) + " |")
    return lines


def challenge_section(results: list[dict], models: list[str]) -> list[str]:
    note = (
        "The headline phase metrics are the SurgMotion/scikit-learn per-video macro averages (classes in the "
        "video's truth or prediction). The challenge convention excludes phases absent from a video's truth and "
        "averages each phase over videos, then over phases; it usually scores higher on the same predictions. "
        "Each cell: challenge Jaccard / challenge F1."
    )
    title = "Phase metrics, Cholec80 challenge convention"
    return secondary_section(results, models, title, note, ("challenge_jaccard", "challenge_f1"))


def relaxed_section(results: list[dict], models: list[str]) -> list[str]:
    note = (
        "Challenge-style relaxed boundaries (10 s at the label rate; the reference script's indexing bug fixed). "
        "Each cell: relaxed accuracy / relaxed Jaccard."
    )
    title = "Relaxed-boundary phase metrics"
    return secondary_section(results, models, title, note, ("relaxed_accuracy", "relaxed_jaccard"))


# What "the code" is for provenance: uncommitted changes here make a result unreproducible from the
# commit alone (changes to outputs such as dvc.lock or reports/ do not).
CODE_PATHS = (
    "src",
    "stages",
    "flows",
    "dvc.yaml",
    "params.yaml",
    "sources.yaml",
    "pyproject.toml",
    "requirements.lock",
)


def _git(root: Path, *args: str) -> str | None:
    try:
        res = subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return None
    return res.stdout.strip()


def provenance(root: Path, params_path: Path) -> dict:
    """Git commit (and whether the code has uncommitted changes), ``dvc.lock`` hashes of every
    stage output, and the params file's hash."""
    commit = _git(root, "rev-parse", "--short=12", "HEAD")
    if commit is None:
        commit = "unknown (not a git checkout)"
    else:
        changed = _git(root, "status", "--porcelain", "--", *CODE_PATHS)
        if changed:
            commit += f" + uncommitted changes to {len(changed.splitlines())} code file(s)"
    outs: dict[str, str] = {}
    lock = root / "dvc.lock"
    if lock.exists():
        for stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).values():
            for o in stage.get("outs", []):
                if "md5" in o and not o["path"].startswith("reports/"):
                    outs[o["path"]] = o["md5"]
    params_md5 = hashlib.md5(params_path.read_bytes()).hexdigest() if params_path.exists() else "n/a"
    return {
        "commit": commit,
        "outs": dict(sorted(outs.items())),
        "params": str(params_path),
        "params_md5": params_md5,
        # the built-in corpus behind the main rows and behind the ablation rows (ablation/dvc.lock)
        "corpus": corpus_md5(lock),
        "ablation_corpus": corpus_md5(root / "ablation" / "dvc.lock", stages="evaluate@"),
        "seeds_corpus": stage_corpora(root / "ablation" / "dvc.lock", "seed_evaluate@"),
        "seeds_recipe": recipe_changes(root / "ablation" / "dvc.lock", "seed_pretrain@", params_path),
        "ablation_recipe": recipe_changes(root / "ablation" / "dvc.lock", "pretrain@", params_path),
        # the main checkpoint the continued-pretraining experiment started from, and the current one
        "continued_start": corpus_md5(root / "ablation" / "dvc.lock", CHECKPOINT, stages="continued_further"),
        "main_checkpoint": corpus_md5(lock, CHECKPOINT),
    }


CHECKPOINT = "data/pretrain/checkpoint.pt"


def corpus_md5(lock: Path, path: str = "data/synth", stages: str = "") -> str | None:
    """The md5 that a ``dvc.lock`` records for ``path`` (as an output or dependency of any stage whose
    name starts with ``stages``), if any."""
    if not lock.exists():
        return None
    for name, stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
        if not name.startswith(stages):
            continue
        for entry in [*stage.get("outs", []), *stage.get("deps", [])]:
            if entry.get("path") == path and "md5" in entry:
                return entry["md5"]
    return None


def stage_corpora(lock: Path, prefix: str, path: str = "data/synth") -> dict[str, str]:
    """{item: md5 of ``path``} for every ``<prefix><item>`` stage of a ``dvc.lock`` that records it."""
    found = {}
    if lock.exists():
        for name, stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
            if name.startswith(prefix):
                md5 = next((e["md5"] for e in stage.get("deps", []) if e.get("path") == path and "md5" in e), None)
                if md5:
                    found[name[len(prefix) :]] = md5
    return found


def recipe_changes(lock: Path, prefix: str, params_path: Path, section: str = "pretrain") -> dict[str, list[str]]:
    """{item: the keys of ``section`` whose values in ``params_path`` differ from those the
    ``<prefix><item>`` stage of a ``dvc.lock`` ran with} (empty list: the same recipe). Only the
    params are compared: a change of the code alone is not seen here."""
    if not lock.exists() or not params_path.exists():
        return {}
    current = _numbers((yaml.safe_load(params_path.read_text()) or {}).get(section) or {})
    found = {}
    for name, stage in (yaml.safe_load(lock.read_text()) or {}).get("stages", {}).items():
        ran = ((stage.get("params") or {}).get("params.yaml") or {}).get(section)
        if name.startswith(prefix) and ran is not None:
            ran = _numbers(ran)
            found[name[len(prefix) :]] = sorted(k for k in {*current, *ran} if current.get(k) != ran.get(k))
    return found


def _numbers(v):
    """Params as comparable values: DVC may record a float such as 1e-06 as the string '1e-06'."""
    if isinstance(v, dict):
        return {k: _numbers(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_numbers(x) for x in v]
    if isinstance(v, str):
        try:
            return float(v)
        except ValueError:
            return v
    return v


def machines(results: list[dict]) -> list[str]:
    """The machines the evaluate stage ran on, as its results record them (training on other CPUs
    may differ in the last bits, so a number belongs to its machine)."""
    seen: list[str] = []
    for r in results:
        m = r.get("machine")
        if m:
            desc = f"{m.get('cpu', '?')}, {m.get('cores', '?')} cores, {m.get('accelerator', 'no accelerator')}"
            desc += f"; torch {m.get('torch', '?')}, numpy {m.get('numpy', '?')}"
            if desc not in seen:
                seen.append(desc)
    return seen


def other_machines(x: Extras) -> dict[str, list[str]]:
    """The machines that evaluated each extra section's results (their results record them)."""
    groups = {
        "ablation grid": [r for rs in x.ablation.values() for r in rs],
        "seed runs": [r for rs in x.seeds.values() for r in rs],
        "random-teacher control": x.random_teacher,
        "continued pretraining": (x.continued or {}).get("results", []),
    }
    return {label: machines(rs) for label, rs in groups.items() if machines(rs)}


def provenance_section(
    p: dict, machine: list[str] | None = None, others: dict[str, list[str]] | None = None
) -> list[str]:
    """``others``: the machines behind the other sections' results (ablation, seeds, ...), by section."""
    lines = [
        "",
        "## Provenance",
        "",
        f"- code: git {p['commit']}",
        f"- parameters: {p['params']} (md5 {p['params_md5']})",
    ]
    lines += [f"- evaluated on: {m}" for m in machine or []]
    lines += [f"- {label} evaluated on: {m}" for label, ms in (others or {}).items() for m in ms]
    if p["outs"]:
        lines += ["", "| stage output (dvc.lock) | md5 |", "|---|---|"]
        lines += [f"| {path} | {md5} |" for path, md5 in p["outs"].items()]
    return lines


def load_log(path: Path) -> list[dict]:
    """A training log's rows ([] when there is none yet)."""
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _read_log(path: Path) -> tuple[list[float], list[float]]:
    rows = [r for r in load_log(path) if r.get("loss")]  # the step-0 row has diagnostics, no loss
    return [float(r["step"]) for r in rows], [float(r["loss"]) for r in rows]


LEARNING_COLUMNS = ("probe_online", "probe_ema", "pooled_rank", "pooled_var", "drift_online", "drift_ema")
COPY_COLUMNS = ("pred", "copy_mean", "copy_nearest")
RECIPE_TAIL = 20  # logged steps the recipe table averages the losses over (100 steps at log_every 5)


def learning_rows(rows: list[dict]) -> list[dict]:
    """The diagnostic rows of a pretraining log, each with ``pred``, ``copy_mean`` and ``copy_nearest``
    averaged over the logged steps since the previous diagnostic row (one batch alone is noisy)."""
    out, window = [], []
    for r in rows:
        if r.get("pred") and r.get("copy_mean"):
            window.append(r)
        if r.get("probe_online") or r.get("pooled_rank"):
            means = {k: sum(float(w[k]) for w in window) / len(window) if window else None for k in COPY_COLUMNS}
            out.append({"step": int(r["step"]), **{k: r.get(k, "") for k in LEARNING_COLUMNS}, **means})
            window = []
    return out


def write_recipe(logs: dict[str, Path], switches: dict[str, str], out: Path, machine: str) -> None:
    """reports/recipe.md: the learning diagnostics of the main run and of each recipe candidate (its
    pretraining log), side by side; candidates not run yet are listed as such."""
    lines = [
        "# Recipe candidates: learning diagnostics on validation clips",
        "",
        "Each candidate is the main `params.yaml` with one switch (`ablation/params.yaml` `recipe`), pretrained "
        "on the same clips with the same seed (`make recipe`). They are compared on the learning diagnostics "
        "(README, *Learning diagnostics*): the phase probe's balanced accuracy on a benchmark's *validation* "
        "clips (never test), the pooled rank across those clips, the drift from the initial weights, and the "
        f"prediction loss beside copying, as means over the last {RECIPE_TAIL} logged steps. One seed, and the "
        "probe scores a few dozen validation clips: a difference of a few points is noise, not a choice.",
        "",
        f"Written on: {machine}.",
        "",
        "| run | switch | probe EMA, step 0 | probe EMA, last | probe online, last | pooled rank, last "
        "| drift EMA, last | pred loss | copy: clip mean | copy: nearest |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, path in logs.items():
        switch = f"`{switches[name]}`" if name in switches else "(params.yaml)"
        rows = load_log(path)
        diag = learning_rows(rows)
        if not diag:
            lines.append(f"| {name} | {switch} | not run | | | | | | | |")
            continue
        first, last = diag[0], diag[-1]
        tail = [r for r in rows if r.get("pred") and r.get("copy_mean")][-RECIPE_TAIL:]
        means = [f"{sum(float(r[k]) for r in tail) / len(tail):.4f}" if tail else "–" for k in COPY_COLUMNS]
        cells = [first["probe_ema"], last["probe_ema"], last["probe_online"], last["pooled_rank"], last["drift_ema"]]
        lines.append(f"| {name} | {switch} | " + " | ".join(c or "–" for c in cells) + " | " + " | ".join(means) + " |")
    atomic_write_text(out, "\n".join(lines) + "\n")


def learning_section(rows: list[dict]) -> list[str]:
    """Learning diagnostics of the pretraining run (:mod:`unisurg.training.diagnostics`)."""
    diag = learning_rows(rows)
    if not diag:
        return []
    lines = [
        "",
        "## Does pretraining learn?",
        "",
        "Learning diagnostics of the pretraining run (`data/pretrain/log.csv`). Probe: ridge regression on "
        "mean-pooled features, fitted on a phase benchmark's training clips, balanced accuracy on its "
        "validation clips (never test; chance = 1 / number of phases). Pooled rank and variance are taken "
        "across the probe clips (EMA encoder). Drift is ‖θ − θ₀‖ / ‖θ₀‖. The prediction loss and what "
        "copying would score on the same targets (the clip's mean teacher token; the nearest visible "
        "teacher token) are averaged over the logged steps since the previous row.",
        "",
        "| step | probe online | probe EMA | pooled rank | pooled var | drift online | drift EMA "
        "| pred loss | copy: clip mean | copy: nearest visible |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in diag:
        cells = [r[k] or "–" for k in LEARNING_COLUMNS] + [
            f"{r[k]:.4f}" if r[k] is not None else "–" for k in COPY_COLUMNS
        ]
        lines.append(f"| {r['step']} | " + " | ".join(cells) + " |")
    first, last = diag[0], diag[-1]
    if first["probe_ema"] and last["probe_ema"] and first is not last:
        a, b = float(first["probe_ema"]), float(last["probe_ema"])
        word = "above" if b > a else "not above"
        lines += [
            "",
            f"The EMA encoder's validation probe ends {word} its step-{first['step']} score ({b:.3f} vs {a:.3f}); "
            "one validation split, no confidence interval: a difference of a few clips is noise.",
        ]
    return lines + learning_reading(diag)


def learning_reading(diag: list[dict]) -> list[str]:
    """What the diagnostics say about why the encoder learns little, computed from the rows: does the
    predictor beat copying, and how much of the pooled features' spread across clips survives."""
    out = []
    last = diag[-1]
    if last["pred"] is not None and last["copy_mean"]:
        gain = 1 - last["pred"] / last["copy_mean"]
        out.append(
            f"- Over the last logged steps the prediction loss is {abs(gain):.0%} "
            f"{'below' if gain > 0 else 'above'} what copying the clip's mean teacher token scores "
            f"({last['pred']:.4f} vs {last['copy_mean']:.4f}): the predictor "
            + ("adds little beyond the clip's average." if gain < 0.1 else "uses the context beyond the average.")
        )
    first = diag[0]
    if first["pooled_var"] and last["pooled_var"] and float(first["pooled_var"]) > 0:
        kept = float(last["pooled_var"]) / float(first["pooled_var"])
        out.append(
            f"- The pooled features' variance across the probe clips ends at {kept:.0%} of its step-"
            f"{first['step']} value ({float(last['pooled_var']):.4f} vs {float(first['pooled_var']):.4f}): clips "
            + ("move toward one another (cross-clip collapse)." if kept < 0.5 else "keep their spread.")
        )
    return ["", "Reading the diagnostics:", "", *out] if out else []


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, metadata={"Software": None})
    return base64.b64encode(buf.getvalue()).decode()


@dataclass(frozen=True)
class Figure:
    """An embedded plot of the HTML report, placed before the section headed ``before`` (None: before
    the provenance, which stays last)."""

    caption: str
    png: str  # base64
    before: str | None = None


def plots(
    results: list[dict],
    models: list[str],
    logs: dict[str, Path],
    curation: dict | None,
    baselines: dict[str, str] | None = None,
) -> list[Figure]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = [
        Figure(
            "Primary metric per benchmark, one panel per task family and metric (95% CI)",
            _png(family_plot(plt, results, models)),
            before="Per task family (mean of the primary metric)",
        )
    ]
    plt.close("all")
    curves = [(name, _read_log(path)) for name, path in logs.items()]
    curves = [(name, xy) for name, xy in curves if xy[0]]
    if curves:
        # each stage's loss on its own axis: pretraining's and distillation's losses are different quantities
        fig, axes = plt.subplots(1, len(curves), figsize=(5 * len(curves), 3), squeeze=False)
        for ax, (name, (x, y)) in zip(axes[0], curves):
            ax.plot(x, y)
            ax.set_xlabel("step")
            ax.set_ylabel(f"{name} loss")
        fig.tight_layout()
        out.append(Figure("Training curves", _png(fig)))
        plt.close(fig)
    diag = learning_rows(load_log(logs["pretrain"])) if "pretrain" in logs else []
    if diag:
        out.append(
            Figure(
                "Learning diagnostics: validation probe and prediction loss against copying",
                _png(learning_plot(plt, diag)),
                before="Does pretraining learn?",
            )
        )
        plt.close("all")
    for m, base in (baselines or {}).items():
        fig = paired_plot(plt, results, m, base)
        if fig is not None:
            cap = f"Paired difference {m} − {base} per benchmark (95% CI; right of 0 = {m} better)"
            out.append(Figure(cap, _png(fig)))
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
        out.append(Figure("Curated hours per region and per source", _png(fig)))
        plt.close(fig)
    return out


def learning_plot(plt, diag: list[dict]):
    """Left: the phase probe's validation balanced accuracy against step, online and EMA encoder.
    Right: the prediction loss beside the two copy baselines (window means, :func:`learning_rows`)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.2))
    for k, label in (("probe_online", "online encoder"), ("probe_ema", "EMA encoder")):
        pts = [(r["step"], float(r[k])) for r in diag if r[k]]
        if pts:
            left.plot(*zip(*pts), "o-", label=label)
    left.set_xlabel("step")
    left.set_ylabel("phase probe (val, balanced acc.)")
    left.legend(fontsize=8)
    for k, label in (
        ("pred", "prediction"),
        ("copy_mean", "copy: clip mean"),
        ("copy_nearest", "copy: nearest visible"),
    ):
        pts = [(r["step"], r[k]) for r in diag if r[k] is not None]
        if pts:
            right.plot(*zip(*pts), "o-", label=label)
    right.set_xlabel("step")
    right.set_ylabel("latent L1 at the targets")
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def family_plot(plt, results: list[dict], models: list[str]):
    """One panel per (task family, metric): each model's score with its 95% CI per benchmark, the null
    as a grey cross; the panel names its metric and direction, so no axis mixes accuracy with AbsRel."""
    groups = family_groups(results)
    cols = min(3, len(groups))
    rows = -(-len(groups) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    width = 0.7 / max(len(models), 1)
    for ax, ((fam, metric, higher), rs) in zip(axes.flat, groups.items()):
        for k, m in enumerate(models):
            xs, ys, err = [], [], [[], []]
            for i, r in enumerate(rs):
                d = r["models"].get(m)
                if not d or d["value"] is None:
                    continue
                lo, hi = d.get("ci") or (None, None)
                xs.append(i - 0.35 + (k + 0.5) * width)
                ys.append(d["value"])
                err[0].append(d["value"] - lo if lo is not None else 0.0)
                err[1].append(hi - d["value"] if hi is not None else 0.0)
            ax.errorbar(xs, ys, yerr=err, fmt="o", ms=4, capsize=2, label=m, color=f"C{k}")
        nulls = [(i, r["null"]["value"]) for i, r in enumerate(rs) if r.get("null") and r["null"]["value"] is not None]
        if nulls:
            ax.plot(*zip(*nulls), "x", color="grey", ms=7, label="null")
        ax.set_xticks(range(len(rs)), [r["benchmark"] for r in rs], rotation=30, ha="right", fontsize=7)
        ax.set_title(f"{fam} — {metric} {'↑' if higher else '↓'}", fontsize=9)
        ax.tick_params(axis="y", labelsize=7)
    for ax in list(axes.flat)[len(groups) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    return fig


def paired_plot(plt, results: list[dict], m: str, base: str):
    """Point + 95% CI of the paired difference per benchmark, oriented so right = m better (↓ metrics
    negated), with the zero line; benchmarks without a CI show the point alone."""
    rows = [(r, paired(r, m, base)) for r in results]
    rows = [(r, d) for r, d in rows if d and d.get("diff") is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.3 * len(rows) + 1.2))
    for i, (r, d) in enumerate(rows):
        sign = 1.0 if r["higher_is_better"] else -1.0
        y = len(rows) - 1 - i
        lo, hi = d["ci"]
        if lo is not None and hi is not None:
            ax.plot(sorted((sign * lo, sign * hi)), [y, y], color="tab:blue", lw=2)
        ax.plot(sign * d["diff"], y, "o", color="tab:red" if d.get("separated") else "tab:blue")
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_yticks(range(len(rows)), [f"{r['benchmark']} ({r['metric']})" for r, _ in rows][::-1], fontsize=7)
    ax.set_xlabel(f"{m} − {base} (oriented: > 0 is better)")
    fig.tight_layout()
    return fig


def render_html(md: str, figures: list[Figure], title: str) -> str:
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

    def place(before: str | None) -> None:
        for f in [f for f in pending if f.before == before]:
            cap = html.escape(f.caption)
            body.append(f'<h2>{cap}</h2><img alt="{cap}" src="data:image/png;base64,{f.png}">')
            pending.remove(f)

    headings = {line[3:] for line in md.splitlines() if line.startswith("## ")}
    # a figure whose section is absent goes with the rest, before the provenance
    pending = [f if f.before in headings else Figure(f.caption, f.png) for f in figures]
    for line in md.splitlines():
        if line.startswith("|"):
            table.append(line)
            continue
        flush()
        if line.startswith("## "):
            place(line[3:])
            if line[3:] == "Provenance":
                place(None)
        if line.startswith("# "):
            body.append(f"<h1>{html.escape(line[2:])}</h1>")
        elif line.startswith("## "):
            body.append(f"<h2>{html.escape(line[3:])}</h2>")
        elif line.startswith("- "):
            body.append(f"<p>• {html.escape(line[2:])}</p>")
        elif line.strip():
            body.append(f"<p>{html.escape(line)}</p>")
    flush()
    place(None)  # no provenance section: the figures close the page
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


def build_report(metrics_dir: Path, out_dir: Path, logs: dict[str, Path], extras: Extras, title: str) -> dict:
    results = load_results(metrics_dir)
    if not results:
        raise FileNotFoundError(f"no <benchmark>.json results under {metrics_dir}")
    models = sorted({m for r in results for m in r["models"]})
    md = markdown(results, models, extras, title)
    atomic_write_text(out_dir / "benchmark.md", md)
    baselines = {m: b for m, b in extras.baselines.items() if m in models and b in models}
    figures = plots(results, models, logs, extras.curation, baselines)
    atomic_write_text(out_dir / "index.html", render_html(md, figures, title))
    return {"benchmarks": len(results), "models": models}
