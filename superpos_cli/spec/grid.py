"""An ablation grid: a base arm swept over sweepable spec options, and its control.

Every option with ``axis=True`` in spec/options.py is an axis under its own name
(``--lambda 0,0.5``, ``axes = { lambda = [0, 0.5] }``, ``--control lambda=0``).
A cell sets its optimizer axes on the arm, its task/model axes in the task
options and its training axes in the training protocol; every value is checked by
the option's own rule. The default control sets every axis to its "off" value
where the option has one and that value is swept (lambda 0, perturb none,
attention classical), else to its first value.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from superpos_cli.errors import BadInput
from superpos_cli.spec.arms import ArmSpec, optimizer_option, parse_arm, split_items
from superpos_cli.spec.option import Option
from superpos_cli.spec.options import OPTIONS, option_named
from superpos_cli.spec.run import RunSettings, check, exclusive_conflict


def axis_option(name: str) -> Option:
    option = option_named(name)
    if option is None or not option.axis:
        allowed = ", ".join(o.name for o in OPTIONS.values() if o.axis)
        raise BadInput(f"unknown ablation axis {name.strip()!r}; allowed: {allowed}")
    return option


def parse_axis(name: str, raw: str | list[Any]) -> tuple[Option, list[Any]]:
    """The option and typed values of axis ``name`` from ``"0,0.1,0.5"`` (CLI) or a
    list (TOML). Empty items, bad values and repeats are BadInput."""
    option = axis_option(name)
    items = raw.split(",") if isinstance(raw, str) else list(raw)
    if not items:
        raise BadInput(f"{option.flag} needs at least one value")
    values: list[Any] = []
    for item in items:
        if isinstance(item, str) and not item.strip():
            raise BadInput(f"{option.flag} {raw!r} has an empty value; give a comma-separated list such as 0,0.1")
        value = option.parse(item)
        if value in values:
            raise BadInput(f"{option.flag} lists {format_value(value)} twice")
        values.append(value)
    return option, values


def format_value(value: Any) -> str:
    """Short, exact text of an axis value: 0.1 -> "0.1", 0.0 -> "0", 1e-3 -> "0.001"."""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)


@dataclass(frozen=True)
class Cell:
    """One point of the grid: its axis values and what they give each seam."""

    label: str  # "perturb=sin,attention=quantum"
    axes: dict[str, Any]
    arm: ArmSpec
    run: RunSettings  # the base settings with this cell's task, model and training values


class Grid:
    """The cells of ``axes`` (last axis fastest) on top of ``base`` and ``run``."""

    def __init__(self, base: str, axes: dict[str, list[Any] | tuple[Any, ...]], control: str | None,
                 run: RunSettings):
        if not axes:
            raise BadInput("give at least one axis to sweep, e.g. --lambda 0,0.1,0.5")
        self.axes = {name: list(values) for name, values in axes.items()}
        for name, values in self.axes.items():
            if not values:
                raise BadInput(f"{OPTIONS[name].flag} needs at least one value")
        self.base_text = base.strip()
        self.base, self.base_options = _split_arm(base)
        self.run = run
        combos = [dict(zip(self.axes, combo)) for combo in itertools.product(*self.axes.values())]
        # Cells that would set two exclusive options (noise with a device snapshot) are
        # not part of the grid: each axis's "off" cell crossed with the others is.
        kept = [c for c in combos if exclusive_conflict({**self.run.values, **c}) is None]
        if not kept:
            first, second = exclusive_conflict({**self.run.values, **combos[0]})
            raise BadInput(f"every cell sets both {OPTIONS[first].flag} and {OPTIONS[second].flag}, which exclude "
                           "each other; give one of them an off value (none)")
        self.skipped = [c for c in combos if c not in kept]
        self.cells = [self._cell(c) for c in kept]
        self.control_index = self._control_index(control)

    def _cell(self, values: dict[str, Any]) -> Cell:
        arm_options = dict(self.base_options)
        run_values = dict(self.run.values)
        for name, value in values.items():
            if OPTIONS[name].group == "optimizer":
                arm_options[name] = format_value(value)
            else:
                run_values[name] = value
        text = self.base + (":" + ",".join(f"{k}={v}" for k, v in arm_options.items()) if arm_options else "")
        run = check(self.run.task, run_values)
        arm = parse_arm(text, run.optimizer_overrides(), run.optimizer_protocol())
        # A one-value axis is a setting, not a factor: it stays out of the label
        # unless no axis varies.
        varied = [name for name in values if len(self.axes[name]) > 1] or list(values)
        label = ",".join(f"{name}={format_value(values[name])}" for name in varied)
        return Cell(label, values, arm, run)

    def _control_index(self, control: str | None) -> int:
        wanted = {name: _default_control(name, values) for name, values in self.axes.items()}
        if control is not None:
            for item in split_items(control):
                name, eq, raw = item.partition("=")
                if not eq or not name.strip() or not raw.strip():
                    raise BadInput(f"--control {control!r}: each item must look like axis=value")
                option = axis_option(name)
                if option.name not in self.axes:
                    raise BadInput(f"--control {control!r} names axis {option.name!r}, which is not swept "
                                   f"(swept: {', '.join(self.axes)})")
                value = option.parse(raw.strip())
                if value not in self.axes[option.name]:
                    raise BadInput(f"--control {control!r} names no cell: {option.name} takes "
                                   f"{', '.join(format_value(v) for v in self.axes[option.name])}")
                wanted[option.name] = value
        found = next((i for i, cell in enumerate(self.cells) if cell.axes == wanted), None)
        if found is None:
            raise BadInput(f"--control {control!r} names a cell the grid skips (it sets two options that exclude "
                           "each other)")
        return found

    @property
    def control_cell(self) -> Cell:
        return self.cells[self.control_index]


def _default_control(name: str, values: list[Any]) -> Any:
    off = OPTIONS[name].off
    return off if off is not None and off in values else values[0]


def _split_arm(text: str) -> tuple[str, dict[str, str]]:
    """``"sgd:scope=all"`` -> ("sgd", {"scope": "all"}) with option keys normalised to
    names, so a cell's value replaces the base's value of the same option."""
    preset, _, rest = text.strip().partition(":")
    if not preset.strip():
        raise BadInput("--optim is empty; give a preset such as sgd or sgd:scope=all")
    if "." in preset:
        raise BadInput(f"ablate's base arm must be a preset, not an import path ({preset!r})")
    options: dict[str, str] = {}
    for item in split_items(rest):
        key, eq, value = item.partition("=")
        if not eq:
            raise BadInput(f"optimizer option {item!r} in {text!r} must look like key=value")
        options[optimizer_option(key).name] = value.strip()
    parse_arm(text)  # the preset and its own options are checked before any cell
    return preset.strip(), options
