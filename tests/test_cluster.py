"""Curation and feature extraction on a real Ray cluster: a head and a worker node started as separate
processes (``ray start``) on free local ports, each in its own temporary directory, stopped at the end
even when a test fails. Outputs are byte-identical to the local engines'; a killed worker node, a
killed driver and a worker-killing video are survived."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from unisurg.cluster.curation import RayInspect
from unisurg.cluster.local import LocalCluster
from unisurg.curation.index import curate, inspect_job
from unisurg.curation.sources import Source

pytestmark = pytest.mark.slow  # clusters take ~15 s to start on 2 cores
OUTPUTS = ("videos.parquet", "clips.parquet", "quarantine.parquet", "curation.json")
# the workers unpickle this module's test callables: they need its folder on their path
WORKER_ENV = {"PYTHONPATH": os.pathsep.join(sys.path)}


@pytest.fixture(scope="module")
def cluster():
    """A head with one CPU slot and one worker node with one: two raylets, two worker pools."""
    with LocalCluster(head_cpus=1, worker_cpus=[1], env=WORKER_ENV) as c:
        yield c
    assert not c._pids(), "processes of the cluster survived its stop()"


@pytest.fixture(scope="module")
def archive(corpus, tmp_path_factory) -> list[Source]:
    """Two pretraining folders with a duplicate and broken files, and Cholec80 as a benchmark source
    (held-out videos hashed finely, a leak guard to run)."""
    base = tmp_path_factory.mktemp("archive")
    pre = base / "hospital"
    shutil.copytree(corpus / "pretrain" / "hospital_a_lapchole", pre / "lapchole")
    shutil.copytree(corpus / "pretrain" / "gi_unit_colonoscopy", pre / "colon")
    first = sorted(pre.rglob("*.mp4"))[0]
    shutil.copy(first, pre / "exact_copy.mp4")
    (pre / "empty.mp4").write_bytes(b"")
    (pre / "random.mp4").write_bytes(np.random.default_rng(0).bytes(4096))
    (pre / "truncated.mp4").write_bytes(first.read_bytes()[: first.stat().st_size // 3])
    bench = corpus / "benchmarks" / "cholec80"
    return [
        Source(name="hospital", root=str(pre), region="gallbladder", procedure="chole", license="x"),
        Source(
            name="cholec80",
            root=str(bench),
            glob="videos/*.mp4",
            region="gallbladder",
            procedure="chole",
            license="x",
            role="benchmark:cholec80",
        ),
    ]


def _curate(sources, out: Path, workers: int = 1, inspect_map=None) -> dict:
    return curate(sources, out, 8, 2, 1.0, 1.0, workers, motion_step=2, inspect_map=inspect_map)


@pytest.fixture(scope="module")
def reference(archive, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("local") / "out"
    _curate(archive, out, workers=1)
    return out


def _same_outputs(a: Path, b: Path) -> None:
    for f in OUTPUTS:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


class Slow:
    """Inspection that takes ``seconds`` longer per video and leaves a marker per call in ``calls``
    (which node ran it): a picklable callable, as Ray ships it to the workers."""

    def __init__(self, seconds: float, calls: Path) -> None:
        self.seconds, self.calls = seconds, calls

    def __call__(self, job):
        import ray

        node = ray.get_runtime_context().get_node_id() if ray.is_initialized() else "local"
        (self.calls / f"{Path(job.path).name}.{os.getpid()}.{node}").touch()
        time.sleep(self.seconds)
        return inspect_job(job, motion_step=2)


class KillsItsWorker:
    """Inspection whose process dies on one file, as a decoder segfault would kill it."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __call__(self, job):
        if Path(job.path).name == self.name:
            os.kill(os.getpid(), signal.SIGSEGV)
        return inspect_job(job, motion_step=2)


