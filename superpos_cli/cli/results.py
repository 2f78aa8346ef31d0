"""`superpos results list | show | export`: read the results store.

The store (``superpos_cli.experiments.store``) holds every finished trial written
by ``compare``/``ablate`` and every ``bench`` run. These commands only read it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from superpos_cli.cli.options import store_path
from superpos_cli.errors import BadInput
from superpos_cli.fileio import write_text

results_app = typer.Typer(
    no_args_is_help=True,
    help="List, show and export stored trial and bench results.",
)

StoreOpt = Annotated[
    Optional[Path],
    typer.Option("--store", help="Results store file written by compare/ablate/bench "
                                 "(default: $SUPERPOS_STORE, else ~/.cache/superpos/results.db)."),
]


def _open(store: Path | None):
    from superpos_cli.experiments.store import ResultsStore

    store = store_path(store, False)
    # Reading never creates a store: a typo in --store must not leave an empty file.
    if not store.exists():
        raise BadInput(f"no results store at {store} (run compare/ablate first or pass --store)")
    return ResultsStore(store)


def _short_time(created_at: str | None) -> str:
    # "2026-01-02T03:04:05.678901+00:00" -> "2026-01-02 03:04:05" (UTC)
    return "" if not created_at else created_at[:19].replace("T", " ")


@results_app.command("list")
def list_cmd(
    store: StoreOpt = None,
    kind: Annotated[Optional[str], typer.Option(help="Only this kind of entry: trial or bench.")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Only entries of this sweep.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most this many entries, newest first.", min=1)] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of a table.")] = False,
) -> None:
    """List stored results, newest first."""
    with _open(store) as results:
        rows = results.list(kind=kind, sweep=sweep, limit=limit)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title=f"{len(rows)} result(s) in {store}")
    for column in ("key", "kind", "sweep", "name", "status", "code", "created (UTC)"):
        table.add_column(column, no_wrap=column in ("key", "code", "created (UTC)"))
    for row in rows:
        table.add_row(
            row["key"][:12],
            row["kind"],
            row["sweep"] or "",
            row["name"] or "",
            row["status"] or "",
            row["fingerprint"] or "unknown",  # the code that computed it (superpos_cli.fingerprint)
            _short_time(row["created_at"]),
        )
    Console().print(table)


@results_app.command("show")
def show_cmd(
    key_prefix: Annotated[str, typer.Argument(help="A key, or its first characters as shown by `results list`.")],
    store: StoreOpt = None,
) -> None:
    """Print one stored result (summary and full record) as JSON."""
    with _open(store) as results:
        entry = results.show(key_prefix)
    typer.echo(json.dumps(entry, indent=2))


@results_app.command("export")
def export_cmd(
    csv: Annotated[bool, typer.Option("--csv", help="Export as CSV, one row per entry (the default).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Export as one JSON array.")] = False,
    store: StoreOpt = None,
    kind: Annotated[Optional[str], typer.Option(help="Only this kind of entry: trial or bench.")] = None,
    sweep: Annotated[Optional[str], typer.Option(help="Only entries of this sweep.")] = None,
    out: Annotated[
        Optional[Path], typer.Option(help="Write the export to this file instead of stdout.", dir_okay=False)
    ] = None,
) -> None:
    """Export stored results as CSV or JSON."""
    if csv and as_json:
        raise BadInput("pass only one of --csv and --json")
    with _open(store) as results:
        text = results.export("json" if as_json else "csv", kind=kind, sweep=sweep)
    if out is None:
        typer.echo(text, nl=False)
        return
    write_text(out, text, "--out")  # atomic: complete or absent
    typer.echo(f"wrote {out}", err=True)


def register(app: typer.Typer) -> None:
    """Add the ``results`` command group to the ``superpos`` app."""
    app.add_typer(results_app, name="results")
