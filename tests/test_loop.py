"""The shared training loop on a toy regression task: it learns, logs and checkpoints on its
cadences, stops on a NaN naming the step, and a run killed mid-way resumes to the same weights."""

from __future__ import annotations

import csv

import pytest
import torch
from torch import nn

from unisurg.models.checkpoint import load_checkpoint
from unisurg.runtime import Dist
from unisurg.training.ema import ema_update
from unisurg.training.loop import StepLog, Task, Trainer, param_groups
from unisurg.training.schedules import WarmupCosine

STEPS = 12


class Toy(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.body, self.head = nn.Linear(4, 8), nn.Linear(8, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(torch.relu(self.body(x)))


def batch(step: int) -> dict[str, torch.Tensor]:
    """Batch of step ``step``: a function of the step alone, as StepBatchSampler's batches are."""
    g = torch.Generator().manual_seed(step)
    x = torch.randn(16, 4, generator=g)
    return {"x": x, "y": x @ torch.tensor([[0.5], [-1.0], [0.25], [0.75]])}


class Regression(Task):
    fields = ["step", "loss", "mse", "lr", "ema_gap", "seconds"]

    def __init__(self, model: Toy, ema: Toy, nan_at: int | None = None) -> None:
        self.model, self.ema, self.nan_at = model, ema, nan_at

    def step(self, step, batch):
        loss = (self.model(batch["x"]) - batch["y"]).pow(2).mean()
        if step == self.nan_at:
            loss = loss * float("nan")
        return loss, {"mse": loss.item()}

    def after_update(self, step):
        ema_update(self.ema, self.model, 0.9)

    def telemetry(self, done, logged):
        gap = sum((a - b).abs().sum() for a, b in zip(self.ema.parameters(), self.model.parameters()))
        return {"ema_gap": f"{gap.item():.6f}"} if logged else {}


def make(out, nan_at=None, checkpoint_every=4, log_every=3):
    torch.manual_seed(0)
    model = Toy()
    ema = Toy().requires_grad_(False)
    ema.load_state_dict(model.state_dict())
    opt = torch.optim.AdamW(param_groups([model], 0.01), lr=1e-2)
    trainer = Trainer(
        model,
        opt,
        out,
        Dist(),
        name="toy",
        lr=WarmupCosine(lr=1e-1, start_lr=1e-2, final_lr=1e-2, warmup_steps=3, total_steps=STEPS),
        steps=STEPS,
        clip_grad=1.0,
        log_every=log_every,
        checkpoint_every=checkpoint_every,
        meta={"kind": "toy"},
        frozen={"ema": ema},
    )
    return trainer, Regression(model, ema, nan_at)


def fit(out, **kw):
    trainer, task = make(out, **kw)
    start = trainer.resume()
    return trainer, task, trainer.fit(task, (batch(k) for k in range(start, STEPS)), start, progress=False)


def rows(path):
    with open(path, newline="") as fh:
        return [{k: v for k, v in r.items() if k != "seconds"} for r in csv.DictReader(fh)]


def test_the_loop_learns_logs_and_checkpoints_on_its_cadences(tmp_path, monkeypatch):
    saved = []
    save = Trainer.save
    monkeypatch.setattr(Trainer, "save", lambda self, step: (saved.append(step), save(self, step)))
    trainer, task, result = fit(tmp_path)
    assert saved == [4, 8, STEPS]  # every checkpoint_every steps, then the final one
    log = rows(tmp_path / "log.csv")
    assert [int(r["step"]) for r in log] == [3, 6, 9, 12]  # every log_every steps, and the last
    # the row of step k was computed with the lr of step k - 1 (log "step" = steps done)
    assert [r["lr"] for r in log] == [f"{trainer.lr.value_at(int(r['step']) - 1):.3e}" for r in log]
    assert float(log[-1]["loss"]) < 0.5 * float(log[0]["loss"])  # it learns
    assert result.steps_run == STEPS and result.loss == pytest.approx(float(log[-1]["loss"]), abs=1e-6)
    assert result.parts["mse"] == result.loss
    ck = load_checkpoint(tmp_path / "checkpoint.pt")
    assert ck["kind"] == "toy" and ck["step"] == STEPS
    assert set(ck) >= {"body", "head", "ema", "optimizer"}  # one entry per child of the model, and the frozen ones
    assert torch.equal(ck["head"]["weight"], task.model.head.weight.detach())


def test_nan_loss_stops_the_run_naming_the_step(tmp_path):
    with pytest.raises(FloatingPointError, match="toy diverged at step 5: loss nan"):
        fit(tmp_path, nan_at=5)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["step"] == 4  # the last good checkpoint is kept


def test_killed_run_resumes_to_the_weights_of_an_uninterrupted_run(tmp_path, monkeypatch):
    _, full, _ = fit(tmp_path / "full")

    class Killed(Exception):
        pass

    write = StepLog.write

    def write_then_die(self, row):
        write(self, row)
        if row["step"] == 6:  # after the checkpoint of step 4: steps 5-6 are lost, their rows dropped
            raise Killed

    monkeypatch.setattr(StepLog, "write", write_then_die)
    with pytest.raises(Killed):
        fit(tmp_path / "part")
    monkeypatch.setattr(StepLog, "write", write)
    trainer, part, result = fit(tmp_path / "part")
    assert result.steps_run == STEPS - 4  # resumed at step 4
    for a, b in [(full.model, part.model), (full.ema, part.ema)]:
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), k
    a, b = load_checkpoint(tmp_path / "full" / "checkpoint.pt"), load_checkpoint(tmp_path / "part" / "checkpoint.pt")
    for name, state in a["optimizer"]["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["optimizer"]["state"][name][k]), (name, k)
    assert rows(tmp_path / "part" / "log.csv") == rows(tmp_path / "full" / "log.csv")
