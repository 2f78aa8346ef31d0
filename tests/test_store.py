"""Tests for the results store (superpos_cli.experiments.store) and `superpos results`."""

from __future__ import annotations

import csv
import io
import json
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from superpos_cli.errors import BadInput
from superpos_cli.experiments.store import ResultsStore

REPO = Path(__file__).resolve().parents[1]


def _trial(seed: int, name: str = "sgd", status: str = "ok") -> tuple[dict, dict]:
    config = {"optimizer": {"name": name, "lr": 1e-3}, "task": "textcls", "seed": seed}
    record = {
        "name": name,
        "status": status,
        "config": config,
        "seed": seed,
        "epochs_to_target": 4.6 + seed,
        "curve": [0.5, 0.7, 0.91],
        "machine": {"cores": 2},
    }
    return config, record


@pytest.fixture
def store(tmp_path):
    s = ResultsStore(tmp_path / "r.db")
    yield s
    s.close()


# ----------------------------------------------------------------- hashing


def test_config_hash_stable_across_key_order_and_processes():
    a = {"seed": 1, "optimizer": {"lr": 0.001, "name": "sgd"}, "task": "textcls"}
    b = {"task": "textcls", "optimizer": {"name": "sgd", "lr": 0.001}, "seed": 1}
    h = ResultsStore.config_hash(a)
    assert h == ResultsStore.config_hash(b)
    assert len(h) == 64 and int(h, 16) >= 0
    code = (
        "import json, sys; from superpos_cli.experiments.store import ResultsStore;"
        "print(ResultsStore.config_hash(json.loads(sys.argv[1])))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, json.dumps(b)], capture_output=True, text=True, check=True, cwd=REPO
    ).stdout.strip()
    assert out == h


def test_config_hash_changes_with_seed_and_values():
    base = {"optimizer": {"name": "sgd", "lr": 0.001}, "seed": 1}
    assert ResultsStore.config_hash(base) != ResultsStore.config_hash({**base, "seed": 2})
    other_lr = {**base, "optimizer": {"name": "sgd", "lr": 0.01}}
    assert ResultsStore.config_hash(base) != ResultsStore.config_hash(other_lr)


# ----------------------------------------------------------------- round trips


def test_put_get_round_trip(store):
    config, record = _trial(0)
    key = store.config_hash(config)
    assert store.get(key) is None
    store.put(key, record, sweep="s1")
    assert store.get(key) == record
    [summary] = store.list()
    assert summary["key"] == key and summary["kind"] == "trial" and summary["sweep"] == "s1"
    assert summary["name"] == "sgd" and summary["status"] == "ok" and summary["created_at"]


def test_put_replaces_same_key(store):
    config, record = _trial(0)
    key = store.config_hash(config)
    store.put(key, {**record, "status": "failed"})
    store.put(key, record)
    assert store.get(key)["status"] == "ok"
    assert len(store.list()) == 1


def test_reopen_after_close(tmp_path):
    path = tmp_path / "r.db"
    with ResultsStore(path) as s:
        config, record = _trial(3)
        key = s.config_hash(config)
        s.put(key, record)
    s.close()  # idempotent
    with ResultsStore(path) as s2:
        assert s2.get(key) == record


def test_list_filters_and_limit(store):
    for seed in range(3):
        config, record = _trial(seed)
        store.put(store.config_hash(config), record, sweep="a")
    config, record = _trial(9, name="sgd-sin")
    store.put(store.config_hash(config), record, sweep="b")
    store.append_bench({"metrics": {"step_ms": [1.0]}}, commit="abc")
    assert len(store.list()) == 5
    assert len(store.list(kind="trial")) == 4
    assert [r["name"] for r in store.list(sweep="b")] == ["sgd-sin"]
    assert len(store.list(kind="trial", sweep="a", limit=2)) == 2
    assert store.list()[0]["kind"] == "bench"  # newest first


def test_show_prefix(store):
    keys = []
    for seed in range(20):
        config, record = _trial(seed)
        keys.append(store.config_hash(config))
        store.put(keys[-1], record)
    entry = store.show(keys[0][:10])
    assert entry["key"] == keys[0] and entry["record"]["seed"] == 0
    with pytest.raises(BadInput, match="no result"):
        store.show("zzzz")
    with pytest.raises(BadInput, match="ambiguous"):
        store.show(_common_prefix(keys))
    with pytest.raises(BadInput, match="empty"):
        store.show("  ")


