"""Checks that need the file system, made in the parent before the first trial.

torch-free (like spec/), so a bad file is one line before torch loads.

Data files are parsed (the same readers the tasks use), checkpoint folders must
hold a ``config.json``, every output path must be writable (its folder exists and
accepts a new file), and a trial's memory is estimated against ``--max-memory``. Each failure is one BadInput line.
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


def check_memory(run: RunSettings, max_memory: int | None = None) -> None:
    """A trial too large for ``max_memory`` (default: the memory available now) is
    refused now, with its estimate (:mod:`.memory`), rather than after the workers
    have started."""
    from superpos_cli.experiments.memory import available_memory, fit_jobs, trial_bytes

    fit_jobs([trial_bytes(run.task, run.task_options())], 1,
             available_memory() if max_memory is None else max_memory, given=max_memory is not None)
