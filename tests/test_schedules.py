"""Schedule objects: learning rate (warmup + cosine / constant) and EMA momentum, on hand-computed values."""

import math

import pytest

from unisurg.config import OptimParams
from unisurg.training.ema import MomentumSchedule
from unisurg.training.schedules import WarmupConstant, WarmupCosine, lr_schedule


def test_warmup_cosine_values():
    s = WarmupCosine(lr=1.0, start_lr=0.1, final_lr=0.01, warmup_steps=10, total_steps=110)
    assert s.value_at(0) == 0.1  # warmup starts at start_lr
    assert s.value_at(5) == pytest.approx(0.55)  # linear ramp
    assert s.value_at(10) == 1.0  # warmup ends at the peak, where the cosine starts
    assert s.value_at(60) == pytest.approx(0.505)  # half-way through the cosine: (lr + final_lr) / 2
    assert s.value_at(110) == pytest.approx(0.01, abs=1e-15)  # cosine ends at final_lr
    assert s.value_at(500) == s.value_at(110)  # and stays there
    after = [s.value_at(k) for k in range(10, 111)]
    assert all(a > b for a, b in zip(after, after[1:]))  # strictly decreasing after warmup


def test_warmup_constant_values():
    s = WarmupConstant(lr=1e-3, start_lr=1e-4, warmup_steps=4)
    assert [s.value_at(k) for k in range(6)] == pytest.approx([1e-4, 3.25e-4, 5.5e-4, 7.75e-4, 1e-3, 1e-3])
    assert s.value_at(10_000) == 1e-3
    assert WarmupConstant(lr=2.0, start_lr=0.0, warmup_steps=0).value_at(0) == 2.0  # no warmup: peak at once


def _reference_lr(step, total, lr, start_lr, final_lr, warmup, schedule):
    """The expression the schedules must keep bit for bit (runs stay reproducible across versions)."""
    if step < warmup:
        return start_lr + (lr - start_lr) * step / max(warmup, 1)
    if schedule == "constant":
        return lr
    progress = min((step - warmup) / max(total - warmup, 1), 1.0)
    return final_lr + 0.5 * (lr - final_lr) * (1 + math.cos(math.pi * progress))


@pytest.mark.parametrize("schedule", ["cosine", "constant"])
def test_lr_schedule_is_built_from_the_optim_params_and_exact(schedule):
    o = OptimParams(lr=5e-4, start_lr=1e-4, final_lr=1e-6, warmup_steps=7, schedule=schedule)
    s = lr_schedule(o, 50)
    assert isinstance(s, WarmupCosine if schedule == "cosine" else WarmupConstant)
    for step in range(60):
        assert s.value_at(step) == _reference_lr(step, 50, 5e-4, 1e-4, 1e-6, 7, schedule), step


def test_unknown_lr_schedule_raises():
    with pytest.raises(ValueError, match="unknown schedule 'step'"):
        lr_schedule(OptimParams.model_construct(schedule="step"), 10)


def test_momentum_schedule():
    s = MomentumSchedule(start=0.996, end=1.0, total_steps=100)
    assert s.value_at(0) == 0.996
    assert s.value_at(50) == pytest.approx(0.998)
    assert s.value_at(100) == 1.0 and s.value_at(150) == 1.0  # clamped at the end
    assert MomentumSchedule(0.99925, 0.99925, 100).value_at(7) == 0.99925  # V-JEPA 2: constant
    assert MomentumSchedule(0.9, 1.0, 1).value_at(0) == 1.0  # a one-step run uses the end value
