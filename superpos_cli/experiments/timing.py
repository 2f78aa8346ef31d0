"""Interleaved timing: every candidate runs once per round (A B C, A B C, ...), so
drift on a shared machine hits all of them alike; summaries are min/median/max."""

from __future__ import annotations

import statistics
import time
from typing import Callable, Mapping


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each function over ``repeats`` interleaved rounds, after
    ``warmup`` untimed rounds (allocation, kernel compilation)."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - start)
    return samples


def summary(samples: list[float]) -> dict[str, float]:
    """min/median/max of per-call seconds."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples)}
