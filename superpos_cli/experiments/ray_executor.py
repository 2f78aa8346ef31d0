"""Trials as Ray tasks: a sweep spread over a Ray cluster (or a local instance).

:func:`~superpos_cli.experiments.executor.execute` calls :func:`run_on_ray`
with ``executor="ray"``; everything around it is the local executor's: store
lookups before, one store write per finished trial on the driver (only the
driver opens the store), failed records, :class:`Interrupted` on Ctrl-C.

* **Where.** ``address=None`` starts a local instance for the run (``jobs``
  CPUs, default every core; no dashboard) and stops it after; ``"auto"`` or
  ``"HOST:PORT"`` connects to a running cluster (``ray start --head`` on one
  node, ``ray start --address HOST:PORT`` on the others) and leaves it
  running. A process that has already called ``ray.init`` (a test, a notebook)
  keeps its instance: nothing is started or stopped. Connecting to a cluster
  ships this ``superpos_cli`` package to the workers (``runtime_env``
  ``py_modules``), so every trial runs the driver's code and the driver's
  fingerprint stamps its record truthfully; the nodes need the same Python and
  libraries (torch, numpy, scipy, qiskit, qiskit-aer, rich, psutil, typer,
  tabulate, matplotlib) and ray itself, and any data file a trial names must
  exist at the same path on every node.
* **Resources.** A trial asks for one CPU, and one GPU when its task options
  put it on CUDA (``device="cuda..."``; Ray then sets the worker's
  ``CUDA_VISIBLE_DEVICES``). It runs with one torch thread and one BLAS thread,
  as a local trial does, so its numbers are bit-identical to a local run.
* **Backpressure.** At most ``max_in_flight`` trials are submitted at once
  (default twice the cluster's CPUs, so a worker never waits for the next
  trial while the driver holds the rest); results stream back with
  ``ray.wait`` in completion order, ties in trial order.
* **Faults.** A worker that dies (killed, out of memory, a lost node) is
  retried by Ray up to ``max_retries`` times, and so is a trial that raised
  one of :data:`RETRIED_EXCEPTIONS` (transient: the file system, memory);
  after that, or at once for any other exception (a trial is deterministic: a
  retry would raise it again), the trial becomes a ``"failed"`` record with its
  one-line reason. None is dropped.
* **Ctrl-C** cancels every submitted trial (``ray.cancel(force=True)``: queued
  ones never start, running ones stop) and re-raises; the trials stored so far
  stay stored.
"""

from __future__ import annotations

import contextlib
import os
import socket
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from superpos_cli import allocator
from superpos_cli.errors import BadInput
from superpos_cli.experiments.workers import BLAS_THREAD_VARS, COMPILE_THREADS_VAR, TRIAL_THREADS

if TYPE_CHECKING:  # this module loads without torch, so preflight can call require_ray()
    from superpos_cli.experiments.trials import TrialSpec

__all__ = ["DEFAULT_MAX_RETRIES", "RETRIED_EXCEPTIONS", "require_ray", "run_on_ray"]

DEFAULT_MAX_RETRIES = 2
# Exceptions a retry can cure; any other one a trial raises is its own fault.
RETRIED_EXCEPTIONS: tuple[type[BaseException], ...] = (OSError, MemoryError)
# One thread per trial, one inductor compile process and malloc keeping freed memory
# (superpos_cli.allocator; a value set here passes through), as the local executor's workers.
WORKER_ENV = {**{var: str(TRIAL_THREADS) for var in BLAS_THREAD_VARS}, COMPILE_THREADS_VAR: "1",
              **{var: os.environ.get(var, value) for var, value in allocator.WORKER_ENV.items()}}
REACH_TIMEOUT_S = 5.0
PACKAGE_DIR = Path(__file__).resolve().parents[1]

Finish = Callable[[int, dict[str, Any], int], None]
Work = Callable[["TrialSpec"], dict[str, Any]]


def require_ray() -> None:
    """BadInput unless ray can be imported (check before any trial runs; torch-free)."""
    try:
        import ray  # noqa: F401
    except ImportError:
        raise BadInput("executor ray needs Ray: pip install 'superpos_cli[ray]' (ray==2.58.0)") from None


def trial_gpus(trial: TrialSpec) -> int:
    """GPUs one trial asks for: 1 when its task runs on CUDA, else 0."""
    return 1 if str(trial.task_options.get("device", "cpu")).startswith("cuda") else 0


def _work(trial: TrialSpec, work: Work | None) -> dict[str, Any]:
    """A Ray task's body: one torch thread (set here, in the worker), then the trial."""
    import torch

    from superpos_cli.experiments.trials import run_trial

    torch.set_num_threads(1)
    return (work or run_trial)(trial)


