"""Machine and version information carried by every JSON record."""

from __future__ import annotations

import functools
import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import psutil


@functools.lru_cache(maxsize=1)
def machine_info() -> dict:
    import torch

    return {
        "cpu": platform.processor() or platform.machine(),
        "machine": platform.machine(),
        "system": platform.system(),
        "logical_cores": psutil.cpu_count(logical=True),
        "physical_cores": psutil.cpu_count(logical=False),
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
    }


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
