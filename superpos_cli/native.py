"""Hand-written C kernels: compiled once per machine by the system's C compiler, opened with ctypes.

For the few loops no library runs fast enough (:mod:`.shots`: one pass of random bits,
normals and binomial counts, where torch.randn alone costs twice the whole kernel), a C
file next to its Python user is compiled with ``$CC`` (default ``cc``) at first use,
about 0.3 s, into a shared library in :func:`_cache_dir`, named by a hash of the source, the flags, the compiler's version, the
machine and the CPU's flags, so any of these changing builds anew. Builds go to a
temporary file renamed into place, so concurrent workers never open a half-written one.

:func:`load` returns None where there is no compiler, the build or the load fails, or
``SUPERPOS_NATIVE=0``; callers then run their torch path (the same algorithm, see the
caller's docstring), after one warning where a compiler was expected to work.
"""

from __future__ import annotations

import ctypes
import functools
import getpass
import hashlib
import os
import platform
import re
import shutil
import subprocess
import tempfile
import warnings
from pathlib import Path
from typing import Sequence

from superpos_cli.cpuinfo import cpu_flags

ENV_SWITCH = "SUPERPOS_NATIVE"
ENV_DIR = "SUPERPOS_NATIVE_DIR"
# -fno-trapping-math lets gcc if-convert the clamps (so the loops vectorise); -fno-builtin-*
# keeps it from fusing sin and cos into sincos, which has no vector variant, so libm's
# vector functions (libmvec, declared "omp declare simd" in the source) are called;
# -ffp-contract=off: no fused multiply-adds, so its arithmetic is the torch path's;
# -fopenmp links libgomp.so.1, which resolves to the copy torch has loaded already;
# 512-bit vectors where the CPU has them: splitmix's 64-bit multiplies, 10-20% faster.
FLAGS = ("-O3", "-march=native", "-mprefer-vector-width=512", "-fno-math-errno", "-fno-trapping-math",
         "-ffp-contract=off", "-fopenmp", "-fPIC", "-shared",
         *(f"-fno-builtin-{f}" for f in ("sin", "cos", "sinf", "cosf", "exp", "expf", "log1p", "log1pf")))
LIBS = ("-lm",)
HEADERS = Path(__file__).parent  # native_real.h, shared by every kernel


def enabled() -> bool:
    return os.environ.get(ENV_SWITCH, "1").strip().lower() not in ("0", "off", "no", "false")


def _compiler() -> str | None:
    return shutil.which(os.environ.get("CC", "cc"))


@functools.lru_cache(maxsize=None)
def _compiler_version(compiler: str) -> str:
    try:
        return subprocess.run([compiler, "--version"], capture_output=True, text=True, timeout=30).stdout
    except (OSError, subprocess.SubprocessError):
        return ""


def _cache_dir() -> Path:
    """``$SUPERPOS_NATIVE_DIR``, else next to inductor's cache (``$TORCHINDUCTOR_CACHE_DIR``,
    else ``<tmp>/torchinductor_<user>``, inductor's default) under ``superpos-native``."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    inductor = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    if not inductor:  # inductor's default (torch._inductor.runtime.cache_dir_utils), without importing it
        try:
            user = getpass.getuser()
        except (KeyError, ModuleNotFoundError, OSError):
            user = f"uid_{os.getuid()}" if hasattr(os, "getuid") else "unknown_user"
        inductor = os.path.join(tempfile.gettempdir(), "torchinductor_" + re.sub(r'[\\/:*?"<>|]', "_", user))
    return Path(inductor) / "superpos-native"


@functools.lru_cache(maxsize=None)
def load(source: Path, defines: Sequence[str] = ()) -> ctypes.CDLL | None:
    """The library built from C file ``source`` with ``-D`` ``defines``, or None (see the module docstring)."""
    compiler = _compiler() if enabled() else None
    if compiler is None:
        return None
    # the source and the headers it may include: next to it, and the shared ones here
    text = b"\0".join([source.read_bytes(), *(h.read_bytes() for h in _headers(source))])
    command = [*FLAGS, *(f"-D{d}" for d in defines)]
    key = b"\0".join([text, " ".join(command).encode(), _compiler_version(compiler).encode(),
                      platform.machine().encode(), cpu_flags().encode()])
    target = _cache_dir() / f"{source.stem}-{'-'.join(defines) or 'default'}-{hashlib.sha256(key).hexdigest()[:20]}.so"
    try:
        if not target.is_file():
            _build(compiler, source, command, target)
        return ctypes.CDLL(str(target))
    except (OSError, subprocess.SubprocessError) as err:
        warnings.warn(f"could not build {source.name} ({err}); running its torch path", RuntimeWarning)
        return None


def _headers(source: Path) -> list[Path]:
    """Headers a C file may include: those next to it, then the shared ones next to this module
    (``native_real.h``, found through ``-I``)."""
    return [*sorted(source.parent.glob("*.h")), *sorted(HEADERS.glob("*.h"))] if source.parent != HEADERS \
        else sorted(HEADERS.glob("*.h"))


def _build(compiler: str, source: Path, command: list[str], target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, partial = tempfile.mkstemp(suffix=".so", dir=target.parent)
    os.close(fd)
    try:
        # -I outside the build key: where the package lives does not change the library
        done = subprocess.run([compiler, *command, f"-I{HEADERS}", str(source), "-o", partial, *LIBS], capture_output=True,
                              text=True, timeout=120)
        if done.returncode != 0:
            lines = done.stderr.strip().splitlines()
            errors = [line for line in lines if "error" in line] or lines or [f"exit {done.returncode}"]
            raise OSError(errors[0])  # the first error names the file and line
        os.replace(partial, target)
    finally:
        if os.path.exists(partial):
            os.unlink(partial)
