"""Declarative suites: ``benchmarks.toml`` loaded into typed frozen dataclasses.

Each ``[suites.NAME]`` table has a ``kind`` and maps 1:1 onto one dataclass::

    kind = "compare"  -> CompareSuite   task, arms; seeds, target, max_epochs,
                                        evals_per_epoch, task_options, description
    kind = "ablate"   -> AblateSuite    task, axes; base, seeds, control, target,
                                        max_epochs, evals_per_epoch, task_options, description
    kind = "bench"    -> BenchSuite     metrics; description, repeats, fail_on,
                                        thresholds, compare (task, arms; seeds,
                                        max_epochs, target, task_options)

Unknown keys, wrong types, missing required keys and bad values are
:class:`~superpos_cli.errors.BadInput` naming the file, the suite, the key and
what is expected. ``task_options`` are the flat task/model options that
``cli/options.task_options`` produces (``kind``, ``n_qubits``, ``depth``,
``backend``, ``limit``, ...). CLI flags override what a suite sets.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Union

from superpos_cli.errors import BadInput

DEFAULT_FILE = "benchmarks.toml"
KINDS = ("compare", "ablate", "bench")


@dataclass(frozen=True)
class CompareSuite:
    """Optimizer arms side by side on one task (``superpos compare``)."""

    name: str
    task: str
    arms: tuple[str, ...]
    seeds: int = 5
    target: float = 0.90
    max_epochs: int | None = None  # None: the task's protocol default
    evals_per_epoch: int = 10
    task_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    kind: str = "compare"

    def to_compare_spec(self, train=None, seed_offset: int = 0):
        """The :class:`~superpos_cli.experiments.compare.CompareSpec` of this suite.

        ``train`` is the base TrainConfig (e.g. the task's protocol defaults from
        ``cli/options.train_config``); the suite's target, max_epochs and
        evals_per_epoch replace its fields.
        """
        from superpos_cli.experiments.compare import CompareSpec
        from superpos_cli.optim.presets import parse_arm
        from superpos_cli.tasks import OPTIMIZER_DEFAULTS

        return CompareSpec(
            task=self.task,
            task_options=dict(self.task_options),
            arms=[parse_arm(text, None, OPTIMIZER_DEFAULTS.get(self.task)) for text in self.arms],
            seeds=list(range(seed_offset, seed_offset + self.seeds)),
            train=_train(train, self),
        )


@dataclass(frozen=True)
class AblateSuite:
    """A grid over ablation axes (``superpos ablate --suite``); ``axes`` maps an axis
    name (experiments/ablate.AXES) to its typed values, in grid order."""

    name: str
    task: str
    axes: dict[str, tuple[Any, ...]]
    base: str = "sgd"
    seeds: int = 5
    control: str | None = None
    target: float = 0.90
    max_epochs: int | None = None
    evals_per_epoch: int = 10
    task_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    kind: str = "ablate"

    def to_ablate_spec(self, train=None, seed_offset: int = 0):
        """The :class:`~superpos_cli.experiments.ablate.AblateSpec` of this suite (``train`` as above)."""
        from superpos_cli.experiments.ablate import AblateSpec

        return AblateSpec(
            task=self.task,
            task_options=dict(self.task_options),
            base=self.base,
            axes={name: list(values) for name, values in self.axes.items()},
            seeds=list(range(seed_offset, seed_offset + self.seeds)),
            train=_train(train, self),
            control=self.control,
        )


@dataclass(frozen=True)
class BenchCompare:
    """The small compare a bench suite runs for its convergence metrics."""

    task: str
    arms: tuple[str, ...]
    seeds: int = 2
    max_epochs: int | None = None
    target: float = 0.90
    task_options: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchSuite:
    """Micro-benchmarks checked against the store's history (``superpos bench``).

    A metric regresses when it is worse than its history by more than its
    threshold: ``thresholds[metric]`` if given, else ``fail_on`` (fractions).
    """

    name: str
    metrics: tuple[str, ...]
    description: str = ""
    repeats: int = 5
    fail_on: float = 0.10
    thresholds: dict[str, float] = field(default_factory=dict)
    compare: BenchCompare | None = None
    kind: str = "bench"

    def threshold(self, metric: str) -> float:
        return self.thresholds.get(metric, self.fail_on)


Suite = Union[CompareSuite, AblateSuite, BenchSuite]


def _train(train, suite):
    from superpos_cli.engine.loop import TrainConfig

    base = train if train is not None else TrainConfig()
    values = {"target": suite.target, "evals_per_epoch": suite.evals_per_epoch}
    if suite.max_epochs is not None:
        values["max_epochs"] = suite.max_epochs
    return replace(base, **values)


# --------------------------------------------------------------------------- loading


def default_path() -> Path:
    """``benchmarks.toml`` in the current directory if there is one, else the shipped one."""
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else Path(__file__).resolve().parents[2] / DEFAULT_FILE


def load_suites(path: str | Path | None = None) -> dict[str, Suite]:
    """Every suite in ``path`` (default :func:`default_path`), by name, in file order."""
    path = Path(path) if path is not None else default_path()
    try:
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise BadInput(f"suite file {str(path)!r} does not exist") from None
    except OSError as err:
        raise BadInput(f"cannot read suite file {str(path)!r} ({err.strerror})") from None
    except tomllib.TOMLDecodeError as err:
        raise BadInput(f"{path}: not valid TOML ({err})") from None
    where = path.name
    extra = sorted(set(data) - {"suites"})
    if extra:
        raise BadInput(f"{where}: unknown top-level key {extra[0]!r}; expected only [suites.NAME] tables")
    suites = data.get("suites", {})
    if not isinstance(suites, dict):
        raise BadInput(f"{where}: 'suites' must be a table of [suites.NAME] tables")
    return {name: _parse_suite(f"{where}: suite {name!r}", name, table) for name, table in suites.items()}


def get_suite(name: str, path: str | Path | None = None) -> Suite:
    suites = load_suites(path)
    if name not in suites:
        known = ", ".join(suites) or "none"
        raise BadInput(f"unknown suite {name!r}; known suites: {known}")
    return suites[name]


# Expected type of each key: (python types, description for the error message).
_STR = ((str,), "a string")
_INT = ((int,), "an integer")
_NUM = ((int, float), "a number")
_STRS = ((list,), "a list of strings")
_TABLE = ((dict,), "a table")
_SCHEMA: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "compare": {"kind": _STR, "description": _STR, "task": _STR, "arms": _STRS, "seeds": _INT, "target": _NUM,
                "max_epochs": _INT, "evals_per_epoch": _INT, "task_options": _TABLE},
    "ablate": {"kind": _STR, "description": _STR, "task": _STR, "base": _STR, "seeds": _INT, "axes": _TABLE,
               "control": _STR, "target": _NUM, "max_epochs": _INT, "evals_per_epoch": _INT,
               "task_options": _TABLE},
    "bench": {"kind": _STR, "description": _STR, "repeats": _INT, "fail_on": _NUM, "metrics": _STRS,
              "thresholds": _TABLE, "compare": _TABLE},
    "bench.compare": {"task": _STR, "arms": _STRS, "seeds": _INT, "max_epochs": _INT, "target": _NUM,
                      "task_options": _TABLE},
}
_REQUIRED = {"compare": ("kind", "task", "arms"), "ablate": ("kind", "task", "axes"),
             "bench": ("kind", "metrics"), "bench.compare": ("task", "arms")}


def _check(where: str, table: dict[str, Any], schema: str) -> dict[str, Any]:
    """The table's values after checking keys and types against ``_SCHEMA[schema]``."""
    allowed = _SCHEMA[schema]
    for key, value in table.items():
        if key not in allowed:
            raise BadInput(f"{where}: unknown key {key!r}; allowed: {', '.join(allowed)}")
        types, expected = allowed[key]
        if isinstance(value, bool) or not isinstance(value, types):
            raise BadInput(f"{where}: key {key!r} must be {expected}, got {_toml_type(value)} {value!r}")
        if expected == "a list of strings" and not all(isinstance(v, str) and v.strip() for v in value):
            raise BadInput(f"{where}: key {key!r} must be a list of non-empty strings, got {value!r}")
    for key in _REQUIRED[schema]:
        if key not in table:
            raise BadInput(f"{where}: missing key {key!r} ({allowed[key][1]})")
    return table