def run_on_ray(
    trials: list[TrialSpec],
    pending: list[int],
    finish: Finish,
    address: str | None = None,
    jobs: int | None = None,
    max_in_flight: int | None = None,
    max_retries: int = DEFAULT_MAX_RETRIES,
    work: Work | None = None,
) -> None:
    """Run ``trials[i]`` for ``i`` in ``pending`` as Ray tasks, calling
    ``finish(i, record, threads)`` on the driver as each completes.

    ``address``: None (a local instance of ``jobs`` CPUs), ``"auto"`` or
    ``"HOST:PORT"``. ``work`` replaces :func:`run_trial` (a seam for tests that
    make a worker crash; it must pickle by value, e.g. a closure).
    """
    require_ray()
    import ray

    with _connected(address, jobs):
        remote = ray.remote(_work)
        options = {"num_cpus": 1, "max_retries": max_retries, "retry_exceptions": list(RETRIED_EXCEPTIONS),
                   "runtime_env": {"env_vars": dict(WORKER_ENV)}}
        if max_in_flight is None:
            max_in_flight = max(2, 2 * int(ray.cluster_resources().get("CPU", 1)))
        queue = deque(pending)
        in_flight: dict[Any, int] = {}
        try:
            while queue or in_flight:
                while queue and len(in_flight) < max_in_flight:
                    i = queue.popleft()
                    in_flight[remote.options(**options, num_gpus=trial_gpus(trials[i])).remote(trials[i], work)] = i
                ready, _ = ray.wait(list(in_flight), num_returns=1)
                # Everything else finished by now too, in trial order, so ties resolve alike every run.
                ready, _ = ray.wait(list(in_flight), num_returns=len(in_flight), timeout=0)
                for ref in sorted(ready, key=in_flight.__getitem__):
                    i = in_flight.pop(ref)
                    finish(i, _collect(ray, ref, trials[i], max_retries), 1)
        except BaseException:
            # KeyboardInterrupt, or a store write that failed: nobody will collect the
            # rest, so stop it rather than let the cluster finish unwanted trials.
            for ref in in_flight:
                with contextlib.suppress(Exception):
                    ray.cancel(ref, force=True)
            raise


def _collect(ray: Any, ref: Any, trial: TrialSpec, max_retries: int) -> dict[str, Any]:
    """The record behind ``ref``: the trial's own, or a failed one naming why."""
    from superpos_cli.experiments.trials import failed_record, one_line

    try:
        return ray.get(ref)
    except ray.exceptions.RayTaskError as err:  # the trial raised; ``cause`` is its exception
        return failed_record(trial, err.cause if isinstance(err.cause, BaseException) else one_line(err))
    except (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError, ray.exceptions.ObjectLostError,
            ray.exceptions.OutOfMemoryError) as err:
        return failed_record(trial, f"Ray worker lost {max_retries + 1} time(s) (killed? out of memory? "
                                    f"node down?): {type(err).__name__}")
    except ray.exceptions.RayError as err:  # anything else Ray reports (e.g. a runtime_env that failed)
        return failed_record(trial, err)


def _check_reachable(address: str) -> None:
    """BadInput unless HOST:PORT accepts a connection (``ray.init`` would retry an
    unreachable address for minutes); ``auto`` and ``ray://`` are left to Ray."""
    if address == "auto" or address.startswith("ray://"):
        return
    host, _, port = address.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=REACH_TIMEOUT_S).close()
    except (OSError, ValueError) as err:
        raise BadInput(f"ray-address {address!r}: nothing answers there ({err}); "
                       f"give auto or HOST:PORT of a running Ray head (ray start --head)") from None


@contextlib.contextmanager
def _connected(address: str | None, jobs: int | None) -> Iterator[None]:
    """Ray initialised for the body: reuse this process's instance, connect to a
    cluster, or start a local instance and stop it after (module docstring)."""
    import ray

    if address is not None:
        _check_reachable(address)
    if ray.is_initialized():
        yield
        return
    if address is None:
        # "local": always a new instance; without it ray.init joins a cluster that
        # `ray start` left on this machine, and refuses num_cpus there.
        ray.init(address="local", num_cpus=jobs or os.cpu_count() or 1, include_dashboard=False,
                 log_to_driver=False)
    else:
        try:
            ray.init(address=address, log_to_driver=False, runtime_env={"py_modules": [str(PACKAGE_DIR)]})
        except ConnectionError as err:
            raise BadInput(f"ray-address {address!r}: no Ray cluster there ({str(err).strip()[:200]})") from None
    try:
        yield
    finally:
        ray.shutdown()

