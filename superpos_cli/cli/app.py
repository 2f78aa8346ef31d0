"""The `superpos` command: registers one module per subcommand.

Bad input anywhere below raises :class:`superpos_cli.errors.BadInput`; the group
turns it into one line on stderr and exit code 2 (architecture.md, CLI conventions).
"""

from __future__ import annotations

import click
import typer
from typer.core import TyperGroup

from superpos_cli.errors import BadInput


class _Group(TyperGroup):
    """Typer group that reports BadInput as one line and exit code 2."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except BadInput as err:
            click.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    help="Benchmark quantum-inspired training (Superpositional Gradient Descent) honestly.",
)


def _register() -> None:
    # Imported here so each command module stays independent of the others.
    import importlib

    for name in ("train", "compare", "ablate", "profile", "bench", "circuit", "results"):
        try:
            module = importlib.import_module(f"superpos_cli.cli.{name}")
        except ModuleNotFoundError as err:
            if err.name == f"superpos_cli.cli.{name}":
                continue  # command not built yet
            raise
        module.register(app)


_register()


def main() -> None:
    app()
