"""Runs lists of trials, reusing finished ones from the results store.

Each finished trial is written to the store at once (one transaction), so an
interrupted sweep loses at most the trials in flight; a rerun answers finished
trials from the store and runs only what is missing. A stored trial is reused
only if the same code computed it (its fingerprint, :mod:`superpos_cli.fingerprint`);
one made by other code is rerun, or reused with ``reuse_stale`` and marked
``"stale": true``.

Faults never stop a sweep: a trial that raises (here or in a worker, including
a worker that dies) becomes a ``"failed"`` record with a one-line ``error``
(:func:`~superpos_cli.experiments.trials.failed_record`); it is stored but never
reused. Ctrl-C stops the sweep and raises
:class:`~superpos_cli.experiments.interrupt.Interrupted`, which says how many
trials are stored and where.

``jobs > 1`` runs the missing trials in worker processes
(:mod:`superpos_cli.experiments.workers`: a ``spawn`` pool, which a command may
start before it imports torch). Only
the parent writes the store, as each result arrives; records come back in trial
order, and their numbers equal a ``jobs=1`` run's: a trial's numbers depend only
on its seed and configuration (explicit generators, ``torch.manual_seed`` per
trial), never on which process ran it or what ran before.

Every trial runs with ``TRIAL_THREADS`` (1) torch intra-op thread, in this
process or a worker. The models here are small: a second thread gains little
and, on a loaded machine, made steps 10x slower; one thread per trial also keeps
per-epoch timings comparable across arms, and makes ``jobs=1`` and ``jobs=N``
bit-identical (the thread count changes how float reductions are split). Use
``jobs`` to occupy more cores. Each record keeps its ``torch_threads``.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from concurrent.futures import FIRST_COMPLETED, Future, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator

import torch

from superpos_cli.errors import BadInput
from superpos_cli.experiments.interrupt import Interrupted
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.trials import TrialSpec, failed_record, run_trial
from superpos_cli.experiments.workers import (  # noqa: F401  (shared_workers: used through this module too)
    _SHARED, TRIAL_THREADS, new_pool, shared_workers, stop_workers)
from superpos_cli.fingerprint import code_fingerprint

# on_event(kind, trial, payload): kind is "start", "cached", "done" or "progress".
# With jobs > 1 the parent sees no "start"/"progress" (they happen in a worker);
# "done" arrives as each result does, in completion order.
EventCallback = Callable[[str, TrialSpec, dict[str, Any]], None]


def counting(on_event: EventCallback | None) -> tuple[dict[str, int], EventCallback]:
    """({"done": n, "cached": n}, an on_event that counts those kinds into it and
    passes every event on to ``on_event``): what a sweep ran and what it reused."""
    counts = {"done": 0, "cached": 0}

    def count(kind: str, trial: TrialSpec, payload: dict[str, Any]) -> None:
        if kind in counts:
            counts[kind] += 1
        if on_event:
            on_event(kind, trial, payload)

    return counts, count

EXECUTORS = ("local", "ray")


def execute(
    trials: list[TrialSpec],
    store: ResultsStore | None = None,
    fresh: bool = False,
    sweep: str | None = None,
    on_event: EventCallback | None = None,
    jobs: int = 1,
    reuse_stale: bool = False,
    executor: str = "local",
    ray_address: str | None = None,
    memory_budget: int | None = None,
) -> list[dict[str, Any]]:
    """Records of ``trials`` in order, running each one ``store`` cannot answer.

    ``fresh`` reruns every trial (and overwrites its stored record).
    ``reuse_stale`` reuses stored trials computed by other code (marked
    ``"stale": True``) instead of rerunning them. ``jobs`` is the number of
    worker processes; 1 runs in this process. A trial that raises gives a
    ``"failed"`` record and the sweep goes on. A KeyboardInterrupt cancels what
    has not started, stops the workers and raises :class:`Interrupted`; every
    trial that finished before it is already in the store.

    ``executor="ray"`` runs the missing trials as Ray tasks
    (:mod:`superpos_cli.experiments.ray_executor`) on the cluster at
    ``ray_address`` (``"auto"`` or ``"HOST:PORT"``), or, with None, on a local
    instance of ``jobs`` CPUs (every core when ``jobs`` is 1) started for the
    run; lookups, store writes and events stay here, as with local workers.

    ``memory_budget``: bytes each trial may use (``--max-memory`` over the trials
    that run side by side, :mod:`superpos_cli.experiments.memory`); it sizes quantum
    attention's chunks and changes no number.
    """
    if jobs < 1:
        raise BadInput(f"jobs must be >= 1, got {jobs}")
    if executor not in EXECUTORS:
        raise BadInput(f"executor {executor!r} is not one of {', '.join(EXECUTORS)}")
    if ray_address is not None and executor != "ray":
        raise BadInput("--ray-address needs --executor ray")
    if executor == "ray":
        from superpos_cli.experiments.ray_executor import require_ray

        require_ray()
    if memory_budget is not None:
        trials = [replace(trial, memory_budget=memory_budget) for trial in trials]
    records: list[dict[str, Any] | None] = [None] * len(trials)
    keys = [ResultsStore.config_hash(trial.config()) for trial in trials]
    fingerprint = code_fingerprint()["id"]
    pending: list[int] = []
    for i, (trial, key) in enumerate(zip(trials, keys)):
        cached = None if (store is None or fresh) else store.lookup(key, fingerprint, reuse_stale)
        if cached is None:
            pending.append(i)
            continue
        records[i] = cached
        if on_event:
            on_event("cached", trial, cached)

    def finish(i: int, record: dict[str, Any], threads: int) -> None:
        record["key"] = keys[i]
        # The parent's fingerprint, the one lookups compare with: a worker computes
        # its own later, and a source file edited in between would make them differ.
        record["fingerprint"] = code_fingerprint()
        record.setdefault("torch_threads", threads)  # float rounding of reductions depends on it
        # A failure is kept only where nothing is stored: it must not replace a
        # result (even a stale one) that an earlier run computed.
        if store is not None and (record["status"] != "failed" or store.get(keys[i]) is None):
            store.put(keys[i], record, kind="trial", sweep=sweep)
        records[i] = record
        if on_event:
            on_event("done", trials[i], record)

    try:
        if executor == "ray" and pending:
            from superpos_cli.experiments.ray_executor import run_on_ray

            run_on_ray(trials, pending, finish, address=ray_address, jobs=jobs if jobs > 1 else None)
        elif jobs == 1 or len(pending) <= 1:
            for i in pending:
                trial = trials[i]
                if on_event:
                    on_event("start", trial, {})
                progress = (lambda event, info, t=trial: on_event("progress", t, {"event": event, **info})) if on_event else None
                with _torch_threads(TRIAL_THREADS):
                    try:
                        record = run_trial(trial, progress)
                    except Exception as err:  # noqa: BLE001  any fault of one trial; KeyboardInterrupt passes
                        record = failed_record(trial, err)
                finish(i, record, TRIAL_THREADS)
        else:
            _run_parallel(trials, pending, min(jobs, len(pending)), finish)
    except KeyboardInterrupt:
        done = sum(r is not None and r.get("status") != "failed" for r in records)
        raise Interrupted(done, len(trials), None if store is None else str(store.path)) from None
    return records  # type: ignore[return-value]  # every slot is filled above


def _run_parallel(trials: list[TrialSpec], pending: list[int], jobs: int,
                  finish: Callable[[int, dict[str, Any], int], None]) -> None:
    """Run ``trials[i]`` for ``i`` in ``pending`` on ``jobs`` workers (the shared
    pool's, inside :func:`shared_workers`), calling ``finish(i, record, threads)``
    in the parent as each completes."""
    threads = TRIAL_THREADS
    shared = bool(_SHARED)
    pool = _SHARED.get("pool") if shared else None
    if pool is None:
        pool = new_pool(_SHARED["jobs"] if shared else jobs, threads)
        if shared:
            _SHARED["pool"] = pool
    futures: dict[Future, int] = {}
    broken = False
    try:
        futures = {pool.submit(run_trial, trials[i]): i for i in pending}
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            # In submission order within a batch, so ties resolve the same way every run.
            for future in sorted(done, key=futures.__getitem__):
                i = futures[future]
                try:
                    record = future.result()
                except BrokenProcessPool:
                    # A worker died (killed, e.g. by the out-of-memory killer); the pool
                    # fails every trial it still held, and this names the cause.
                    broken = True
                    record = failed_record(trials[i], "worker process died (killed? out of memory?)")
                except Exception as err:  # noqa: BLE001  the trial's own exception, pickled back
                    record = failed_record(trials[i], err)
                finish(i, record, threads)
    except BaseException:
        # KeyboardInterrupt, or a store write that failed: nothing more will be
        # collected, so drop what has not started and stop the workers now rather
        # than let them finish trials whose results nobody would store.
        for future in futures:
            future.cancel()
        stop_workers(pool)
        if shared:
            _SHARED["pool"] = None
        raise
    if not shared:
        stop_workers(pool)
    elif broken:  # no more trials can run on it: the next execute() starts another
        stop_workers(pool)
        _SHARED["pool"] = None


@contextlib.contextmanager
def _torch_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)
