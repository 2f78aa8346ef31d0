"""Given values (from flags, a suite, or both) -> checked run settings.

:func:`settings` applies every option's rule and the rules between options (an
option that does not apply to the task, built-in-model options with a
checkpoint, ...). The result says, per engine seam, what a trial gets:
``task_options`` (flat task/model keys for ``tasks.build_task``),
``optimizer_overrides`` (global optimizer values, beneath each arm's own),
``train_values`` (TrainConfig fields, over the task's protocol) and ``seeds``.
Only values given by the user travel: the engine's dataclasses own the rest,
so a record's config shows what was asked for on top of the code's defaults
(and the code's fingerprint, experiments/store.py, pins those).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from superpos_cli.errors import BadInput
from superpos_cli.spec.options import OPTIONS, TASK_PROTOCOL, option_named


@dataclass(frozen=True)
class RunSettings:
    task: str
    values: dict[str, Any] = field(default_factory=dict)  # option name -> parsed value, as given

    def _by_group(self, *groups: str) -> dict[str, Any]:
        return {OPTIONS[n].dest: v for n, v in self.values.items() if OPTIONS[n].group in groups and n != "task"}

    def task_options(self) -> dict[str, Any]:
        return self._by_group("task", "model")

    def optimizer_overrides(self) -> dict[str, Any]:
        return {n: v for n, v in self.values.items() if OPTIONS[n].group == "optimizer"}

    def protocol(self) -> dict[str, Any]:
        return dict(TASK_PROTOCOL.get(self.task, {}))

    def optimizer_protocol(self) -> dict[str, Any]:
        return {k: v for k, v in self.protocol().items() if OPTIONS[k].group == "optimizer"}

    def train_values(self) -> dict[str, Any]:
        """TrainConfig fields: the task's protocol, then the given values."""
        protocol = {OPTIONS[k].dest: v for k, v in self.protocol().items() if OPTIONS[k].group == "train"}
        return {**protocol, **self._by_group("train")}

    def seeds(self) -> list[int]:
        count = self.values.get("seeds", OPTIONS["seeds"].default)
        offset = self.values.get("seed_offset", OPTIONS["seed_offset"].default)
        return list(range(offset, offset + count))

    def seed(self) -> int:
        return self.values.get("seed", OPTIONS["seed"].default)

    def merged(self, other: Mapping[str, Any]) -> "RunSettings":
        """These settings with ``other``'s parsed values on top (flags over a suite)."""
        values = {**self.values, **{k: v for k, v in other.items() if k != "task"}}
        return check(other.get("task", self.task), values)


def parse_values(given: Mapping[str, Any], where: str = "") -> dict[str, Any]:
    """Parse every given value by its option's rule; ``where`` prefixes errors (a suite)."""
    values: dict[str, Any] = {}
    for key, raw in given.items():
        option = option_named(key)
        if option is None:
            raise BadInput(f"{where}unknown option {key!r}; allowed: {', '.join(OPTIONS)}")
        if option.name in values:
            raise BadInput(f"{where}option {option.name!r} is given twice (as {key!r} too)")
        try:
            values[option.name] = option.parse(raw)
        except BadInput as err:
            raise BadInput(f"{where}{err}") from None
    return values


def settings(given: Mapping[str, Any], where: str = "") -> RunSettings:
    """Checked settings from raw given values (option name -> text or typed value)."""
    values = parse_values(given, where)
    return check(values.pop("task", OPTIONS["task"].default), values, where)


# Options that cannot both be set: a device snapshot carries its own noise. An
# ablation over both skips the cells that would set both (spec/grid.py).
EXCLUSIVE = (("noise", "noise_device"),)


def _unset(name: str, value: Any) -> bool:
    """Whether ``value`` of option ``name`` leaves it off (noise "none", shots "exact", ...)."""
    return value in ("none", "", None) or (bool(OPTIONS[name].unset_word) and value == OPTIONS[name].unset_word)


def exclusive_conflict(values: dict[str, Any]) -> tuple[str, str] | None:
    """The pair of :data:`EXCLUSIVE` options both set in ``values``, or None."""
    for first, second in EXCLUSIVE:
        if not _unset(first, values.get(first)) and not _unset(second, values.get(second)):
            return first, second
    return None


def check(task: str, values: dict[str, Any], where: str = "") -> RunSettings:
    """The rules between options, for already parsed values."""
    values = {k: v for k, v in values.items() if k != "task"}
    for name in values:
        option = OPTIONS[name]
        if not option.applies_to(task):
            raise BadInput(f"{where}{option.flag} applies to task {', '.join(option.tasks)}, not {task}")
    builtin_model = [n for n in values if OPTIONS[n].group == "model"]
    if "model" in values and builtin_model:
        raise BadInput(f"{where}{OPTIONS[builtin_model[0]].flag} applies to the built-in model only, "
                       "not to a --model checkpoint")
    if values.get("lora_rank") and "model" not in values:
        raise BadInput(f"{where}--lora-rank needs --model PATH (LoRA adapts a Hugging Face checkpoint)")
    noisy = [n for n in ("noise", "noise_device", "shots") if n in values and not _unset(n, values[n])]
    for first, second in EXCLUSIVE:
        if first in noisy and second in noisy:
            raise BadInput(f"{where}{OPTIONS[first].flag} and {OPTIONS[second].flag} exclude each other (a device "
                           f"snapshot brings its own noise), got {values[first]!r} and {values[second]!r}")
    if noisy and values.get("readout", OPTIONS["readout"].default) != "prob":
        raise BadInput(f"{where}{OPTIONS[noisy[0]].flag} needs --readout prob (amplitudes are not observable on a "
                       f"device), got readout {values.get('readout', OPTIONS['readout'].default)!r}")
    d_model = values.get("d_model", OPTIONS["d_model"].default)
    n_heads = values.get("n_heads", OPTIONS["n_heads"].default)
    if d_model % n_heads:
        raise BadInput(f"{where}d_model {d_model} is not divisible by n_heads {n_heads}")
    return RunSettings(task=task, values=values)
