"""Every DVC stage lists, as dependencies, all project modules its code imports.

A module missing from a stage's ``deps`` is a silent staleness bug: editing it would not rerun the
stage, and ``dvc repro`` would report an up-to-date pipeline built by other code.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]

# stage -> the library modules its `unisurg <command>` runs (cli.py imports them lazily per command)
ENTRY = {
    "synth": ["unisurg.synth.corpus", "unisurg.synth.layouts"],
    "curate": ["unisurg.curation.index", "unisurg.curation.gate", "unisurg.curation.sources"],
    "pretrain": ["unisurg.training.pretrain"],
    "distill": ["unisurg.training.distill"],
    "evaluate": ["unisurg.benchmarks", "unisurg.evaluation.encoders", "unisurg.evaluation.harness", "unisurg.io"],
    "report": ["unisurg.report", "unisurg.io"],
}


def _imported_files(modules: list[str]) -> set[str]:
    """Project source files loaded by importing ``modules`` in a fresh interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        "print(json.dumps([getattr(m, '__file__', None) for n, m in sys.modules.items() "
        "if n == 'unisurg' or n.startswith('unisurg.')]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    package = (ROOT / "src" / "unisurg").resolve()
    files = {Path(f).resolve() for f in json.loads(out) if f}
    # the package's own __init__ only re-exports names; everything else counts
    return {str(p.relative_to(ROOT)) for p in files if p.is_relative_to(package) and p != package / "__init__.py"}


@pytest.mark.parametrize("stage", sorted(ENTRY))
def test_stage_deps_cover_every_module_it_imports(stage):
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)  # foreach stages keep cmd/deps under `do`
    deps = [str(d) for d in spec["deps"]]
    missing = sorted(
        f for f in _imported_files(ENTRY[stage]) if not any(f == d or f.startswith(d.rstrip("/") + "/") for d in deps)
    )
    assert not missing, f"stage {stage}: add to deps in dvc.yaml: {missing}"


TOP_LEVEL = {
    "src/unisurg/config.py",
    "src/unisurg/errors.py",
    "src/unisurg/cli/__init__.py",
    "src/unisurg/io.py",
    "src/unisurg/runtime.py",
    "src/unisurg/report.py",
}


@pytest.mark.parametrize("stage", sorted(ENTRY))
def test_stage_code_deps_are_packages(stage):
    """Deps name package folders, not single modules inside them (a new module must be covered)."""
    spec = yaml.safe_load((ROOT / "dvc.yaml").read_text())["stages"][stage]
    spec = spec.get("do", spec)
    code = [str(d) for d in spec["deps"] if str(d).startswith("src/")]
    single = [d for d in code if not (ROOT / d).is_dir() and d not in TOP_LEVEL]
    assert not single, f"stage {stage}: list the package folder instead of {single}"
