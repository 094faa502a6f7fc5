"""The strict params parser (unisurg.config) on parameters written here; the repository's own
params.yaml is only required to parse (its values are the experiment's, not the parser's)."""

from pathlib import Path

import pydantic
import pytest
import yaml

from unisurg.config import (
    ConfigError,
    CurateParams,
    DistillParams,
    Params,
    PretrainParams,
    apply_overrides,
    load_params,
    parse_params,
)
from unisurg.curation.sources import load_sources

ROOT = Path(__file__).resolve().parents[1]


def _params(tmp_path, data) -> Path:
    p = tmp_path / "params.yaml"
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return p


def test_repository_params_parse():
    assert isinstance(load_params(ROOT / "params.yaml"), Params)


@pytest.mark.parametrize(
    "data, needle",
    [
        ({"pretrain": {"mpl_ratio": 4}}, "pretrain.mpl_ratio"),  # the vjepa2 kwargs pitfall
        ({"pretrain": {"optim": {"lr": "fast"}}}, "pretrain.optim.lr"),
        ({"pretrain": {"optim": {"lr": -1e-3}}}, "pretrain.optim.lr"),  # lr >= 0 (0: a frozen check run)
        ({"pretrain": {"steps": 2.5}}, "pretrain.steps"),  # an int field takes no fraction
        ({"synth": {"size": 8}}, "synth.size"),
        ({"evalute": {}}, "evalute"),
        ({"pretrain": {"objective": "mae"}}, "pretrain.objective"),
        ({"curate": {"balance": "hospital"}}, "curate.balance"),
        (
            {"pretrain": {"masks": [{"num_blocks": 1, "spatial_scale": [0.1, 0.1], "ratio": 2}]}},
            "pretrain.masks.0.ratio",
        ),
        ({"pretrain": {"masks": [{"spatial_scale": [0.1, 0.1]}]}}, "pretrain.masks.0.num_blocks"),  # required
        ({"pretrain": {"ema": [0.9, 0.99, 1.0]}}, "pretrain.ema"),  # a pair
        # a block that can cover the whole clip leaves no context
        ({"pretrain": {"masks": [{"num_blocks": 1, "spatial_scale": [0.5, 1.0]}]}}, "leave no context"),
        ({"pretrain": {"augment": {"scale": [0.3, 1.5]}}}, "pretrain.augment"),
        ({"distill": {"mode": "deep"}}, "distill.mode"),
    ],
)
def test_bad_params_are_rejected_naming_the_key(data, needle):
    with pytest.raises(ConfigError) as err:
        parse_params(data, source="params.yaml")
    assert needle in str(err.value) and "params.yaml" in str(err.value)


def test_every_bad_key_is_named_at_once():
    with pytest.raises(ConfigError) as err:
        parse_params({"pretrain": {"stepz": 1, "batch_size": 0}, "curate": {"workers": "two"}})
    msg = str(err.value)
    assert all(k in msg for k in ("pretrain.stepz", "pretrain.batch_size", "curate.workers"))


def test_clip_sizes_must_fit_the_patch_grid():
    assert parse_params({"evaluate": {"clip": {"size": 48}}}).evaluate.clip.size == 48
    with pytest.raises(ConfigError, match="multiples of the patch size"):
        parse_params({"evaluate": {"clip": {"size": 40}}})


def test_yaml_scientific_notation_without_dot_still_parses_as_float():
    # PyYAML reads 1e-3 as a string; the strict model still coerces it to a float.
    assert parse_params({"pretrain": {"optim": {"lr": "1e-3"}}}).pretrain.optim.lr == pytest.approx(1e-3)


def test_values_get_their_declared_types(tmp_path):
    text = """
pretrain:
  steps: 3
  optim: {lr: 1e-3, betas: [0.8, 0.9]}
  ema: [0.99, 1.0]
  masks:
    - {num_blocks: 2, spatial_scale: [0.2, 0.3]}
synth:
  benchmarks: null
"""
    p = load_params(_params(tmp_path, text))
    assert p.pretrain.optim.lr == pytest.approx(1e-3) and isinstance(p.pretrain.optim.lr, float)
    assert p.pretrain.optim.betas == (0.8, 0.9) and p.pretrain.ema == (0.99, 1.0)  # lists -> tuples
    m = p.pretrain.masks[0]
    assert (m.num_blocks, m.spatial_scale) == (2, (0.2, 0.3))
    assert m.temporal_scale == (1.0, 1.0) and m.aspect_ratio == (0.75, 1.5)  # a mask's own defaults
    assert p.synth.benchmarks is None


def test_parsed_params_are_frozen():
    p = parse_params({})
    with pytest.raises(pydantic.ValidationError, match="frozen"):
        p.pretrain.steps = 5


