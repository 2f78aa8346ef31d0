"""Checks that need the file system, made in the parent before the first trial.

torch-free (like spec/), so a bad file is one line before torch loads.

Data files are parsed (the same readers the tasks use), checkpoint folders must
hold a ``config.json``, every output path must be writable (its folder exists and
accepts a new file), and quantum attention's statevector memory is estimated
against what the machine has. Each failure is one BadInput line.
"""

from __future__ import annotations

import os
from pathlib import Path

from superpos_cli.errors import BadInput
from superpos_cli.spec.run import RunSettings


def check_output(flag: str, path: str | Path | None) -> None:
    """``path`` can be written: its parent folder exists and is writable, and it is
    not a folder itself. Nothing is created."""
    if path is None:
        return
    target = Path(path).expanduser()
    parent = target.parent if str(target.parent) else Path(".")
    if target.is_dir():
        raise BadInput(f"{flag} {str(path)!r} is a folder; give a file path")
    if not parent.is_dir():
        raise BadInput(f"{flag} {str(path)!r}: folder {str(parent)!r} does not exist")
    if target.exists() and not os.access(target, os.W_OK):
        raise BadInput(f"{flag} {str(path)!r}: the file is not writable")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadInput(f"{flag} {str(path)!r}: folder {str(parent)!r} is not writable")


def check_data(run: RunSettings) -> None:
    """Parse ``--data`` with the task's reader (and ``--model``'s folder) before any work."""
    from superpos_cli.tasks import datafiles

    data = run.values.get("data")
    if data is not None:
        if run.task == "textcls":
            rows = datafiles.read_textcls_rows(Path(data))
            labels = {str(label) for _, label in rows}
            if len(labels) < 2:
                raise BadInput(f"--data {data}: needs at least 2 distinct labels, found {len(labels)}")
        elif run.task == "gsm8k":
            datafiles.read_gsm8k_jsonl(data, run.values.get("limit"), run.values.get("skip_bad", False))
    model = run.values.get("model")
    if model is not None and not (Path(model) / "config.json").is_file():
        raise BadInput(f"--model {model}: not a Hugging Face checkpoint folder (no config.json)")


# Bytes per simulated amplitude of the torch statevector backend (complex64) times
# the live copies autograd keeps per gate layer (forward state, gate output, grad).
_STATEVECTOR_BYTES = 8 * 3
CHUNK_SCORES = 2**22  # models/attention.py: scores per backend call at most
_LONGEST = {"textcls": 64, "gsm8k": 2048}  # longest sequence: textcls max_len, gsm8k context


def statevector_bytes(run: RunSettings) -> int:
    """Peak memory of the torch backend's statevector for one chunk of attention
    scores: min(chunk, B*H*T*T) scores * 2**qubits amplitudes, kept per layer for
    backward (an upper bound: T is the task's longest sequence)."""
    qubits = run.values.get("qubits", 4)
    depth = run.values.get("depth", 2)
    batch = run.values.get("batch_size", 32 if run.task == "textcls" else 1)
    heads = run.values.get("n_heads", 4)
    longest = _LONGEST.get(run.task, 64)
    scores = min(CHUNK_SCORES, batch * heads * longest * longest)
    return scores * (2 ** qubits) * _STATEVECTOR_BYTES * (depth + 1)


def check_memory(run: RunSettings, available: int | None = None) -> None:
    """A torch-backend circuit too large for this machine's memory is refused now,
    with the estimate, rather than after the workers have started."""
    if run.values.get("attention", "quantum" if run.task == "textcls" else "classical") == "classical":
        return
    if run.values.get("backend", "fourier") != "torch":
        return  # fourier: a polynomial per score, memory like classical attention
    if available is None:
        import psutil

        available = psutil.virtual_memory().available
    need = statevector_bytes(run)
    if need > available:
        raise BadInput(f"--qubits {run.values.get('qubits', 4)} with --backend torch needs about "
                       f"{need / 2**30:.1f} GiB per attention chunk, more than the {available / 2**30:.1f} GiB "
                       "available; use --backend fourier or fewer qubits")
