"""Shared fixtures: one tiny synthetic corpus per test session (real H.264 videos, real layouts)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

os.environ.setdefault("DVC_NO_ANALYTICS", "1")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")


def tiny_spec():
    from unisurg.synth.layouts import SynthSpec

    return SynthSpec(size=64, seconds=12.0, videos_per_split=(2, 1, 1), images_per_split=(6, 2, 3))


@pytest.fixture(scope="session")
def corpus(tmp_path_factory) -> Path:
    """The whole built-in corpus at test size: 17 mini benchmarks + 8 pretraining sources."""
    from unisurg.synth.corpus import CorpusSpec, build_corpus
    from unisurg.synth.layouts import WRITERS

    out = tmp_path_factory.mktemp("corpus") / "synth"
    build_corpus(out, CorpusSpec(tiny_spec(), 1, 6.0, tuple(WRITERS), seed=0), workers=2)
    return out


@pytest.fixture(scope="session")
def bench_root(corpus):
    from unisurg.synth.layouts import WRITERS

    def root(name: str) -> Path:
        return corpus / "benchmarks" / WRITERS[name][0]

    return root


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory):
    """A real temporary Prefect API server for the whole session (isolated PREFECT_HOME)."""
    home = tmp_path_factory.mktemp("prefect_home")
    os.environ["PREFECT_HOME"] = str(home)
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=120):
        yield
