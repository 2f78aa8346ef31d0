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

import itertools
import math
from dataclasses import dataclass, field, replace
from typing import Any, Callable

from superpos_cli.engine import stats
from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.executor import EventCallback, execute
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.summary import RELATIVE_FIELDS, arm_summary, relative_summary
from superpos_cli.experiments.trials import TrialSpec, result_of
from superpos_cli.optim.presets import ArmSpec, normalise_key, parse_arm
from superpos_cli.tasks import OPTIMIZER_DEFAULTS

ALPHA = 0.05  # family-wise error rate of the "best" marker (Holm)
GOOD_VERDICTS = ("faster", "lower loss")


# --------------------------------------------------------------------------- axes


def _flag(axis: str) -> str:
    return axis.replace("_", "-")


def _number(kind: type, minimum: float, inclusive: bool) -> Callable[[str, Any], Any]:
    def parse(axis: str, raw: Any) -> Any:
        if isinstance(raw, bool):
            raise BadInput(f"--{_flag(axis)} value {raw!r} is not a number")
        try:
            value = kind(raw) if not isinstance(raw, str) else kind(raw.strip())
        except (TypeError, ValueError):
            raise BadInput(f"--{_flag(axis)} value {str(raw).strip()!r} is not {'an integer' if kind is int else 'a number'}") from None
        if kind is int and isinstance(raw, float) and raw != value:
            raise BadInput(f"--{_flag(axis)} value {raw!r} is not an integer")
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive):
            raise BadInput(f"--{_flag(axis)} value {value!r} must be {'>=' if inclusive else '>'} {minimum:g}")
        return value

    return parse


def _choice(choices: Callable[[], tuple[str, ...]]) -> Callable[[str, Any], Any]:
    def parse(axis: str, raw: Any) -> Any:
        value = str(raw).strip().lower()
        allowed = choices()
        if not isinstance(raw, str) or value not in allowed:
            raise BadInput(f"--{_flag(axis)} value {str(raw).strip()!r} is not one of {', '.join(allowed)}")
        return value

    return parse


def _perturbations() -> tuple[str, ...]:
    from superpos_cli.optim.perturbations import PERTURBATIONS

    return tuple(PERTURBATIONS)


def _scopes() -> tuple[str, ...]:
    from superpos_cli.optim.optimizer import SCOPES

    return tuple(SCOPES)


def _attention_kinds() -> tuple[str, ...]:
    from superpos_cli.models.config import ATTENTION_KINDS

    return tuple(ATTENTION_KINDS)


@dataclass(frozen=True)
class Axis:
    """A sweepable option: where its value goes and how it is parsed."""

    name: str  # the CLI flag without dashes and the key in benchmarks.toml / --control
    target: str  # "optimizer": an option of the arm (presets.OPTIONS); "task": a task/model option
    key: str  # the option's key in the arm or in task_options
    parse: Callable[[str, Any], Any]
    off: Any = None  # the value that switches the studied effect off (the natural control)
    help: str = ""


AXES: dict[str, Axis] = {
    "lambda": Axis("lambda", "optimizer", "lambda", _number(float, 0.0, True), 0.0, "perturbation scale lambda"),
    "perturb": Axis("perturb", "optimizer", "perturb", _choice(_perturbations), "none", "perturbation function"),
    "scope": Axis("scope", "optimizer", "scope", _choice(_scopes), None, "perturbed coordinates"),
    "n_qubits": Axis("n_qubits", "optimizer", "n_qubits", _number(int, 1, True), None, "n_qubits of the optimizer's scope"),
    "lr": Axis("lr", "optimizer", "lr", _number(float, 0.0, False), None, "learning rate"),
    "qubits": Axis("qubits", "task", "n_qubits", _number(int, 1, True), None, "qubits of the attention circuit"),
    "depth": Axis("depth", "task", "depth", _number(int, 1, True), None, "layers of the attention circuit"),
    "attention": Axis("attention", "task", "kind", _choice(_attention_kinds), "classical", "quantum or classical attention"),
}
_AXIS_ALIASES = {"n-qubits": "n_qubits", "lam": "lambda"}