def _toml_type(value: Any) -> str:
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)


def _parse_suite(where: str, name: str, table: Any) -> Suite:
    if not isinstance(table, dict):
        raise BadInput(f"{where}: must be a table")
    kind = table.get("kind")
    if kind not in KINDS:
        got = "missing" if kind is None else repr(kind)
        raise BadInput(f"{where}: key 'kind' must be one of {', '.join(KINDS)}, got {got}")
    values = dict(_check(where, table, kind))
    try:
        if kind == "compare":
            task = _common(where, values)
            arms = tuple(values.pop("arms"))
            suite = CompareSuite(name=name, task=task, arms=arms, **values)
            suite.to_compare_spec()  # parses every arm, so a typo fails at load time
        elif kind == "ablate":
            task = _common(where, values)
            axes = _axes(where, values.pop("axes"))
            suite = AblateSuite(name=name, task=task, axes=axes, **values)
            suite.to_ablate_spec()  # builds the grid and the control, so both are checked now
        else:
            suite = _bench(where, name, values)
    except BadInput as err:
        if str(err).startswith(where):
            raise
        raise BadInput(f"{where}: {err}") from None
    return suite


def _common(where: str, values: dict[str, Any]) -> str:
    """Check the keys compare and ablate share (and their ranges); pops kind and
    task and returns the task."""
    from superpos_cli.tasks import TASKS

    values.pop("kind")
    task = values.pop("task")
    if task not in TASKS:
        raise BadInput(f"{where}: key 'task' must be one of {', '.join(TASKS)}, got {task!r}")
    _positive(where, values, "seeds", "max_epochs", "evals_per_epoch")
    if "target" in values:
        values["target"] = float(values["target"])
        if not 0.0 < values["target"] < 1.0:
            raise BadInput(f"{where}: key 'target' must be in (0, 1), got {values['target']}")
    values["task_options"] = _task_options(where, task, values.get("task_options", {}))
    return task


