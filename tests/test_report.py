"""The report: baseline wins and losses named, teacher vs student, relaxed metrics, provenance."""

from __future__ import annotations

import subprocess

import yaml

from unisurg.io import write_json
from unisurg.report import Extras, build_report, collect_ablation, load_ablation, provenance


def _result(
    name: str,
    values: dict[str, float],
    higher: bool = True,
    relaxed: bool = False,
    null: float | None = None,
    paired: dict[tuple[str, str], tuple[float, float, float]] | None = None,
) -> dict:
    """A result file as the evaluate stage writes it; ``paired``: (model, other) -> (diff, lo, hi)."""
    models = {}
    for m, v in values.items():
        metrics = {"accuracy": v, **({"relaxed_accuracy": v + 0.1, "relaxed_jaccard": v / 2} if relaxed else {})}
        models[m] = {"value": v, "ci": [v - 0.01, v + 0.01], "metrics": metrics, "n_test_units": 4, "unit": "video"}
    for (m, other), (d, lo, hi) in (paired or {}).items():
        models[m].setdefault("paired", {})[other] = {"diff": d, "ci": [lo, hi], "separated": lo > 0 or hi < 0}
    r = {
        "benchmark": name.title(),
        "name": name,
        "task": "phase",
        "metric": "accuracy",
        "higher_is_better": higher,
        "protocol": {"name": "mini", "label": "mini"},
        "models": models,
    }
    if null is not None:
        r["null"] = {"value": null, "ci": [None, None], "n_test_units": 4, "unit": "video"}
    return r


def test_report_names_losses_compares_teacher_and_student_and_records_provenance(tmp_path):
    mdir = tmp_path / "metrics"
    vs = ("unisurg", "random_init")
    values = {"unisurg": 0.6, "random_init": 0.4, "student": 0.5}
    write_json(
        mdir / "cholec80.json", _result("cholec80", values, relaxed=True, null=0.3, paired={vs: (0.2, 0.1, 0.3)})
    )
    values = {"unisurg": 0.3, "random_init": 0.35, "student": 0.3}
    write_json(mdir / "autolaparo.json", _result("autolaparo", values, null=0.2, paired={vs: (-0.05, -0.1, 0.01)}))
    # better than the baseline, but not than the null: a win that does not count
    values = {"unisurg": 0.25, "random_init": 0.2, "student": 0.2}
    write_json(mdir / "m2cai16.json", _result("m2cai16", values, null=0.3, paired={vs: (0.05, 0.01, 0.09)}))
    distill = {
        "teachers": 1,
        "student_arch": "vit_nano",
        "student_params": 1000,
        "teacher_params": 4000,
        "student_gflops_per_clip": 0.5,
        "teacher_gflops_per_clip": 2.0,
        "student_clips_per_s": 30.0,
        "teacher_clips_per_s": 10.0,
        "clip_shape": [3, 16, 64, 64],
    }
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    git_id = ["-c", "user.name=t", "-c", "user.email=t@example.org"]
    subprocess.run(["git", *git_id, "commit", "-q", "--allow-empty", "-m", "x"], cwd=tmp_path, check=True)
    (tmp_path / "params.yaml").write_text("base: {seed: 0}\n")
    (tmp_path / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  pretrain:\n    outs:\n    - path: data/pretrain/encoder.pt\n      md5: abc123\n"
    )
    prov = provenance(tmp_path, tmp_path / "params.yaml")
    assert prov["outs"] == {"data/pretrain/encoder.pt": "abc123"}
    # the ablation grid's results, versioned by `unisurg ablation collect`
    for variant, v in (("vjepa", 0.45), ("pixel", 0.35)):
        write_json(tmp_path / "data" / variant / "results" / "cholec80.json", _result("cholec80", {variant: v}))
    (tmp_path / "reports" / "ablation" / "stale").mkdir(parents=True)
    assert collect_ablation(tmp_path / "data", ["pixel", "vjepa"], tmp_path / "reports" / "ablation") == 2
    assert not (tmp_path / "reports" / "ablation" / "stale").exists()
    ablation = load_ablation(tmp_path / "reports" / "ablation")
    assert list(ablation) == ["pixel", "vjepa"]  # the paper's order
    extras = Extras(distill=distill, baselines={"unisurg": "random_init"}, provenance=prov, ablation=ablation)
    out = tmp_path / "reports"
    build_report(mdir, out, {}, extras, "t")
    md = (out / "benchmark.md").read_text()
    # wins: Cholec80 (paired CI excludes 0); a loss: AutoLaparo; M2CAI16 not counted (below the null)
    assert "| unisurg | random_init | 1 of 3 | 1 | 0 | M2Cai16 | 1 | 1 | 0 |" in md
    assert "| Cholec80 | accuracy ↑ | 0.200 [0.100, 0.300] | better, CI excludes 0 |" in md
    assert "| Autolaparo | accuracy ↑ | -0.050 [-0.100, 0.010] | worse |" in md
    assert "| M2Cai16 | accuracy ↑ | 0.050 [0.010, 0.090] | better, but not above the null (not counted) |" in md
    # the headline: a null column; at-or-below-null cells marked; a benchmark no model beats named so
    assert "| M2Cai16 (no model beats the null) | phase / step | accuracy ↑ | 4 videos |" in md
    # the best point estimate is not bold without paired CIs separating it from every other model
    assert "| 0.250 [0.240, 0.260] † |" in md and "**" not in md.split("## Per task family")[0]
    assert "Protocol: `mini` (every benchmark)" in md
    assert "| student (student) | vit_nano | 1,000 | 0.5 | 30.0 |" in md
    assert "speed-up 3.00x" in md
    assert "Relaxed-boundary" in md and "| Cholec80 | 0.500 / 0.200 | 0.600 / 0.250 | 0.700 / 0.300 |" in md
    assert "abc123" in md and "uncommitted changes to 1 code file" in md  # params.yaml is not committed
    assert "| pixel reconstruction (VideoMAE-style) | 0.350 [0.340, 0.360] |" in md
    assert "| V-JEPA (latent prediction only) | 0.450 [0.440, 0.460] |" in md
    assert "| full UniSurg (main pipeline): unisurg | 0.600 [0.590, 0.610] |" in md
    html = (out / "index.html").read_text()
    assert "Provenance" in html and "Distillation: teacher vs student" in html
    # figures: the per-family panels right after the headline table, every figure before the provenance (last)
    family_fig = html.index("one panel per task family and metric")
    assert html.index("<table>") < family_fig < html.index("<h2>Per task family")
    assert html.rindex("<img") < html.index("<h2>Provenance")
    assert "Paired difference unisurg − random_init per benchmark" in html  # the plot of paired differences
    # a pure function of its inputs: regenerating gives identical bytes
    build_report(mdir, out, {}, extras, "t")
    assert (out / "benchmark.md").read_text() == md and (out / "index.html").read_text() == html


