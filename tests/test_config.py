from pathlib import Path

import pytest

from unisurg.config import ConfigError, load_params, parse_params
from unisurg.curation.sources import load_sources

ROOT = Path(__file__).resolve().parents[1]


def test_repository_params_parse_and_match_defaults_types():
    p = load_params(ROOT / "params.yaml")
    assert p.pretrain.arch == "vit_micro"
    assert len(p.evaluate.benchmarks) == 17
    assert p.pretrain.masks[0].num_blocks == 8 and p.pretrain.masks[1].spatial_scale == (0.7, 0.7)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"pretrain": {"mpl_ratio": 4}}, "pretrain.mpl_ratio"),  # the vjepa2 kwargs pitfall
        ({"pretrain": {"optim": {"lr": "fast"}}}, "pretrain.optim.lr"),
        ({"synth": {"size": 8}}, "synth.size"),
        ({"evalute": {}}, "evalute"),
        ({"pretrain": {"objective": "mae"}}, "pretrain.objective"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(data, needle):
    with pytest.raises(ConfigError) as err:
        parse_params(data, source="params.yaml")
    assert needle in str(err.value) and "params.yaml" in str(err.value)


def test_yaml_scientific_notation_without_dot_still_parses_as_float():
    # PyYAML reads 1e-3 as a string; the strict model still coerces it to a float.
    assert parse_params({"pretrain": {"optim": {"lr": "1e-3"}}}).pretrain.optim.lr == pytest.approx(1e-3)


def _write(tmp_path, text):
    p = tmp_path / "sources.yaml"
    p.write_text(text)
    (tmp_path / "videos").mkdir(exist_ok=True)
    return p


def test_sources_registry_is_strict(tmp_path):
    ok = _write(tmp_path, "sources:\n  - {name: a, root: videos, region: brain, procedure: x, license: y}\n")
    (src,) = load_sources(ok)
    assert src.role == "pretrain" and Path(src.root).is_absolute()

    bad_key = _write(
        tmp_path, "sources:\n  - {name: a, root: videos, region: brain, procedure: x, license: y, fps: 3}\n"
    )
    with pytest.raises(ConfigError, match=r"sources\[a\]\.fps"):
        load_sources(bad_key)

    missing = _write(tmp_path, "sources:\n  - {name: a, root: nowhere, region: brain, procedure: x, license: y}\n")
    with pytest.raises(ConfigError, match="nowhere"):
        load_sources(missing)

    escape = _write(
        tmp_path, "sources:\n  - {name: a, root: videos, glob: '../**/*.mp4', region: b, procedure: x, license: y}\n"
    )
    with pytest.raises(ConfigError, match="glob"):
        load_sources(escape)

    role = _write(tmp_path, "sources:\n  - {name: a, root: videos, region: b, procedure: x, license: y, role: test}\n")
    with pytest.raises(ConfigError, match="role"):
        load_sources(role)


def test_repository_sources_registry_parses():
    srcs = load_sources(ROOT / "sources.yaml", check_roots=False)
    pre = [s for s in srcs if s.role == "pretrain"]
    assert len(pre) >= 6 and len({s.region for s in pre}) >= 4


def test_overrides_set_nested_keys_and_stay_strict():
    root = Path(__file__).resolve().parents[1]
    p = load_params(root / "params.yaml", ["pretrain.motion.enabled=false", "evaluate.models={a: x.pt}"])
    assert p.pretrain.motion.enabled is False and p.evaluate.models == {"a": "x.pt"}
    assert p.pretrain.affinity.weight == load_params(root / "params.yaml").pretrain.affinity.weight  # untouched
    with pytest.raises(ConfigError, match="motoin"):
        load_params(root / "params.yaml", ["pretrain.motoin.enabled=false"])  # misspelled: named
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_params(root / "params.yaml", ["pretrain.steps"])


def test_every_ablation_variant_is_a_valid_configuration_of_what_it_claims():
    import shlex

    import yaml

    root = Path(__file__).resolve().parents[1]
    grid = yaml.safe_load((root / "ablation" / "params.yaml").read_text())
    full = load_params(root / "params.yaml").pretrain
    assert full.motion.enabled and full.affinity.weight > 0 and full.diversity.weight > 0  # the main run is full
    got = {}
    for name, v in grid["variants"].items():
        args = shlex.split(v["set"])
        assert args[::2] == ["--set"] * (len(args) // 2)
        p = load_params(root / "params.yaml", args[1::2]).pretrain
        got[name] = (p.objective, p.motion.enabled, p.affinity.weight > 0, p.diversity.weight > 0)
    assert got["pixel"][0] == "pixel"
    assert got["vjepa"] == ("latent", False, False, False)
    assert got["motion"] == ("latent", True, False, False)
    assert got["affinity"] == ("latent", False, True, False)
    assert got["diversity"] == ("latent", False, False, True)
    from unisurg.benchmarks import get_benchmark

    for b in grid["benchmarks"].split():
        get_benchmark(b)  # registered
