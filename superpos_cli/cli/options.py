"""Typer flags derived from the run spec, plus the few options of commands themselves.

:func:`run_options` adds one flag per spec option (superpos_cli/spec/options.py)
to a command's signature, grouped into help panels, and hands the command the
given values as ``given: dict[str, str | bool]`` (option name -> raw value, only
the flags the user typed). Every value is then checked by its option's one rule
(``spec.run.settings``), so a flag, an arm's key=value and a TOML key share
their name, meaning and error. With ``axes=True`` (ablate) every sweepable option
takes a comma-separated list instead of one value.

Nothing here imports torch: ``--help`` and bad-argument errors stay fast.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Annotated, Any, Callable, Optional

import typer

from superpos_cli.spec.option import GROUPS, Option
from superpos_cli.spec.options import OPTIONS

Json = Annotated[bool, typer.Option("--json", help="Print one JSON document instead of tables.")]
Out = Annotated[Optional[Path], typer.Option("--out", help="Also write the JSON document to this file.")]
Plot = Annotated[Optional[Path], typer.Option("--plot", help="Write a PNG plot to this file.")]
Store = Annotated[Optional[Path], typer.Option(
    "--store", help="Results store (SQLite); finished trials of the same code are reused "
                    "(default: $SUPERPOS_STORE, else ~/.cache/superpos/results.db).")]
NoStore = Annotated[bool, typer.Option("--no-store", help="Keep no results store (nothing reused, nothing kept).")]
Jobs = Annotated[Optional[int], typer.Option(
    "--jobs", "-j", help="Trials run at once in worker processes, 1 torch thread each (default: 2, or 1 on one core).")]
MaxMemory = Annotated[Optional[str], typer.Option(
    "--max-memory", help="Memory the run may use, e.g. 8G or 512M (default: what is available now); fewer trials "
                         "run at once when --jobs of them do not fit, quantum attention chunks its scores to it, "
                         "and a trial that cannot fit is refused with its estimate.")]
Fresh = Annotated[bool, typer.Option("--fresh", help="Ignore finished trials in the store and rerun them.")]
ReuseStale = Annotated[bool, typer.Option(
    "--reuse-stale", help="Reuse stored trials made by other code (marked stale in the table and JSON).")]
Executor = Annotated[str, typer.Option(
    "--executor", help="Where trials run: local (this machine, --jobs processes) or ray (Ray tasks; a local Ray "
                       "instance unless --ray-address; extra `ray`).")]
RayAddress = Annotated[Optional[str], typer.Option(
    "--ray-address", help="Ray cluster for --executor ray: auto (the cluster this node is in) or HOST:PORT of its "
                          "head (default: a local instance started for the run).")]
Suite = Annotated[Optional[str], typer.Option("--suite", help="Run a suite of benchmarks.toml; flags override it.")]
SuitesFile = Annotated[Optional[Path], typer.Option(
    "--suites-file", help="Suite file (default ./benchmarks.toml, else the shipped one).")]


def _help(option: Option, axis: bool) -> str:
    text = option.help.rstrip(".")
    allowed = option.allowed()
    if axis:
        text = f"Sweep: {text}"
        allowed = f"comma-separated, each {allowed}"
    extra = f" (paper-spec {option.paper})" if option.paper else ""
    # Parentheses, not brackets: typer renders help as rich markup.
    return f"{text}{extra} ({allowed}; default: {option.describe_default()})"


def _parameter(option: Option, axis: bool) -> inspect.Parameter:
    if option.kind is bool and not axis:
        info = typer.Option(f"{option.flag}/--no-{option.flag[2:]}", help=_help(option, axis),
                            rich_help_panel=GROUPS[option.group], show_default=False)
        annotation = Annotated[Optional[bool], info]
    else:
        info = typer.Option(option.flag, help=_help(option, axis), rich_help_panel=GROUPS[option.group],
                            show_default=False, metavar="LIST" if axis else option.kind.__name__.upper())
        annotation = Annotated[Optional[str], info]
    return inspect.Parameter(f"spec_{option.name}", inspect.Parameter.KEYWORD_ONLY, default=None,
                             annotation=annotation)


def run_options(*groups: str, axes: bool = False, exclude: tuple[str, ...] = ()) -> Callable:
    """Decorator: the command gets a flag per spec option of ``groups`` and a
    ``given`` dict of the flags typed (module docstring)."""
    chosen = [o for o in OPTIONS.values() if o.group in groups and o.name not in exclude]

    def decorate(command: Callable) -> Callable:
        own = [p for name, p in inspect.signature(command, eval_str=True).parameters.items() if name != "given"]

        def wrapper(**kwargs: Any) -> Any:
            given = {o.name: kwargs.pop(f"spec_{o.name}") for o in chosen}
            given = {k: v for k, v in given.items() if v is not None}
            return command(given=given, **kwargs)

        params = own + [_parameter(o, axes and o.axis) for o in chosen]
        wrapper.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
        wrapper.__annotations__ = {p.name: p.annotation for p in params}
        wrapper.__doc__ = command.__doc__
        wrapper.__name__ = command.__name__
        return wrapper

    return decorate


def check_executor(executor: str, ray_address: str | None) -> None:
    """--executor is local or ray; --ray-address only with ray; Ray installed when asked for."""
    from superpos_cli.errors import BadInput

    if executor not in ("local", "ray"):
        raise BadInput(f"executor must be one of local, ray, got {executor!r}")
    if ray_address is not None and executor != "ray":
        raise BadInput("--ray-address needs --executor ray")
    if executor == "ray":
        from superpos_cli.experiments.ray_executor import require_ray

        require_ray()


def default_jobs(jobs: int | None) -> int:
    """Two trials side by side by default: both see the same machine at the same
    time, and the default compare fits in about a minute."""
    if jobs is None:
        return min(2, os.cpu_count() or 1)
    if jobs < 1:
        from superpos_cli.errors import BadInput

        raise BadInput(f"jobs must be >= 1, got {jobs}")
    return jobs


def store_path(store: Path | None, no_store: bool) -> Path | None:
    """The results store of a run: --store, else $SUPERPOS_STORE, else the user's cache
    folder (``$XDG_CACHE_HOME/superpos/results.db``, ``~/.cache/...`` without it);
    None with --no-store."""
    from superpos_cli.errors import BadInput

    if no_store:
        if store is not None:
            raise BadInput("give --store or --no-store, not both")
        return None
    if store is not None:
        return store
    if os.environ.get("SUPERPOS_STORE"):
        return Path(os.environ["SUPERPOS_STORE"])
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "superpos" / "results.db"
