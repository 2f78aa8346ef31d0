"""``--max-memory``: the memory a trial needs, and how many trials fit side by side.

torch-free, read in the parent before any work: a trial that cannot fit is refused
with its estimate, ``--jobs`` is lowered to the number of trials that fit at once, and
each trial gets ``max_memory / jobs`` as the budget its quantum attention chunks its
scores by (:func:`superpos_cli.quantum.memory.chunk_scores`).

The estimate (:func:`trial_bytes`) adds, for one training step at the task's longest
sequence: the process (torch and the data), the parameters with their gradient and
Adam's two moments, the activations of the projections and feed-forward layers, the
attention matrices of every layer (B*H*T*T scores: logits, softmax, dropout) and
what quantum attention keeps per score and per step
(:mod:`superpos_cli.quantum.memory`). A Hugging Face checkpoint is sized from its
``config.json``. It is an upper bound good to a factor of about two.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, NamedTuple

from superpos_cli.errors import BadInput
from superpos_cli.quantum.circuit import CircuitSpec
from superpos_cli.quantum.memory import prepare_bytes, score_bytes
from superpos_cli.spec.options import OPTIONS

# A trial's process: torch, numpy, rich, the data, and inductor compiling the fourier
# kernels when its cache is cold: 420-480 MiB RSS measured warm, 770 MiB cold. A
# 1-epoch textcls train that compiles nothing peaked at 340 MiB in most runs and once
# at 870 MiB inside the test suite on a 2-core AVX-512 Xeon (2026-12-02), hence 900.
PROCESS_BYTES = 900 * 2**20
REAL = 4  # float32 models
_ATTENTION_VALUES = 4  # per score and layer: logits, softmax, dropout mask and output
# Task shapes the spec leaves to the task (textcls.TextClsConfig, gsm8k.GSM8KConfig /
# models.gpt.GPTConfig): longest sequence, batch size, attention kind, d_ff, vocabulary.
_TASK_SHAPE = {
    "textcls": dict(longest=64, batch_size=32, kind="quantum", d_ff=128, vocab=2000),
    "gsm8k": dict(longest=2048, batch_size=1, kind="classical", d_ff=256, vocab=260),
}
_CIRCUIT_FIELDS = ("n_qubits", "depth", "encoding", "entangler", "readout", "noise", "noise_device", "shots")


class Estimate(NamedTuple):
    total: int
    attention: int  # quantum attention's share (per-score values and preparation)
    parts: str  # how it adds up, for the refusal
    hint: str  # what would make it smaller


def _default(dest: str, shape: dict[str, Any], options: dict[str, Any]) -> Any:
    if dest in options and options[dest] is not None:
        return options[dest]
    if dest in shape:
        return shape[dest]
    for option in OPTIONS.values():
        if option.dest == dest:
            return option.default
    raise KeyError(dest)


def _hf_params(folder: str) -> tuple[int, int, int, int]:
    """(parameters, layers, hidden, heads) from a checkpoint's config.json."""
    try:
        config = json.loads((Path(folder) / "config.json").read_text())
    except (OSError, ValueError) as err:
        raise BadInput(f"--model {folder}: config.json is not readable JSON ({err})") from None
    hidden = int(config.get("hidden_size", config.get("n_embd", 768)))
    layers = int(config.get("num_hidden_layers", config.get("n_layer", 12)))
    heads = int(config.get("num_attention_heads", config.get("n_head", 12)))
    inner = int(config.get("intermediate_size", 4 * hidden))
    vocab = int(config.get("vocab_size", 32000))
    params = layers * (4 * hidden * hidden + 3 * hidden * inner) + 2 * vocab * hidden
    return params, layers, hidden, heads


def trial_bytes(task: str, options: dict[str, Any]) -> Estimate:
    """Peak bytes of one trial of ``task`` with ``options`` (task_options, dest names)."""
    shape = _TASK_SHAPE.get(task, _TASK_SHAPE["textcls"])
    get = lambda dest: _default(dest, shape, options)  # noqa: E731
    batch, longest = get("batch_size"), shape["longest"]
    if options.get("hf_model_path"):
        params, layers, d_model, heads = _hf_params(options["hf_model_path"])
        trained = params // 100 if options.get("lora_rank") else params
        d_ff, kind = 4 * d_model, "classical"
    else:
        layers, d_model, heads = get("n_layers"), get("d_model"), get("n_heads")
        d_ff = get("d_ff")
        params = shape["vocab"] * d_model + longest * d_model + layers * (4 * d_model * d_model + 2 * d_model * d_ff)
        trained, kind = params, get("kind")
    weights = params * REAL + trained * 3 * REAL  # weights; gradient, exp_avg, exp_avg_sq of what trains
    activations = layers * batch * longest * (12 * d_model + 2 * d_ff) * REAL
    scores = layers * batch * heads * longest * longest
    matrices = scores * _ATTENTION_VALUES * REAL
    quantum, hint = 0, "a smaller --batch-size"
    if kind == "quantum":
        spec = CircuitSpec(**{f: get(f) for f in _CIRCUIT_FIELDS if get(f) is not None})
        per_score = score_bytes(spec, get("backend"), REAL)
        quantum = scores * per_score.saved + prepare_bytes(spec)
        if 2 * quantum > matrices + activations:
            hint = ("fewer --qubits (noise is simulated on density matrices, 4**qubits each)" if spec.noisy
                    else "fewer --qubits or --backend fourier" if get("backend") != "fourier" else "fewer --qubits")
    total = PROCESS_BYTES + weights + activations + matrices + quantum
    parts = (f"process {_gib(PROCESS_BYTES)}, parameters and Adam state {_gib(weights)}, activations "
             f"{_gib(activations + matrices)}" + (f", quantum attention {_gib(quantum)}" if quantum else ""))
    return Estimate(total, quantum, parts, hint)


def fit_jobs(estimates: list[Estimate], jobs: int, max_memory: int, given: bool = True) -> int:
    """The number of trials that run side by side: ``jobs``, or fewer so that that
    many of the largest trial fit in ``max_memory`` (``given``: by --max-memory, else
    the machine's available memory). A trial that cannot fit even alone is refused,
    with its estimate."""
    largest = max(estimates, key=lambda e: e.total)
    if largest.total > max_memory:
        limit = f"--max-memory {_gib(max_memory)}" if given else f"the {_gib(max_memory)} available (--max-memory)"
        raise BadInput(f"one trial needs about {_gib(largest.total)} ({largest.parts}), more than {limit}; "
                       f"use {largest.hint}")
    return max(1, min(jobs, max_memory // largest.total))


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(i?b)?\s*$", re.IGNORECASE)


def parse_size(text: str) -> int:
    """'8G', '512M', '1.5GiB', '4096' (bytes) -> bytes (powers of 1024)."""
    match = _SIZE.match(str(text))
    if not match or float(match.group(1)) <= 0:
        raise BadInput(f"max-memory must be a size such as 8G, 512M or 1.5GiB, got {text!r}")
    return int(float(match.group(1)) * 1024 ** " kmgt".index(match.group(2).lower() or " "))


def available_memory() -> int:
    """--max-memory's default: the memory the machine has available now (psutil)."""
    import psutil

    return int(psutil.virtual_memory().available)


def _gib(n: int) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**28 else f"{n / 2**20:.0f} MiB"