def axis_named(name: str) -> Axis:
    key = _AXIS_ALIASES.get(name.strip().lower(), name.strip().lower())
    if key not in AXES:
        raise BadInput(f"unknown ablation axis {name!r}; allowed: {', '.join(AXES)}")
    return AXES[key]


def parse_axis(name: str, raw: str | list[Any]) -> list[Any]:
    """Typed values of axis ``name`` from ``"0,0.1,0.5"`` (CLI) or a list (TOML).

    Empty items, wrong types, out-of-range values and repeats are BadInput.
    """
    axis = axis_named(name)
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if not items:
        raise BadInput(f"--{_flag(axis.name)} needs at least one value")
    values = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise BadInput(f"--{_flag(axis.name)} {raw!r} has an empty value; give a comma-separated list such as 0,0.1")
        value = axis.parse(axis.name, item)
        if value in values:
            raise BadInput(f"--{_flag(axis.name)} lists {format_value(value)} twice")
        values.append(value)
    return values


def format_value(value: Any) -> str:
    """Short, exact text of an axis value: 0.1 -> "0.1", 0.0 -> "0", 1e-3 -> "0.001"."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


# --------------------------------------------------------------------------- spec


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its axis values and the arm and task options they give."""

    label: str  # "perturb=sin,attention=quantum"
    axes: dict[str, Any]
    arm: ArmSpec
    task_options: dict[str, Any]


@dataclass(frozen=True)
class AblateSpec:
    """A grid of cells over paired seeds.

    ``axes`` maps axis names (:data:`AXES`) to their typed values, in grid order
    (the last axis varies fastest). ``control`` is ``"axis=value,..."``; axes it
    does not name take their default control value (module docstring).
    """

    task: str
    task_options: dict[str, Any]
    base: str
    axes: dict[str, list[Any]]
    seeds: list[int]
    train: TrainConfig
    control: str | None = None
    cells: list[Cell] = field(init=False, repr=False, compare=False)
    control_index: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.axes:
            raise BadInput("give at least one axis to sweep, e.g. --lambda 0,0.1,0.5 "
                           f"(axes: {', '.join('--' + a.replace('_', '-') for a in AXES)})")
        if not self.seeds:
            raise BadInput("seeds must be >= 1")
        for name, values in self.axes.items():
            if name not in AXES:
                raise BadInput(f"unknown ablation axis {name!r}; allowed: {', '.join(AXES)}")
            if not values:
                raise BadInput(f"--{name} needs at least one value")
        base = _split_arm(self.base)  # validates the syntax early, before any cell
        cells = [self._cell(base, dict(zip(self.axes, combo))) for combo in itertools.product(*self.axes.values())]
        object.__setattr__(self, "cells", cells)
        object.__setattr__(self, "control_index", self._control_index())

    def _cell(self, base: tuple[str, dict[str, str]], values: dict[str, Any]) -> Cell:
        preset, base_options = base
        arm_options = dict(base_options)
        task_options = dict(self.task_options)
        for name, value in values.items():
            axis = AXES[name]
            if axis.target == "optimizer":
                arm_options[axis.key] = format_value(value)
            else:
                task_options[axis.key] = value
        text = preset + (":" + ",".join(f"{k}={v}" for k, v in arm_options.items()) if arm_options else "")
        arm = parse_arm(text, None, OPTIMIZER_DEFAULTS.get(self.task))
        # A one-value axis is a setting, not a factor: it stays out of the label
        # unless no axis varies.
        varied = [name for name in values if len(self.axes[name]) > 1] or list(values)
        label = ",".join(f"{name}={format_value(values[name])}" for name in varied)
        return Cell(label, values, arm, task_options)

    def _control_index(self) -> int:
        wanted = {name: _default_control(name, values) for name, values in self.axes.items()}
        if self.control is not None:
            for item in self.control.split(","):
                name, eq, raw = item.partition("=")
                if not eq or not name.strip() or not raw.strip():
                    raise BadInput(f"--control {self.control!r}: each item must look like axis=value")
                axis = axis_named(name)
                if axis.name not in self.axes:
                    raise BadInput(f"--control {self.control!r} names axis {axis.name!r}, which is not swept "
                                   f"(swept: {', '.join(self.axes)})")
                value = axis.parse(axis.name, raw.strip())
                if value not in self.axes[axis.name]:
                    raise BadInput(f"--control {self.control!r} names no cell: {axis.name} takes "
                                   f"{', '.join(format_value(v) for v in self.axes[axis.name])}")
                wanted[axis.name] = value
        return next(i for i, cell in enumerate(self.cells) if cell.axes == wanted)

    @property
    def control_cell(self) -> Cell:
        return self.cells[self.control_index]

    def trials(self) -> list[TrialSpec]:
        """Cells interleaved within each seed (seed 0: every cell, seed 1: ...) so
        slow drift of the machine hits every cell alike."""
        return [
            TrialSpec(self.task, cell.task_options, cell.arm, replace(self.train, seed=seed), cell=cell.label)
            for seed in self.seeds
            for cell in self.cells
        ]

    def sweep_name(self) -> str:
        """Label of this sweep's trials in the store (``superpos results list``)."""
        return f"ablate {self.task} {self.base} " + " x ".join(self.axes)


