"""``compare``: several optimizer arms on one task over paired seeds."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.executor import EventCallback, execute
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.summary import summarize_arms
from superpos_cli.experiments.trials import (TrialSpec, TrialsFailed, completed, failed_trials, failure_line,
                                             paired_completed, result_of)
from superpos_cli.spec.arms import ArmSpec

# The paper's reported numbers (paper-spec.md §4), shown as a reference row.
PAPER_REFERENCE = {
    "textcls": {
        "source": "arXiv:2511.01918, text classification, lambda 0.5 vs Adam",
        "rows": [
            {"name": "adam (paper)", "final_accuracy": 0.915, "epochs_to_target": 7.4},
            {"name": "sgd lambda=0.5 (paper)", "final_accuracy": 0.938, "epochs_to_target": 4.6,
             "overhead": 0.35, "break_even_speedup": 1.35, "achieved_speedup": 7.4 / 4.6,
             "time_to_target_ratio": 4.6 * 1.35 / 7.4},
        ],
    },
    "gsm8k": {
        "source": "arXiv:2511.01918, Table I, Llama-3.2-1B-Instruct on GSM8K, one epoch",
        "rows": [
            {"name": "adamw (paper)", "mean_train_loss": 0.2188},
            {"name": "sgd lambda=0.1 (paper)", "mean_train_loss": 0.2098, "loss_change": -0.0411},
            {"name": "sgd lambda=0.5 (paper)", "mean_train_loss": 0.2097, "loss_change": -0.0416},
        ],
    },
}


@dataclass(frozen=True)
class CompareSpec:
    task: str
    task_options: dict[str, Any]
    arms: list[ArmSpec]
    seeds: list[int]
    train: TrainConfig

    def __post_init__(self) -> None:
        names = [arm.name for arm in self.arms]
        if len(set(names)) != len(names):
            raise BadInput(f"arms must be distinct, got {' '.join(names)}")
        if not self.seeds:
            raise BadInput("seeds must be >= 1")

    def trials(self) -> list[TrialSpec]:
        """Arms interleaved within each seed (seed 0: A B C, seed 1: A B C, ...)
        so slow drift of the machine hits every arm alike."""
        return [
            TrialSpec(self.task, self.task_options, arm, replace(self.train, seed=seed), cell=arm.name)
            for seed in self.seeds
            for arm in self.arms
        ]


def run_compare(spec: CompareSpec, store: ResultsStore | None = None, fresh: bool = False,
                on_event: EventCallback | None = None, jobs: int = 1, reuse_stale: bool = False,
                executor: str = "local", ray_address: str | None = None,
                memory_budget: int | None = None) -> dict[str, Any]:
    """Run every trial and return the compare document (the JSON contract)."""
    records = execute(spec.trials(), store=store, fresh=fresh, on_event=on_event, jobs=jobs, reuse_stale=reuse_stale,
                      executor=executor, ray_address=ray_address, memory_budget=memory_budget)
    return compare_document(spec, records)


def main_metric(records: list[dict[str, Any]]) -> str:
    """What a document ranks by: ``epochs_to_target`` for a task with an accuracy
    target (its records' ``target_metric``), else ``mean_train_loss``."""
    return "epochs_to_target" if records and records[0]["result"].get("target_metric") else "mean_train_loss"


def target_of(metric: str, target: float | None) -> float | None:
    """The accuracy target a document reports: none for a task ranked by loss (gsm8k),
    whose --target default no trial measures against."""
    return target if metric == "epochs_to_target" else None


def compare_document(spec: CompareSpec, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The compare document. Failed trials are listed under ``"failed"`` and left
    out of the summaries, with their seed in every arm (pairing,
    :func:`paired_completed`); an arm none of whose trials completed is left out
    of ``"arms"`` (raises :class:`TrialsFailed` when nothing is left)."""
    by_arm = {arm.name: [] for arm in spec.arms}
    for record, keep in zip(records, paired_completed(records, [r["arm"] for r in records])):
        if keep:
            by_arm[record["arm"]].append(result_of(record))
    summarized = [arm for arm in spec.arms if by_arm[arm.name]]
    if not summarized:
        raise TrialsFailed(failure_line({"failed": failed_trials(records)}))
    arms = summarize_arms(
        [arm.name for arm in summarized],
        [arm.to_dict() for arm in summarized],
        [by_arm[arm.name] for arm in summarized],
        spec.train.max_epochs,
    )
    metric = main_metric(completed(records))
    return {
        "kind": "compare",
        "metric": metric,
        "task": spec.task,
        "task_options": spec.task_options,
        "target": target_of(metric, spec.train.target),
        "max_epochs": spec.train.max_epochs,
        "seeds": list(spec.seeds),
        "machine": machine_info(),
        "versions": versions(),
        "arms": arms,
        "paper": PAPER_REFERENCE.get(spec.task),
        "trials": [{"arm": r["arm"], "seed": r["seed"], "key": r.get("key"), "status": r.get("status", "ok"),
                    "stale": r.get("stale", False), "result": r.get("result")} for r in records],
        "failed": failed_trials(records),
        # Trials reused from the store although other code made them (--reuse-stale).
        "stale": sum(bool(r.get("stale")) for r in records),
    }