def test_ablation_table_says_when_its_protocol_differs_from_the_main_results():
    from unisurg.report import ablation_section

    def with_heads(r: dict, n: int) -> dict:
        for m in r["models"].values():
            m["heads"] = [{"lr": 0.001, "weight_decay": 0.01, "steps": 300, "val_score": 0.5}] * n
        return r

    main = [with_heads(_result("cholec80", {"unisurg": 0.6, "student": 0.5}), 3)]
    same = {"vjepa": [with_heads(_result("cholec80", {"vjepa": 0.45}), 3)]}
    other = {"vjepa": [with_heads(_result("cholec80", {"vjepa": 0.45}), 1)]}  # e.g. one probe seed, not three
    ok = "\n".join(ablation_section(main, Extras(ablation=same)))
    assert "Every row: the same frozen evaluation protocol, corpus and pretraining recipe." in ok
    assert "Not comparable" not in ok
    # variants pretrained before params.yaml's pretrain section changed (ablation/dvc.lock says which keys)
    prov = {"ablation_recipe": {"vjepa": ["augment"], "pixel": ["augment", "steps"]}}
    old = "\n".join(ablation_section(main, Extras(ablation=same, provenance=prov)))
    assert "other `pretrain` params than params.yaml's (pretrain.{augment, steps}" in old
    stale = "\n".join(ablation_section(main, Extras(ablation=other)))
    assert "Not comparable with the main rows" in stale and "(Cholec80;" in stale
    # same number of heads, but another probe grid (e.g. one weight decay instead of two)
    grid = {"lrs": [0.01, 0.001], "weight_decays": [0.01], "seeds": 3, "seed_batches": "shared"}
    main[0]["probe"] = grid
    same["vjepa"][0]["probe"] = dict(grid)
    assert "Not comparable" not in "\n".join(ablation_section(main, Extras(ablation=same)))
    same["vjepa"][0]["probe"] = {**grid, "weight_decays": [0.01, 0.1]}
    assert "Not comparable with the main rows" in "\n".join(ablation_section(main, Extras(ablation=same)))


