"""JIGSAWS skill protocol: leave-one-supertrial-out folds, Spearman rho within each fold, Fisher-z mean.

On the built-in layout (the real writer, read back by the real loader), a head that outputs each
fold's training mean scores 0, a head that knows the scores scores close to 1, and the statistic we
replaced (one rho over the pooled predictions of leave-one-user-out folds) scores the null clearly
negative.
"""

import shutil

import numpy as np
import pytest
import torch
from scipy.stats import spearmanr

from unisurg.benchmarks import AnnotationError, get_benchmark
from unisurg.benchmarks.clips import JIGSAWS_SUPERTRIALS, JIGSAWS_USERS
from unisurg.evaluation.harness import Setup, evaluate_null
from unisurg.evaluation.protocols import ProbeGrid, Protocol, Sampling
from unisurg.evaluation.samples import make_samples
from unisurg.evaluation.tasks import SkillTask, Truth, task_for
from unisurg.synth.layouts import SynthSpec, write_jigsaws
from unisurg.synth.procedure import stable_seed

BENCH = get_benchmark("jigsaws")


@pytest.fixture(scope="module")
def jigsaws(tmp_path_factory):
    """The built-in JIGSAWS (40 Suturing trials) at 32 px, and its records."""
    root = tmp_path_factory.mktemp("jigsaws") / "JIGSAWS"
    write_jigsaws(root, SynthSpec(size=32), stable_seed(0, "jigsaws"))
    return root, BENCH.load(root)


def _arrays(records):
    y = np.array([r.labels[0] for r in records])
    fold = np.array([r.fold for r in records])
    user = np.array([r.id[-4] for r in records])  # Suturing_<User><NNN>
    return y, fold, user


def _fisher(rhos):
    return float(np.tanh(np.mean(np.arctanh(np.clip(rhos, -0.9999, 0.9999)))))


def _score(y, pred, rounds):
    return SkillTask(BENCH).score(Truth(y, np.arange(len(y)).astype(str), rounds=rounds), pred[:, None])


# --------------------------------------------------------------------------- loader


def test_folds_are_supertrials_and_each_spans_every_user(jigsaws):
    _, records = jigsaws
    assert BENCH.folds == JIGSAWS_SUPERTRIALS == 5
    for r in records:
        assert r.fold == int(r.id[-3:]) - 1  # trial NNN -> fold NNN - 1
    _, fold, user = _arrays(records)
    for f in range(BENCH.folds):
        assert sorted(user[fold == f]) == list(JIGSAWS_USERS)  # one trial of each of the 8 users


def test_a_trial_numbered_6_or_a_missing_supertrial_is_an_error_naming_the_file(jigsaws, tmp_path):
    src, _ = jigsaws
    root = tmp_path / "JIGSAWS"
    shutil.copytree(src, root)
    meta = root / "Suturing" / "meta_file_Suturing.txt"
    rows = meta.read_text().split("\n")
    line = next(i for i, row in enumerate(rows) if row.startswith("Suturing_C002"))
    rows[line] = rows[line].replace("Suturing_C002", "Suturing_C006")
    shutil.copy(
        root / "Suturing" / "video" / "Suturing_C002_capture1.avi",
        root / "Suturing" / "video" / "Suturing_C006_capture1.avi",
    )
    meta.write_text("\n".join(rows))
    with pytest.raises(AnnotationError) as err:
        BENCH.load(root)
    assert f"{meta}:{line + 1}: trial 'Suturing_C006' is numbered 6" in str(err.value)

    meta.write_text("\n".join(row for row in rows if not row.startswith("Suturing_") or row[10:13] != "005"))
    with pytest.raises(AnnotationError) as err:
        BENCH.load(root)
    assert f"{meta}: no usable trial numbered 005" in str(err.value)


# --------------------------------------------------------------------------- protocol


