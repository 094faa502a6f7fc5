"""Register the unisurg deployments with a Prefect server and serve them.

    prefect server start                      # UI on http://127.0.0.1:4200
    PREFECT_API_URL=http://127.0.0.1:4200/api python flows/serve.py

Two deployments, schedules from ``params.yaml`` (section ``orchestration``):
- ``unisurg-curation/nightly-curation``: index the sources of ``sources.yaml``;
- ``unisurg-pipeline/weekly-benchmark``: the whole DVC pipeline, report posted as an artifact.
Runs, logs and artifacts appear in the UI; a run can also be triggered from there.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from prefect import serve
from prefect.schedules import Cron

from flows.curation import curation
from flows.pipeline import pipeline
from unisurg.config import load_params


def deployments(params: str = "params.yaml", project_dir: str = "."):
    """The RunnerDeployments, parameters and schedules taken from ``params.yaml``."""
    o = load_params(params).orchestration
    project = str(Path(project_dir).resolve())
    return [
        curation.to_deployment(
            name="nightly-curation",
            schedule=Cron(o.curation_cron, timezone=o.timezone),
            parameters={
                "sources": str(Path(project, "sources.yaml")),
                "out": str(Path(project, "data", "curate")),
                "params": str(Path(project, params)),
            },
            description="Index the video sources of sources.yaml (quarantine, dedup, leakage guard, quality gate).",
            tags=["unisurg", "curation"],
        ),
        pipeline.to_deployment(
            name="weekly-benchmark",
            schedule=Cron(o.benchmark_cron, timezone=o.timezone),
            parameters={"project_dir": project},
            description="dvc repro of the whole pipeline; posts reports/benchmark.md as an artifact.",
            tags=["unisurg", "benchmark"],
        ),
    ]


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description="serve the unisurg deployments")
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--project-dir", default=".")
    a = ap.parse_args()
    serve(*deployments(a.params, a.project_dir))