@pytest.mark.parametrize(
    "section, given, default",
    [
        ("curate", {"workers": 7}, CurateParams()),
        ("pretrain", {"steps": 7, "motion": {"loss_alpha": 3.0}}, PretrainParams()),
        ("pretrain", {"optim": {"weight_decay": 0.5}}, PretrainParams()),
        ("distill", {"steps": 7}, DistillParams()),
        ("distill", {"optim": {"weight_decay": 0.5}}, DistillParams()),  # distill keeps its own optim defaults
    ],
)
def test_a_partial_section_keeps_the_defaults_of_what_it_leaves_out(tmp_path, section, given, default):
    got = getattr(load_params(_params(tmp_path, {section: given})), section)

    def check(node, spec: dict, dflt) -> None:
        for field in type(node).model_fields:
            value, want = getattr(node, field), getattr(dflt, field)
            if field in spec and isinstance(spec[field], dict):
                check(value, spec[field], want)
            elif field in spec:
                assert value == spec[field], field
            else:
                assert value == want, field  # untouched key: the section's default

    check(got, given, default)
    assert got != default  # the given values did take effect


def test_an_empty_file_gives_the_defaults(tmp_path):
    assert load_params(_params(tmp_path, "")) == Params()
    assert load_params(_params(tmp_path, "# only a comment\n")) == Params()


@pytest.mark.parametrize(
    "text, needle",
    [
        ("pretrain: [1, 2\n", "not valid YAML"),
        ("- a\n- b\n", "expected a mapping at the top level"),
    ],
)
def test_unreadable_files_are_errors_naming_the_file(tmp_path, text, needle):
    path = _params(tmp_path, text)
    with pytest.raises(ConfigError, match=needle) as err:
        load_params(path)
    assert str(path) in str(err.value)
    with pytest.raises(ConfigError, match="file not found"):
        load_params(tmp_path / "missing.yaml")


def test_overrides_set_nested_keys_over_the_file_and_stay_strict(tmp_path):
    path = _params(tmp_path, {"pretrain": {"steps": 5, "motion": {"enabled": True, "loss_alpha": 2.0}}})
    p = load_params(
        path,
        [
            "pretrain.motion.enabled=false",
            "evaluate.models={a: x.pt}",  # values are YAML
            "distill.steps=9",  # a section the file does not have
            "pretrain.ema=[0.99, 0.999]",
            "base.seed=1",
            "base.seed=2",  # the later override wins
        ],
    )
    assert p.pretrain.motion.enabled is False and p.evaluate.models == {"a": "x.pt"}
    assert p.pretrain.motion.loss_alpha == 2.0 and p.pretrain.steps == 5  # the file's siblings are kept
    assert p.distill.steps == 9 and p.pretrain.ema == (0.99, 0.999) and p.base.seed == 2
    with pytest.raises(ConfigError, match="motoin") as err:
        load_params(path, ["pretrain.motoin.enabled=false"])  # misspelled: named
    assert "pretrain.motoin.enabled=false" in str(err.value)  # and the override is in the source
    with pytest.raises(ConfigError, match="pretrain.steps"):
        load_params(path, ["pretrain.steps=many"])  # typed like the file
    with pytest.raises(ConfigError, match="expected key.path=value"):
        load_params(path, ["pretrain.steps"])
    with pytest.raises(ConfigError, match="steps is not a section"):
        load_params(path, ["pretrain.steps.x=1"])
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_params(path, ["pretrain.steps=[1,"])


def test_overrides_leave_their_input_unchanged():
    data = {"pretrain": {"motion": {"enabled": True}}}
    out = apply_overrides(data, ["pretrain.motion.enabled=false"])
    assert data == {"pretrain": {"motion": {"enabled": True}}} and out["pretrain"]["motion"]["enabled"] is False


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
        tmp_path, "sources:\n  - {name: a, root: videos, region: brain, procedure: x, license: y, fsp: 3}\n"
    )
    with pytest.raises(ConfigError, match=r"sources\[a\]\.fsp"):
        load_sources(bad_key)
    for entry, why in (
        ("kind: frames", "kind: frames needs fps"),
        ("fps: 3", "fps is for kind: frames"),
        ("kind: stills, fps: 1", r"sources\[a\]\.kind"),
        ("guard_only: true", "guard_only is for benchmark sources"),
    ):
        bad = _write(
            tmp_path, f"sources:\n  - {{name: a, root: videos, region: b, procedure: x, license: y, {entry}}}\n"
        )
        with pytest.raises(ConfigError, match=why):
            load_sources(bad)
    frames = _write(
        tmp_path, "sources:\n  - {name: a, root: videos, region: b, procedure: x, license: y, kind: frames, fps: 1}\n"
    )
    assert load_sources(frames)[0].glob == "*"  # each sub-folder is one video

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


def test_every_ablation_variant_is_a_valid_configuration_of_what_it_claims():
    import shlex

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
    # the full recipe with one addition switched off
    assert got["no_motion"] == ("latent", False, True, True)
    assert got["no_affinity"] == ("latent", True, False, True)
    assert got["no_diversity"] == ("latent", True, True, False)
    from unisurg.benchmarks import get_benchmark

    for b in grid["benchmarks"].split():
        get_benchmark(b)  # registered
