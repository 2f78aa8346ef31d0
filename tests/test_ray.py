"""Ray executor: the same records as the local executor, the store reused, faults
recorded, bounded submission, Ctrl-C. Skipped where ray is not installed."""

from __future__ import annotations

import importlib.util
import os
import socket
import sys
import time
from collections import Counter

import pytest

from superpos_cli.engine.loop import TrainConfig
from superpos_cli.errors import BadInput
from superpos_cli.experiments.executor import execute
from superpos_cli.experiments.interrupt import Interrupted
from superpos_cli.experiments.store import ResultsStore
from superpos_cli.experiments.trials import TrialSpec
from superpos_cli.spec.arms import parse_arm

needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")
TINY = {"n_train": 64, "n_val": 64, "kind": "classical"}  # classical: no compile warm-up per worker


def _trials(options: dict | None = None) -> list[TrialSpec]:
    """2 arms x 2 seeds of a tiny textcls sweep, seeds outermost as ablate orders them."""
    arms = [parse_arm("sgd:lambda=0"), parse_arm("sgd:lambda=0.5")]
    return [TrialSpec("textcls", options or TINY, arm, TrainConfig(max_epochs=1, evals_per_epoch=2, seed=seed),
                      cell=arm.name)
            for seed in (0, 1) for arm in arms]


def _numbers(record: dict) -> dict:
    """Everything a trial measured except timings."""
    result = record["result"]
    return {
        "evals": [(e["epoch"], e["step"], e["train_loss"], e["metrics"]) for e in result["evals"]],
        "epochs": [(e["epoch"], e["train_loss"], e["metrics"]) for e in result["epochs"]],
        "epochs_to_target": result["epochs_to_target"],
        "steps": result["steps"],
        "status": record["status"],
        "seed": record["seed"],
        "arm": record["arm"],
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
def ray_instance():
    """One local instance of 2 CPUs for the module (the executor reuses it, and leaves it up)."""
    import ray

    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def local_records():
    return execute(_trials())


def test_unknown_executor_and_stray_address_are_bad_input():
    with pytest.raises(BadInput, match="executor 'dask' is not one of local, ray"):
        execute(_trials(), executor="dask")
    with pytest.raises(BadInput, match="--ray-address needs --executor ray"):
        execute(_trials(), ray_address="auto")


def test_missing_ray_is_bad_input_before_any_trial(monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    with pytest.raises(BadInput, match=r"pip install 'superpos_cli\[ray\]'"):
        execute(_trials(), executor="ray")


@needs_ray
def test_ray_matches_local_record_by_record_and_rerun_reuses_the_store(ray_instance, local_records, tmp_path):
    events = Events()
    with ResultsStore(tmp_path / "r.db") as store:
        on_ray = execute(_trials(), store=store, on_event=events, executor="ray")
        assert events.kinds == {"done": 4}
        assert [_numbers(r) for r in on_ray] == [_numbers(r) for r in local_records]
        assert all(r["torch_threads"] == 1 for r in on_ray)
        assert len(store.list()) == 4  # one record per trial, written by this (the driver) process

        again = Events()
        rerun = execute(_trials(), store=store, on_event=again, executor="ray")
        assert again.kinds == {"cached": 4}
        assert [_numbers(r) for r in rerun] == [_numbers(r) for r in local_records]
        # The local executor reuses the Ray run's records too: same keys, same fingerprint.
        local = Events()
        execute(_trials(), store=store, on_event=local)
        assert local.kinds == {"cached": 4}


@needs_ray
def test_a_trial_that_raises_is_recorded_failed_with_its_reason(ray_instance, tmp_path):
    good, bad = _trials()[0], _trials({**TINY, "n_train": 0})[1]
    with ResultsStore(tmp_path / "r.db") as store:
        records = execute([bad, good], store=store, executor="ray")
        assert [r["status"] for r in records] == ["failed", "ok"]
        assert records[0]["error"] == "BadInput: n_train and n_val must be >= 1, got 0, 64"
        assert store.get(records[0]["key"])["status"] == "failed"  # stored, and retried by the next run


def _run(trials, work, **kwargs) -> dict[int, dict]:
    from superpos_cli.experiments.ray_executor import run_on_ray

    got: dict[int, dict] = {}
    run_on_ray(trials, list(range(len(trials))), lambda i, record, threads: got.__setitem__(i, record),
               work=work, **kwargs)
    return got


@needs_ray
@pytest.mark.parametrize("crashes, status", [(1, "ok"), (9, "failed")])
def test_a_lost_worker_is_retried_then_recorded_failed(ray_instance, tmp_path, crashes, status):
    marks = str(tmp_path)

    def work(trial):  # a closure, so Ray pickles it by value; counts its attempts in files
        attempt = len(os.listdir(marks))
        open(os.path.join(marks, str(attempt)), "w").close()
        if attempt < crashes:
            os._exit(1)  # the worker process dies, as under the out-of-memory killer
        return {"status": "ok", "seed": trial.seed}

    got = _run(_trials()[:1], work, max_retries=1)
    assert got[0]["status"] == status
    assert len(os.listdir(marks)) == min(crashes + 1, 2)  # one retry, never more
    if status == "failed":
        assert got[0]["error"].startswith("Ray worker lost 2 time(s)")


@needs_ray
def test_submission_is_bounded(ray_instance, tmp_path):
    log = str(tmp_path)

    def work(trial):  # records when it ran; with one trial in flight no two may overlap
        started = time.time()
        time.sleep(0.3)
        with open(os.path.join(log, f"{trial.seed}-{trial.arm.name}"), "w") as f:
            f.write(f"{started} {time.time()}")
        return {"status": "ok"}

    got = _run(_trials(), work, max_in_flight=1)
    assert sorted(got) == [0, 1, 2, 3]
    spans = sorted(tuple(map(float, open(os.path.join(log, name)).read().split())) for name in os.listdir(log))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(spans, spans[1:]))


@needs_ray
def test_interrupt_cancels_the_rest_and_keeps_what_finished(ray_instance, tmp_path):
    with ResultsStore(tmp_path / "r.db") as store:
        with pytest.raises(Interrupted) as caught:
            execute(_trials(), store=store, on_event=Events(stop_at_done=1), executor="ray")
        assert (caught.value.completed, caught.value.total) == (1, 4)
        assert len(store.list()) == 1


@needs_ray
def test_an_address_where_nothing_listens_is_bad_input():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # free once closed: nothing listens there
    with pytest.raises(BadInput, match=f"ray-address '127.0.0.1:{port}': nothing answers there"):
        execute(_trials()[:1], executor="ray", ray_address=f"127.0.0.1:{port}")
    with pytest.raises(BadInput, match="nothing answers there"):
        execute(_trials()[:1], executor="ray", ray_address="no-port")
