"""``ablate``: one base arm swept over a grid of optimizer and model options.

Each *cell* of the grid (the Cartesian product of the axes' values) is the base
arm with that cell's options, trained on the same paired seeds as every other
cell. One cell is the *control*; every other cell is compared with it:

* overhead, break-even speedup, achieved speedup, time-to-target ratio and the
  paired bootstrap CI of the ratio of median epochs-to-target
  (:func:`summary.relative_summary`);
* a Mann-Whitney p-value per cell, Holm-adjusted across the cells compared with
  the control (:func:`stats.holm`), since a grid of k cells makes k - 1 tests;
* a *best* cell only if its ratio CI lies wholly on the good side of 1 (verdict
  "faster", or "lower loss" for a task without an accuracy target) and its
  Holm-adjusted p-value is at most :data:`ALPHA`: the interval alone is not
  corrected for the number of cells, the Holm p-value is. Among several such
  cells the one with the fewest median epochs to target (lowest loss) wins.

The default control sets every axis to its "off" value where the axis has one
and that value is swept (lambda 0, perturb none, attention classical) and to
its first value otherwise; so ``--perturb sin,none --attention quantum,classical``
compares three cells with plain Adam-like training on classical attention, and
a sweep without an "off" value compares with its first cell.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from superpos_cli.engine import stats
from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.compare import main_metric, target_of
from superpos_cli.experiments.executor import EventCallback, counting, execute
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.summary import RELATIVE_FIELDS, arm_summary, relative_summary
from superpos_cli.experiments.trials import (TrialSpec, TrialsFailed, failed_trials, failure_line, paired_completed,
                                             result_of)
from superpos_cli.experiments.plan import train_config
from superpos_cli.spec.grid import Cell, Grid

ALPHA = 0.05  # family-wise error rate of the "best" marker (Holm)
GOOD_VERDICTS = ("faster", "lower loss")


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class AblateSpec:
    """A grid of cells (spec/grid.py) over paired seeds; ``train`` is the base
    training protocol, each cell's training axes replace its fields."""

    grid: Grid
    seeds: list[int]

    def __post_init__(self) -> None:
        if not self.seeds:
            raise BadInput("seeds must be >= 1")

    @property
    def task(self) -> str:
        return self.grid.run.task

    @property
    def task_options(self) -> dict[str, Any]:
        return self.grid.run.task_options()

    @property
    def base(self) -> str:
        return self.grid.base_text

    @property
    def axes(self) -> dict[str, list[Any]]:
        return self.grid.axes

    @property
    def cells(self) -> list[Cell]:
        return self.grid.cells

    @property
    def control_index(self) -> int:
        return self.grid.control_index

    @property
    def control_cell(self) -> Cell:
        return self.grid.control_cell

    @property
    def train(self) -> TrainConfig:
        return train_config(self.grid.run)

    def trials(self) -> list[TrialSpec]:
        """Cells interleaved within each seed (seed 0: every cell, seed 1: ...) so
        slow drift of the machine hits every cell alike."""
        return [
            TrialSpec(self.task, cell.run.task_options(), cell.arm, train_config(cell.run, seed), cell=cell.label)
            for seed in self.seeds
            for cell in self.cells
        ]

    def sweep_name(self) -> str:
        """Label of this sweep's trials in the store (``superpos results list``)."""
        return f"ablate {self.task} {self.base} " + " x ".join(self.axes)


# --------------------------------------------------------------------------- run


def run_ablate(spec: AblateSpec, store: ResultsStore | None = None, fresh: bool = False,
               on_event: EventCallback | None = None, jobs: int = 1, reuse_stale: bool = False,
               executor: str = "local", ray_address: str | None = None,
               memory_budget: int | None = None) -> dict[str, Any]:
    """Run every trial not already in ``store`` and return the ablate document."""
    counts, count = counting(on_event)
    trials = spec.trials()
    records = execute(trials, store=store, fresh=fresh, sweep=spec.sweep_name(), on_event=count, jobs=jobs,
                      reuse_stale=reuse_stale, executor=executor, ray_address=ray_address, memory_budget=memory_budget)
    doc = ablate_document(spec, trials, records)
    doc["executed"], doc["reused"] = counts["done"], counts["cached"]
    return doc


