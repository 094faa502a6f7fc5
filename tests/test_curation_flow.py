"""The curation flow fans probing out as Prefect tasks and builds the same index as the CLI."""

import shutil

import pyarrow.parquet as pq
import pytest
import yaml

from unisurg.cli import main
from unisurg.errors import UsageError


def _registry(corpus, tmp_path):
    pre = tmp_path / "archive"
    shutil.copytree(corpus / "pretrain" / "gyn_laparoscopy", pre / "gyn")
    shutil.copytree(corpus / "pretrain" / "eye_center_cataract", pre / "eye")
    (pre / "gyn" / "broken.mp4").write_bytes(b"\x00" * 5000)
    reg = tmp_path / "sources.yaml"
    reg.write_text(
        yaml.safe_dump(
            {
                "sources": [
                    {
                        "name": "gyn",
                        "root": "archive/gyn",
                        "region": "uterus",
                        "procedure": "hysterectomy",
                        "license": "x",
                    },
                    {"name": "eye", "root": "archive/eye", "region": "eye", "procedure": "cataract", "license": "x"},
                ]
            }
        )
    )
    params = tmp_path / "params.yaml"
    params.write_text(yaml.safe_dump({"curate": {"clip_frames": 8, "workers": 1}}))
    return reg, params


def test_curate_cli_standalone(corpus, tmp_path):
    reg, params = _registry(corpus, tmp_path)
    assert main(["curate", "--params", str(params), "--sources", str(reg), "--out", str(tmp_path / "cli")]) == 0
    q = pq.read_table(tmp_path / "cli" / "quarantine.parquet").to_pylist()
    assert [r["path"].rsplit("/", 1)[1] for r in q] == ["broken.mp4"]
    assert pq.read_table(tmp_path / "cli" / "clips.parquet").num_rows > 0


@pytest.mark.slow
def test_curation_flow_matches_the_cli(corpus, tmp_path, prefect_server):
    from flows.curation import curation

    reg, params = _registry(corpus, tmp_path)
    main(["curate", "--params", str(params), "--sources", str(reg), "--out", str(tmp_path / "cli")])
    state = curation(sources=str(reg), out=str(tmp_path / "flow"), params=str(params), return_state=True)
    assert state.is_completed()
    for f in ("videos.parquet", "clips.parquet", "quarantine.parquet", "curation.json"):
        assert (tmp_path / "flow" / f).read_bytes() == (tmp_path / "cli" / f).read_bytes(), f


def test_task_runner_choice_is_explicit():
    from prefect.task_runners import ProcessPoolTaskRunner, ThreadPoolTaskRunner

    from flows.curation import make_task_runner

    assert isinstance(make_task_runner("thread", 3), ThreadPoolTaskRunner)
    assert isinstance(make_task_runner("process", 2), ProcessPoolTaskRunner)
    with pytest.raises(ValueError, match="unknown task runner"):
        make_task_runner("threads")
    with pytest.raises(ValueError, match="unknown task runner"):
        make_task_runner("dask")  # a cluster needs its address
    try:
        import prefect_dask  # noqa: F401
    except ImportError:
        with pytest.raises(UsageError, match="prefect-dask"):
            make_task_runner("dask:tcp://127.0.0.1:8786")


@pytest.mark.slow
def test_curation_flow_on_a_process_pool(corpus, tmp_path, prefect_server):
    from flows.curation import curation, make_task_runner

    reg, params = _registry(corpus, tmp_path)
    main(["curate", "--params", str(params), "--sources", str(reg), "--out", str(tmp_path / "cli")])
    flow_ = curation.with_options(task_runner=make_task_runner("process", 2))
    state = flow_(sources=str(reg), out=str(tmp_path / "flow"), params=str(params), return_state=True)
    assert state.is_completed(), state
    assert (tmp_path / "flow" / "clips.parquet").read_bytes() == (tmp_path / "cli" / "clips.parquet").read_bytes()
