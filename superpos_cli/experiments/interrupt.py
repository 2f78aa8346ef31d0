"""Ctrl-C without lost work: what an interrupted command tells the user.

A SIGINT becomes Python's ``KeyboardInterrupt`` wherever the main thread is.
Two places make it safe:

* :func:`sigint_deferred` holds a SIGINT back while a store write runs, and
  delivers it right after the commit, so the write in progress completes;
* :func:`~superpos_cli.experiments.executor.execute` turns the interrupt into
  :class:`Interrupted`, which says how many trials are complete and where they
  are stored (a rerun of the same command reuses them).

The CLI catches ``KeyboardInterrupt`` once, around every command, prints
:func:`interrupt_message` as one line on stderr and exits with
:data:`EXIT_INTERRUPTED` (130, the shell's 128 + SIGINT) with no traceback.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

__all__ = ["EXIT_INTERRUPTED", "Interrupted", "interrupt_message", "sigint_deferred"]

EXIT_INTERRUPTED = 130


class Interrupted(KeyboardInterrupt):
    """A sweep stopped by Ctrl-C after ``completed`` of ``total`` trials were stored
    (``store`` is the store's path, None when the sweep kept no store)."""

    def __init__(self, completed: int, total: int, store: str | None):
        super().__init__(completed, total, store)
        self.completed, self.total, self.store = completed, total, store


def interrupt_message(err: BaseException) -> str:
    """The one line an interrupted command prints (``err``: the KeyboardInterrupt caught)."""
    if not isinstance(err, Interrupted):
        return "interrupted: stopped before any result was stored"
    if err.store is None:
        return (f"interrupted: {err.completed} of {err.total} trials had completed; no results store was used, "
                f"so nothing was kept")
    missing = err.total - err.completed
    return (f"interrupted: {err.completed} of {err.total} trials completed, stored in {err.store}; "
            f"rerun the same command to run the other {missing}")


@contextlib.contextmanager
def sigint_deferred() -> Iterator[None]:
    """Run the body with SIGINT held back; a SIGINT received meanwhile is delivered
    to the previous handler when the body ends (so ``KeyboardInterrupt`` is raised
    after, not inside, the body). Outside the main thread (where Python cannot set
    handlers) the body just runs."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    received: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: received.append(signum))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if received:
            if callable(previous):
                previous(signal.SIGINT, None)
            elif previous == signal.SIG_DFL:
                raise KeyboardInterrupt