def _common_prefix(keys: list[str]) -> str:
    # A one-character prefix shared by at least two of the keys.
    first = [k[0] for k in keys]
    return next(c for c in first if first.count(c) > 1)


def test_export_csv_and_json_parse_back(store):
    stored = {}
    for seed in range(3):
        config, record = _trial(seed)
        key = store.config_hash(config)
        store.put(key, record, sweep="s")
        stored[key] = record
    store.append_bench({"metrics": {"step_ms": [1.0, 2.0]}, "ok": True}, commit="abc")

    entries = json.loads(store.export("json", kind="trial"))
    assert {e["key"]: e["record"] for e in entries} == stored

    rows = list(csv.DictReader(io.StringIO(store.export("csv"))))
    assert len(rows) == 4
    trial_rows = {r["key"]: r for r in rows if r["kind"] == "trial"}
    assert set(trial_rows) == set(stored)
    for key, row in trial_rows.items():
        assert float(row["record.epochs_to_target"]) == stored[key]["epochs_to_target"]
        assert json.loads(row["record.curve"]) == [0.5, 0.7, 0.91]
        assert row["record.config.optimizer.name"] == "sgd" and row["sweep"] == "s"
    [bench] = [r for r in rows if r["kind"] == "bench"]
    assert bench["commit"] == "abc" and bench["record.ok"] == "true"
    assert bench["record.epochs_to_target"] == ""

    with pytest.raises(BadInput, match="csv"):
        store.export("xml")


def test_bench_history(store):
    store.append_bench({"metrics": {"step_ms": [3.0, 1.0, 2.0]}}, commit="c1")
    store.append_bench({"metrics": {"other": [1.0]}}, commit="c2")
    store.append_bench({"metrics": {"step_ms": {"median": 5.0, "min": 4.0, "max": 6.0}}}, commit=None)
    history = store.bench_history("step_ms")
    assert [(h["commit"], h["median"], h["min"], h["max"], h["n"]) for h in history] == [
        ("c1", 2.0, 1.0, 3.0, 3),
        (None, 5.0, 4.0, 6.0, None),
    ]
    assert history[0]["created_at"] <= history[1]["created_at"]
    assert store.bench_history("missing") == []


# ----------------------------------------------------------------- bad input


def test_bad_input_not_a_database(tmp_path):
    junk = tmp_path / "notes.db"
    junk.write_bytes(b"this is not sqlite\n" * 200)
    with pytest.raises(BadInput, match="not an SQLite database"):
        ResultsStore(junk)


def test_bad_input_directory_and_missing_folder(tmp_path):
    with pytest.raises(BadInput, match="directory"):
        ResultsStore(tmp_path)
    with pytest.raises(BadInput, match="cannot open"):
        ResultsStore(tmp_path / "no" / "such" / "r.db")


def test_wal_mode(store):
    assert store._db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


# ----------------------------------------------------------------- concurrency


def _writer(path: str, worker: int, n: int) -> None:
    with ResultsStore(path) as s:
        for i in range(n):
            config = {"worker": worker, "i": i, "seed": i}
            s.put(ResultsStore.config_hash(config), {"worker": worker, "i": i, "status": "ok"}, sweep="mp")


def test_two_processes_write_concurrently(tmp_path):
    path = str(tmp_path / "r.db")
    ResultsStore(path).close()  # schema created; children also race on open below
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 20)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with ResultsStore(path) as s:
        rows = s.list(sweep="mp")
        assert len(rows) == 40
        got = {(s.get(r["key"])["worker"], s.get(r["key"])["i"]) for r in rows}
    assert got == {(w, i) for w in range(2) for i in range(20)}


def test_two_processes_open_a_new_store_at_once(tmp_path):
    path = str(tmp_path / "fresh.db")
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_writer, args=(path, w, 5)) for w in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    with ResultsStore(path) as s:
        assert len(s.list()) == 10


