"""superpos_cli.allocator: glibc keeps freed blocks, in the parent and in the workers.

The settings are process-wide and cannot be undone, so each check runs in a fresh
interpreter. A block of 40 MiB is above glibc's largest dynamic mmap threshold (32 MiB),
so by default every allocation of it is a fresh mapping that faults in page by page;
with the settings the freed block is reused. The default case runs too, so the test
would notice a glibc whose default stopped faulting (and the check measured nothing).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from superpos_cli import allocator
from superpos_cli.experiments import workers

glibc_only = pytest.mark.skipif(not allocator.is_glibc(), reason="the settings are glibc's")

_FAULTS = """
import ctypes, resource, sys
from superpos_cli import allocator
applied = allocator.keep_freed_memory() if sys.argv[1] == "tuned" else {}
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.malloc.argtypes = [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
n = 40 << 20
def touch():
    block = libc.malloc(n)
    ctypes.memset(block, 1, n)
    libc.free(block)
touch()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    touch()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, sorted(applied))
"""


def _python(code: str, *args: str, env: dict[str, str] | None = None) -> str:
    environment = {k: v for k, v in os.environ.items() if k not in allocator.WORKER_ENV}
    environment.update(env or {})
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=environment,
                          timeout=60, check=True)
    return done.stdout.strip()


@glibc_only
def test_a_freed_large_block_is_reused_instead_of_faulted_in_again():
    default_faults, default_applied = _python(_FAULTS, "default").split(" ", 1)
    tuned_faults, tuned_applied = _python(_FAULTS, "tuned").split(" ", 1)
    pages = 5 * (40 << 20) // os.sysconf("SC_PAGE_SIZE")
    assert int(default_faults) > pages // 2, "glibc's default no longer maps this block afresh"
    assert int(tuned_faults) < pages // 50
    assert default_applied == "[]"
    assert tuned_applied == str(sorted(allocator.WORKER_ENV))


@glibc_only
def test_a_setting_in_the_environment_wins():
    out = _python(_FAULTS, "tuned", env={"MALLOC_MMAP_THRESHOLD_": str(1 << 20)})
    faults, applied = out.split(" ", 1)
    assert applied == "['MALLOC_TRIM_THRESHOLD_']"
    assert int(faults) > 5 * (40 << 20) // os.sysconf("SC_PAGE_SIZE") // 2  # the user's 1 MiB threshold held


def test_nothing_happens_off_glibc(monkeypatch):
    monkeypatch.setattr(allocator, "is_glibc", lambda: False)
    for var in allocator.WORKER_ENV:
        monkeypatch.delenv(var, raising=False)
    assert allocator.keep_freed_memory() == {}
    allocator.export_to_workers()
    assert not any(var in os.environ for var in allocator.WORKER_ENV)


@glibc_only
def test_pool_workers_start_with_the_settings(monkeypatch):
    for var in allocator.WORKER_ENV:
        monkeypatch.setenv(var, "")  # recorded, so the exported value is undone afterwards
        monkeypatch.delenv(var)
    pool = workers.new_pool(1, 1)
    try:
        seen = {var: pool.submit(os.getenv, var).result(timeout=120) for var in allocator.WORKER_ENV}
    finally:
        workers.stop_workers(pool)
    assert seen == allocator.WORKER_ENV


@glibc_only
def test_a_users_setting_reaches_the_workers_unchanged(monkeypatch):
    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "12345")
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)
    allocator.export_to_workers()
    assert os.environ["MALLOC_TRIM_THRESHOLD_"] == "12345"
    assert os.environ["MALLOC_MMAP_THRESHOLD_"] == allocator.WORKER_ENV["MALLOC_MMAP_THRESHOLD_"]
