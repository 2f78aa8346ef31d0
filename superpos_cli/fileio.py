"""File I/O that never leaves a half-written output or reads an unbounded line.

Writing: every file superpos writes (``--out``, ``--plot``, baselines, exports,
reports) goes through :func:`atomic_write` (or :func:`write_text` /
:func:`write_bytes`). The content goes to a temporary file in the destination's
own folder, is flushed and fsync'ed, and then :func:`os.replace` renames it over
the destination: a rename within one file system is atomic, so a reader (or a
``kill -9`` at any moment) sees either the old file, or no file, or the complete
new one, never a prefix. On any failure the temporary file is removed.

Reading untrusted text files: :func:`bounded_lines` yields a file's lines but
refuses, after reading at most :data:`MAX_LINE_BYTES` + 1 characters, a line
longer than that (a 1 GB single-line file fails in milliseconds, not after
loading a gigabyte), and refuses a line holding NUL bytes (a binary file).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Callable

from superpos_cli.errors import BadInput

__all__ = ["MAX_LINE_BYTES", "atomic_write", "bounded_lines", "save_with", "write_bytes", "write_text"]

# Longest line a data file may hold (a GSM8K problem is ~1 kB, a text example less).
MAX_LINE_BYTES = 1 << 20


@contextlib.contextmanager
def atomic_write(path: str | Path, what: str = "output", binary: bool = False) -> Iterator[IO]:
    """``with atomic_write(path) as handle:`` write to ``handle``; on a clean exit the
    file appears at ``path`` complete, on an exception nothing changes at ``path``.

    ``what`` names the option in the error (e.g. ``"--out"``): a folder that does
    not exist or cannot be written raises :class:`BadInput` naming it.
    """
    target = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent or Path("."))
    except OSError as err:
        raise BadInput(f"{what} {target}: cannot write ({err.strerror})") from None
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        # mkstemp makes the file 0600; an output should get the usual umask-derived mode.
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, target)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(err, OSError):
            raise BadInput(f"{what} {target}: cannot write ({err.strerror or err})") from None
        raise


def write_text(path: str | Path, text: str, what: str = "output") -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, what) as handle:
        handle.write(text)


def write_bytes(path: str | Path, data: bytes, what: str = "output") -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_write`)."""
    with atomic_write(path, what, binary=True) as handle:
        handle.write(data)


def save_with(path: str | Path, save: Callable[[IO], None], what: str = "output") -> None:
    """Atomically write what ``save(handle)`` writes to a binary handle (e.g.
    ``lambda h: fig.savefig(h, format="png")``)."""
    with atomic_write(path, what, binary=True) as handle:
        save(handle)


def bounded_lines(handle: IO[str], path: str | Path, what: str = "--data",
                  max_chars: int = MAX_LINE_BYTES) -> Iterator[tuple[int, str]]:
    """``(line_no, line)`` for each line of a text ``handle``, 1-based.

    Raises :class:`BadInput` naming ``path`` for a line longer than ``max_chars``
    (after reading only ``max_chars + 1`` characters of it) or holding a NUL byte.
    """
    line_no = 0
    while True:
        try:
            line = handle.readline(max_chars + 1)
        except UnicodeDecodeError as err:
            raise BadInput(f"{what} {path}: not UTF-8 text near line {line_no + 1} ({err.reason})") from None
        if not line:
            return
        line_no += 1
        if len(line) > max_chars and not line.endswith("\n"):
            raise BadInput(f"{what} {path}: line {line_no} is longer than {max_chars} characters (not a data file?)")
        if "\x00" in line:
            raise BadInput(f"{what} {path}: line {line_no} holds NUL bytes (a binary file, not text)")
        yield line_no, line
