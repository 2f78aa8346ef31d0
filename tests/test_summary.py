"""Per-arm summaries when a run diverges (its training loss is NaN or inf): the
numbers of the other seeds stand, the diverged run is counted and ranks worst, and
the table says so. A diverged arm once crashed `superpos compare` with a traceback
after every trial had run."""

import math

import pytest
from rich.console import Console

from superpos_cli.cli.render import compare_table, epoch_table
from superpos_cli.engine.loop import EpochRecord, EvalPoint, RunResult, _window_telemetry
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
    console.print(compare_table({"arms": [ref, arm], "paper": [], "max_epochs": 12, "metric": "epochs_to_target",
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


def _telemetry_run(e2t: float, ratios: list[float | None], share: float | None = 0.05):
    metrics = {"val_accuracy": 0.92}
    evals = [EvalPoint(0.5 * (i + 1), 5 * (i + 1), 0.3, metrics, r, share if r is not None else None)
             for i, r in enumerate(ratios)]
    # Two evaluation windows per epoch; each epoch keeps its windows' median, as the loop does.
    epochs = [EpochRecord(e + 1, 0.3, 1.0, metrics, *_window_telemetry(evals[2 * e: 2 * e + 2]))
              for e in range((len(evals) + 1) // 2)]
    return RunResult(evals, epochs, "val_accuracy", 0.9, e2t, 10)


def _text(table) -> str:
    console = Console(width=400, record=True)
    console.print(table)
    return console.export_text()


def test_telemetry_per_seed_median_per_arm_and_the_power_line():
    reference = [_telemetry_run(e, [None, None, None]) for e in (7.0, 7.6, 8.1)]
    method = [_telemetry_run(6.2, [1e-4, 3e-4, 2e-4]), _telemetry_run(6.9, [5e-4, 4e-4, 6e-4]),
              _telemetry_run(7.4, [2e-3, 1e-3, 3e-3])]
    ref, arm = summarize_arms(["adam", "sgd"], [{}, {}], [reference, method], max_epochs=12)
    assert ref["perturb_ratio"] == {"median": None, "per_seed": [None, None, None]}  # not SuperpositionalAdam
    # Per run: the median over epochs of each epoch's median (epoch 1: two windows, epoch 2: one).
    assert arm["perturb_ratio"]["per_seed"] == pytest.approx([2e-4, (4.5e-4 + 6e-4) / 2, (1.5e-3 + 3e-3) / 2])
    assert arm["perturb_ratio"]["median"] == pytest.approx(5.25e-4)
    assert arm["scope_share"]["per_seed"] == [0.05] * 3
    assert ref["power"] is None
    p = arm["power"]
    assert p["metric"] == "epochs_to_target" and p["n_seeds"] == 3
    assert 0 < p["detectable_ratio"] < 1 and p["paper_ratio"] == 4.6 / 7.4
    table = compare_table({"arms": [ref, arm], "paper": [], "max_epochs": 12, "metric": "epochs_to_target",
                           "task": "textcls", "target": 0.9, "seeds": [0, 1, 2]})
    text = _text(table)
    assert "Q/Adam step" in text
    row = next(line for line in text.splitlines() if line.startswith("│ sgd"))
    assert "0.0005" in row
    (line,) = table.caption.splitlines()  # one line per compared arm
    assert line.startswith("power sgd vs adam (80%, simulated): 3 seeds detect")
    assert f"epochs ratio <= {p['detectable_ratio']:.3g}" in line
    assert f"needs {p['seeds_for_paper_ratio']} seeds" in line


def test_loss_task_power_sizes_the_papers_loss_effect():
    reference = [_run(v, metric=None) for v in (1.00, 1.02, 0.99)]
    method = [_run(v, metric=None) for v in (0.98, 1.01, 0.97)]
    _, arm = summarize_arms(["adamw", "sgd"], [{}, {}], [reference, method], max_epochs=1)
    assert arm["power"]["metric"] == "mean_train_loss"
    assert arm["power"]["paper_ratio"] == pytest.approx(0.959)
    assert arm["perturb_ratio"]["median"] is None


def test_epoch_table_shows_the_ratio_and_the_scope_share():
    result = {"epochs": [{"epoch": 1, "train_loss": 0.5, "train_time_s": 1.0, "metrics": {"val_accuracy": 0.8},
                          "perturb_ratio": 3.2e-4, "scope_share": 0.0449}]}
    text = _text(epoch_table(result, "textcls with sgd"))
    assert "scope: 4.5% of coordinates" in text and "Q/Adam step" in text and "0.00032" in text
    old = {"epochs": [{"epoch": 1, "train_loss": 0.5, "train_time_s": 1.0, "metrics": {}}]}  # stored before telemetry
    assert "scope:" not in _text(epoch_table(old, "t"))


def test_power_lines_for_a_loss_a_note_and_an_ablation():
    from superpos_cli.cli.render import _power_range, power_line

    p = {"metric": "mean_train_loss", "note": None, "n_seeds": 3, "target_power": 0.8, "alpha": 0.05,
         "max_seeds": 32, "detectable_ratio": 0.987, "false_positive_rate": 0.11, "paper_ratio": 0.959,
         "seeds_for_paper_ratio": None, "log_sd": 0.006,
         "mann_whitney": {"detectable_ratio": None, "seeds_for_paper_ratio": 4}}
    line = power_line("sgd", "adamw", p)
    assert "3 seeds detect loss ratio <= 0.987" in line and "needs > 32 seeds (Mann-Whitney 4)" in line
    assert "Mann-Whitney none" in line and "false positives 11%" in line
    assert power_line("sgd", "adam", {**p, "note": "not estimable: x"}) == "power sgd vs adam: not estimable: x"
    text = _power_range([p, {**p, "detectable_ratio": 0.95, "seeds_for_paper_ratio": 6}], 3)
    assert "loss ratio <= 0.95..0.987" in text and "needs 6..6 seeds (> 32 for some)" in text


def test_a_target_no_arm_reached_gets_one_line_with_the_highest_reachable_target():
    from superpos_cli.cli.render import unreached_target_line

    def entry(rate, *peaks):
        return {"epochs_to_target": {"success_rate": rate}, "curves": [[[0.5, p - 0.1], [1.0, p]] for p in peaks]}

    line = unreached_target_line([entry(0.0, 0.87, 0.861), entry(0.0, 0.8449)], 0.9, 12)
    assert line == ("no arm reached 90% in 12 epochs in any seed; every seed of every arm reached 84% "
                    "(rerun with --target 0.84)")
    assert unreached_target_line([entry(0.0, 0.8), entry(0.2, 0.95)], 0.9, 12) is None  # one seed reached it
    assert unreached_target_line([entry(0.0, 0.8)], None, 1) is None  # a loss task has no target
