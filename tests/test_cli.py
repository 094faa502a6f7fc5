"""The `unisurg` command line: benchmark listing and validation of a user's download."""

import json
import shutil

from unisurg.cli import main


def test_benchmarks_list_json(capsys):
    assert main(["benchmarks", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 17 and {r["task"] for r in rows} == {
        "phase",
        "multilabel",
        "clip",
        "skill",
        "segmentation",
        "depth",
    }


def test_benchmarks_validate_ok_and_broken(bench_root, tmp_path, capsys):
    assert main(["benchmarks", "validate", "autolaparo", "--root", str(bench_root("autolaparo")), "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert rep["ok"] and rep["counts"]["test"] > 0
    broken = tmp_path / "autolaparo"
    shutil.copytree(bench_root("autolaparo"), broken)
    label = broken / "labels" / "label_01.txt"
    label.write_text(label.read_text().replace("\t", " ", 3).replace("\n3\t", "\n3\t9", 1))
    (broken / "labels" / "label_02.txt").unlink()
    assert main(["benchmarks", "validate", "autolaparo", "--root", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "label_02.txt: missing label file" in out and "label_01.txt:1: expected header" in out


def test_bad_params_fail_before_any_work(tmp_path, capsys, caplog):
    p = tmp_path / "params.yaml"
    p.write_text("pretrain:\n  stepz: 3\n")
    assert main(["pretrain", "--params", str(p), "--out", str(tmp_path / "out")]) == 2
    assert "pretrain.stepz" in caplog.text
    assert not (tmp_path / "out").exists()


def test_training_on_part_of_the_index(clips, tmp_path, capsys):
    """--where: a DuckDB condition on the clip table (further pretraining on one region, one source)."""
    import pyarrow.parquet as pq
    import pytest

    from unisurg.curation.index import select_clips

    table = pq.read_table(clips)
    out = pq.read_table(select_clips(clips, "start_frame >= 25 AND num_frames = 4", tmp_path / "a.parquet"))
    rows = [r for r in table.to_pylist() if r["start_frame"] >= 25 and r["num_frames"] == 4]
    assert out.column("clip_id").to_pylist() == [r["clip_id"] for r in rows] and 0 < len(rows) < table.num_rows
    assert out.schema.names == table.schema.names and out.column("weight").to_pylist() == [r["weight"] for r in rows]
    with pytest.raises(ValueError, match="no clip of .* satisfies it"):
        select_clips(clips, "region = 'moon'", tmp_path / "b.parquet")
    with pytest.raises(ValueError, match="--where 'regoin = 1'"):
        select_clips(clips, "regoin = 1", tmp_path / "c.parquet")
    # self-distillation has one teacher
    params = tmp_path / "params.yaml"
    params.write_text("distill:\n  mode: self\n")
    assert (
        main(
            [
                "distill",
                "--params",
                str(params),
                "--clips",
                str(clips),
                "--teacher",
                "a.pt",
                "b.pt",
                "--out",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "distill.mode self takes one teacher, got 2" in capsys.readouterr().err
