"""Prefect flow: curate a set of video sources, inspecting files in parallel.

On one machine the inspection fans out as one Prefect task per video over a ``thread`` or
``process`` task runner (or a Dask cluster: ``dask:tcp://scheduler:8786``, with prefect-dask). On a
Ray cluster (``ray:HOST:PORT``) it runs as *one* Prefect task that sends batches of videos to Ray
(``unisurg.cluster.curation``) and reports its progress as a progress artifact: at a hundred thousand
videos, one task run per video would put more into Prefect's database than the work is worth. Then
the flow builds the same index and quality gate as ``unisurg curate`` — the same bytes on every
engine: the logic lives in ``unisurg.curation.index``; this file only orchestrates. Schedule it
(e.g. nightly) from ``flows/serve.py`` to index a hospital archive as it grows.

    python flows/curation.py --sources sources.yaml --out data/curate [--task-runner process | ray:HOST:PORT]
"""

from __future__ import annotations

import argparse
import shutil
import sys
from functools import partial
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

from unisurg.cli import configure_logging, guarded
from unisurg.config import load_params
from unisurg.curation.gate import run_gate
from unisurg.curation.index import InspectJob, curate_with, inspect_job
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


@task(name="inspect-on-ray", task_run_name="inspect {n} videos on Ray")
def inspect_on_ray(jobs: list[InspectJob], motion_step: int, address: str, state: str, n: int) -> list[VideoInfo]:
    """Every video, in batches of Ray tasks (``unisurg.cluster.curation``), with a progress artifact."""
    from unisurg.cluster.curation import RayInspect

    artifact = create_progress_artifact(progress=0.0, key="curation-inspection", description=f"{n} videos on {address}")

    def progress(done: int, total: int) -> None:
        update_progress_artifact(artifact, progress=100.0 * done / max(total, 1))

    return RayInspect(address, Path(state), progress=progress)(partial(inspect_job, motion_step=motion_step), jobs)


def ray_map(address: str, state: Path):
    """The curation inspection map as one Prefect task driving batches on the Ray cluster at ``address``."""

    def run(fn, jobs: list[InspectJob]) -> list[VideoInfo]:
        return inspect_on_ray(jobs, fn.keywords.get("motion_step", 0), address, str(state), len(jobs))

    return run


def make_task_runner(spec: str, workers: int = 4):
    """``thread`` | ``process`` | ``dask:<scheduler address>`` (``ray:<address>`` is not a task runner
    here: the flow's ``ray_address``)."""
    kind, _, address = spec.partition(":")
    if kind == "thread" and not address:
        return ThreadPoolTaskRunner(max_workers=workers)
    if kind == "process" and not address:
        return ProcessPoolTaskRunner(max_workers=workers)
    if kind == "dask" and address:
        try:
            from prefect_dask import DaskTaskRunner
        except ImportError:
            raise UsageError(
                f"--task-runner {spec} needs the prefect-dask package (pip install prefect-dask)"
            ) from None
        return DaskTaskRunner(address=address)
    raise UsageError(f"unknown task runner {spec!r}: thread, process, dask:<address> or ray:<address>")


@flow(name="unisurg-curation", task_runner=ThreadPoolTaskRunner(max_workers=4))
def curation(
    sources: str | None = None, out: str = "data/curate", params: str | None = None, ray_address: str | None = None
) -> dict:
    """Inspect every video of the registry in parallel, build the index, run the quality gate.

    ``sources`` None: ``curate.sources`` of the parameters; ``params`` None: ./params.yaml if present,
    else the defaults (as ``unisurg curate``). ``ray_address``: inspect on that Ray cluster instead of
    this flow's task runner."""
    logger = get_run_logger()
    c = load_params(params).curate
    state = Path(out) / ".inspect"
    metrics = curate_with(
        c,
        load_sources(registry_path(sources, c.sources)),
        Path(out),
        ray_map(ray_address, state) if ray_address else task_map,
    )
    shutil.rmtree(state, ignore_errors=True)  # the finished Ray batches have served
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
    ap.add_argument(
        "--task-runner", default="thread", help="thread, process, dask:<address> or ray:<address> (HOST:PORT or auto)"
    )
    ap.add_argument("--workers", type=int, default=4, help="threads or processes (local task runners)")
    ap.add_argument("-v", "--verbose", action="store_true", help="debug logs; tracebacks")
    a = ap.parse_args()
    configure_logging(a.verbose)

    def run() -> int:
        # the user's mistakes (a missing registry or params file, a bad task runner) before Prefect starts
        load_sources(registry_path(a.sources, load_params(a.params).curate.sources))
        kind, _, address = a.task_runner.partition(":")
        if kind == "ray":
            if not address:
                raise UsageError("--task-runner ray needs the cluster's address: ray:HOST:PORT or ray:auto")
            curation(sources=a.sources, out=a.out, params=a.params, ray_address=address)
            return 0
        flow_ = curation.with_options(task_runner=make_task_runner(a.task_runner, a.workers))
        flow_(sources=a.sources, out=a.out, params=a.params)
        return 0

    sys.exit(guarded(run, a.verbose))
