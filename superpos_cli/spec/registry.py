"""Names the spec allows, without importing what they name.

Built-in names are declared here (torch-free, so the CLI checks a value before
torch loads); the modules that implement them assert in tests that their
registries hold exactly these names. Third-party packages add perturbations,
tasks and presets through entry points (``superpos.perturbations``,
``superpos.tasks``, ``superpos.presets``); their names are read from the package
metadata without importing the plugin, which loads only when a run names it.
"""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points

PLUGIN_GROUPS = ("superpos.perturbations", "superpos.tasks", "superpos.presets")

BUILTIN_TASKS = ("textcls", "gsm8k")
BUILTIN_PERTURBATIONS = ("sin", "cos", "gaussian", "uniform", "none")  # optim/perturbations.py
SCOPES = ("tensors", "coords", "global", "all")  # optim/optimizer.py, paper-spec §1
ATTENTION_KINDS = ("quantum", "classical")  # models/attention.py, paper-spec §3
ATTENTION_BACKENDS = ("fourier", "torch")  # quantum backends usable inside training
PHI_INPUTS = ("raw", "scaled")
ENCODINGS = ("reupload", "first-layer")  # quantum/circuit.py, paper-spec §2
ENTANGLERS = ("chain", "ring")
READOUTS = ("real", "abs", "prob")
SCHEDULES = ("constant", "warmup-linear")
LOSS_ON = ("answer", "all")


@functools.cache
def plugins(group: str) -> dict[str, EntryPoint]:
    """Entry points of ``group`` by name (not loaded)."""
    return {ep.name: ep for ep in entry_points(group=group)}


def load_plugin(group: str, name: str):
    """The object a plugin registered as ``name`` in ``group`` (imports the plugin)."""
    return plugins(group)[name].load()


def tasks() -> tuple[str, ...]:
    return BUILTIN_TASKS + tuple(n for n in plugins("superpos.tasks") if n not in BUILTIN_TASKS)


def perturbations() -> tuple[str, ...]:
    return BUILTIN_PERTURBATIONS + tuple(
        n for n in plugins("superpos.perturbations") if n not in BUILTIN_PERTURBATIONS)