def test_ablation_table_says_when_it_ran_on_another_render_of_the_corpus(tmp_path):
    from unisurg.report import ablation_section, corpus_md5

    main_lock, abl_lock = tmp_path / "dvc.lock", tmp_path / "ablation.lock"
    main_lock.write_text("stages:\n  synth:\n    outs:\n    - path: data/synth\n      md5: aaaa1111.dir\n")
    abl_lock.write_text("stages:\n  evaluate@x:\n    deps:\n    - path: data/synth\n      md5: bbbb2222.dir\n")
    assert corpus_md5(main_lock) == "aaaa1111.dir" and corpus_md5(abl_lock) == "bbbb2222.dir"
    assert corpus_md5(tmp_path / "missing.lock") is None
    # one lock, two kinds of stages on different renders: each asked for by its stage names
    both = tmp_path / "both.lock"
    both.write_text(
        "stages:\n  evaluate@x:\n    deps:\n    - path: data/synth\n      md5: bbbb2222.dir\n"
        "  seed_evaluate@seed1:\n    deps:\n    - path: data/synth\n      md5: cccc3333.dir\n"
    )
    assert corpus_md5(both, stages="evaluate@") == "bbbb2222.dir"
    assert corpus_md5(both, stages="seed_evaluate@") == "cccc3333.dir"
    main = [_result("cholec80", {"unisurg": 0.6, "student": 0.5})]
    abl = {"vjepa": [_result("cholec80", {"vjepa": 0.45})]}
    other = "\n".join(
        ablation_section(
            main, Extras(ablation=abl, provenance={"corpus": "aaaa1111.dir", "ablation_corpus": "bbbb2222.dir"})
        )
    )
    assert "Not comparable with the main rows" in other and "bbbb2222" in other and "aaaa1111" in other
    same = "\n".join(
        ablation_section(
            main, Extras(ablation=abl, provenance={"corpus": "aaaa1111.dir", "ablation_corpus": "aaaa1111.dir"})
        )
    )
    assert "Not comparable" not in same


def test_seed_section_reports_the_spread_of_every_score_and_of_the_headline_count():
    from unisurg.report import seeds_section

    vs = ("unisurg", "random_init")

    def run(a: float, b: float, c: float) -> list[dict]:
        return [
            _result("cholec80", {"unisurg": a, "random_init": 0.4}, null=0.3, paired={vs: (a - 0.4, 0.0, 0.1)}),
            _result("autolaparo", {"unisurg": b, "random_init": 0.35}, null=0.2, paired={vs: (b - 0.35, 0.0, 0.1)}),
            _result("m2cai16", {"unisurg": c, "random_init": 0.2}, null=0.1, paired={vs: (c - 0.2, 0.0, 0.1)}),
        ]

    main = run(0.6, 0.3, 0.25)  # 2 counted wins
    seeds = {"seed1": run(0.5, 0.4, 0.15), "seed2": run(0.45, 0.36, 0.3)}  # 2 wins, 3 wins
    x = Extras(baselines={"unisurg": "random_init"}, seeds=seeds)
    md = "\n".join(seeds_section(main, x))
    assert "seed 0 (main): 2 of 3, seed1: 2 of 3, seed2: 3 of 3; mean 2.3, range 2–3." in md
    assert "| Cholec80 | accuracy ↑ | 0.517 [0.450, 0.600] | 0.400 [0.400, 0.400] | 3 of 3 |" in md
    assert "| Autolaparo | accuracy ↑ | 0.353 [0.300, 0.400] | 0.350 [0.350, 0.350] | 2 of 3 |" in md
    # a run under another protocol is left out, and named
    other = run(0.9, 0.9, 0.9)
    for r in other:
        r["protocol"] = {"name": "mini", "label": "mini+probe.lrs"}
    md = "\n".join(seeds_section(main, Extras(baselines={"unisurg": "random_init"}, seeds={"seed1": other})))
    assert "Left out (another protocol): seed1." in md and "seed 0 (main): 2 of 3; mean 2.0, range 2–2." in md
    assert seeds_section(main, Extras(baselines={"unisurg": "random_init"})) == []  # no seed runs: no section
    # a seed run on another corpus render (ablation/dvc.lock says so) is left out and named; all of them: none shown
    prov = {"corpus": "aaaa1111.dir", "seeds_corpus": {"seed1": "aaaa1111.dir", "seed2": "bbbb2222.dir"}}
    md = "\n".join(seeds_section(main, Extras(baselines={"unisurg": "random_init"}, seeds=seeds, provenance=prov)))
    assert "seed 0 (main): 2 of 3, seed1: 2 of 3; mean 2.0" in md
    assert "Left out (another corpus render or recipe): seed2." in md
    # ... and so is one pretrained with other `pretrain` params (a later recipe); none left: not shown
    prov["seeds_recipe"] = {"seed1": ["augment", "diversity"], "seed2": []}
    md = "\n".join(seeds_section(main, Extras(baselines={"unisurg": "random_init"}, seeds=seeds, provenance=prov)))
    assert "**Not shown:** no seed run is comparable" in md and "| Cholec80 |" not in md
    assert "seed1: pretrain.{augment, diversity} differ from params.yaml" in md and "seed2: data/synth bbbb2222" in md


