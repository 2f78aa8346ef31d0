"""The loop stops a run whose training loss becomes NaN or inf (issue 11, faults)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from superpos_cli.engine.loop import RunResult, TrainConfig, train


class PoisonedTask:
    """Regression on fixed data whose ``poison_at``-th training loss (1-based,
    counted over the whole run) is replaced by ``poison``."""

    name = "poisoned"
    target_metric = "val_accuracy"

    def __init__(self, poison_at: int, poison: float, n_batches: int = 4):
        self.poison_at, self.poison, self.n_batches = poison_at, poison, n_batches
        self.calls = 0
        g = torch.Generator().manual_seed(0)
        self.x = torch.randn(n_batches, 8, 3, generator=g)  # (batches, B, features)
        self.y = torch.randn(n_batches, 8, 1, generator=g)

    def build_model(self) -> nn.Module:
        return nn.Linear(3, 1)

    def steps_per_epoch(self) -> int:
        return self.n_batches

    def batches(self, generator):
        for i in torch.randperm(self.n_batches, generator=generator).tolist():
            yield self.x[i], self.y[i]

    def training_loss(self, model, batch):
        self.calls += 1
        loss = nn.functional.mse_loss(model(batch[0]), batch[1])
        return loss * self.poison if self.calls == self.poison_at else loss

    def evaluate(self, model):
        with torch.no_grad():
            mse = float(nn.functional.mse_loss(model(self.x.reshape(-1, 3)), self.y.reshape(-1, 1)))
        return {"val_accuracy": 1.0 / (1.0 + mse), "val_loss": mse}

    def describe(self):
        return {"task": self.name}


# (poisoned loss #, value, grad_accum) -> optimizer steps done when it stopped, epochs recorded
CASES = [
    (1, math.nan, 1, 0, 1),  # the very first batch: nothing trained, one (partial) epoch
    (3, math.inf, 1, 2, 1),
    (6, math.nan, 1, 5, 2),  # second epoch, second batch
    (4, math.inf, 2, 1, 1),  # grad_accum 2: batches 3-4 form step 2, which never happens
    (7, -math.inf, 2, 3, 2),
]


@pytest.mark.parametrize("poison_at, poison, accum, steps, epochs", CASES)
def test_non_finite_loss_stops_the_run_at_that_step(poison_at, poison, accum, steps, epochs):
    task = PoisonedTask(poison_at, poison)
    cfg = TrainConfig(max_epochs=3, evals_per_epoch=2, grad_accum=accum)
    result = train(task, lambda m: torch.optim.SGD(m.parameters(), lr=0.01), cfg)
    assert task.calls == poison_at  # no batch after the bad one
    assert result.diverged_at_step == steps and result.steps == steps
    assert len(result.epochs) == epochs
    assert not math.isfinite(result.epochs[-1].train_loss)
    assert not math.isfinite(result.mean_train_loss)  # what summaries count as diverged
    assert all(math.isfinite(e.train_loss) for e in result.epochs[:-1])
    assert set(result.epochs[-1].metrics) == {"val_accuracy", "val_loss"}
    assert RunResult.from_dict(result.to_dict()).diverged_at_step == steps  # survives the store


def test_finite_run_has_no_divergence():
    task = PoisonedTask(poison_at=10**9, poison=math.nan)
    result = train(task, lambda m: torch.optim.SGD(m.parameters(), lr=0.01), TrainConfig(max_epochs=2))
    assert result.diverged_at_step is None and result.steps == 8 and len(result.epochs) == 2
