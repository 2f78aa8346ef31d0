"""Executor: store reuse, parallel workers (same numbers as sequential), interrupts."""

from __future__ import annotations

import multiprocessing
import time
from collections import Counter

import pytest
import torch

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.executor import execute
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.trials import TrialSpec
from superpos_cli.optim.presets import parse_arm

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
