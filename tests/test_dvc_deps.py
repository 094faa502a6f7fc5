"""Every DVC stage lists, as dependencies, all project modules its code imports.

A module missing from a stage's ``deps`` is a silent staleness bug: editing it would not rerun the
stage, and ``dvc repro`` would report an up-to-date pipeline built by other code.
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# stage -> the library modules its command runs: the command modules of unisurg.cli import them
# lazily, inside the command function (importing the stage script alone does not load them)
ENTRY = {
    "synth": ["unisurg.synth.corpus", "unisurg.synth.layouts"],
    "curate": ["unisurg.curation.index", "unisurg.curation.gate", "unisurg.curation.sources"],
    "pretrain": ["unisurg.training.pretrain"],
    "distill": ["unisurg.training.distill"],
    "evaluate": ["unisurg.benchmarks", "unisurg.evaluation.encoders", "unisurg.evaluation.harness", "unisurg.io"],
    "report": ["unisurg.report", "unisurg.io"],
}
# stage scripts that only ablation/dvc.yaml runs
EXTRA_ENTRY = {"export": ["unisurg.export", "unisurg.evaluation.protocols"]}


@functools.cache
def _imported_files(stage: str) -> frozenset[str]:
    """Project source files loaded by the stage's script (run without its ``__main__`` block: only
    its imports) and by its command's library modules, in a fresh interpreter."""
    code = (
        "import importlib, json, runpy, sys\n"
        f"runpy.run_path('stages/{stage}.py', run_name='imports only')\n"
        f"for m in {(ENTRY | EXTRA_ENTRY)[stage]!r}: importlib.import_module(m)\n"
        "print(json.dumps([getattr(m, '__file__', None) for n, m in sys.modules.items() "
        "if n == 'unisurg' or n.startswith('unisurg.')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    package = (ROOT / "src" / "unisurg").resolve()
    files = {Path(f).resolve() for f in json.loads(out) if f}
    # the package's own __init__ only re-exports names; everything else counts
    return frozenset(
        str(p.relative_to(ROOT)) for p in files if p.is_relative_to(package) and p != package / "__init__.py"
    )


def _deps(stage: str) -> list[str]:
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)  # foreach stages keep cmd/deps under `do`
    return [str(d) for d in spec["deps"]]


@pytest.mark.parametrize("stage", sorted(ENTRY))
def test_stage_deps_cover_every_module_it_imports(stage):
    deps = _deps(stage)
    loaded = _imported_files(stage)
    missing = sorted(f for f in loaded if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
    assert not missing, f"stage {stage}: add to deps in dvc.yaml: {missing}"


CLI = "src/unisurg/cli/"


@pytest.mark.parametrize("stage", sorted(ENTRY))
def test_stage_depends_on_its_own_command_only(stage):
    """A stage script loads its own command's module and the shared ones, never another command's
    (nor unisurg.cli.app, which loads them all), and its deps list exactly the cli files it loads:
    editing another command, or adding a tool, must not rerun it."""
    # the library below the command line never imports it (tests/test_layout.py): these are the script's
    loaded = {f for f in _imported_files(stage) if f.startswith(CLI)}
    assert f"{CLI}{stage}.py" in loaded
    others = {f"{CLI}{s}.py" for s in ENTRY if s != stage} | {f"{CLI}app.py"}
    assert not loaded & others, f"stages/{stage}.py loads other commands' code: {sorted(loaded & others)}"
    listed = {d for d in _deps(stage) if d.startswith(CLI)}
    assert listed == loaded, f"stage {stage}: list {sorted(loaded - listed)}, drop {sorted(listed - loaded)}"


TOP_LEVEL = {
    "src/unisurg/config.py",
    "src/unisurg/errors.py",
    "src/unisurg/io.py",
    "src/unisurg/runtime.py",
    "src/unisurg/report.py",
}


@pytest.mark.parametrize("stage", sorted(ENTRY))
def test_stage_code_deps_are_packages(stage):
    """Deps name package folders, not single modules inside them (a new module must be covered); the
    command line's modules are the exception, checked one by one above."""
    code = [d for d in _deps(stage) if d.startswith("src/")]
    single = [d for d in code if not (ROOT / d).is_dir() and d not in TOP_LEVEL and not d.startswith(CLI)]
    assert not single, f"stage {stage}: list the package folder instead of {single}"


# ablation/dvc.yaml runs the same stage scripts (and stages/export.py): its stages must list the code
# those load, as the main pipeline's do
ABLATION_ENTRY = {
    "python stages/pretrain.py": "pretrain",
    "python stages/distill.py": "distill",
    "python stages/evaluate.py": "evaluate",
    "python stages/export.py": "export",
}


def _ablation_stages() -> dict[str, dict]:
    stages = yaml.safe_load((ROOT / "ablation" / "dvc.yaml").read_text())["stages"]
    return {name: spec.get("do", spec) for name, spec in stages.items()}


@pytest.mark.parametrize("name", sorted(_ablation_stages()))
def test_ablation_stage_deps_cover_the_code_its_commands_load(name):
    spec = _ablation_stages()[name]
    cmd, deps = " ".join(spec["cmd"].split()), [str(d) for d in spec["deps"]]
    loaded: set[str] = set()
    for call, stage in ABLATION_ENTRY.items():
        if call in cmd:
            loaded |= _imported_files(stage)
    assert loaded, f"ablation stage {name}: runs no stage script this test knows"
    assert "src/unisurg" not in deps, f"ablation stage {name}: list the code it loads, not the whole package"
    missing = sorted(f for f in loaded if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps))
    assert not missing, f"ablation stage {name}: add to deps in ablation/dvc.yaml: {missing}"
