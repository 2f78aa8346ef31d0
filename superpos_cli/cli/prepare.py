"""Checks every command makes before any work, and the store it then opens.

torch-free: a bad output path, data file or memory estimate is one line within a
fraction of a second, before a worker starts or torch loads.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Iterator

from superpos_cli.cli.options import store_path
from superpos_cli.experiments.preflight import check_data, check_memory, check_output
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
    """Data files parsed, checkpoint folders checked, circuit memory estimated."""
    check_data(run)
    check_memory(run)


@contextlib.contextmanager
def open_store(path: Path | None) -> Iterator[object]:
    """The results store at ``path`` (closed after), or None."""
    if path is None:
        yield None
        return
    from superpos_cli.experiments.store import ResultsStore

    with ResultsStore(path) as store:
        yield store
