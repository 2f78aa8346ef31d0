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
    # Each command module registers itself; they import nothing from each other.
    from superpos_cli.cli import ablate, bench, circuit, compare, profile, results, train

    for module in (train, compare, ablate, profile, bench, circuit, results):
        module.register(app)


_register()


def main() -> None:
    app()
