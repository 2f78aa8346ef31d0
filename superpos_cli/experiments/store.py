"""The results store: every finished trial and bench run, in one SQLite file.

A *trial* is one training run of one configuration with one seed. ``compare`` and
``ablate`` write each trial the moment it finishes, keyed by
:meth:`ResultsStore.config_hash` of its full configuration (seed included), so a
rerun of an interrupted sweep finds the finished trials with :meth:`ResultsStore.get`
and only trains the missing ones. ``bench`` appends one row per run
(:meth:`ResultsStore.append_bench`) and reads its history back for regression checks.

Storage (stdlib ``sqlite3`` only): one table ``records``; the record itself is JSON
text, and the columns a listing filters or sorts on are copied out of it and
indexed::

    key TEXT PRIMARY KEY      config hash (trial) or random hex id (bench run)
    kind TEXT                 "trial" | "bench" | ...
    sweep TEXT, name TEXT, status TEXT, commit_sha TEXT
    created_at TEXT           ISO-8601 UTC, microseconds; sorts as text
    record TEXT               the JSON document
    fingerprint TEXT          id of the code that computed it (superpos_cli.fingerprint)

A trial's key is the hash of its configuration only; the code is compared
separately (:meth:`ResultsStore.lookup`), so a record made by other code is found
and reported as *stale* rather than silently missed or silently reused. Schema
version 1 had no ``fingerprint`` column: opening such a store adds it, and its
records, whose code is unknown, count as stale.

Opening checks the file before touching it: a file that is not an SQLite
database, a truncated one, one that fails ``PRAGMA quick_check``, one written by a
newer schema, or one whose write lock another process holds past the timeout
raises :class:`~superpos_cli.errors.BadInput` and leaves the file as it was.
Records are JSON text, parsed as data only (never pickle).

Several processes may write at once (worker processes and the parent):

- WAL journal: readers never block the writer and the writer never blocks readers.
- Every write is one ``BEGIN IMMEDIATE`` ... ``COMMIT`` transaction: it takes the
  write lock up front, so a write never has to upgrade a read snapshot (the case
  where WAL answers SQLITE_BUSY at once, whatever the timeout).
- ``busy_timeout`` 30 s: a writer waits for the lock instead of failing.
- ``synchronous=NORMAL``: a committed transaction survives ``kill -9`` of any
  process (it is in the WAL file in the OS cache); a power cut may lose the last
  few commits but never corrupts the file. A process killed mid-transaction loses
  only that uncommitted trial.

Records may hold NaN or infinite floats (a diverged run's loss); they are kept as
Python's ``json`` writes them (``NaN``, ``Infinity``) rather than dropped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import sqlite3
import struct
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from superpos_cli.errors import BadInput
from superpos_cli.experiments.interrupt import sigint_deferred

__all__ = ["DEFAULT_PATH", "REUSABLE", "ResultsStore"]

DEFAULT_PATH = "superpos-results.db"
SCHEMA_VERSION = 2
# superpos holds the write lock for one INSERT at a time (milliseconds); a lock
# held this long is another process's long transaction, reported, not waited out.
BUSY_TIMEOUT_S = 10.0
# Statuses a lookup may reuse: a diverged trial is a finished, reproducible result;
# a failed one (an exception, e.g. out of memory) is rerun.
REUSABLE = ("ok", "diverged")
_SQLITE_MAGIC = b"SQLite format 3\x00"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS records (
    key        TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    sweep      TEXT,
    name       TEXT,
    status     TEXT,
    commit_sha TEXT,
    created_at TEXT NOT NULL,
    record     TEXT NOT NULL,
    fingerprint TEXT
);
CREATE INDEX IF NOT EXISTS records_kind_created ON records (kind, created_at);
CREATE INDEX IF NOT EXISTS records_sweep ON records (sweep);
CREATE INDEX IF NOT EXISTS records_status ON records (status);
CREATE INDEX IF NOT EXISTS records_name ON records (name);
"""

# Columns of a listing, in display order; `record` holds the rest.
_SUMMARY_COLUMNS = ("key", "kind", "sweep", "name", "status", "commit", "created_at", "fingerprint")
_SELECT_SUMMARY = "SELECT key, kind, sweep, name, status, commit_sha, created_at, fingerprint FROM records"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


def _text_or_none(value) -> str | None:
    return None if value is None else str(value)


