"""The report: baseline wins and losses named, teacher vs student, relaxed metrics, provenance."""

from __future__ import annotations

import subprocess

from unisurg.io import write_json
from unisurg.report import Extras, build_report, collect_ablation, load_ablation, provenance


def _result(name: str, values: dict[str, float], higher: bool = True, relaxed: bool = False) -> dict:
    models = {}
    for m, v in values.items():
        metrics = {"accuracy": v, **({"relaxed_accuracy": v + 0.1, "relaxed_jaccard": v / 2} if relaxed else {})}
        models[m] = {"value": v, "ci": [v - 0.01, v + 0.01], "metrics": metrics}
    return {
        "benchmark": name.title(),
        "name": name,
        "task": "phase",
        "metric": "accuracy",
        "higher_is_better": higher,
        "models": models,
    }


def test_report_names_losses_compares_teacher_and_student_and_records_provenance(tmp_path):
    mdir = tmp_path / "metrics"
    write_json(
        mdir / "cholec80.json", _result("cholec80", {"unisurg": 0.6, "random_init": 0.4, "student": 0.5}, relaxed=True)
    )
    write_json(mdir / "autolaparo.json", _result("autolaparo", {"unisurg": 0.3, "random_init": 0.35, "student": 0.3}))
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
    # unisurg beats random on Cholec80 (CIs separated) and not on AutoLaparo, which is named
    assert "| unisurg | random_init | 1 of 2 | 1 | 1 | Autolaparo |" in md
    assert "| student (student) | vit_nano | 1,000 | 0.5 | 30.0 |" in md
    assert "speed-up 3.00x" in md
    assert "Relaxed-boundary" in md and "| Cholec80 | 0.500 / 0.200 | 0.600 / 0.250 | 0.700 / 0.300 |" in md
    assert "abc123" in md and "uncommitted changes to 1 code file" in md  # params.yaml is not committed
    assert "| pixel reconstruction (VideoMAE-style) | 0.350 [0.340, 0.360] |" in md
    assert "| V-JEPA (latent prediction only) | 0.450 [0.440, 0.460] |" in md
    assert "| full UniSurg (main pipeline): unisurg | 0.600 [0.590, 0.610] |" in md
    html = (out / "index.html").read_text()
    assert "Provenance" in html and "Distillation: teacher vs student" in html
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
    assert "Every row: the same frozen evaluation protocol and corpus." in ok and "Not comparable" not in ok
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
