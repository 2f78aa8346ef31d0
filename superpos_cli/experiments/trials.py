"""A trial: one training run of one configuration with one seed.

Compare, ablate and bench all reduce to lists of :class:`TrialSpec`; running
one is :func:`run_trial`, which returns a JSON-serialisable record (the unit
the results store keeps).

A record's ``status`` says how the trial finished:

* ``"ok"``: it trained to the end;
* ``"diverged"``: its training loss became NaN or infinite and the loop stopped
  at that step (``result["diverged_at_step"]``); a finished, reproducible result
  that summaries count as diverged;
* ``"failed"``: it raised (e.g. out of memory, a data file that fails only when
  read); ``error`` holds the one-line reason and there is no ``result``. The
  store keeps it but never reuses it, so the next run retries it.

Every record carries ``fingerprint`` (:func:`superpos_cli.fingerprint.code_fingerprint`),
the code that computed it.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

from superpos_cli.engine.loop import ProgressCallback, RunResult, TrainConfig, train
from superpos_cli.experiments.machine import machine_info, versions
from superpos_cli.errors import TrialsFailed  # noqa: F401  (raised here, caught by the CLI)
from superpos_cli.fingerprint import code_fingerprint
from superpos_cli.models.attention import memory_budget
from superpos_cli.optim.presets import build_optimizer
from superpos_cli.spec.arms import ArmSpec
from superpos_cli.tasks import build_task


@dataclass(frozen=True)
class TrialSpec:
    task: str
    task_options: dict[str, Any]
    arm: ArmSpec
    train: TrainConfig
    cell: str = ""  # label of the ablation cell or compare arm this trial belongs to
    extra: dict[str, Any] = field(default_factory=dict)
    # Bytes this trial may use (--max-memory over the parallel trials); sizes quantum
    # attention's chunks, never a number, so it is not part of config().
    memory_budget: int | None = None

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
    with memory_budget(spec.memory_budget):
        task = build_task(spec.task, spec.seed, spec.task_options)
        result = train(task, lambda model: build_optimizer(spec.arm, model, seed=spec.seed), spec.train, progress)
    return {
        **_identity(spec),
        "task_description": task.describe(),
        "result": result.to_dict(),
        "status": "ok" if result.diverged_at_step is None else "diverged",
        "wall_s": time.time() - started,
        **_provenance(),
    }


def failed_record(spec: TrialSpec, error: BaseException | str) -> dict[str, Any]:
    """The record of a trial that raised ``error``: status ``"failed"``, no result."""
    return {
        **_identity(spec),
        "status": "failed",
        "error": error if isinstance(error, str) else one_line(error),
        **_provenance(),
    }


def _identity(spec: TrialSpec) -> dict[str, Any]:
    """What a record is of: its cell or arm, seed and full configuration."""
    return {"name": spec.cell or spec.arm.name, "cell": spec.cell, "arm": spec.arm.name, "seed": spec.seed,
            "config": spec.config()}


def _provenance() -> dict[str, Any]:
    """Where and by what code a record was made."""
    return {"machine": machine_info(), "versions": versions(), "fingerprint": code_fingerprint()}


def one_line(error: BaseException, limit: int = 300) -> str:
    """``"TypeName: first line of the message"``, at most ``limit`` characters."""
    text = str(error).strip().splitlines()
    line = f"{type(error).__name__}: {text[0]}" if text else type(error).__name__
    return line if len(line) <= limit else line[: limit - 3] + "..."


def result_of(record: dict[str, Any]) -> RunResult:
    return RunResult.from_dict(record["result"])


def completed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records that have a result (ok or diverged), in order; failed ones left out."""
    return [r for r in records if r.get("status") != "failed"]


def paired_completed(records: list[dict[str, Any]], groups: list[str]) -> list[bool]:
    """Which records enter a paired summary; ``groups[i]`` is record i's arm or cell.

    A record enters if it completed, its group has a completed record, and every
    such group completed on its seed: the paired statistics compare arms seed by
    seed, so a seed on which one arm failed is left out of every arm (and a
    group with no completed record at all is left out, not allowed to empty
    every seed).
    """
    done = [r.get("status") != "failed" for r in records]
    live = {g for g, ok in zip(groups, done) if ok}
    bad_seeds = {r["seed"] for r, g, ok in zip(records, groups, done) if g in live and not ok}
    return [ok and g in live and r["seed"] not in bad_seeds for r, g, ok in zip(records, groups, done)]


def failed_trials(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``{name, arm, seed, key, error}`` of each failed record, in order."""
    return [{"name": r["name"], "arm": r["arm"], "seed": r["seed"], "key": r.get("key"), "error": r.get("error")}
            for r in records if r.get("status") == "failed"]




def raise_if_failed(document: dict[str, Any]) -> None:
    """Raise :class:`TrialsFailed` if the compare/ablate ``document`` lists failed trials."""
    line = failure_line(document)
    if line is not None:
        raise TrialsFailed(line)


def failure_line(document: dict[str, Any]) -> str | None:
    """One line naming the failed trials of a compare/ablate ``document`` (its
    ``"failed"`` list), or None when none failed; the CLI prints it and exits 1."""
    failed = document.get("failed") or []
    if not failed:
        return None
    shown = "; ".join(f"{f['name']} seed {f['seed']} ({f['error']})" for f in failed[:5])
    more = f"; and {len(failed) - 5} more" if len(failed) > 5 else ""
    return f"{len(failed)} trial(s) failed (not stored as results; a rerun retries them): {shown}{more}"
