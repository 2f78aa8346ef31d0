"""One run option: its name, type, default, allowed values, help, and where it goes.

An :class:`Option` is the single declaration every consumer derives from: the
Typer flags of train/compare/ablate (cli/options.py), the keys of a
``benchmarks.toml`` suite (experiments/suites.py), the arm syntax
``PRESET:key=value`` (spec/arms.py), ablation axes, validation, and the config
stored with every record. This module imports nothing heavy: the CLI checks every
value before torch is imported.

``parse`` is the one rule of an option. Values come as text (a flag, an arm's
``key=value``, an axis item) or typed (TOML); text is converted, typed values must
already have the right type (a TOML ``seeds = "5"`` is an error, not a guess). The
error names the option and what is allowed, the same words from every source.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from superpos_cli.errors import BadInput

GROUPS = {
    "task": "Task and data",
    "model": "Model, attention and circuit",
    "optimizer": "Optimizer (global: every arm; an arm's own key=value wins)",
    "train": "Training protocol",
    "seeds": "Seeds",
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(frozen=True)
class Option:
    """A run option (module docstring).

    ``dest`` is the key the engine reads: a ``task_options`` key (groups task and
    model), an ``ArmSpec.options`` key (optimizer) or a ``TrainConfig`` field
    (train). ``default`` is shown in help; ``None`` means "the task's or preset's
    own default" (``default_text`` says which). ``tasks`` limits the option to
    some tasks (None: every task). ``off`` is the value that switches the studied
    effect off, the natural control cell of an ablation over this option.
    """

    name: str
    kind: type  # int, float, str, bool or Path
    help: str
    group: str
    dest: str = ""
    default: Any = None
    default_text: str = ""
    choices: Sequence[str] | Callable[[], Sequence[str]] | None = None
    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself not allowed
    high_open: bool = False
    tasks: tuple[str, ...] | None = None
    paper: str = ""  # paper-spec section of the open point this option resolves
    axis: bool = False  # sweepable by ablate
    off: Any = None
    # A word that stands for the option's unset default where a value must be given
    # (an axis cell, a TOML key): shots "exact", noise_device "none". Kept as the word;
    # the engine reads it as unset.
    unset_word: str = ""
    aliases: tuple[str, ...] = ()
    path_kind: str = ""  # Path options: "file" or "dir" (must exist)
    extra_check: Callable[[Any], str | None] | None = field(default=None, compare=False)

    def __post_init__(self) -> None:
        if not self.dest:
            object.__setattr__(self, "dest", self.name)

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")

    def allowed_choices(self) -> tuple[str, ...]:
        choices = self.choices() if callable(self.choices) else self.choices
        return tuple(choices or ())

    def allowed(self) -> str:
        """What the option accepts, in words: "an integer >= 1", "one of sin, cos"."""
        if self.kind is bool:
            return "true or false"
        if self.kind is Path:
            return f"a path to an existing {'folder' if self.path_kind == 'dir' else 'file'}"
        if self.choices is not None:
            return "one of " + ", ".join(self.allowed_choices())
        noun = "an integer" if self.kind is int else "a number" if self.kind is float else "a string"
        if self.low is not None and self.high is not None:
            return f"{noun} in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"
        if self.low is not None:
            return f"{noun} {'>' if self.low_open else '>='} {self.low:g}"
        if self.high is not None:
            return f"{noun} {'<' if self.high_open else '<='} {self.high:g}"
        return noun

    def fail(self, shown: Any) -> BadInput:
        return BadInput(f"{self.name} must be {self.allowed()}, got {shown}")

    def parse(self, raw: Any) -> Any:
        """The typed, checked value of ``raw`` (text, or an already typed TOML value)."""
        text = raw.strip() if isinstance(raw, str) else None
        shown = repr(text) if text is not None else _toml_repr(raw)
        if self.unset_word and text is not None and text.lower() == self.unset_word:
            return self.unset_word
        if self.kind is bool:
            if isinstance(raw, bool):
                return raw
            if text is not None and text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise self.fail(shown)
        if self.kind in (int, float):
            value = self._number(raw, text, shown)
        elif self.kind is Path:
            if text is None or not text:
                raise self.fail(shown)
            value = text
            path = Path(text).expanduser()
            exists = path.is_dir() if self.path_kind == "dir" else path.is_file()
            if not exists:
                what = "a folder" if self.path_kind == "dir" else "a file"
                raise BadInput(f"{self.name} {text!r}: no such {what.split()[-1]}" if not path.exists()
                               else f"{self.name} {text!r} is not {what}")
        else:
            if text is None or not text:
                raise self.fail(shown)
            value = text.lower() if self.choices is not None else text
            if self.choices is not None and value not in self.allowed_choices():
                raise self.fail(shown)
        if self.extra_check is not None:
            problem = self.extra_check(value)
            if problem:
                raise BadInput(problem if problem.startswith(self.name) else f"{self.name} {shown}: {problem}")
        return value

    def _number(self, raw: Any, text: str | None, shown: str) -> int | float:
        if text is not None:
            try:
                value = int(text) if self.kind is int else float(text)
            except ValueError:
                raise self.fail(shown) from None
        elif isinstance(raw, bool) or not isinstance(raw, (int, float)):
            raise self.fail(shown)
        elif self.kind is int and not isinstance(raw, int):
            raise self.fail(shown)
        else:
            value = float(raw) if self.kind is float else raw
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(shown)
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            raise self.fail(shown)
        if self.high is not None and (value > self.high or (self.high_open and value == self.high)):
            raise self.fail(shown)
        return value

    def applies_to(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    def describe_default(self) -> str:
        if self.default_text:
            return self.default_text
        if self.default is None:
            return "the task's default"
        return str(self.default).lower() if isinstance(self.default, bool) else str(self.default)


def _toml_repr(value: Any) -> str:
    kind = {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)
    return f"{kind} {value!r}" if not isinstance(value, (list, dict)) else kind
