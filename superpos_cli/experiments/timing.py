"""Interleaved timing shared by profile and bench.

Every candidate runs once per round and the order alternates (A B C, C B A, ...):
drift on a shared machine hits all candidates alike, and alternating cancels a
linear drift within a round too. Candidates made of many short calls (training
steps) interleave call by call instead (:func:`interleaved_steps`). Summaries are
min/median/max with the samples; ratios are per round (:func:`paired_ratio`).
"""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable, Mapping, Sequence


def interleaved_runs(runners: Mapping[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, list[Any]]:
    """Results of each runner over ``repeats`` rounds, order A B C, C B A, ...,
    after ``warmup`` untimed rounds (allocation, kernel compilation)."""
    names = list(runners)
    for _ in range(warmup):
        for name in names:
            runners[name]()
    results: dict[str, list[Any]] = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else reversed(names):
            results[name].append(runners[name]())
    return results


def interleaved_steps(steppers: Mapping[str, Callable[[], float]], steps: int, repeats: int,
                      warmup: int = 1) -> dict[str, list[float]]:
    """Per round, the summed seconds of ``steps`` calls of each stepper (each call
    returns its own seconds), interleaved call by call: A B C, C B A, ... within the
    round, after ``warmup`` untimed rounds.

    For candidates of ~20 ms a call (a training step): a whole epoch of one
    candidate at a time (~0.3 s) let a slow stretch of this shared 2-core VM land on
    one candidate, and an arm that costs ~1% more read +2% to +14% over four runs
    of 15 rounds; interleaved step by step the same arms read +0.8% to +1.4%
    (three runs), with each config's min-to-max spread about halved.
    """
    names = list(steppers)
    totals: dict[str, list[float]] = {name: [] for name in names}
    flip = 0
    for r in range(warmup + repeats):
        round_total = dict.fromkeys(names, 0.0)
        for _ in range(steps):
            for name in names if flip % 2 == 0 else reversed(names):
                round_total[name] += steppers[name]()
            flip += 1
        if r >= warmup:
            for name in names:
                totals[name].append(round_total[name])
    return totals


def synchronize(device: Any = None) -> None:
    """Wait for ``device``'s queued kernels (CUDA runs them asynchronously); no-op on CPU."""
    if device is not None and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: Any = None) -> Callable[[], float]:
    """``fn`` wrapped to return its own wall time in seconds (on ``device``'s clock:
    its queue drained before and after)."""
    def run() -> float:
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        return time.perf_counter() - start

    return run


def interleaved(fns: Mapping[str, Callable[[], object]], repeats: int, warmup: int = 1,
                device: Any = None) -> dict[str, list[float]]:
    """Seconds per call of each function over ``repeats`` interleaved rounds."""
    return interleaved_runs({name: timed(fn, device) for name, fn in fns.items()}, repeats, warmup)


def ratio_samples(method: Callable[[], Any], reference: Callable[[], Any], repeats: int, inner: int,
                  warmup: int = 2, device: Any = None) -> tuple[list[float], list[float], list[float]]:
    """(ratios, method seconds, reference seconds) per repeat.

    Each repeat times ``inner`` calls of each side, alternating A B B A A B ...;
    its sample is the median call of the method over the median call of the
    reference. Medians, not sums: on a loaded machine a call is sometimes
    descheduled part-way, which only ever adds time, and one such call would move
    a sum but not a median. ``warmup`` untimed calls of each side come first
    (state allocation, kernel compiles). On CUDA each call is timed with its
    queue drained (:func:`timed`).
    """
    for _ in range(warmup):
        method()
        reference()
    timed_method, timed_reference = timed(method, device), timed(reference, device)
    ratios, method_s, reference_s = [], [], []
    for _ in range(repeats):
        m_calls, r_calls = [], []
        for i in range(inner):
            if i % 2 == 0:
                m_calls.append(timed_method())
                r_calls.append(timed_reference())
            else:
                r_calls.append(timed_reference())
                m_calls.append(timed_method())
        m, r = statistics.median(m_calls), statistics.median(r_calls)
        ratios.append(m / r)
        method_s.append(m)
        reference_s.append(r)
    return ratios, method_s, reference_s


def paired_ratio(samples: Sequence[float], reference: Sequence[float]) -> float:
    """The median over rounds of sample / reference in the same round: what a ratio
    of two interleaved candidates means here (bench's ratios are per round too).
    Pairing cancels the drift between rounds, which a ratio of the two medians
    keeps: on this 2-core VM one arm's epoch spreads 30-60% within a run."""
    return statistics.median(s / r for s, r in zip(samples, reference, strict=True))


def summary(samples: Sequence[float]) -> dict[str, Any]:
    """min/median/max of the samples, and the samples themselves."""
    return {"median": statistics.median(samples), "min": min(samples), "max": max(samples),
            "samples": list(samples)}
