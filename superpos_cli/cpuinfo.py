"""What this CPU is, read from /proc/cpuinfo: torch-free, for records and cache keys."""

from __future__ import annotations

import platform
from pathlib import Path


def cpuinfo_line(*prefixes: str) -> str | None:
    """The first /proc/cpuinfo line starting with one of ``prefixes`` (e.g. "flags",
    "model name"), or None where there is none (no /proc, another system)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(prefixes):
                return line
    except OSError:
        pass
    return None


def cpu_model() -> str | None:
    """The CPU's model name ("AMD EPYC 7B13", "Intel(R) Xeon(R) Processor"), or None."""
    line = cpuinfo_line("model name")
    return line.split(":", 1)[1].strip() if line else platform.processor() or None


def cpu_flags() -> str:
    """The CPU's feature flags line (x86 "flags", ARM "Features"), else the processor name."""
    return cpuinfo_line("flags", "Features") or platform.processor()