def ablate_document(spec: AblateSpec, trials: list[TrialSpec], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON contract of ``ablate`` from trials and their records (same order).

    Failed trials are listed under ``"failed"`` and left out of the summaries; a
    cell none of whose trials completed is left out of ``"cells"`` (raises
    :class:`TrialsFailed` when that is the control)."""
    by_cell: dict[str, list] = {cell.label: [] for cell in spec.cells}
    keep = paired_completed(records, [trial.cell for trial in trials])  # failed seeds leave every cell
    for trial, record, kept in zip(trials, records, keep):  # by trial: a reused record may carry another sweep's label
        if kept:
            by_cell[trial.cell].append(result_of(record))
    if not by_cell[spec.control_cell.label]:
        raise TrialsFailed(failure_line({"failed": failed_trials(records)}))
    cells = []
    for i, cell in enumerate(spec.cells):
        if not by_cell[cell.label]:
            continue
        cells.append({"label": cell.label, "axes": dict(cell.axes), "arm": cell.arm.to_dict(),
                      "task_options": cell.run.task_options(), "control": i == spec.control_index,
                      **arm_summary(by_cell[cell.label], spec.train.max_epochs)})
    control = next(cell for cell in cells if cell["control"])
    for cell in cells:
        if cell is control:
            cell.update({name: None for name in RELATIVE_FIELDS})
        else:
            cell.update(relative_summary(cell, control))
    adjusted = stats.holm([None if cell is control else cell["p_value"] for cell in cells])
    for cell, p in zip(cells, adjusted):
        cell["p_holm"] = p
    best = _best(cells)
    for cell in cells:
        cell["best"] = cell["label"] == best
    metric = main_metric([r for r in records if r.get("status") != "failed"])
    return {
        "kind": "ablate",
        "metric": metric,
        "task": spec.task,
        "task_options": spec.task_options,
        "base": spec.base,
        "axes": {name: list(values) for name, values in spec.axes.items()},
        # Combinations left out because they set two options that exclude each other.
        "skipped_cells": [dict(c) for c in spec.grid.skipped],
        "control": control["label"],
        "target": target_of(metric, spec.train.target),
        "max_epochs": spec.train.max_epochs,
        "evals_per_epoch": spec.train.evals_per_epoch,
        "evals_after_target": spec.train.evals_after_target,
        "seeds": list(spec.seeds),
        "alpha": ALPHA,
        "best": best,
        "machine": machine_info(),
        "versions": versions(),
        "cells": cells,
        "trials": [{"cell": trial.cell, "seed": trial.seed, "key": record.get("key"),
                    "status": record.get("status", "ok"), "stale": record.get("stale", False),
                    "wall_s": record.get("wall_s"), "result": record.get("result")}
                   for trial, record in zip(trials, records)],
        "failed": failed_trials(records),
        # Trials reused from the store although other code made them (--reuse-stale).
        "stale": sum(bool(r.get("stale")) for r in records),
    }


def _best(cells: list[dict[str, Any]]) -> str | None:
    """The cell that beats the control beyond doubt (module docstring), or None."""
    winners = [c for c in cells if c["verdict"] in GOOD_VERDICTS and c["p_holm"] is not None and c["p_holm"] <= ALPHA]
    if not winners:
        return None

    def score(cell: dict[str, Any]) -> float:
        if "epochs_to_target" in cell:
            median = cell["epochs_to_target"]["median"]
            return math.inf if median is None else median
        mean = cell["mean_train_loss"]["mean"]
        return math.inf if mean is None else mean

    return min(winners, key=score)["label"]
