"""Prefect flow: run the DVC pipeline stage by stage and publish the benchmark report.

Each stage is one task that shells out to ``dvc repro <stage>`` (DVC decides what reruns;
Prefect adds scheduling, retries of transient failures, run history and artifacts). A
failing stage fails its task and the flow. The stages themselves never talk to Prefect.

    python flows/pipeline.py                 # run once (temporary local Prefect server)
    prefect server start                     # UI on http://127.0.0.1:4200, then see flows/serve.py
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact

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


@flow(name="unisurg-pipeline", log_prints=False)
def pipeline(project_dir: str = ".", stages: list[str] | None = None) -> str:
    """Curate -> pretrain -> distill -> evaluate -> report, then post the report as an artifact."""
    project = str(Path(project_dir).resolve())
    for stage in stages or list(STAGES):
        dvc_repro(stage, project)
    report = Path(project) / "reports" / "benchmark.md"
    markdown = report.read_text(encoding="utf-8")
    create_markdown_artifact(
        key="benchmark-report", markdown=markdown, description="UniSurg benchmark table (reports/benchmark.md)"
    )
    return markdown


if __name__ == "__main__":
    pipeline()
