"""Runs lists of trials, reusing finished ones from the results store.

Each finished trial is written to the store at once (one transaction), so an
interrupted sweep loses at most the trials in flight; a rerun answers finished
trials from the store and runs only what is missing.
"""

from __future__ import annotations

from typing import Any, Callable

from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.trials import TrialSpec, run_trial

# on_event(kind, trial, payload): kind is "start", "cached", "done" or "progress".
EventCallback = Callable[[str, TrialSpec, dict[str, Any]], None]


def execute(
    trials: list[TrialSpec],
    store: ResultsStore | None = None,
    fresh: bool = False,
    sweep: str | None = None,
    on_event: EventCallback | None = None,
) -> list[dict[str, Any]]:
    """Records of ``trials`` in order, running each one not already in ``store``."""
    records: list[dict[str, Any]] = []
    for trial in trials:
        key = ResultsStore.config_hash(trial.config())
        cached = None if (store is None or fresh) else store.get(key)
        if cached is not None:
            records.append(cached)
            if on_event:
                on_event("cached", trial, cached)
            continue
        if on_event:
            on_event("start", trial, {})
        progress = (lambda event, info, t=trial: on_event("progress", t, {"event": event, **info})) if on_event else None
        record = run_trial(trial, progress)
        record["key"] = key
        if store is not None:
            store.put(key, record, kind="trial", sweep=sweep)
        records.append(record)
        if on_event:
            on_event("done", trial, record)
    return records
