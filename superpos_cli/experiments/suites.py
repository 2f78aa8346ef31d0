"""Declarative suites: ``benchmarks.toml`` loaded into typed frozen dataclasses.

Each ``[suites.NAME]`` table has a ``kind`` and maps 1:1 onto one dataclass. Its
keys are the kind's own keys (below) or any run option of the spec
(superpos_cli/spec/options.py) under its CLI name without dashes: ``task``,
``seeds``, ``max_epochs``, ``attention``, ``lambda``, ``limit``, ... Each value
is checked by the same rule as its flag::

    kind = "compare"  -> CompareSuite   arms (required), description, run options
    kind = "ablate"   -> AblateSuite    axes (required: option -> list), base, control,
                                        description, run options
    kind = "bench"    -> BenchSuite     metrics (required), description, repeats,
                                        fail_on, thresholds, compare (a table:
                                        arms + run options)

Unknown keys, wrong types, missing required keys and bad values are
:class:`~superpos_cli.errors.BadInput` naming the file, the suite, the key and
what is allowed. CLI flags override what a suite sets. torch-free: a suite is
checked before any work starts.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

from superpos_cli.errors import BadInput
from superpos_cli.spec.arms import parse_arm
from superpos_cli.spec.options import OPTIONS, option_named
from superpos_cli.spec.run import RunSettings, settings

DEFAULT_FILE = "benchmarks.toml"
KINDS = ("compare", "ablate", "bench")
MAX_SUITE_FILE_BYTES = 1 << 20  # a suite file is a page of text; anything far larger is not one


@dataclass(frozen=True)
class CompareSuite:
    """Optimizer arms side by side on one task (``superpos compare --suite``)."""

    name: str
    arms: tuple[str, ...]
    run: RunSettings
    description: str = ""
    kind: str = "compare"

    @property
    def task(self) -> str:
        return self.run.task


@dataclass(frozen=True)
class AblateSuite:
    """A grid over ablation axes (``superpos ablate --suite``); ``axes`` maps a
    sweepable option's name to its typed values, in grid order."""

    name: str
    axes: dict[str, tuple[Any, ...]]
    run: RunSettings
    base: str = "sgd"
    control: str | None = None
    description: str = ""
    kind: str = "ablate"

    @property
    def task(self) -> str:
        return self.run.task


@dataclass(frozen=True)
class BenchCompare:
    """The small compare a bench suite runs for its convergence metrics."""

    arms: tuple[str, ...]
    run: RunSettings


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


# --------------------------------------------------------------------------- loading


def default_path() -> Path:
    """``benchmarks.toml`` in the current directory if there is one, else the shipped one."""
    local = Path(DEFAULT_FILE)
    return local if local.is_file() else Path(__file__).resolve().parents[2] / DEFAULT_FILE


