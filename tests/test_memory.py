"""--max-memory: sizes, the trial estimate against a measured peak, the parallel
trials it allows, and quantum attention's chunks under a budget (same numbers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from superpos_cli.errors import BadInput
from superpos_cli.experiments.memory import Estimate, fit_jobs, parse_size, trial_bytes
from superpos_cli.models.attention import QuantumAttention, memory_budget
from superpos_cli.quantum import BACKENDS, CircuitSpec
from superpos_cli.quantum.memory import MAX_CHUNK, MIN_CHUNK, chunk_scores, score_bytes

ROOT = Path(__file__).resolve().parents[1]
GiB, MiB = 2**30, 2**20


@pytest.mark.parametrize("text, size", [
    ("8G", 8 * GiB), ("8g", 8 * GiB), ("512M", 512 * MiB), ("1.5GiB", int(1.5 * GiB)), ("4096", 4096),
    ("64k", 64 * 1024), ("2 GB", 2 * GiB), ("1T", 1024 * GiB),
])
def test_sizes(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["lots", "", "0", "-1G", "8X", "G", "1.2.3G"])
def test_bad_sizes_are_refused(text):
    with pytest.raises(BadInput, match="max-memory must be a size"):
        parse_size(text)


def _estimate(total: int) -> Estimate:
    return Estimate(total, 0, "parts", "hint")


@pytest.mark.parametrize("jobs, budget, sizes, expected", [
    (2, 10 * GiB, [GiB], 2),  # both fit
    (4, 3 * GiB, [GiB, GiB], 3),  # lowered to what fits
    (2, 3 * GiB, [GiB, 2 * GiB], 1),  # the largest trial decides
    (1, GiB, [GiB], 1),  # exactly
])
def test_jobs_fit_the_budget(jobs, budget, sizes, expected):
    assert fit_jobs([_estimate(s) for s in sizes], jobs, budget) == expected


def test_a_trial_that_cannot_fit_alone_is_refused_with_its_estimate():
    with pytest.raises(BadInput, match=r"one trial needs about 2\.0 GiB \(parts\), more than --max-memory 1\.0 GiB"):
        fit_jobs([_estimate(2 * GiB)], 1, GiB)
    with pytest.raises(BadInput, match="available"):
        fit_jobs([_estimate(2 * GiB)], 1, GiB, given=False)


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b in ("torch", "fourier")])
@pytest.mark.parametrize("spec", [CircuitSpec(), CircuitSpec(6, 3), CircuitSpec(4, 2, readout="prob", shots=100)])
def test_chunks_shrink_with_the_budget_within_bounds(backend, spec):
    assert chunk_scores(spec, backend, None) == MAX_CHUNK
    sizes = [chunk_scores(spec, backend, b) for b in (GiB, 64 * MiB, 4 * MiB, 1)]
    assert sizes == sorted(sizes, reverse=True) and sizes[-1] == MIN_CHUNK
    assert all(MIN_CHUNK <= s <= MAX_CHUNK for s in sizes)
    fit = chunk_scores(spec, backend, 64 * MiB)
    assert fit == MIN_CHUNK or fit * score_bytes(spec, backend).temporary <= 16 * MiB


@pytest.mark.parametrize("backend", ["fourier", "torch"])
def test_a_budget_splits_attention_into_more_calls_with_the_same_numbers(backend, monkeypatch):
    torch.manual_seed(0)
    attn = QuantumAttention(16, 2, circuit=CircuitSpec(), backend=backend)
    x = torch.randn(4, 40, 16)  # 4 * 2 * 40 * 40 = 12800 scores: 4 calls at MIN_CHUNK
    calls = []
    prepared_type = type(attn._backend.prepare(attn.circuit, attn.theta, attn.phi))
    original = prepared_type.evaluate
    monkeypatch.setattr(prepared_type, "evaluate", lambda self, *a: calls.append(1) or original(self, *a))
    whole = attn(x)
    assert len(calls) == 1
    with memory_budget(1):
        split = attn(x)
    assert len(calls) == 1 + 4
    assert torch.equal(whole, split)
    whole.sum().backward()
    grad = attn.theta.grad.clone()
    attn.zero_grad()
    with memory_budget(1):
        attn(x).sum().backward()
    # The angles' gradient sums the chunks' parts: the same up to float32 rounding.
    assert torch.allclose(attn.theta.grad, grad, rtol=1e-5, atol=1e-5)


# Runs the real CLI in this child and prints its own peak RSS (kilobytes on Linux) last.
_PEAK = ("import resource, runpy, sys\n"
         "sys.argv = ['superpos'] + sys.argv[1:]\n"
         "try:\n    runpy.run_module('superpos_cli', run_name='__main__')\n"
         "finally:\n    print('peak', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\n")


@pytest.mark.parametrize("options", [{}, {"n_qubits": 10, "backend": "torch"}])
def test_the_estimate_bounds_a_measured_trial_to_a_factor_of_four(options, tmp_path):
    """A real `superpos train` in a child process: its peak RSS is below the estimate,
    and the estimate at most 4x it (it assumes the longest sequence and a cold
    inductor cache)."""
    flags = {"n_qubits": "--qubits", "backend": "--backend"}
    args = [a for k, v in options.items() for a in (flags[k], str(v))]
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", _PEAK, "train", "--task", "textcls", "--max-epochs", "1",
                           "--n-train", "64", "--n-val", "32", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    peak = int(done.stderr.strip().splitlines()[-1].split()[1]) * 1024
    estimate = trial_bytes("textcls", options).total
    assert peak <= estimate <= 4 * peak, (peak / MiB, estimate / MiB)


def test_the_cli_lowers_jobs_to_what_fits_and_says_so(tmp_path):
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-m", "superpos_cli", "compare", "adam", "--task", "textcls",
                           "--seeds", "2", "--max-epochs", "1", "--n-train", "32", "--n-val", "16", "--jobs", "2",
                           "--max-memory", "1200M", "--no-store", "--json"],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "running 1 at a time instead of 2" in done.stderr
