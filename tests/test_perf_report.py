"""`make bench`'s report: the decode benchmark's cost breakdown measures what it names and renders, and
perf.md names the machine each section was measured on."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "perf"))  # the benchmark scripts are scripts, not a package

import bench_decode  # noqa: E402
import perf_report  # noqa: E402


def test_loader_costs_time_decode_prepare_and_move_and_what_they_leave_of_the_ratio(tmp_path):
    paths = bench_decode.make_videos(tmp_path, 64, n=1, seconds=2.0)
    clips = bench_decode.clip_table(paths, 4, 50, tmp_path / "clips.parquet")
    c = bench_decode.loader_costs(clips, 32, repeats=1, batch=2)
    d, p, m = c["decode_ms_per_clip"], c["prepare_ms_per_clip"], c["move_ms_per_batch"]
    assert d > 0 and p > 0 and m > 0
    assert c["ceiling_1_worker"] == pytest.approx(d / (d + p), abs=1e-3)
    assert c["no_overlap_2_workers"] == pytest.approx(d / (d + p + m), abs=1e-3)  # batch of 2 over 2 workers
    assert 0 < c["no_overlap_2_workers"] < c["ceiling_1_worker"] < 1


def test_a_missed_decode_row_is_explained_by_the_measured_costs():
    row = {"resolution": 256, "model_input": 128, "workers": 2, "loader_fps": 800.0, "decord_fps": 1000.0}
    row |= {"pyav_fps": 500.0, "loader_vs_decord": 0.8, "loader_vs_pyav": 1.6}
    costs = {"256": {"decode_ms_per_clip": 10.0, "prepare_ms_per_clip": 1.0, "move_ms_per_batch": 4.0}}
    costs["256"] |= {"batch": 8, "ceiling_1_worker": 0.909, "no_overlap_2_workers": 0.833}
    text = "\n".join(perf_report.decode_section({"rows": [row], "loader_costs": costs}))
    assert "loader/decord below 0.9 in 1 of 1 rows" in text
    assert "| 256² | 10.00 | 1.00 (10%) | 4.00 | 0.909 | 0.833 |" in text
    # without a miss there is nothing to explain, and an older JSON without costs still renders
    fine = row | {"loader_vs_decord": 0.95}
    assert "loader_costs" not in "\n".join(perf_report.decode_section({"rows": [fine], "loader_costs": costs}))
    assert "prepare / clip" not in "\n".join(perf_report.decode_section([row]))


def test_the_machine_line_names_one_machine_only_when_every_timed_input_records_it():
    one = {"decode": {"machine": "cpu A", "rows": []}, "ray": {"machine": "cpu A", "curation": {}}}
    assert perf_report.machine_line(one) == "Measured on: cpu A."
    mixed = one | {"train": {"machine": "cpu B"}, "index": {"build_s": 1.0}}
    line = perf_report.machine_line(mixed)
    assert "cpu A (decode, ray)" in line and "cpu B (train)" in line and "index: not recorded" in line