def load_suites(path: str | Path | None = None) -> dict[str, Suite]:
    """Every suite in ``path`` (default :func:`default_path`), by name, in file order."""
    path = Path(path) if path is not None else default_path()
    try:
        if path.stat().st_size > MAX_SUITE_FILE_BYTES:
            raise BadInput(f"suite file {str(path)!r} is {path.stat().st_size:,} bytes; a suite file is at most "
                           f"{MAX_SUITE_FILE_BYTES:,}")
        with path.open("rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise BadInput(f"suite file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise BadInput(f"suite file {str(path)!r} is a folder") from None
    except OSError as err:
        raise BadInput(f"cannot read suite file {str(path)!r} ({err.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as err:
        raise BadInput(f"{path}: not valid TOML ({str(err).splitlines()[0]})") from None
    where = path.name
    extra = sorted(set(data) - {"suites"})
    if extra:
        raise BadInput(f"{where}: unknown top-level key {extra[0]!r}; expected only [suites.NAME] tables")
    suites = data.get("suites", {})
    if not isinstance(suites, dict):
        raise BadInput(f"{where}: 'suites' must be a table of [suites.NAME] tables")
    return {name: _parse_suite(f"{where}: suite {name!r}", name, table) for name, table in suites.items()}


def get_suite(name: str, path: str | Path | None = None, kind: str | None = None) -> Suite:
    """The suite ``name``; with ``kind``, one of that kind (else BadInput)."""
    suites = load_suites(path)
    if name not in suites:
        known = ", ".join(suites) or "none"
        raise BadInput(f"unknown suite {name!r}; known suites: {known}")
    found = suites[name]
    if kind is not None and found.kind != kind:
        raise BadInput(f"suite {name!r} is a {found.kind} suite; this command runs suites of kind {kind}")
    return found


# Each kind's own keys: (python types, description for the error message).
_STR = ((str,), "a string")
_INT = ((int,), "an integer")
_NUM = ((int, float), "a number")
_STRS = ((list,), "a list of strings")
_TABLE = ((dict,), "a table")
_OWN: dict[str, dict[str, tuple[tuple[type, ...], str]]] = {
    "compare": {"kind": _STR, "description": _STR, "arms": _STRS},
    "ablate": {"kind": _STR, "description": _STR, "base": _STR, "axes": _TABLE, "control": _STR},
    "bench": {"kind": _STR, "description": _STR, "repeats": _INT, "fail_on": _NUM, "metrics": _STRS,
              "thresholds": _TABLE, "compare": _TABLE},
    "bench.compare": {"arms": _STRS},
}
_REQUIRED = {"compare": ("arms",), "ablate": ("axes",), "bench": ("metrics",), "bench.compare": ("arms",)}
_RUN_OPTIONS = {"compare", "ablate", "bench.compare"}  # kinds whose tables take run options
_NOT_IN_SUITES = ("seed",)  # one run's seed (train); a suite's trials take seeds and seed_offset


def _split(where: str, table: dict[str, Any], schema: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the kind's own keys, run options) of a table, with keys and types checked."""
    own_keys = _OWN[schema]
    own, run = {}, {}
    for key, value in table.items():
        if key in own_keys:
            types, expected = own_keys[key]
            if isinstance(value, bool) or not isinstance(value, types):
                raise BadInput(f"{where}: key {key!r} must be {expected}, got {_toml_type(value)} {value!r}")
            if expected == "a list of strings" and not all(isinstance(v, str) and v.strip() for v in value):
                raise BadInput(f"{where}: key {key!r} must be a list of non-empty strings, got {value!r}")
            own[key] = value
        elif (schema in _RUN_OPTIONS and option_named(key) is not None and option_named(key).name == key
              and key not in _NOT_IN_SUITES):
            _check_typed(where, option_named(key), value)
            run[key] = value
        else:
            allowed = ", ".join(k for k in own_keys)
            names = [n for n in OPTIONS if n not in _NOT_IN_SUITES]
            more = " or a run option (" + ", ".join(names) + ")" if schema in _RUN_OPTIONS else ""
            raise BadInput(f"{where}: unknown key {key!r}; allowed: {allowed}{more}")
    for key in _REQUIRED[schema]:
        if key not in own:
            raise BadInput(f"{where}: missing key {key!r} ({own_keys[key][1]})")
    return own, run


def _check_typed(where: str, option: Any, value: Any) -> None:
    """A TOML value has its option's type already: ``seeds = "5"`` is an error, not
    a guess (Option.parse converts text, as flags and arm items are text)."""
    if option.kind in (int, float, bool) and isinstance(value, str) and value.lower() != (option.unset_word or None):
        raise BadInput(f"{where}: {option.fail(f'a string {value!r}')}")


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
    own, run_values = _split(where, table, kind)
    own.pop("kind")
    if kind == "bench":
        return _bench(where, name, own)
    run = settings(run_values, where=f"{where}: ")
    if kind == "compare":
        arms = tuple(own.pop("arms"))
        _check_arms(where, arms, run)
        return CompareSuite(name=name, arms=arms, run=run, **own)
    axes = _axes(where, own.pop("axes"))
    suite = AblateSuite(name=name, axes=axes, run=run, **own)
    _check_grid(where, suite)
    return suite


def _check_arms(where: str, arms: tuple[str, ...], run: RunSettings) -> None:
    try:
        for text in arms:
            parse_arm(text, run.optimizer_overrides(), run.optimizer_protocol())
    except BadInput as err:
        raise BadInput(f"{where}: {err}") from None


def _check_grid(where: str, suite: AblateSuite) -> None:
    """Builds the grid's cells and finds the control, so both are checked at load time."""
    from superpos_cli.spec.grid import Grid

    try:
        Grid(suite.base, suite.axes, suite.control, suite.run)
    except BadInput as err:
        raise BadInput(f"{where}: {err}") from None


def _axes(where: str, axes: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    from superpos_cli.spec.grid import parse_axis

    if not axes:
        raise BadInput(f"{where}: key 'axes' must name at least one axis")
    out = {}
    for name, values in axes.items():
        if not isinstance(values, list):
            raise BadInput(f"{where}: key axes.{name} must be a list of values, got {_toml_type(values)} {values!r}")
        for value in values:
            if option_named(name) is not None:
                _check_typed(f"{where}: axes.{name}", option_named(name), value)
        try:
            option, parsed = parse_axis(name, values)
        except BadInput as err:
            raise BadInput(f"{where}: axes.{name}: {err}") from None
        out[option.name] = tuple(parsed)
    return out


def _bench(where: str, name: str, values: dict[str, Any]) -> BenchSuite:
    if values.get("repeats", 1) < 1:
        raise BadInput(f"{where}: key 'repeats' must be >= 1, got {values['repeats']}")
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
        own, run_values = _split(inner, values.pop("compare"), "bench.compare")
        run = settings(run_values, where=f"{inner}: ")
        arms = tuple(own["arms"])
        _check_arms(inner, arms, run)
        compare = BenchCompare(arms=arms, run=run)
    return BenchSuite(name=name, metrics=metrics, thresholds=thresholds, compare=compare, **values)
