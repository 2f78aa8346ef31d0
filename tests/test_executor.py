"""Executor: store reuse, parallel workers (same numbers as sequential), interrupts."""

from __future__ import annotations

import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
import torch

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.executor import execute, shared_workers
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.errors import TrialsFailed
from superpos_cli.experiments.workers import stop_workers
from superpos_cli.experiments.trials import TrialSpec, failed_record, failed_trials, failure_line, raise_if_failed
from superpos_cli.spec.arms import parse_arm

REPO = Path(__file__).resolve().parents[1]
TINY = {"n_train": 64, "n_val": 64, "kind": "classical"}


def _trials() -> list[TrialSpec]:
    train = TrainConfig(max_epochs=1, evals_per_epoch=2)
    arms = [parse_arm("sgd:lambda=0"), parse_arm("sgd:lambda=0.5")]
    return [TrialSpec("textcls", TINY, arm, TrainConfig(**{**train.__dict__, "seed": seed}), cell=arm.name)
            for seed in (0, 1) for arm in arms][:3]


def _numbers(record: dict) -> dict:
    """Everything a trial measured except timings."""
    result = record["result"]
    return {
        "evals": [(e["epoch"], e["step"], e["train_loss"], e["metrics"]) for e in result["evals"]],
        "epochs": [(e["epoch"], e["train_loss"], e["metrics"]) for e in result["epochs"]],
        "epochs_to_target": result["epochs_to_target"],
        "steps": result["steps"],
    }


class Events:
    def __init__(self, stop_at_done: int | None = None):
        self.kinds: Counter = Counter()
        self.stop_at_done = stop_at_done

    def __call__(self, kind, trial, payload):
        self.kinds[kind] += 1
        if kind == "done" and self.stop_at_done and self.kinds["done"] >= self.stop_at_done:
            raise KeyboardInterrupt