def test_ray_curation_is_byte_identical_to_the_local_engines(cluster, archive, reference, tmp_path):
    _curate(archive, tmp_path / "pool", workers=2)
    _same_outputs(reference, tmp_path / "pool")
    engine = RayInspect(cluster.address, tmp_path / "ray" / ".inspect", batch_size=3)
    _curate(archive, tmp_path / "ray", inspect_map=engine)
    _same_outputs(reference, tmp_path / "ray")
    assert len(list(engine.state.glob("*.npz"))) == -(-sum(1 for _ in _jobs(archive)) // 3)
    engine.done()
    assert not engine.state.exists()


def _jobs(archive):
    from unisurg.curation.index import list_files

    return [p for s in archive for p in list_files(s)]


def test_a_video_that_kills_its_worker_is_quarantined_and_its_batch_finishes(cluster, archive, reference, tmp_path):
    engine = RayInspect(cluster.address, tmp_path / "state", batch_size=4, max_retries=1)

    def crashing(fn, jobs):
        return engine(KillsItsWorker("exact_copy.mp4"), jobs)

    _curate(archive, tmp_path / "out", inspect_map=crashing)
    q = pq.read_table(tmp_path / "out" / "quarantine.parquet").to_pylist()
    crashed = [r for r in q if r["path"].endswith("exact_copy.mp4")]
    assert len(crashed) == 1 and "worker process died twice" in crashed[0]["reason"]
    ref = {r["path"]: r for r in pq.read_table(reference / "videos.parquet").to_pylist()}
    got = {r["path"]: r for r in pq.read_table(tmp_path / "out" / "videos.parquet").to_pylist()}
    assert got.keys() == ref.keys()
    # every other video, its batch-mates included, was inspected as locally
    for path, row in got.items():
        if not path.endswith("exact_copy.mp4"):
            assert row["sha256"] == ref[path]["sha256"] and row["signature"] == ref[path]["signature"], path


def test_a_killed_driver_is_rerun_without_redoing_finished_batches(cluster, archive, reference, tmp_path):
    calls1, calls2 = tmp_path / "calls1", tmp_path / "calls2"
    calls1.mkdir()
    calls2.mkdir()
    state = tmp_path / "out" / ".inspect"
    script = tmp_path / "driver.py"
    script.write_text(
        "import pickle, sys\n"
        "from unisurg.cluster.curation import RayInspect\n"
        "from unisurg.curation.index import curate\n"
        "sources, out, address, slow = pickle.load(open(sys.argv[1], 'rb'))\n"
        "engine = RayInspect(address, out / '.inspect', batch_size=2)\n"
        "curate(sources, out, 8, 2, 1.0, 1.0, 1, motion_step=2, inspect_map=lambda fn, jobs: engine(slow, jobs))\n"
        "engine.done()\n"
    )
    import pickle

    args = tmp_path / "args.pkl"
    args.write_bytes(pickle.dumps((archive, tmp_path / "out", cluster.address, Slow(0.4, calls1))))
    env = {**os.environ, **WORKER_ENV}
    driver = subprocess.Popen([sys.executable, str(script), str(args)], env=env)
    try:
        deadline = time.time() + 120
        while len(list(state.glob("*.npz"))) < 2 and time.time() < deadline and driver.poll() is None:
            time.sleep(0.2)
        assert driver.poll() is None, "the driver finished before it could be killed"
        driver.kill()  # kill -9: no cleanup of any kind
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    finished = {p.name: p.stat().st_mtime_ns for p in state.glob("*.npz")}
    assert len(finished) >= 2 and not (tmp_path / "out" / "videos.parquet").exists()
    engine = RayInspect(cluster.address, state, batch_size=2)
    _curate(archive, tmp_path / "out", inspect_map=lambda fn, jobs: engine(Slow(0.0, calls2), jobs))
    _same_outputs(reference, tmp_path / "out")
    assert {p.name: p.stat().st_mtime_ns for p in state.glob("*.npz") if p.name in finished} == finished
    redone = {c.name.split(".mp4")[0] for c in calls2.iterdir()}
    total = len(_jobs(archive))
    assert len(redone) <= total - 2 * len(finished)  # the finished batches' videos were not inspected again


FEATURES = ["--encoder", "random:vit_pico", "--frames", "4", "--fps", "4", "--stride", "2", "--size", "32"]


@pytest.fixture(scope="module")
def feature_videos(corpus, tmp_path_factory) -> list[Path]:
    """Six real videos and an unreadable one, in their own folder."""
    folder = tmp_path_factory.mktemp("feature_videos")
    src = sorted((corpus / "pretrain").rglob("*.mp4"))[:6]
    for v in src:
        shutil.copy(v, folder / f"{v.parent.name}_{v.name}")
    (folder / "zz_broken.mp4").write_bytes(b"\x00" * 4000)
    return sorted(folder.glob("*.mp4"))


def test_features_on_ray_give_the_local_rows_and_a_rerun_reuses_finished_shards(cluster, feature_videos, tmp_path):
    from unisurg.cli import main

    vids = [str(v) for v in feature_videos]
    assert main(["features", "extract", *vids, *FEATURES, "--out", str(tmp_path / "local.parquet")]) == 0
    ray_args = ["--engine", "ray", "--address", cluster.address, "--shard-size", "2"]
    assert main(["features", "extract", *vids, *FEATURES, *ray_args, "--out", str(tmp_path / "ray.parquet")]) == 0
    local, remote = pq.read_table(tmp_path / "local.parquet"), pq.read_table(tmp_path / "ray.parquet")
    assert remote.schema == local.schema  # same columns, types and metadata (encoder, weights, windows)
    for col in ("video", "window", "t_start", "t_end"):
        assert remote[col].to_pylist() == local[col].to_pylist(), col
    a, b = (
        np.stack(local["embedding"].to_numpy(zero_copy_only=False)),
        np.stack(remote["embedding"].to_numpy(zero_copy_only=False)),
    )
    assert np.allclose(a, b, atol=1e-5)  # one torch thread per actor vs two here: the last bits may differ
    skipped = pq.read_table(tmp_path / "ray.skipped.parquet").to_pydict()
    assert skipped["video"] == [vids[-1]] and skipped == pq.read_table(tmp_path / "local.skipped.parquet").to_pydict()
    assert not (tmp_path / "ray.parts").exists()  # the sidecar is removed once the file is whole


def test_a_killed_feature_driver_is_rerun_without_redoing_finished_shards(cluster, feature_videos, tmp_path, caplog):
    from unisurg.cli import main

    many = tmp_path / "many"
    many.mkdir()
    for r in range(3):  # 21 videos, one per shard: seconds of work to kill the driver in
        for v in feature_videos:
            shutil.copy(v, many / f"{r}_{v.name}")
    args = [
        "features",
        "extract",
        str(many),
        "--encoder",
        "random:vit_small",
        "--frames",
        "8",
        "--fps",
        "8",
        "--stride",
        "0.5",
        "--size",
        "64",
        "--batch-size",
        "4",
    ]
    ray_args = ["--engine", "ray", "--address", cluster.address, "--shard-size", "1"]
    out = tmp_path / "f.parquet"
    driver = subprocess.Popen(
        [sys.executable, "-m", "unisurg", *args, *ray_args, "--out", str(out)], env={**os.environ, **WORKER_ENV}
    )
    manifests = list((tmp_path / "f.parts").glob("*/ray/manifest.json"))
    try:
        deadline = time.time() + 180
        while time.time() < deadline and driver.poll() is None:
            manifests = list((tmp_path / "f.parts").glob("*/ray/manifest.json"))
            if manifests and len(json.loads(manifests[0].read_text())["done"]) >= 2:
                break
            time.sleep(0.05)
        assert driver.poll() is None, "the driver finished before it could be killed"
        driver.kill()
        driver.wait()
    finally:
        if driver.poll() is None:
            driver.kill()
    finished = set(json.loads(manifests[0].read_text())["done"])
    assert len(finished) >= 2 and not out.exists()
    caplog.set_level("INFO", logger="unisurg")
    assert main([*args, *ray_args, "--out", str(out)]) == 0
    assert f"{len(finished)} of 21 shards finished by an earlier run" in caplog.text
    redone = {m.group(1) for m in re.finditer(r"shard (\d+) done", caplog.text)}
    assert redone and not redone & finished and len(redone) == 21 - len(finished)
    assert main([*args, "--out", str(tmp_path / "local.parquet")]) == 0
    local, resumed = pq.read_table(tmp_path / "local.parquet"), pq.read_table(out)
    assert resumed["video"].to_pylist() == local["video"].to_pylist()
    assert resumed["t_start"].to_pylist() == local["t_start"].to_pylist()


def test_the_curate_command_runs_on_ray_with_the_same_bytes_as_locally(cluster, corpus, tmp_path, monkeypatch):
    import yaml

    from unisurg.cli import main

    pre = tmp_path / "archive"
    shutil.copytree(corpus / "pretrain" / "gyn_laparoscopy", pre / "gyn")
    (pre / "gyn" / "broken.mp4").write_bytes(b"\x00" * 5000)
    reg = tmp_path / "sources.yaml"
    src = {"name": "gyn", "root": "archive/gyn", "region": "uterus", "procedure": "x", "license": "x"}
    reg.write_text(yaml.safe_dump({"sources": [src]}))
    monkeypatch.chdir(tmp_path)
    assert main(["curate", "--sources", str(reg), "--out", "local"]) == 0
    assert main(["curate", "--sources", str(reg), "--out", "ray", "--engine", "ray", "--address", cluster.address]) == 0
    _same_outputs(tmp_path / "local", tmp_path / "ray")
    assert not (tmp_path / "ray" / ".inspect").exists()


def test_the_curation_flow_sends_batches_to_ray_with_a_progress_artifact(cluster, corpus, tmp_path, prefect_server):
    import yaml
    from prefect.client.orchestration import get_client

    from flows.curation import curation
    from unisurg.cli import main

    pre = tmp_path / "archive"
    shutil.copytree(corpus / "pretrain" / "eye_center_cataract", pre / "eye")
    reg = tmp_path / "sources.yaml"
    src = {"name": "eye", "root": str(pre / "eye"), "region": "eye", "procedure": "x", "license": "x"}
    reg.write_text(yaml.safe_dump({"sources": [src]}))
    assert main(["curate", "--sources", str(reg), "--out", str(tmp_path / "cli")]) == 0
    state = curation(sources=str(reg), out=str(tmp_path / "flow"), ray_address=cluster.address, return_state=True)
    assert state.is_completed(), state
    _same_outputs(tmp_path / "cli", tmp_path / "flow")

    async def runs_and_progress():
        from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey, FlowRunFilter, FlowRunFilterId

        async with get_client() as client:
            flow_run = await client.read_flow_run(state.state_details.flow_run_id)
            tasks = await client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id])))
            arts = await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["curation-inspection"]))
            )
            return [t.name for t in tasks], [a.data for a in arts]

    import asyncio

    names, progress = asyncio.run(runs_and_progress())
    n = len(list(pre.rglob("*.mp4")))
    assert names == [f"inspect {n} videos on Ray"]  # one task run, not one per video
    assert progress and progress[0] == 100.0