def test_training_mean_null_scores_zero_and_the_old_pooled_louo_rho_is_negative(jigsaws):
    _, records = jigsaws
    y, fold, user = _arrays(records)
    # LOSO: each fold's held-out trials get the mean score of the other folds' trials
    null = np.array([y[fold != f].mean() for f in fold])
    assert abs(_score(y, null, fold).metrics["spearman"]) < 0.2
    # the null row the harness reports (training mean of each round's training folds, chosen on validation)
    grid = ProbeGrid(lrs=(1e-3,), weight_decays=(0.01,), epochs=1, batch_size=4, depth=1, num_heads=2)
    protocol = Protocol("test", Sampling(frames=4, fps=4.0, size=32), grid, bootstrap=0)
    setup = Setup.build(BENCH, records, make_samples(BENCH, records), protocol, seed=0)
    outcome = evaluate_null(setup)
    assert abs(outcome.summary["value"]) < 0.2 and outcome.summary["heads"][0]["null"] == "training mean"
    # what we replaced: leave-one-user-out, one rho over the pooled test trials of all folds
    louo_null = np.array([y[user != u].mean() for u in user])
    assert spearmanr(y, louo_null).statistic < -0.4  # the training mean falls as the held-out user's scores rise


def test_a_predictor_that_knows_the_scores_scores_close_to_one(jigsaws):
    _, records = jigsaws
    y, fold, _ = _arrays(records)
    pred = y + np.random.default_rng(0).normal(0, 0.5, len(y))  # GRS spans 6..30
    s = _score(y, pred, fold)
    assert s.metrics["spearman"] > 0.8 and s.units == len(y) == 40
    assert s.stat(np.arange(len(y))) == pytest.approx(s.metrics["spearman"])


def test_the_skill_score_is_a_fisher_mean_of_within_fold_rhos():
    rng = np.random.default_rng(1)
    y = rng.integers(8, 30, 24).astype(np.float64)
    pred = y + rng.normal(0, 4, 24)
    fold = np.repeat(np.arange(3), 8)
    pred[fold == 2] = 17.0  # a constant prediction: rho undefined, counted as 0
    rhos = [spearmanr(y[fold == f], pred[fold == f]).statistic for f in (0, 1)] + [0.0]
    s = _score(y, pred, fold)
    assert s.metrics["spearman"] == pytest.approx(_fisher(rhos))
    assert s.metrics["spearman_pooled"] == pytest.approx(spearmanr(y, pred).statistic)
    assert s.metrics["mae"] == pytest.approx(np.mean(np.abs(y - pred)))
    assert s.select == s.metrics["spearman"]
    # a bootstrap resample: rho within each fold on its resampled trials; a fold with fewer than 3
    # distinct resampled trials is left out of the mean
    ix = np.r_[0, 0, 1, 2, 3, 8, 8, 9, 16, 17, 18]  # fold 0: 4 distinct trials, fold 1: 2, fold 2: 3
    want = [spearmanr(y[[0, 0, 1, 2, 3]], pred[[0, 0, 1, 2, 3]]).statistic, 0.0]
    assert s.stat(ix) == pytest.approx(_fisher(want))
    assert np.isnan(s.stat(np.r_[0, 1, 8]))  # no fold with 3 distinct trials: no value (the CI drops it)
    # validation (one fold, no rounds): one rho over its trials
    v = SkillTask(BENCH).score(Truth(y[:8], np.arange(8).astype(str)), pred[:8, None])
    assert v.select == pytest.approx(spearmanr(y[:8], pred[:8]).statistic) and "spearman_pooled" not in v.metrics


def test_rho_of_one_is_clipped_before_the_fisher_transform():
    y = np.arange(16, dtype=np.float64)
    s = _score(y, y.copy(), np.repeat([0, 1], 8))
    assert s.metrics["spearman"] == pytest.approx(0.9999) and np.isfinite(s.metrics["spearman"])


def test_null_candidate_is_the_training_mean_in_score_units():
    task = task_for(BENCH)
    ((name, const),) = task.null_candidates(torch.tensor([10.0, 20.0, 30.0], dtype=torch.float64))
    assert name == "training mean" and const.shape == (1,) and const[0] == pytest.approx(20.0)