@pytest.fixture(scope="module")
def sequential():
    """The trials run in this process; the executor gives them the same thread
    count as each worker, whatever this process had."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        records = execute(_trials())
        assert torch.get_num_threads() == 2  # restored
        return records
    finally:
        torch.set_num_threads(before)


def test_jobs_2_matches_jobs_1_and_stores_every_trial(sequential, tmp_path):
    trials = _trials()
    events = Events()
    with ResultsStore(tmp_path / "r.db") as store:
        parallel = execute(trials, store=store, on_event=events, jobs=2)
        assert [_numbers(r) for r in parallel] == [_numbers(r) for r in sequential]
        assert [(r["arm"], r["seed"]) for r in parallel] == [(t.arm.name, t.seed) for t in trials]  # trial order
        assert events.kinds["done"] == 3
        for trial, record in zip(trials, parallel):
            assert store.get(ResultsStore.config_hash(trial.config()))["result"] == record["result"]
    assert not multiprocessing.active_children()


def test_shared_workers_serve_every_execute_inside_with_the_same_numbers(sequential):
    # reproduce's steps: one pool for all, not a new set of workers (torch import,
    # kernel tracing) per step; stopped on leaving.
    trials = _trials()
    with shared_workers(2):
        first = execute(trials, jobs=2)
        workers = {p.pid for p in multiprocessing.active_children()}
        second = execute(trials[1:], jobs=2)
        assert {p.pid for p in multiprocessing.active_children()} == workers and len(workers) == 2
    assert [_numbers(r) for r in first] == [_numbers(r) for r in sequential]
    assert [_numbers(r) for r in second] == [_numbers(r) for r in sequential[1:]]
    deadline = time.monotonic() + 15
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not multiprocessing.active_children()


EARLY_CASES = {  # (executor, trials, store file exists, fresh) -> workers started before torch loads
    "no store": (("local", 3, None, False), True),
    "new store file": (("local", 3, False, False), True),
    "store file (a rerun it may answer)": (("local", 3, True, False), False),
    "store file with --fresh": (("local", 3, True, True), True),
    "one trial": (("local", 1, None, False), False),
    "ray": (("ray", 3, None, False), False),
}


@pytest.mark.parametrize("case", EARLY_CASES)
def test_early_workers_start_only_where_the_store_cannot_answer(case, tmp_path):
    from superpos_cli.cli.prepare import early_workers
    from superpos_cli.experiments import workers as pool_module

    (executor, trials, exists, fresh), started = EARLY_CASES[case]
    store = None if exists is None else tmp_path / "r.db"
    if exists:
        store.write_bytes(b"")
    with early_workers(2, trials, executor, store, fresh):
        assert (pool_module._SHARED["pool"] is not None) == started
    assert not pool_module._SHARED


def test_early_workers_serve_the_execution_inside(sequential):
    from superpos_cli.cli.prepare import early_workers
    from superpos_cli.experiments import workers as pool_module

    with early_workers(2, 3, "local", None, False):
        pool = pool_module._SHARED["pool"]
        records = execute(_trials(), jobs=2)
        assert pool_module._SHARED["pool"] is pool
    assert [_numbers(r) for r in records] == [_numbers(r) for r in sequential]


def test_rerun_reuses_store_and_fresh_reruns(sequential, tmp_path):
    trials = _trials()
    with ResultsStore(tmp_path / "r.db") as store:
        for trial, record in zip(trials, sequential):  # as if an earlier sweep had finished them
            store.put(ResultsStore.config_hash(trial.config()), record)
        events = Events()
        again = execute(trials, store=store, on_event=events)
        assert events.kinds == Counter(cached=3)  # nothing executed
        assert [_numbers(r) for r in again] == [_numbers(r) for r in sequential]
        events = Events()
        execute(trials[:1], store=store, fresh=True, on_event=events)
        assert events.kinds["done"] == 1 and events.kinds["cached"] == 0


def test_interrupt_keeps_finished_trials_and_stops_workers(tmp_path):
    trials = _trials()
    with ResultsStore(tmp_path / "r.db") as store:
        with pytest.raises(KeyboardInterrupt):
            execute(trials, store=store, on_event=Events(stop_at_done=1), jobs=2)
        deadline = time.monotonic() + 15  # a terminated worker may take a moment to be reaped
        while multiprocessing.active_children() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not multiprocessing.active_children()
        stored = [store.get(ResultsStore.config_hash(t.config())) for t in trials]
        assert sum(r is not None for r in stored) == 1  # the one that finished, nothing half-written
        events = Events()
        execute(trials, store=store, on_event=events)  # the rerun only runs what is missing
        assert events.kinds["cached"] == 1 and events.kinds["done"] == 2


def test_jobs_must_be_positive():
    with pytest.raises(BadInput, match="jobs must be >= 1"):
        execute(_trials(), jobs=0)


# ----------------------------------------------------------------- faults

TRAIN = TrainConfig(max_epochs=1, evals_per_epoch=2)
MISSING_DATA = {**TINY, "data_path": "/nonexistent/superpos-test.jsonl"}  # raises only when the trial builds its task


def _fault_trials() -> list[TrialSpec]:
    sgd = parse_arm("sgd:lambda=0")
    return [
        TrialSpec("textcls", TINY, sgd, TRAIN, cell="ok"),
        TrialSpec("textcls", MISSING_DATA, sgd, TRAIN, cell="raises"),
        TrialSpec("textcls", TINY, parse_arm("adam:lr=1e8"), TRAIN, cell="nan"),
    ]


@pytest.mark.parametrize("jobs", [1, 2])
def test_failed_and_diverged_trials_are_recorded_and_the_sweep_goes_on(tmp_path, jobs):
    trials = _fault_trials()
    with ResultsStore(tmp_path / "r.db") as store:
        ok, failed, nan = execute(trials, store=store, jobs=jobs)
        assert ok["status"] == "ok" and ok["result"]["diverged_at_step"] is None
        assert failed["status"] == "failed" and "result" not in failed
        assert failed["error"] == "BadInput: --data /nonexistent/superpos-test.jsonl: no such file"
        # The loss of the first batch after one huge step is NaN: stopped there.
        assert nan["status"] == "diverged" and nan["result"]["diverged_at_step"] == 1
        assert nan["result"]["steps"] == 1 and not math.isfinite(nan["result"]["epochs"][-1]["train_loss"])
        assert failed_trials([ok, failed, nan]) == [
            {"name": "raises", "arm": trials[1].arm.name, "seed": 0, "key": failed["key"], "error": failed["error"]}]
        assert store.get(failed["key"])["status"] == "failed"  # kept, for `results list`
        events = Events()
        again = execute(trials, store=store, on_event=events, jobs=jobs)
        assert (events.kinds["cached"], events.kinds["done"]) == (2, 1)  # the failure is retried, not reused
        assert [r["status"] for r in again] == ["ok", "failed", "diverged"]
    assert not multiprocessing.active_children()


def test_compare_document_counts_diverged_and_lists_failed():
    from superpos_cli.experiments.compare import CompareSpec, compare_document

    arms = [parse_arm("sgd:lambda=0"), parse_arm("adam:lr=1e8")]
    spec = CompareSpec("textcls", TINY, arms, [0, 1], TRAIN)
    records = execute(spec.trials())
    records[0] = failed_record(spec.trials()[0], RuntimeError("CUDA out of memory.\nTried to allocate"))
    doc = compare_document(spec, records)
    assert [a["name"] for a in doc["arms"]] == [arm.name for arm in arms]
    # Paired by seed: seed 0 failed for sgd, so it leaves both arms' summaries.
    assert doc["arms"][0]["n_runs"] == 1 and doc["arms"][1]["n_runs"] == 1
    assert doc["arms"][1]["diverged"] == 1
    assert [t["status"] for t in doc["trials"]] == ["failed", "diverged", "ok", "diverged"]
    assert failure_line(doc) == ("1 trial(s) failed (not stored as results; a rerun retries them): "
                                 f"{arms[0].name} seed 0 (RuntimeError: CUDA out of memory.)")
    with pytest.raises(TrialsFailed, match="seed 0"):
        raise_if_failed(doc)


# ----------------------------------------------------------------- determinism


def test_same_trial_twice_is_bit_identical(sequential):
    again = execute(_trials()[:1])
    assert _numbers(again[0]) == _numbers(sequential[0])  # floats compared exactly
    assert again[0]["result"]["evals"] == sequential[0]["result"]["evals"]


# ----------------------------------------------------------------- code fingerprint

_RUN_ONCE = textwrap.dedent(
    """
    import json, sys
    import superpos_cli
    from superpos_cli.engine.loop import TrainConfig
    from superpos_cli.experiments.executor import execute, shared_workers
    from superpos_cli.experiments.store import ResultsStore
    from superpos_cli.experiments.trials import TrialSpec
    from superpos_cli.spec.arms import parse_arm

    kinds = []
    trial = TrialSpec("textcls", {"n_train": 32, "n_val": 32, "kind": "classical"}, parse_arm("sgd"),
                      TrainConfig(max_epochs=1, evals_per_epoch=1), cell="sgd")
    with ResultsStore(sys.argv[1]) as store:
        record, = execute([trial], store=store, on_event=lambda kind, t, p: kinds.append(kind),
                          reuse_stale=sys.argv[2] == "stale")
    print(json.dumps({"package": superpos_cli.__file__, "kinds": kinds, "stale": record.get("stale"),
                      "fingerprint": record["fingerprint"]["id"], "loss": record["result"]["mean_train_loss"]}))
    """
)


def _run_once(store, package_root: Path | None, mode: str = "plain") -> dict:
    env = dict(os.environ)
    if package_root is not None:
        env["PYTHONPATH"] = str(package_root)
    out = subprocess.run([sys.executable, "-c", _RUN_ONCE, str(store), mode], env=env, cwd=store.parent,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_changed_code_reruns_instead_of_reusing(tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(REPO / "superpos_cli", copy / "superpos_cli", ignore=shutil.ignore_patterns("__pycache__"))
    functional = copy / "superpos_cli" / "optim" / "functional.py"
    functional.write_text(functional.read_text() + "\n# one altered line: a new version of the code\n")
    store = tmp_path / "work" / "r.db"
    store.parent.mkdir()

    first = _run_once(store, None)
    assert "done" in first["kinds"] and "cached" not in first["kinds"]
    changed = _run_once(store, copy)
    assert changed["package"].startswith(str(copy))
    assert "done" in changed["kinds"] and "cached" not in changed["kinds"]  # other code: rerun, not reused
    assert changed["fingerprint"] != first["fingerprint"]
    assert changed["loss"] == first["loss"]  # the altered line was a comment
    stale = _run_once(store, None, "stale")  # the store now holds the copy's record
    assert stale["kinds"] == ["cached"] and stale["stale"] is True


_POOL_THEN_EXIT = """
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from superpos_cli.cli import app
from superpos_cli.experiments.workers import stop_workers

if __name__ == "__main__":
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(int).result()
    stop_workers(pool)  # the pool stays referenced until the process leaves
    app.main = lambda: None
    app.run()  # the console script's exit: os._exit after the command
"""


def test_stopping_a_pool_ends_its_manager_thread():
    """The manager thread holds the pool's queues (named semaphores); still running
    when the console script reached os._exit, it unlinked one without unregistering
    it, and the resource tracker warned of a leak in about 1 run in 11."""
    pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    pool.submit(int).result()
    manager = pool._executor_manager_thread
    assert manager.is_alive()
    stop_workers(pool)
    assert not manager.is_alive()


def test_the_console_script_leaves_no_semaphore_behind(tmp_path):
    """A pool's named semaphores are unlinked before os._exit: without that the
    resource tracker warned of "leaked semaphore objects" after parallel runs."""
    script = tmp_path / "pool_then_exit.py"
    script.write_text(_POOL_THEN_EXIT)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "leaked" not in done.stderr, done.stderr
