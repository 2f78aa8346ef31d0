"""Checks every command makes before any work, and the store it then opens.

torch-free: a bad output path, data file or memory estimate is one line within a
fraction of a second, before a worker starts or torch loads.
"""

from __future__ import annotations

import contextlib
import sys
from pathlib import Path
from typing import Iterator

from superpos_cli.cli.options import default_jobs, store_path
from superpos_cli.experiments.preflight import check_data, check_output
from superpos_cli.spec.run import RunSettings


def prepare_outputs(*, store: Path | None = None, no_store: bool = True, **outputs: Path | None) -> Path | None:
    """Check each output (``out=``, ``plot=``, ...: writable, its folder exists) and
    return the results store's path (None without one). The default store's folder
    is created; a store the user named must sit in an existing folder."""
    for name, path in outputs.items():
        check_output("--" + name.replace("_", "-"), path)
    path = store_path(store, no_store)
    if path is not None:
        if store is None:
            path.parent.mkdir(parents=True, exist_ok=True)
        check_output("--store", path)
    return path


def prepare_run(run: RunSettings) -> None:
    """Data files parsed, checkpoint folders checked."""
    check_data(run)


def prepare_resources(runs: list[RunSettings], jobs: int | None, max_memory: str | None) -> tuple[int, int]:
    """``--jobs`` and ``--max-memory`` -> (trials side by side, bytes per trial).

    Each run's trial is estimated (:mod:`superpos_cli.experiments.memory`); one that
    cannot fit alone is refused with its estimate, and ``jobs`` is lowered, with a
    line on stderr, to the number of the largest trial that fit at once."""
    from superpos_cli.experiments.memory import available_memory, fit_jobs, parse_size, trial_bytes

    jobs = default_jobs(jobs)
    budget = available_memory() if max_memory is None else parse_size(max_memory)
    estimates = [trial_bytes(run.task, run.task_options()) for run in runs]
    fit = fit_jobs(estimates, jobs, budget, given=max_memory is not None)
    if fit < jobs:
        largest = max(e.total for e in estimates) / 2**30
        print(f"superpos: {fit} trial(s) of about {largest:.1f} GiB fit in --max-memory {budget / 2**30:.1f} GiB; "
              f"running {fit} at a time instead of {jobs}", file=sys.stderr)
    return fit, budget // fit


@contextlib.contextmanager
def open_store(path: Path | None) -> Iterator[object]:
    """The results store at ``path`` (closed after), or None."""
    if path is None:
        yield None
        return
    from superpos_cli.experiments.store import ResultsStore

    with ResultsStore(path) as store:
        yield store


@contextlib.contextmanager
def early_workers(jobs: int, trials: int, executor: str, store: Path | None, fresh: bool) -> Iterator[None]:
    """One pool of local workers for the executions inside, started now, before this
    process imports torch and scipy (about 4 s on one core, while the other idled), where
    the store cannot answer every trial: no store, ``--fresh``, or no store file yet. A
    rerun that the store answers starts no worker."""
    from superpos_cli.experiments.workers import shared_workers, start_early

    with shared_workers(jobs):
        if executor == "local" and trials > 1 and (store is None or fresh or not store.exists()):
            start_early(min(jobs, trials))
        yield
