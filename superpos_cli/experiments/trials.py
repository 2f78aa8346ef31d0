"""A trial: one training run of one configuration with one seed.

Compare, ablate and bench all reduce to lists of :class:`TrialSpec`; running
one is :func:`run_trial`, which returns a JSON-serialisable record (the unit
the results store keeps).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from superpos_cli.engine.loop import ProgressCallback, RunResult, TrainConfig, train
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.optim.presets import ArmSpec, build_optimizer
from superpos_cli.tasks import build_task


@dataclass(frozen=True)
class TrialSpec:
    task: str
    task_options: dict[str, Any]
    arm: ArmSpec
    train: TrainConfig
    cell: str = ""  # label of the ablation cell or compare arm this trial belongs to
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def seed(self) -> int:
        return self.train.seed

    def config(self) -> dict[str, Any]:
        """Everything that determines the numbers (the store's key is its hash)."""
        return {
            "task": self.task,
            "task_options": dict(sorted(self.task_options.items())),
            "optimizer": self.arm.to_dict(),
            "train": asdict(self.train),
            "superpos_trial_format": 1,
        }


def run_trial(spec: TrialSpec, progress: ProgressCallback | None = None) -> dict[str, Any]:
    """Train once and return the record: config, seed, result, timings, machine, versions."""
    started = time.time()
    task = build_task(spec.task, spec.seed, spec.task_options)
    result = train(task, lambda model: build_optimizer(spec.arm, model, seed=spec.seed), spec.train, progress)
    return {
        "name": spec.cell or spec.arm.name,
        "cell": spec.cell,
        "arm": spec.arm.name,
        "seed": spec.seed,
        "config": spec.config(),
        "task_description": task.describe(),
        "result": result.to_dict(),
        "status": "ok",
        "wall_s": time.time() - started,
        "machine": machine_info(),
        "versions": versions(),
    }


def result_of(record: dict[str, Any]) -> RunResult:
    return RunResult.from_dict(record["result"])