def test_recipe_changes_name_the_pretrain_keys_a_locked_stage_ran_without(tmp_path):
    from unisurg.report import recipe_changes

    (tmp_path / "params.yaml").write_text(
        "pretrain:\n  steps: 1200\n  augment: {flip: true}\n  arch: vit_micro\n  lr: 0.000001\n"
    )
    lock = tmp_path / "dvc.lock"
    # (DVC may record a float as a string: '1e-06' is not a change of 1e-06)
    stage = lambda steps: {
        "params": {"params.yaml": {"pretrain": {"steps": steps, "arch": "vit_micro", "lr": "1e-06"}}}
    }  # noqa: E731
    lock.write_text(yaml.safe_dump({"stages": {"seed_pretrain@seed1": stage(1200), "seed_pretrain@seed2": stage(600)}}))
    found = recipe_changes(lock, "seed_pretrain@", tmp_path / "params.yaml")
    assert found == {"seed1": ["augment"], "seed2": ["augment", "steps"]}
    assert recipe_changes(tmp_path / "none.lock", "seed_pretrain@", tmp_path / "params.yaml") == {}


def test_bold_marks_a_best_model_only_where_paired_cis_separate_it_and_means_never_mix_metrics(tmp_path):
    from unisurg.report import clear_best, markdown

    pairs = {("a", "b"): (0.2, 0.1, 0.3), ("a", "c"): (0.1, 0.02, 0.2)}
    clear = _result("cholec80", {"a": 0.7, "b": 0.5, "c": 0.6}, paired=pairs)
    assert clear_best(clear) == "a"
    overlap = _result("m2cai16", {"a": 0.7, "b": 0.5, "c": 0.6}, paired={**pairs, ("a", "c"): (0.1, -0.02, 0.2)})
    assert clear_best(overlap) is None  # one CI reaches 0
    lower = _result("scared", {"a": 0.1, "b": 0.3}, higher=False, paired={("a", "b"): (-0.2, -0.3, -0.1)})
    assert clear_best(lower) == "a"  # ↓ metric: a negative difference is the better one
    f1 = {**_result("autolaparo", {"a": 0.4, "b": 0.3, "c": 0.2}), "metric": "f1"}
    md = markdown([clear, overlap, f1], ["a", "b", "c"], Extras(), "t")
    assert "| **0.700 [0.690, 0.710]** |" in md and md.count("**0.700") == 1
    # phase benchmarks scored by accuracy and by F1: two rows, each the mean of its own metric
    assert "| phase / step | accuracy ↑ | 2 | 0.700 | 0.500 | 0.600 |" in md
    assert "| phase / step | f1 ↑ | 1 | 0.400 | 0.300 | 0.200 |" in md