_KILL_CHILD = textwrap.dedent(
    """
    import sys
    from superpos_cli.experiments.store import ResultsStore
    s = ResultsStore(sys.argv[1])
    i = 0
    while True:
        key = ResultsStore.config_hash({"i": i, "seed": 0})
        s.put(key, {"i": i, "status": "ok", "curve": list(range(200))})
        print(key, flush=True)  # printed only after COMMIT returned
        i += 1
    """
)


def test_sigkill_mid_write_keeps_db_intact(tmp_path):
    path = tmp_path / "r.db"
    ResultsStore(path).close()
    child = subprocess.Popen(
        [sys.executable, "-c", _KILL_CHILD, str(path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    committed = []
    try:
        for line in child.stdout:
            committed.append(line.strip())
            if len(committed) >= 30:
                break
        assert len(committed) >= 30, "writer died before committing"
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with ResultsStore(path) as s:
        for key in committed:
            assert s.get(key)["status"] == "ok"
        assert len(s.list()) >= len(committed)


# ----------------------------------------------------------------- fingerprints and schema


def _fp(ident: str) -> dict:
    return {"id": ident, "sources": "s" * 64, "versions": {}}


@pytest.mark.parametrize(
    "stored_fp, status, reuse_stale, reused, stale",
    [
        ("aaaa", "ok", False, True, False),  # same code: reused
        ("aaaa", "diverged", False, True, False),  # a diverged run is a finished result
        ("bbbb", "ok", False, False, None),  # other code: rerun
        ("bbbb", "ok", True, True, True),  # other code, --reuse-stale: reused, marked
        (None, "ok", True, True, True),  # unknown code (no fingerprint) is stale
        ("aaaa", "failed", False, False, None),  # a failure is never reused
        ("aaaa", "failed", True, False, None),
    ],
)
def test_lookup_reuses_only_the_same_code(store, stored_fp, status, reuse_stale, reused, stale):
    config, record = _trial(0, status=status)
    if stored_fp is not None:
        record["fingerprint"] = _fp(stored_fp)
    key = store.config_hash(config)
    store.put(key, record)
    got = store.lookup(key, "aaaa", reuse_stale=reuse_stale)
    assert (got is not None) == reused
    if reused:
        assert got["stale"] is stale and got["seed"] == 0
    assert store.lookup("0" * 64, "aaaa", reuse_stale=True) is None
    assert store.list()[0]["fingerprint"] == stored_fp


_V1_SCHEMA = """
CREATE TABLE records (key TEXT PRIMARY KEY, kind TEXT NOT NULL, sweep TEXT, name TEXT, status TEXT,
                      commit_sha TEXT, created_at TEXT NOT NULL, record TEXT NOT NULL);
"""


def test_schema_1_store_is_migrated_and_its_records_are_stale(tmp_path):
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    conn.executescript(_V1_SCHEMA)
    config, record = _trial(3)
    key = ResultsStore.config_hash(config)
    conn.execute("INSERT INTO records VALUES (?, 'trial', NULL, 'sgd', 'ok', NULL, '2026-01-01T00:00:00', ?)",
                 (key, json.dumps(record)))
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with ResultsStore(path) as s:
        assert s._db.execute("PRAGMA user_version").fetchone()[0] == 2
        assert s.list()[0]["fingerprint"] is None
        assert s.lookup(key, "aaaa") is None  # made by unknown code: rerun
        assert s.lookup(key, "aaaa", reuse_stale=True)["stale"] is True
        record["fingerprint"] = _fp("aaaa")
        s.put(key, record)  # the rerun's record replaces it
        assert s.lookup(key, "aaaa")["stale"] is False


def _filled_store(path, n=200) -> bytes:
    with ResultsStore(path) as s:
        for seed in range(n):
            config, record = _trial(seed)
            s.put(s.config_hash(config), record)
    return path.read_bytes()  # closed: the WAL is checkpointed into the file


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _scribble(path):
    data = bytearray(path.read_bytes())
    data[4096 * 2: 4096 * 6] = b"\xa5" * (4096 * 4)  # pages 3..6: b-tree pages turned to noise
    path.write_bytes(bytes(data))


def _newer_schema(path):
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 3")
    conn.close()


@pytest.mark.parametrize(
    "damage, message",
    [(_truncate, "is truncated"), (_scribble, "is corrupted"), (_newer_schema, "has schema version 3")],
)
def test_damaged_or_newer_store_is_one_line_and_left_untouched(tmp_path, damage, message):
    path = tmp_path / "r.db"
    _filled_store(path)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(BadInput, match=message) as info:
        ResultsStore(path)
    assert "\n" not in str(info.value)
    assert path.read_bytes() == before
    assert not (tmp_path / "r.db-wal").exists() or (tmp_path / "r.db-wal").stat().st_size == 0


def test_store_locked_by_another_process_is_refused_before_work(tmp_path):
    path = tmp_path / "r.db"
    before = _filled_store(path, n=3)
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent("""
            import sqlite3, sys, time
            conn = sqlite3.connect(sys.argv[1], isolation_level=None)
            conn.execute("BEGIN IMMEDIATE")  # hold the write lock
            print("locked", flush=True)
            time.sleep(60)
        """), str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(BadInput, match="is locked by another process"):
            ResultsStore(path, timeout_s=0.3)
    finally:
        holder.kill()
        holder.wait(10)
        holder.stdout.close()
    with ResultsStore(path) as s:  # usable again once the lock is gone
        assert len(s.list()) == 3
    assert len(before) > 0


def test_sigint_during_a_write_lets_the_write_commit_first(store, monkeypatch):
    from superpos_cli.experiments import store as store_module

    enter = store_module._WriteTx.__enter__

    def enter_and_interrupt(self):
        conn = enter(self)
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C inside the transaction
        return conn

    monkeypatch.setattr(store_module._WriteTx, "__enter__", enter_and_interrupt)
    # Python's own Ctrl-C handler, even when the test run inherited SIGINT ignored.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    config, record = _trial(0)
    key = store.config_hash(config)
    with pytest.raises(KeyboardInterrupt):
        store.put(key, record)
    monkeypatch.undo()
    signal.signal(signal.SIGINT, previous)
    assert store.get(key)["seed"] == 0  # committed, then interrupted


# ----------------------------------------------------------------- CLI


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "r.db"
    keys = []
    with ResultsStore(path) as s:
        for seed in range(3):
            config, record = _trial(seed)
            keys.append(s.config_hash(config))
            s.put(keys[-1], record, sweep="paper")
        s.append_bench({"metrics": {"step_ms": [1.0]}}, commit="abc")
    return path, keys


def _cli(*args: str):
    from superpos_cli.cli.app import app

    return CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})


def test_cli_list_table_and_json(filled):
    path, keys = filled
    res = _cli("results", "list", "--store", str(path))
    assert res.exit_code == 0, res.output
    for key in keys:
        assert key[:12] in res.output and key[:13] not in res.output
    assert "paper" in res.output and "bench" in res.output

    res = _cli("results", "list", "--store", str(path), "--kind", "trial", "--json")
    assert res.exit_code == 0, res.output
    rows = json.loads(res.stdout)
    assert {r["key"] for r in rows} == set(keys)


def test_cli_show(filled):
    path, keys = filled
    res = _cli("results", "show", keys[1][:8], "--store", str(path))
    assert res.exit_code == 0, res.output
    entry = json.loads(res.stdout)
    assert entry["key"] == keys[1] and entry["record"]["seed"] == 1


def test_cli_export(filled, tmp_path):
    path, keys = filled
    res = _cli("results", "export", "--csv", "--store", str(path))
    assert res.exit_code == 0, res.output
    assert len(list(csv.DictReader(io.StringIO(res.stdout)))) == 4

    out = tmp_path / "out.json"
    res = _cli("results", "export", "--json", "--store", str(path), "--kind", "trial", "--out", str(out))
    assert res.exit_code == 0, res.output
    assert {e["key"] for e in json.loads(out.read_text())} == set(keys)


def test_cli_missing_store_is_one_line_exit_2(tmp_path):
    missing = tmp_path / "nothing.db"
    res = _cli("results", "list", "--store", str(missing))
    assert res.exit_code == 2, (res.output, res.exception)
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and "no results store at" in lines[0] and "--store" in lines[0]
    assert not missing.exists()  # reading never creates a store


def test_cli_show_unknown_key_exit_2(filled):
    path, _ = filled
    res = _cli("results", "show", "zzzz", "--store", str(path))
    assert res.exit_code == 2
    assert "no result" in res.output