def test_a_killed_worker_node_has_its_tasks_retried_elsewhere(cluster, archive, reference, tmp_path):
    """Last in this module: it kills the shared cluster's worker node."""
    import ray

    calls = tmp_path / "calls"
    calls.mkdir()
    ray.init(address=cluster.address, logging_level="WARNING", log_to_driver=False)
    try:
        worker = next(n["NodeID"] for n in ray.nodes() if n["NodeManagerPort"] == cluster.node_ports[0])
        engine = RayInspect(cluster.address, tmp_path / "out" / ".inspect", batch_size=2, max_retries=3)
        done: dict = {}
        run = partial(_curate, archive, tmp_path / "out", inspect_map=lambda fn, jobs: engine(Slow(0.5, calls), jobs))
        t = threading.Thread(target=lambda: done.setdefault("metrics", run()))
        t.start()
        deadline = time.time() + 120
        while not any(worker in p.name for p in calls.iterdir()) and time.time() < deadline:
            time.sleep(0.1)  # until the worker node has a batch running
        assert any(worker in p.name for p in calls.iterdir()), "no task ever ran on the worker node"
        cluster.kill_worker_node(0)  # kill -9 of its raylet: the node and its workers are gone
        t.join(timeout=300)
        assert not t.is_alive() and "metrics" in done
    finally:
        ray.shutdown()
    _same_outputs(reference, tmp_path / "out")
    on_worker = {p.name.split(".mp4")[0] for p in calls.iterdir() if worker in p.name}
    again = {p.name.split(".mp4")[0] for p in calls.iterdir() if worker not in p.name}
    assert on_worker & again, "a video the dead node was inspecting was inspected again on the head"
