"""Machine and version information carried by every JSON record."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil

from superpos_cli.cpuinfo import cpu_model


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "cpu_model": cpu_model(),
        # torch's kernel ISA (DEFAULT, AVX2, AVX512...): the ratios bench gates move
        # with it (torch.cos vectorised 16-wide against our kernel, for one).
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
        "system": platform.system(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


def machine_difference(current: dict, baseline: dict) -> str | None:
    """Why two records' timing ratios are not comparable (another CPU model or kernel
    ISA), or None; a record that lacks a field (older baselines) is taken to match."""
    for key in ("cpu_model", "cpu_capability"):
        mine, theirs = current.get(key), baseline.get(key)
        if mine and theirs and mine != theirs:
            return f"baseline measured on {theirs!r}, this run on {mine!r} ({key})"
    return None


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


@functools.lru_cache(maxsize=1)
def versions() -> dict:
    from superpos_cli import __version__

    return {
        "python": platform.python_version(),
        "torch": _version("torch"),
        "qiskit": _version("qiskit"),
        "qiskit-aer": _version("qiskit-aer"),
        "superpos": __version__,
        "commit": git_commit(),
    }


def git_commit() -> str | None:
    """The checkout's HEAD commit, or None outside a git checkout."""
    root = Path(__file__).resolve().parents[2]
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=5,
                             env={**os.environ, "GIT_DIR": str(root / ".git")})
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def rss_mb() -> float:
    """Resident set size of this process now, in MiB."""
    return psutil.Process().memory_info().rss / 2**20