def _default_control(name: str, values: list[Any]) -> Any:
    off = AXES[name].off
    return off if off is not None and off in values else values[0]


def _split_arm(text: str) -> tuple[str, dict[str, str]]:
    """``"sgd:scope=all"`` -> ("sgd", {"scope": "all"}) with option keys normalised,
    so a cell's value replaces the base's value of the same option."""
    preset, _, rest = text.strip().partition(":")
    if not preset:
        raise BadInput("--optim is empty; give a preset such as sgd or sgd:scope=all")
    options: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInput(f"optimizer option {item!r} in {text!r} must look like key=value")
        options[normalise_key(key)] = value.strip()
    return preset.strip(), options


# --------------------------------------------------------------------------- run


def run_ablate(spec: AblateSpec, store: ResultsStore | None = None, fresh: bool = False,
               on_event: EventCallback | None = None, jobs: int = 1) -> dict[str, Any]:
    """Run every trial not already in ``store`` and return the ablate document."""
    counts = {"done": 0, "cached": 0}

    def count(kind: str, trial: TrialSpec, payload: dict[str, Any]) -> None:
        if kind in counts:
            counts[kind] += 1
        if on_event:
            on_event(kind, trial, payload)

    trials = spec.trials()
    records = execute(trials, store=store, fresh=fresh, sweep=spec.sweep_name(), on_event=count, jobs=jobs)
    doc = ablate_document(spec, trials, records)
    doc["executed"], doc["reused"] = counts["done"], counts["cached"]
    return doc


def ablate_document(spec: AblateSpec, trials: list[TrialSpec], records: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSON contract of ``ablate`` from trials and their records (same order)."""
    by_cell: dict[str, list] = {cell.label: [] for cell in spec.cells}
    for trial, record in zip(trials, records):  # by trial: a reused record may carry another sweep's label
        by_cell[trial.cell].append(result_of(record))
    cells = []
    for i, cell in enumerate(spec.cells):
        cells.append({"label": cell.label, "axes": dict(cell.axes), "arm": cell.arm.to_dict(),
                      "task_options": cell.task_options, "control": i == spec.control_index,
                      **arm_summary(by_cell[cell.label], spec.train.max_epochs)})
    control = cells[spec.control_index]
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
    return {
        "kind": "ablate",
        "task": spec.task,
        "task_options": spec.task_options,
        "base": spec.base,
        "axes": {name: list(values) for name, values in spec.axes.items()},
        "control": control["label"],
        "target": spec.train.target,
        "max_epochs": spec.train.max_epochs,
        "evals_per_epoch": spec.train.evals_per_epoch,
        "seeds": list(spec.seeds),
        "alpha": ALPHA,
        "best": best,
        "machine": machine_info(),
        "versions": versions(),
        "cells": cells,
        "trials": [{"cell": trial.cell, "seed": trial.seed, "key": record.get("key"),
                    "wall_s": record.get("wall_s"), "result": record["result"]}
                   for trial, record in zip(trials, records)],
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