def test_continued_section_splits_the_region_from_the_others_with_paired_counts(tmp_path):
    """`make continued`: gains in the region and forgetting elsewhere, counted as the baselines are."""
    from unisurg.report import collect_continued, continued_section, load_continued

    start, fur, sd = "unisurg", "further", "self_distilled"
    res = tmp_path / "data" / "results"
    # in the region: further gains (separated); elsewhere: further loses on both, self-distilled less
    write_json(
        res / "cholec80.json",
        _result(
            "cholec80",
            {start: 0.5, fur: 0.7, sd: 0.65},
            null=0.2,
            paired={(fur, start): (0.2, 0.1, 0.3), (sd, fur): (-0.05, -0.1, 0.0), (sd, start): (0.15, 0.05, 0.2)},
        ),
    )
    for name in ("pitvis", "jigsaws"):
        write_json(
            res / f"{name}.json",
            _result(
                name,
                {start: 0.6, fur: 0.4, sd: 0.5},
                null=0.2,
                paired={(fur, start): (-0.2, -0.3, -0.1), (sd, fur): (0.1, -0.01, 0.2), (sd, start): (-0.1, -0.2, 0.0)},
            ),
        )
    experiment = {"region": "gallbladder", "where": "region = 'gallbladder'", "in_region": ["cholec80"], "steps": 300}
    assert collect_continued(tmp_path / "data", experiment, tmp_path / "reports") == 3
    c = load_continued(tmp_path / "reports")
    assert c["experiment"] == experiment and len(c["results"]) == 3
    assert load_continued(tmp_path / "nothing") is None
    md = "\n".join(continued_section(c["results"], Extras(continued=c)))
    assert "## Continued pretraining on one region (gallbladder)" in md and "Protocol: `mini`" in md
    # further − unisurg: 1 of 1 better in the region (separated); 0 of 2 elsewhere, 2 worse, both separated
    assert "| further − unisurg | gallbladder | 1 of 1 | 0 | 0 | - | 1 | 1 | 0 |" in md
    assert "| further − unisurg | other regions | 0 of 2 | 2 | 0 | - | 0.5 | 0 | 2 |" in md
    # self_distilled − further elsewhere: better on both, neither separated (CIs reach below 0)
    assert "| self_distilled − further | other regions | 2 of 2 | 0 | 0 | - | 0.5 | 0 | 0 |" in md
    assert "| Pitvis | other | accuracy ↑ | 0.600 [0.590, 0.610] | 0.400 [0.390, 0.410] | 0.500 [0.490, 0.510] |" in md
    assert "From an earlier main encoder" not in md
    # started from a main checkpoint the pipeline has since replaced (the two dvc.locks say so): marked
    prov = {"continued_start": "aaaa1111", "main_checkpoint": "bbbb2222"}
    md = "\n".join(continued_section(c["results"], Extras(continued=c, provenance=prov)))
    assert "**From an earlier main encoder:**" in md and "aaaa1111" in md and "bbbb2222" in md
    prov["main_checkpoint"] = "aaaa1111"
    assert "From an earlier" not in "\n".join(continued_section(c["results"], Extras(continued=c, provenance=prov)))


def test_pooled_seed_test_averages_each_benchmarks_paired_difference_over_seeds_then_counts_signs():
    from unisurg.report import pooled_over_seeds, pooled_section, seeds_section

    vs = ("unisurg", "random_init")

    def run(*diffs: float) -> list[dict]:
        # benchmark i: unisurg - random_init = diffs[i]; the last benchmark's metric is ↓ (lower is better)
        rs = []
        for i, d in enumerate(diffs):
            higher = i < len(diffs) - 1
            rs.append(_result(f"b{i}", {"unisurg": 0.5 + d, "random_init": 0.5}, higher, paired={vs: (d, d, d)}))
        return rs

    runs = {
        "seed 0 (main)": run(0.2, -0.05, 0.05, 0.1),
        "seed1": run(0.1, 0.05, -0.05, 0.1),
        "seed2": run(0.0, 0.03, -0.06, 0.1),
    }
    t = pooled_over_seeds(runs, *vs)
    assert t.seeds == 3 and list(t.gains) == ["B0", "B1", "B2", "B3"]
    assert abs(t.gains["B0"] - 0.1) < 1e-12 and abs(t.gains["B1"] - 0.01) < 1e-12
    assert abs(t.gains["B2"] + 0.02) < 1e-12  # a mean below 0: a loss, though one seed was better
    assert abs(t.gains["B3"] + 0.1) < 1e-12  # ↓ metric: a higher value is worse, the sign flips
    assert (t.wins, t.losses) == (2, 2) and t.p == 1.0
    md = "\n".join(pooled_section(runs, *vs))
    assert "better on 2, worse on 2 (0 ties): p = 1, so pooled over seeds unisurg does not beat" in md
    # six benchmarks, each better on average: p = 2 / 2^6 = 0.03125 < 0.05
    six = {n: run(0.1, 0.1, 0.1, 0.1, 0.1, -0.1) for n in ("a", "b", "c")}
    assert pooled_over_seeds(six, *vs).p == 0.03125
    assert "p = 0.0312, so pooled over seeds unisurg beats random_init at p < 0.05" in "\n".join(
        pooled_section(six, *vs)
    )
    # a benchmark without a paired difference in one run is left out, not counted as a tie
    gap = {"a": run(0.1, 0.1), "b": run(0.1, 0.1)}
    del gap["b"][1]["models"]["unisurg"]["paired"]
    assert list(pooled_over_seeds(gap, *vs).gains) == ["B0"]
    # the seeds section carries the pooled test and each seed's learning diagnostic
    x = Extras(
        baselines={"unisurg": "random_init"},
        seeds={"seed1": runs["seed1"], "seed2": runs["seed2"]},
        seeds_pretrain={"seed1": {"probe_ema_step0": 0.3, "final_probe_ema": 0.4}, "seed2": {"probe_ema_step0": 0.3}},
    )
    md = "\n".join(seeds_section(runs["seed 0 (main)"], x))
    assert "**Pooled paired test over 3 seeds × 4 benchmarks.**" in md
    assert "above its step-0 score in 1 of 1 runs" in md and "| seed1 | 0.3000 | 0.4000 |" in md


