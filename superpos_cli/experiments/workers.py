"""The pool of worker processes that runs trials side by side (``jobs > 1``).

:class:`concurrent.futures.ProcessPoolExecutor` with the ``spawn`` context (a forked
child of a process whose torch thread pool already started can deadlock). This module
imports no torch, so a command can start the workers (:func:`start_early`) before it
loads torch and scipy itself: each worker's imports (2-3 s) then run on the core the
parent leaves idle while it imports (about 4 s with scipy), instead of after.
:mod:`superpos_cli.experiments.executor` submits the trials.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterator

from superpos_cli import allocator

TRIAL_THREADS = 1  # torch intra-op threads per trial (executor's module docstring)
BLAS_THREAD_VARS = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
COMPILE_THREADS_VAR = "TORCHINDUCTOR_COMPILE_THREADS"  # read when a worker imports inductor

# The pool :func:`shared_workers` keeps open: {"jobs": n, "pool": pool or None}; empty
# outside it.
_SHARED: dict[str, Any] = {}


@contextlib.contextmanager
def shared_workers(jobs: int) -> Iterator[None]:
    """Every parallel :func:`execute` inside reuses one pool of ``jobs`` workers,
    started at the first that needs it and stopped on leaving.

    Why: a new worker imports torch (about 3 s) and, at its first quantum trial,
    traces the fourier kernels with dynamo, which no disk cache keeps (about 7 s of
    a core). Each execute() otherwise starts its own workers, so reproduce's seven
    sweeps paid that 14 times at ``--jobs 2``, about a tenth of ``--quick``. The
    numbers cannot change: a trial's depend only on its seed and configuration,
    never on which process ran it or what ran before (module docstring). A pool
    that broke (a worker died) or was stopped by an interrupt is replaced by the
    next execute(); a nested call keeps the outer pool."""
    if _SHARED:
        yield
        return
    _SHARED.update(jobs=jobs, pool=None)
    try:
        yield
    finally:
        pool = _SHARED.get("pool")
        _SHARED.clear()
        if pool is not None:
            stop_workers(pool)


def new_pool(jobs: int, threads: int) -> ProcessPoolExecutor:
    # Workers inherit the environment at spawn, before numpy loads its BLAS: without
    # this each worker's OpenBLAS starts one thread per core, and two workers on two
    # cores ran every epoch 2.4x slower (the circuit coefficients use numpy).
    for var in BLAS_THREAD_VARS:
        os.environ.setdefault(var, str(threads))
    # Inductor compiles the fourier kernels on a cold cache; with its default pool of
    # one compile process per core, each worker also started those processes (each
    # importing torch) for two kernels: 20-30% more CPU per cold worker, measured.
    os.environ.setdefault(COMPILE_THREADS_VAR, "1")
    # Read by each worker's glibc as it starts: freed step buffers stay in the heap
    # (superpos_cli.allocator; about 5% of a training step).
    allocator.export_to_workers()
    return ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_init_worker, initargs=(threads, os.getpid()))


def start_early(jobs: int) -> bool:
    """Inside :func:`shared_workers`: start its ``jobs`` workers now (each imports torch
    as it starts), so the executions inside find them running. False (nothing started)
    outside it, for one job, or where the pool already exists."""
    if not _SHARED or jobs < 2 or _SHARED.get("pool") is not None:
        return False
    pool = _SHARED["pool"] = new_pool(jobs, TRIAL_THREADS)
    pool.submit(os.getpid)  # the spawn context starts every worker at the first submit
    return True


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Stop the workers now. Also how an idle pool ends: an orderly shutdown waits for
    each worker's interpreter to tear torch down, about 2 s at the end of every
    parallel sweep; a worker holds nothing to save (only the parent writes the store,
    and every result has arrived)."""
    # The pool's manager thread holds its queues, whose named semaphores are unlinked
    # and then unregistered when the last reference goes. Left running, it dropped
    # them while the console script was already in os._exit, between the two: the
    # resource tracker then warned of a "leaked semaphore" (1 run in 11). Joined here,
    # the queues go before the command returns.
    manager = getattr(pool, "_executor_manager_thread", None)
    # Python 3.14 has pool.terminate_workers(); before it, the processes are only
    # reachable through the private _processes mapping (stable since 3.2).
    terminate = getattr(pool, "terminate_workers", None)
    if terminate is not None:
        terminate()
    else:
        processes = list((getattr(pool, "_processes", None) or {}).values())
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(timeout=5)
        pool.shutdown(wait=False, cancel_futures=True)
    if manager is not None and manager is not threading.current_thread():
        manager.join(timeout=5)  # it sees the dead workers at once and ends


def _init_worker(threads: int, parent_pid: int) -> None:
    """Per-worker setup: its share of the cores, Ctrl-C left to the parent, and
    an exit if the parent dies (kill -9 leaves workers blocked on a queue that
    nobody will ever fill or read)."""
    import torch

    torch.set_num_threads(threads)
    # The terminal sends SIGINT to the whole process group; the parent decides
    # what to cancel, a worker hit mid-trial would only print a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    threading.Thread(target=_exit_with_parent, args=(parent_pid,), daemon=True).start()


def _exit_with_parent(parent_pid: int) -> None:
    while os.getppid() == parent_pid:
        time.sleep(1.0)
    os._exit(1)