class ResultsStore:
    """Trial and bench records in an SQLite file (see the module docstring).

    Use one instance per process (an ``sqlite3`` connection must not cross a
    ``fork``); instances in different processes may write the same file at once.
    Usable as a context manager; :meth:`close` is idempotent.

    Raises :class:`~superpos_cli.errors.BadInput` if ``path`` is a directory, its
    folder does not exist, or the file cannot be used (module docstring), in
    which case the file is left untouched. ``timeout_s`` bounds the wait for
    another process's write lock, here and at every write.
    """

    def __init__(self, path: str | Path = DEFAULT_PATH, *, timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self._conn: sqlite3.Connection | None = None
        if self.path.is_dir():
            raise BadInput(f"results store {str(self.path)!r} is a directory; pass a file path such as {DEFAULT_PATH}")
        existed = self.path.is_file() and self.path.stat().st_size > 0
        if existed:
            self._check_header()
        try:
            # isolation_level=None: no implicit transactions; every write below
            # opens its own BEGIN IMMEDIATE. timeout is sqlite3's busy timeout.
            self._conn = sqlite3.connect(self.path, timeout=timeout_s, isolation_level=None)
        except sqlite3.Error as err:
            raise BadInput(f"cannot open results store {str(self.path)!r}: {err}") from None
        try:
            self._conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
            if existed:
                # Read-only; before anything that could write to a damaged file.
                problems = [row[0] for row in self._conn.execute("PRAGMA quick_check(3)")]
                if problems != ["ok"]:
                    first = str(problems[0]).strip().splitlines()[0]
                    raise BadInput(f"results store {str(self.path)!r} is corrupted ({first}); "
                                   f"move it aside or pass another --store")
            self._conn.execute("PRAGMA journal_mode = WAL")  # a no-op on a store: it is WAL already
            self._conn.execute("PRAGMA synchronous = NORMAL")
            if self._schema_version() != SCHEMA_VERSION:
                # Create or migrate the schema under the write lock, so two processes
                # opening a new file at once do not both create it.
                with self._write() as conn:
                    self._migrate(conn, self._schema_version())
            else:
                # Take and release the write lock now, so a store another process keeps
                # locked is refused before any work rather than after the first trial.
                with self._write():
                    pass
        except sqlite3.OperationalError as err:
            self.close()
            if "locked" in str(err) or "busy" in str(err):
                raise BadInput(f"results store {str(self.path)!r} is locked by another process "
                               f"(waited {timeout_s:g} s); wait for it to finish or pass another --store") from None
            raise BadInput(f"cannot use {str(self.path)!r} as a results store: {err}") from None
        except sqlite3.DatabaseError as err:
            self.close()
            raise BadInput(f"cannot use {str(self.path)!r} as a results store: {err}") from None
        except BadInput:
            self.close()
            raise

    def _check_header(self) -> None:
        """Refuse, from the 100-byte SQLite header alone, a foreign, truncated or
        newer-schema file (https://www.sqlite.org/fileformat.html#the_database_header)."""
        name = str(self.path)
        try:
            with self.path.open("rb") as handle:
                header = handle.read(100)
            size = self.path.stat().st_size
        except OSError as err:
            raise BadInput(f"cannot read results store {name!r}: {err.strerror}") from None
        if len(header) < 100 or not header.startswith(_SQLITE_MAGIC):
            raise BadInput(f"{name!r} is not a results store (not an SQLite database); pass another --store")
        page_size = struct.unpack(">H", header[16:18])[0]
        page_size = 65536 if page_size == 1 else page_size
        pages, valid_for, user_version = struct.unpack(">I", header[28:32])[0], header[92:96], header[60:64]
        # The in-header page count is valid when its "valid-for" number matches the change counter.
        if valid_for == header[24:28] and size < pages * page_size:
            raise BadInput(f"results store {name!r} is truncated ({size} of {pages * page_size} bytes); "
                           f"move it aside or pass another --store")
        version = struct.unpack(">i", user_version)[0]
        if version > SCHEMA_VERSION:
            raise BadInput(f"results store {name!r} has schema version {version}; "
                           f"this superpos reads up to {SCHEMA_VERSION} (upgrade superpos)")

    def _migrate(self, conn: sqlite3.Connection, version: int) -> None:
        if version == 0:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    conn.execute(statement)
        elif version == 1:
            # Version 1 records keep fingerprint NULL: made by unknown code, so stale.
            conn.execute("ALTER TABLE records ADD COLUMN fingerprint TEXT")
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    # ------------------------------------------------------------------ plumbing

    def _schema_version(self) -> int:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise BadInput(
                f"results store {str(self.path)!r} has schema version {version}; "
                f"this superpos reads up to {SCHEMA_VERSION}"
            )
        return version

    @property
    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError("ResultsStore is closed")
        return self._conn

    def _write(self) -> _WriteTx:
        return _WriteTx(self._db)

    def close(self) -> None:
        """Close the connection (idempotent). Committed data is already on disk."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> ResultsStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ trials

    @staticmethod
    def config_hash(config: dict) -> str:
        """SHA-256 hex digest of the canonical JSON of a full trial configuration.

        Canonical JSON: keys sorted at every level, separators ``(",", ":")``,
        ASCII only, NaN rejected; so the same configuration gives the same key in
        any process and on any machine, whatever the dict's insertion order. The
        configuration must include the seed (a different seed is a different
        trial). Values must be JSON types; note ``1`` and ``1.0`` hash differently,
        so build ``config`` from the typed config dataclasses (``asdict``).
        """
        text = json.dumps(config, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)
        return hashlib.sha256(text.encode("ascii")).hexdigest()

    def get(self, key: str) -> dict | None:
        """The record stored under exactly ``key``, or ``None``.

        Trials are written only when they finish, so a record is a finished trial;
        its ``status`` (``"ok"``, ``"diverged"``, ``"failed"``) says how it finished.
        """
        row = self._db.execute("SELECT record FROM records WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def lookup(self, key: str, fingerprint: str, reuse_stale: bool = False) -> dict | None:
        """The stored trial under ``key`` if it may be reused, else ``None`` (run it).

        Reusable: status in :data:`REUSABLE` and computed by the code ``fingerprint``
        (an id from :func:`superpos_cli.fingerprint.code_fingerprint`). A record of
        other (or unknown) code is reused only with ``reuse_stale``, and then comes
        back with ``"stale": True``; a failed trial is never reused.
        """
        row = self._db.execute("SELECT record, fingerprint FROM records WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        record = json.loads(row[0])
        if record.get("status") not in REUSABLE:
            return None
        stale = row[1] != fingerprint
        if stale and not reuse_stale:
            return None
        record["stale"] = stale
        return record

    def put(self, key: str, record: dict, *, kind: str = "trial", sweep: str | None = None) -> None:
        """Write ``record`` under ``key`` in one transaction, replacing any earlier one.

        ``record`` is a JSON-serialisable dict (config, seed, per-evaluation
        records, curves, machine, versions, status, timings); its ``name``,
        ``status`` and ``commit`` entries, if present, are copied to indexed
        columns, and so is ``record["fingerprint"]["id"]``. ``created_at`` is the
        time of this write. A Ctrl-C during the write takes effect after it.
        """
        self._insert(key, record, kind=kind, sweep=sweep, commit=record.get("commit"))

    def _insert(self, key: str, record: dict, *, kind: str, sweep: str | None, commit: str | None) -> None:
        if not key or not isinstance(key, str):
            raise ValueError(f"key must be a non-empty string, got {key!r}")
        if not isinstance(record, dict):
            raise TypeError(f"record must be a dict, got {type(record).__name__}")
        text = json.dumps(record, sort_keys=True)  # serialise before taking the lock
        fingerprint = record.get("fingerprint")
        row = (
            key,
            kind,
            sweep,
            _text_or_none(record.get("name")),
            _text_or_none(record.get("status")),
            _text_or_none(commit),
            _now(),
            text,
            _text_or_none(fingerprint.get("id") if isinstance(fingerprint, dict) else None),
        )
        with sigint_deferred(), self._write() as conn:
            conn.execute(
                "INSERT OR REPLACE INTO records"
                " (key, kind, sweep, name, status, commit_sha, created_at, record, fingerprint)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            )

    # ------------------------------------------------------------------ reading

    def list(self, kind: str | None = None, sweep: str | None = None, limit: int | None = None) -> list[dict]:
        """Summaries, newest first: ``{key, kind, sweep, name, status, commit, created_at, fingerprint}``."""
        sql, args = self._filtered(_SELECT_SUMMARY, kind, sweep)
        sql += " ORDER BY created_at DESC, rowid DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(int(limit))
        return [dict(zip(_SUMMARY_COLUMNS, row)) for row in self._db.execute(sql, args)]

    def show(self, key_prefix: str) -> dict:
        """The one entry whose key starts with ``key_prefix``: its summary plus ``record``.

        Raises BadInput if no key matches or several do (naming some of them).
        """
        prefix = (key_prefix or "").strip()
        if not prefix:
            raise BadInput("key prefix is empty; pass the first characters of a key from `superpos results list`")
        rows = self._db.execute(
            _SELECT_SUMMARY.replace(" FROM", ", record FROM")
            + " WHERE key = ? OR substr(key, 1, ?) = ? ORDER BY key = ? DESC, key LIMIT 6",
            (prefix, len(prefix), prefix, prefix),
        ).fetchall()
        if not rows:
            raise BadInput(f"no result with a key starting {prefix!r} in {str(self.path)!r}")
        exact = rows[0][0] == prefix
        if len(rows) > 1 and not exact:
            shown = ", ".join(r[0][:16] for r in rows[:5])
            raise BadInput(f"key prefix {prefix!r} is ambiguous: matches {shown}{', ...' if len(rows) > 5 else ''}")
        entry = dict(zip(_SUMMARY_COLUMNS, rows[0][:-1]))
        entry["record"] = json.loads(rows[0][-1])
        return entry

    def _filtered(self, sql: str, kind: str | None, sweep: str | None) -> tuple[str, list]:
        where, args = [], []
        if kind is not None:
            where.append("kind = ?")
            args.append(kind)
        if sweep is not None:
            where.append("sweep = ?")
            args.append(sweep)
        if where:
            sql += " WHERE " + " AND ".join(where)
        return sql, args

    def _entries(self, kind: str | None, sweep: str | None) -> Iterator[dict]:
        sql, args = self._filtered(_SELECT_SUMMARY.replace(" FROM", ", record FROM"), kind, sweep)
        for row in self._db.execute(sql + " ORDER BY created_at, rowid", args):
            entry = dict(zip(_SUMMARY_COLUMNS, row[:-1]))
            entry["record"] = json.loads(row[-1])
            yield entry

    def export(self, fmt: str = "csv", kind: str | None = None, sweep: str | None = None) -> str:
        """All matching entries, oldest first, as one CSV or JSON text.

        - ``json``: an array of ``{key, kind, sweep, name, status, commit,
          created_at, fingerprint, record}`` objects, the record unchanged.
        - ``csv``: one row per entry; the summary columns, then one column per
          leaf of the record, named ``record.<dotted.path>`` (union over entries,
          sorted). Strings and numbers are written as they are, booleans as
          ``true``/``false``, ``None``/missing as an empty cell, lists (curves,
          per-evaluation records) as compact JSON text.
        """
        if fmt not in ("csv", "json"):
            raise BadInput(f"export format must be 'csv' or 'json', got {fmt!r}")
        entries = list(self._entries(kind, sweep))
        if fmt == "json":
            return json.dumps(entries, indent=2, sort_keys=False) + "\n"

        flat_rows, leaf_names = [], set()
        for entry in entries:
            flat = {k: entry[k] for k in _SUMMARY_COLUMNS}
            leaves = dict(_flatten(entry["record"], "record"))
            leaf_names.update(leaves)
            flat.update(leaves)
            flat_rows.append(flat)
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=[*_SUMMARY_COLUMNS, *sorted(leaf_names)], lineterminator="\n")
        writer.writeheader()
        for flat in flat_rows:
            writer.writerow({k: _csv_cell(v) for k, v in flat.items()})
        return buf.getvalue()

    # ------------------------------------------------------------------ bench

    def append_bench(self, record: dict, commit: str | None) -> str:
        """Append one ``superpos bench`` run (kind ``"bench"``); returns its new key.

        ``record["metrics"]`` maps a metric name to either a list of raw samples
        or a dict with ``"samples"`` (list) and/or precomputed ``"median"``,
        ``"min"``, ``"max"``; :meth:`bench_history` reads that shape.
        """
        key = uuid.uuid4().hex
        self._insert(key, record, kind="bench", sweep=record.get("suite"), commit=commit)
        return key

    def bench_history(self, metric: str) -> list[dict]:
        """Every bench run that measured ``metric``, oldest first.

        Each item: ``{key, created_at, commit, median, min, max, n}``, where median,
        min and max come from the run's raw samples when it has them (``n`` is
        their count) and from its precomputed values otherwise (``n`` None).
        """
        history = []
        for entry in self._entries("bench", None):
            metrics = entry["record"].get("metrics") or {}
            if metric not in metrics:
                continue
            value = metrics[metric]
            samples = value if isinstance(value, list) else (value.get("samples") if isinstance(value, dict) else None)
            if samples:
                x = np.asarray(samples, dtype=float)
                median, lo, hi, n = float(np.median(x)), float(x.min()), float(x.max()), int(x.size)
            elif isinstance(value, dict) and "median" in value:
                median, lo, hi, n = value["median"], value.get("min"), value.get("max"), None
            else:
                continue
            history.append(
                {
                    "key": entry["key"],
                    "created_at": entry["created_at"],
                    "commit": entry["commit"],
                    "median": median,
                    "min": lo,
                    "max": hi,
                    "n": n,
                }
            )
        return history


class _WriteTx:
    """``with _WriteTx(conn) as conn:`` runs the body in BEGIN IMMEDIATE ... COMMIT.

    Any exception rolls the transaction back and propagates.
    """

    def __init__(self, conn: sqlite3.Connection):
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        self.conn.execute("BEGIN IMMEDIATE")
        return self.conn

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.conn.execute("COMMIT")
        else:
            self.conn.execute("ROLLBACK")


def _flatten(value, prefix: str) -> Iterator[tuple[str, object]]:
    """Leaves of nested dicts as ``(dotted.path, value)``; lists are leaves."""
    if isinstance(value, dict) and value:
        for k, v in value.items():
            yield from _flatten(v, f"{prefix}.{k}")
    else:
        yield prefix, value


def _csv_cell(value) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, dict)):
        return json.dumps(value, separators=(",", ":"))
    return value
