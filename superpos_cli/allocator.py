"""glibc's malloc told to keep freed memory between training steps instead of handing it back.

A training step frees and allocates the same activation and gradient buffers (0.1-4 MB
each) every step. glibc serves a block above its mmap threshold (128 KiB at start,
raised as such blocks are freed) with fresh pages from the kernel, and trims the heap's
top once twice that threshold lies free; either way the next step faults the memory in
again, page by page. Measured on the 2-core VM with the review corpus
(``benchmarks/review_corpus.py``, 917k parameters, one thread): 280-330 minor faults a
training step by default, 8 with a fixed 64 MiB mmap threshold and 128 MiB trim
threshold, and the step 1-13% (median about 5%) faster in 5 of 5 pairs of alternated
processes. (A 16 MiB top pad on top of these raised the faults again, to 48 a step.)

What it costs: up to :data:`TRIM_THRESHOLD` of freed heap stays with the process. Blocks
above :data:`MMAP_THRESHOLD` (an LLM's weights and optimizer state) still come from
mmap and go back to the kernel when freed.

:func:`keep_freed_memory` applies the settings to the running process (``mallopt``);
worker processes get them through glibc's own environment variables
(:data:`WORKER_ENV`), which glibc reads as a process starts. A variable the user set
wins over ours, and nothing happens off glibc (macOS, musl).
"""

from __future__ import annotations

import os

MMAP_THRESHOLD = 64 << 20  # bytes: smaller blocks come from the heap
TRIM_THRESHOLD = 128 << 20  # bytes of free heap top kept before it is returned

# glibc's environment variable for each setting, and mallopt's parameter number (malloc.h)
_SETTINGS = {"MALLOC_MMAP_THRESHOLD_": (-3, MMAP_THRESHOLD), "MALLOC_TRIM_THRESHOLD_": (-1, TRIM_THRESHOLD)}
WORKER_ENV = {var: str(value) for var, (_, value) in _SETTINGS.items()}


def is_glibc() -> bool:
    try:
        return os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")
    except (AttributeError, ValueError, OSError):  # not a POSIX confstr, or not glibc
        return False


def keep_freed_memory() -> dict[str, int]:
    """Set this process's mmap and trim thresholds, except those the environment sets.
    Returns {variable: value} of what was set ({} off glibc or where mallopt refused)."""
    if not is_glibc():
        return {}
    import ctypes  # here: the workers module and --help need none of it

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return {}
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    applied = {}
    for var, (parameter, value) in _SETTINGS.items():
        if var not in os.environ and mallopt(parameter, value) == 1:
            applied[var] = value
    return applied


def export_to_workers() -> None:
    """Put :data:`WORKER_ENV` into ``os.environ`` (where unset), for processes started after."""
    if is_glibc():
        for var, value in WORKER_ENV.items():
            os.environ.setdefault(var, value)
