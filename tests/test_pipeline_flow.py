"""End to end: the Prefect flow runs the real DVC pipeline in a fresh project under a real
(temporary) Prefect server; then DVC proves the pipeline is deterministic and a re-run is a no-op."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def tiny_params() -> dict:
    p = yaml.safe_load((ROOT / "params.yaml").read_text())
    p["synth"].update(
        size=64,
        pretrain_videos_per_source=1,
        pretrain_seconds=6.0,
        videos_per_split=[2, 1, 1],
        benchmark_seconds=10.0,
        images_per_split=[6, 2, 3],
    )
    p["pretrain"].update(steps=4, batch_size=2, checkpoint_every=2, log_every=1)
    p["pretrain"]["clip"] = {"frames": 8, "size": 32}
    p["pretrain"]["optim"]["warmup_steps"] = 1
    p["distill"].update(steps=3, batch_size=2, checkpoint_every=2, log_every=1)
    p["distill"]["optim"]["warmup_steps"] = 1
    p["evaluate"]["clip"] = {"frames": 8, "fps": 4.0, "size": 32}
    p["evaluate"]["probe"].update(epochs=2, lrs=[0.003], weight_decays=[0.01], min_steps=0, seeds=1)
    p["evaluate"]["bootstrap"] = 20
    p["evaluate"]["models"]["random_init"] = "random:vit_pico"
    return p


# What a clone contains that the pipelines need (reports/ablation, seeds, continued, random_teacher: the
# report stage's inputs).
PROJECT_FILES = (
    "src",
    "stages",
    "flows",
    "dvc.yaml",
    "sources.yaml",
    "ablation",
    "reports/ablation",
    "reports/seeds",
    "reports/continued",
    "reports/random_teacher",
)


def copy_project(dest: Path) -> Path:
    for item in PROJECT_FILES:
        src = ROOT / item
        (dest / item).parent.mkdir(parents=True, exist_ok=True)
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / item)
    # results of the repository's own grid, seeds, experiments
    for grid in ("ablation", "seeds", "continued", "random_teacher"):
        for stale in (dest / "reports" / grid).iterdir():
            shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    return dest


def run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    from flows.pipeline import stage_env

    proc = subprocess.run(cmd, cwd=cwd, env=stage_env(), capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    proj = copy_project(tmp_path_factory.mktemp("project"))
    (proj / "params.yaml").write_text(yaml.safe_dump(tiny_params(), sort_keys=False))
    run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], proj)
    return proj


@pytest.mark.slow
def test_pipeline_flow_under_a_real_prefect_server(project, prefect_server):
    import asyncio

    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    from flows.pipeline import pipeline

    state = pipeline(project_dir=str(project), return_state=True)
    assert state.is_completed(), state

    md = (project / "reports" / "benchmark.md").read_text()
    models = ["random_init", "random_student", "student", "unisurg"]
    header = f"| benchmark | task | metric | test units | {' | '.join(models)} | null |"
    lines = md.splitlines()
    table = lines[lines.index(header) + 2 : lines.index(header) + 19]  # the 17 rows under the header
    assert len(table) == 17 and all(r.startswith("| ") for r in table)
    for row in table:
        cells = [c.strip().strip("*") for c in row.strip("|").split("|")][4:]
        assert len(cells) == 5 and all(re.match(r"\*?\*?-?\d+\.\d{3}", c) for c in cells), row
    for section in (
        "Against the baselines",
        "Phase metrics, Cholec80 challenge convention",
        "Relaxed-boundary",
        "Distillation: teacher vs student",
        "Provenance",
    ):
        assert f"## {section}" in md
    assert "| unisurg | random_init |" in md and "| student | random_student |" in md
    assert len(list((project / "reports" / "metrics").glob("*.json"))) == 17
    assert len(list((project / "data" / "evaluate").glob("*/predictions.parquet"))) == 17
    html = (project / "reports" / "index.html").read_text()
    assert html.count("data:image/png;base64,") >= 2 and "http" not in html.replace("http-equiv", "")

    async def artifacts():
        async with get_client() as client:
            return await client.read_artifacts(
                artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=["benchmark-report"]))
            )

    arts = asyncio.run(artifacts())
    assert arts and "CholecT50" in arts[0].data

    async def latest(key: str):
        async with get_client() as client:
            found = await client.read_artifacts(artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[key])))
            return found[0] if found else None

    summary = asyncio.run(latest("benchmark-summary"))
    rows = json.loads(summary.data) if isinstance(summary.data, str) else summary.data
    assert len(rows) == 17 and all(set(models) <= set(r) for r in rows)
    progress = asyncio.run(latest("pipeline-progress"))
    assert progress.type == "progress" and float(progress.data) == 100.0  # updated stage after stage

    # nothing changed -> every stage is up to date; a forced synth re-run reproduces identical bytes,
    # so DVC sees no change downstream
    out = run([sys.executable, "-m", "dvc", "repro"], project).stdout
    assert "Running stage" not in out
    run([sys.executable, "-m", "dvc", "repro", "-f", "-s", "synth"], project)
    status = run([sys.executable, "-m", "dvc", "status", "dvc.yaml"], project).stdout
    assert "up to date" in status, status


@pytest.mark.slow
def test_ablation_grid_feeds_the_report(project):
    # a two-variant, two-benchmark grid on the tiny project (the real one: `make ablation`)
    grid = yaml.safe_load((ROOT / "ablation" / "params.yaml").read_text())
    grid["variants"] = {k: grid["variants"][k] for k in ("pixel", "no_motion")}
    grid["benchmarks"] = "cholec80 kvasirseg"
    grid["seeds"] = {"seed1": 1}
    grid["seed_benchmarks"] = "cholec80 kvasirseg"
    grid["recipe"] = {"diversity_clip": grid["recipe"]["diversity_clip"]}
    grid["random_teacher"]["benchmarks"] = "cholec80 kvasirseg"
    grid["continued"].update(steps=2, benchmarks="cholec80 kvasirseg")  # one of the region, one not
    (project / "ablation" / "params.yaml").write_text(yaml.safe_dump(grid, sort_keys=False))
    run([sys.executable, "-m", "dvc", "repro"], project)  # the main pipeline (no-op if already run)
    out = run([sys.executable, "-m", "dvc", "repro", "ablation/dvc.yaml"], project).stdout
    assert "evaluate@pixel" in out and "pretrain@no_motion" in out and "seed_evaluate@seed1" in out
    assert "random_teacher_distill" in out and "random_teacher_evaluate" in out
    assert "continued_further" in out and "continued_self" in out and "continued_evaluate" in out
    assert "recipe@diversity_clip" in out
    assert "Running stage 'synth'" not in out  # the grid reuses the main pipeline's corpus and index
    run([sys.executable, "-m", "unisurg.cli", "ablation", "collect"], project)
    assert sorted(p.name for p in (project / "reports" / "ablation").glob("*/*.json")) == [
        "cholec80.json",
        "cholec80.json",
        "kvasirseg.json",
        "kvasirseg.json",
    ]
    teacher = sorted(p.name for p in (project / "reports" / "random_teacher").glob("*.json"))
    assert teacher == ["cholec80.json", "kvasirseg.json"]
    run([sys.executable, "-m", "unisurg.cli", "ablation", "collect-seeds"], project)
    assert sorted(p.name for p in (project / "reports" / "seeds" / "seed1").glob("*.json")) == [
        "cholec80.json",
        "kvasirseg.json",
    ]
    assert (project / "reports" / "seeds" / "seed1.pretrain.json").is_file()  # its learning diagnostics
    run([sys.executable, "-m", "unisurg.cli", "ablation", "collect-continued"], project)
    assert sorted(p.name for p in (project / "reports" / "continued" / "results").glob("*.json")) == [
        "cholec80.json",
        "kvasirseg.json",
    ]
    run([sys.executable, "-m", "unisurg.cli", "ablation", "collect-recipe"], project)
    recipe = (project / "reports" / "recipe.md").read_text()
    assert (
        "| main | (params.yaml) | " in recipe
        and "| diversity_clip | `--set pretrain.diversity.scope=clip` | " in recipe
    )
    assert "not run" not in recipe  # both runs logged their diagnostics
    out = run([sys.executable, "-m", "dvc", "repro"], project).stdout
    assert "Running stage 'report'" in out and "Running stage 'evaluate" not in out  # only the report reruns
    md = (project / "reports" / "benchmark.md").read_text()
    assert "## Ablation" in md and "## Pretraining seeds" in md and "seed 0 (main): " in md and "seed1: " in md
    assert "| pixel reconstruction (VideoMAE-style) |" in md and "| full recipe − motion-guided prediction |" in md
    # each variant paired with the full recipe, the random-teacher control, and the pooled seed test
    assert "Each variant − the full recipe" in md and "### Is it the teacher? A random-teacher control" in md
    assert "| student − random_teacher |" in md and "**Pooled paired test over 2 seeds × 2 benchmarks.**" in md
    # the further-pretrained and self-distilled encoders next to the start, region and others apart
    assert "## Continued pretraining on one region (gallbladder)" in md
    assert "| further − unisurg | gallbladder |" in md and "| self_distilled − further | other regions |" in md


@pytest.mark.slow
def test_a_failing_stage_fails_the_flow(tmp_path, prefect_server):
    from flows.pipeline import pipeline

    proj = copy_project(tmp_path / "broken")
    p = tiny_params()
    p["synth"]["sise"] = 64  # misspelled key: the synth stage must refuse to start
    (proj / "params.yaml").write_text(yaml.safe_dump(p, sort_keys=False))
    run([sys.executable, "-m", "dvc", "init", "--no-scm", "-q"], proj)
    state = pipeline(project_dir=str(proj), return_state=True)
    assert state.is_failed()
    with pytest.raises(RuntimeError, match=r"dvc repro synth.*failed|synth\.sise"):
        state.result()
    assert not (proj / "reports" / "benchmark.md").exists()


@pytest.mark.slow
def test_deployments_register_with_their_schedules(prefect_server):
    import asyncio

    from prefect.client.orchestration import get_client

    from flows.serve import deployments

    for dep in deployments(str(ROOT / "params.yaml"), str(ROOT)):
        dep.apply()

    async def read():
        async with get_client() as client:
            cur = await client.read_deployment_by_name("unisurg-curation/nightly-curation")
            bench = await client.read_deployment_by_name("unisurg-pipeline/weekly-benchmark")
            return cur, bench

    cur, bench = asyncio.run(read())
    params = yaml.safe_load((ROOT / "params.yaml").read_text())["orchestration"]
    assert [s.schedule.cron for s in cur.schedules] == [params["curation_cron"]]
    assert [s.schedule.cron for s in bench.schedules] == [params["benchmark_cron"]]
    assert bench.parameters["project_dir"] == str(ROOT)