def _positive(where: str, values: dict[str, Any], *keys: str) -> None:
    for key in keys:
        if key in values and values[key] < 1:
            raise BadInput(f"{where}: key {key!r} must be >= 1, got {values[key]}")


# The CLI's flag names, accepted in task_options and mapped as cli/options.task_options maps them.
_TASK_OPTION_ALIASES = {"attention": "kind", "qubits": "n_qubits", "circuit_per_head": "per_head",
                        "data": "data_path", "model": "hf_model_path"}


def _task_options(where: str, task: str, options: dict[str, Any]) -> dict[str, Any]:
    normalised: dict[str, Any] = {}
    for key, value in options.items():
        canonical = _TASK_OPTION_ALIASES.get(key, key)
        if canonical in normalised:
            raise BadInput(f"{where}: task_options sets {canonical!r} twice (as {key!r} too)")
        normalised[canonical] = value
    options = normalised
    for key, value in options.items():
        if isinstance(value, (dict, list)):
            raise BadInput(f"{where}: task_options.{key} must be a string, number or boolean, got {_toml_type(value)}")
    if task == "textcls":  # its options are dataclass fields, so unknown keys are known here
        from superpos_cli.models.config import AttentionConfig, ModelConfig
        from superpos_cli.tasks.textcls import TextClsConfig

        allowed = ({f.name for f in fields(TextClsConfig)} | {f.name for f in fields(ModelConfig)}
                   | {f.name for f in fields(AttentionConfig)}) - {"seed", "model", "attention"}
        for key in options:
            if key not in allowed:
                raise BadInput(f"{where}: unknown key task_options.{key!r} for textcls; allowed: {', '.join(sorted(allowed))}")
    return dict(options)


def _axes(where: str, axes: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    from superpos_cli.experiments.ablate import axis_named, parse_axis

    if not axes:
        raise BadInput(f"{where}: key 'axes' must name at least one axis")
    out = {}
    for name, values in axes.items():
        axis = axis_named(name).name
        if not isinstance(values, list):
            raise BadInput(f"{where}: key axes.{name} must be a list of values, got {_toml_type(values)} {values!r}")
        out[axis] = tuple(parse_axis(axis, values))
    return out


def _bench(where: str, name: str, values: dict[str, Any]) -> BenchSuite:
    values.pop("kind")
    _positive(where, values, "repeats")
    if "fail_on" in values:
        values["fail_on"] = float(values["fail_on"])
        if values["fail_on"] < 0:
            raise BadInput(f"{where}: key 'fail_on' must be >= 0, got {values['fail_on']}")
    metrics = tuple(values.pop("metrics"))
    if not metrics:
        raise BadInput(f"{where}: key 'metrics' must list at least one metric")
    thresholds = {}
    for metric, value in values.pop("thresholds", {}).items():
        if metric not in metrics:
            raise BadInput(f"{where}: key thresholds.{metric} names a metric not in 'metrics' ({', '.join(metrics)})")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
            raise BadInput(f"{where}: key thresholds.{metric} must be a number >= 0, got {value!r}")
        thresholds[metric] = float(value)
    compare = None
    if "compare" in values:
        inner = f"{where}: compare"
        table = dict(_check(inner, values.pop("compare"), "bench.compare"))
        table["kind"] = "compare"
        task = _common(inner, table)
        arms = tuple(table.pop("arms"))
        compare = BenchCompare(task=task, arms=arms, **table)
        CompareSuite(name=name, task=compare.task, arms=compare.arms, seeds=compare.seeds,
                     task_options=compare.task_options).to_compare_spec()  # parses the arms
    return BenchSuite(name=name, metrics=metrics, thresholds=thresholds, compare=compare, **values)
