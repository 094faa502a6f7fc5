"""Prefect flow: run the DVC pipeline stage by stage and publish the benchmark report.

Each stage is one task that shells out to ``dvc repro <stage>`` (DVC decides what reruns;
Prefect adds scheduling, retries of transient failures, run history and artifacts); the
evaluation runs one task per benchmark. A failing stage fails its task and the flow. The
stages themselves never talk to Prefect. Artifacts: ``pipeline-progress`` (updated after every
stage while the run goes on), ``benchmark-report`` (reports/benchmark.md) and
``benchmark-summary`` (one row per benchmark, one column per encoder).

    python flows/pipeline.py                 # run once (temporary local Prefect server)
    prefect server start                     # UI on http://127.0.0.1:4200, then see flows/serve.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)

STAGES = ("synth", "curate", "pretrain", "distill", "evaluate", "report")


def stage_env() -> dict[str, str]:
    """Environment for stage subprocesses: this interpreter's bin first (so `python` in dvc.yaml is
    the same environment), no telemetry, and no Prefect server of their own."""
    env = dict(os.environ)
    env["PATH"] = str(Path(sys.executable).parent) + os.pathsep + env.get("PATH", "")
    env["DVC_NO_ANALYTICS"] = "1"
    return env


@task(name="dvc-repro", task_run_name="dvc repro {stage}")
def dvc_repro(stage: str, project_dir: str) -> str:
    """Reproduce one stage (a foreach group such as ``evaluate`` runs all its items)."""
    logger = get_run_logger()
    cmd = [sys.executable, "-m", "dvc", "repro", stage]
    proc = subprocess.run(cmd, cwd=project_dir, env=stage_env(), capture_output=True, text=True)
    tail = (proc.stdout + proc.stderr)[-4000:]
    if proc.returncode != 0:
        raise RuntimeError(f"`dvc repro {stage}` failed with exit code {proc.returncode}:\n{tail}")
    logger.info("dvc repro %s finished:\n%s", stage, tail[-1500:])
    return tail


def expand(stages: list[str], project: Path) -> list[str]:
    """``evaluate`` -> ``evaluate@<name>`` per benchmark of params.yaml, so progress moves per benchmark."""
    out = []
    for stage in stages:
        if stage == "evaluate":
            params = yaml.safe_load((project / "params.yaml").read_text(encoding="utf-8"))
            out += [f"evaluate@{name}" for name in params["evaluate"]["benchmarks"]]
        else:
            out.append(stage)
    return out


def summary_rows(metrics_dir: Path) -> list[dict]:
    """One row per benchmark (registry order): its primary metric for every encoder."""
    from unisurg.report import load_results

    rows = []
    for r in load_results(metrics_dir):
        arrow = "↑" if r["higher_is_better"] else "↓"
        row = {"benchmark": r["benchmark"], "metric": f"{r['metric']} {arrow}"}
        row.update({m: d["value"] for m, d in sorted(r["models"].items())})
        rows.append(row)
    return rows


@flow(name="unisurg-pipeline", log_prints=False)
def pipeline(project_dir: str = ".", stages: list[str] | None = None) -> str:
    """Curate -> pretrain -> distill -> evaluate -> report, then post the report as artifacts."""
    project = Path(project_dir).resolve()
    steps = expand(stages or list(STAGES), project)
    progress = create_progress_artifact(
        progress=0.0, key="pipeline-progress", description=f"{len(steps)} DVC stages: {', '.join(steps)}"
    )
    for k, step in enumerate(steps, 1):
        dvc_repro(step, str(project))
        update_progress_artifact(progress, progress=100.0 * k / len(steps))
    markdown = (project / "reports" / "benchmark.md").read_text(encoding="utf-8")
    create_markdown_artifact(
        key="benchmark-report", markdown=markdown, description="UniSurg benchmark table (reports/benchmark.md)"
    )
    create_table_artifact(
        key="benchmark-summary",
        table=summary_rows(project / "reports" / "metrics"),
        description="primary metric per benchmark and encoder (test split)",
    )
    return markdown


if __name__ == "__main__":
    pipeline()
