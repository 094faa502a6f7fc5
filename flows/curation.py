"""Prefect flow: curate a set of video sources, probing files in parallel as Prefect tasks.

The flow fans probing out over a Prefect task runner — ``thread`` or ``process`` pools on one
machine, or a Dask / Ray cluster by address for many (``dask:tcp://scheduler:8786``,
``ray:ray://head:10001``; these need the prefect-dask / prefect-ray packages) — then builds the
same index and quality gate as ``unisurg curate``: the logic lives in ``unisurg.curation.index``; this
file only orchestrates. Schedule it (e.g. nightly) from ``flows/serve.py`` to index a hospital
archive as it grows.

    python flows/curation.py --sources sources.yaml --out data/curate [--task-runner process]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from unisurg.cli import configure_logging, guarded
from unisurg.config import load_params
from unisurg.curation.gate import run_gate
from unisurg.curation.index import InspectJob, curate, inspect_job
from unisurg.curation.inspection import VideoInfo
from unisurg.curation.sources import load_sources, registry_path
from unisurg.errors import UsageError


@task(name="inspect-video", task_run_name="inspect {job.path}", retries=2, retry_delay_seconds=5)
def inspect_task(job: InspectJob, motion_step: int) -> VideoInfo:
    """Inspect one video (file-system reads can fail transiently on network storage: retried)."""
    return inspect_job(job, motion_step=motion_step)


def task_map(fn, jobs: list[InspectJob]) -> list[VideoInfo]:
    """The curation inspection map, as Prefect tasks submitted to the flow's task runner."""
    motion_step = fn.keywords.get("motion_step", 0)
    futures = inspect_task.map(jobs, motion_step=motion_step)
    return [f.result() for f in futures]


def make_task_runner(spec: str, workers: int = 4):
    """``thread`` | ``process`` | ``dask:<scheduler address>`` | ``ray:<cluster address>``."""
    kind, _, address = spec.partition(":")
    if kind == "thread" and not address:
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "process" and not address:
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind in ("dask", "ray") and address:
        try:
            if kind == "dask":
                from prefect_dask import DaskTaskRunner

                return DaskTaskRunner(address=address)
            from prefect_ray import RayTaskRunner

            return RayTaskRunner(address=address)
        except ImportError:
            raise UsageError(
                f"--task-runner {spec} needs the prefect-{kind} package (pip install prefect-{kind})"
            ) from None
    raise UsageError(f"unknown task runner {spec!r}: thread, process, dask:<address> or ray:<address>")


@flow(name="unisurg-curation", task_runner=ThreadPoolTaskRunner(max_workers=4))
def curation(sources: str | None = None, out: str = "data/curate", params: str | None = None) -> dict:
    """Inspect every video of the registry in parallel, build the index, run the quality gate.

    ``sources`` None: ``curate.sources`` of the parameters; ``params`` None: ./params.yaml if present,
    else the defaults (as ``unisurg curate``)."""
    logger = get_run_logger()
    c = load_params(params).curate
    metrics = curate(
        load_sources(registry_path(sources, c.sources)),
        Path(out),
        c.clip_frames,
        c.frame_step,
        c.clip_stride_s,
        c.min_seconds,
        c.workers,
        c.motion_step,
        c.balance,
        inspect_map=task_map,
    )
    checks = run_gate(Path(out))
    logger.info(
        "curation: %d videos kept, %d clips, %d quarantined; %d quality checks passed",
        metrics["videos_kept"],
        metrics["clips"],
        metrics["quarantined"],
        len(checks),
    )
    create_table_artifact(
        key="curation-by-region",
        table=[{"region": r, **v} for r, v in metrics["by_region"].items()],
        description=f"{metrics['videos_kept']} videos kept, {metrics['clips']} clips, "
        f"{metrics['quarantined']} quarantined",
    )
    return metrics


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description="run the curation flow once", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    ap.add_argument("--sources", default=None, help="source registry (default: curate.sources of the parameters)")
    ap.add_argument("--out", default="data/curate", help="output folder")
    ap.add_argument("--params", default=None, help="pipeline parameters (default: ./params.yaml if present)")
    ap.add_argument("--task-runner", default="thread", help="thread, process, dask:<address> or ray:<address>")
    ap.add_argument("--workers", type=int, default=4, help="threads or processes (local task runners)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs; tracebacks")
    a = ap.parse_args()
    configure_logging(a.verbose)

    def run() -> int:
        # the user's mistakes (a missing registry or params file, a bad task runner) before Prefect starts
        load_sources(registry_path(a.sources, load_params(a.params).curate.sources))
        flow_ = curation.with_options(task_runner=make_task_runner(a.task_runner, a.workers))
        flow_(sources=a.sources, out=a.out, params=a.params)
        return 0

    sys.exit(guarded(run, a.verbose))