def test_ablation_variants_are_compared_with_the_full_recipe_in_paired_terms():
    from unisurg.report import ablation_section

    main = [_result("cholec80", {"unisurg": 0.6, "student": 0.5}, null=0.1)]
    pair = ("no_motion", "full")
    abl = {
        "no_motion": [
            _result("cholec80", {"no_motion": 0.5, "full": 0.6}, null=0.1, paired={pair: (-0.1, -0.15, -0.05)})
        ],
        "pixel": [_result("cholec80", {"pixel": 0.4}, null=0.1)],  # evaluated alone (before the grid was paired)
    }
    md = "\n".join(ablation_section(main, Extras(ablation=abl)))
    assert "| full recipe − motion-guided prediction | 0 of 1 | 1 | 0 | - | 1 | 0 | 1 |" in md
    assert "| full recipe − motion-guided prediction | -0.100 [-0.150, -0.050] |" in md
    assert "| pixel reconstruction (VideoMAE-style) | 0.400" in md  # its score, and no paired row
    assert "| pixel reconstruction (VideoMAE-style) | n/a |" not in md


def test_random_teacher_control_compares_the_student_with_one_distilled_from_noise(tmp_path):
    from unisurg.cli import main as cli_main
    from unisurg.report import random_teacher_section

    pairs = {("student", "random_teacher"): (0.1, 0.05, 0.15), ("random_teacher", "random_student"): (0.05, -0.01, 0.1)}
    values = {"student": 0.6, "random_teacher": 0.5, "random_student": 0.45}
    rs = [_result("cholec80", values, null=0.3, paired=pairs)]
    x = Extras(baselines={"student": "random_student"}, random_teacher=rs)
    md = "\n".join(random_teacher_section(x))
    assert "| student − random_teacher | 1 of 1 | 0 | 0 | - | 1 | 1 | 0 |" in md
    assert "| random_teacher − random_student | 1 of 1 | 0 | 0 | - | 1 | 0 | 0 |" in md
    assert "| Cholec80 | accuracy ↑ | 0.100 [0.050, 0.150] | 0.050 [-0.010, 0.100] |" in md
    assert random_teacher_section(Extras()) == []
    # the provenance names the machine behind each section's results
    from unisurg.report import other_machines

    rs[0]["machine"] = {"cpu": "Some Xeon", "cores": 2, "torch": "2.x", "numpy": "2.y"}
    assert other_machines(x) == {"random-teacher control": ["Some Xeon, 2 cores, no accelerator; torch 2.x, numpy 2.y"]}
    assert other_machines(Extras()) == {}
    # `unisurg ablation collect` versions the control's results beside the variants'
    grid = tmp_path / "grid.yaml"
    grid.write_text("variants:\n  vjepa:\n    set: ''\n")
    write_json(tmp_path / "data" / "vjepa" / "results" / "cholec80.json", rs[0])
    write_json(tmp_path / "data" / "random_teacher" / "results" / "cholec80.json", rs[0])
    out = tmp_path / "reports" / "ablation"
    args = ["ablation", "collect", "--grid", str(grid), "--results", str(tmp_path / "data"), "--out", str(out)]
    assert cli_main(args) == 0
    assert (tmp_path / "reports" / "random_teacher" / "cholec80.json").read_text() == (
        tmp_path / "data" / "random_teacher" / "results" / "cholec80.json"
    ).read_text()
