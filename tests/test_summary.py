"""Per-arm summaries when a run diverges (its training loss is NaN or inf): the
numbers of the other seeds stand, the diverged run is counted and ranks worst, and
the table says so. A diverged arm once crashed `superpos compare` with a traceback
after every trial had run."""

import math

from rich.console import Console

from superpos_cli.cli.render import compare_table
from superpos_cli.engine.loop import EpochRecord, EvalPoint, RunResult
from superpos_cli.experiments.summary import summarize_arms


def _run(loss: float, accuracy: float = 0.92, e2t: float | None = 3.0, metric: str | None = "val_accuracy"):
    metrics = {metric: accuracy} if metric else {"val_loss": loss}
    return RunResult([EvalPoint(1.0, 10, loss, metrics)], [EpochRecord(1, loss, 1.0, metrics)],
                     metric, 0.9 if metric else None, e2t if metric else None, 10)


def test_diverged_run_is_counted_left_out_of_means_and_ranked_worst():
    reference = [_run(0.30), _run(0.31), _run(0.32)]
    unstable = [_run(0.40), _run(math.nan, accuracy=0.5, e2t=None), _run(0.42)]
    ref, arm = summarize_arms(["adam", "sgd"], [{}, {}], [reference, unstable], max_epochs=12)
    assert ref["diverged"] == 0 and arm["diverged"] == 1
    assert arm["mean_train_loss"]["per_seed"] == [0.40, None, 0.42]
    assert math.isclose(arm["mean_train_loss"]["mean"], 0.41)
    assert arm["epochs_to_target"]["success_rate"] == 2 / 3
    assert math.isclose(arm["final_accuracy"]["mean"], (0.92 + 0.5 + 0.92) / 3)
    console = Console(width=300, record=True)
    console.print(compare_table({"arms": [ref, arm], "paper": [], "max_epochs": 12,
                                 "task": "textcls", "target": 0.9, "seeds": [0, 1, 2]}))
    row = next(line for line in console.export_text().splitlines() if line.startswith("│ sgd"))
    assert "67% (1 diverged)" in row


def test_loss_task_ranks_a_diverged_seed_worst():
    reference = [_run(1.0, metric=None), _run(1.1, metric=None), _run(1.2, metric=None)]
    diverged = [_run(math.inf, metric=None), _run(math.nan, metric=None), _run(math.nan, metric=None)]
    ref, arm = summarize_arms(["adamw", "sgd"], [{}, {}], [reference, diverged], max_epochs=1)
    assert arm["diverged"] == 3 and arm["mean_train_loss"]["mean"] is None
    assert arm["loss_change"] is None
    assert arm["verdict"] == "higher loss"  # every seed's loss is worse than the reference's
