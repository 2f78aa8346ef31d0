"""Checked run settings (spec/) -> the engine's typed configuration.

The spec layer checks every value without torch; this module is where the
checked values become a :class:`TrainConfig`, a compare's or ablation's trials,
and where each trial's task configuration is built once in the parent (no data,
no model) so nothing a worker receives can still be invalid.
"""

from __future__ import annotations

from typing import Any

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.spec.arms import load_import_path_arm
from superpos_cli.spec.run import RunSettings
from superpos_cli.tasks import check_task_options


def train_config(run: RunSettings, seed: int = 0) -> TrainConfig:
    """The task's protocol with the given training values on top, for ``seed``."""
    return TrainConfig(seed=seed, **run.train_values())


def check_trials(trials: list[Any]) -> None:
    """Build every distinct task configuration and import-path optimizer once, so a
    bad combination is one BadInput line here, before any trial starts."""
    seen: set[str] = set()
    for trial in trials:
        key = repr((trial.task, sorted(trial.task_options.items())))
        if key not in seen:
            seen.add(key)
            check_task_options(trial.task, trial.task_options)
        if trial.arm.is_import_path:
            load_import_path_arm(trial.arm)
