"""Bad configuration is rejected before any work starts, naming the key."""

import pytest
import yaml

from unisurg.cli import main

CASES = {
    "unknown key in params.yaml": ({"pretrain": {"mpl_ratio": 4}}, "pretrain.mpl_ratio"),
    "misspelled section": ({"evalute": {}}, "evalute"),
    "wrong type": ({"curate": {"clip_frames": "sixteen"}}, "curate.clip_frames"),
    "out-of-range value": ({"synth": {"size": 8}}, "synth.size"),
    "unknown objective": ({"pretrain": {"objective": "mae"}}, "pretrain.objective"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_params_rejected_with_the_key_named(case, tmp_path, caplog, record):
    data, key = CASES[case]
    p = tmp_path / "params.yaml"
    p.write_text(yaml.safe_dump(data))
    out = tmp_path / "out"
    code = main(["curate", "--params", str(p), "--out", str(out)])
    ok = code == 2 and key in caplog.text and not out.exists()
    record("config", case, f"exit {code}; error names `{key}`; no output written", ok)
    assert ok, caplog.text


SOURCE_CASES = {
    "unknown key in sources.yaml": (
        {"name": "a", "root": "v", "region": "r", "procedure": "p", "license": "l", "fsp": 25},
        "sources[a].fsp",
    ),
    "glob escaping the root": (
        {"name": "a", "root": "v", "glob": "../../**/*.mp4", "region": "r", "procedure": "p", "license": "l"},
        "glob",
    ),
    "missing root": ({"name": "a", "root": "nowhere", "region": "r", "procedure": "p", "license": "l"}, "nowhere"),
    "bad role": ({"name": "a", "root": "v", "region": "r", "procedure": "p", "license": "l", "role": "test"}, "role"),
}


@pytest.mark.parametrize("case", sorted(SOURCE_CASES))
def test_sources_rejected_with_the_key_named(case, tmp_path, caplog, record):
    entry, key = SOURCE_CASES[case]
    (tmp_path / "v").mkdir()
    reg = tmp_path / "sources.yaml"
    reg.write_text(yaml.safe_dump({"sources": [entry]}))
    params = tmp_path / "params.yaml"
    params.write_text("{}\n")
    out = tmp_path / "out"
    code = main(["curate", "--params", str(params), "--sources", str(reg), "--out", str(out)])
    ok = code == 2 and key in caplog.text and not out.exists()
    record("config", case, f"exit {code}; error names `{key}`; no output written", ok)
    assert ok, caplog.text
