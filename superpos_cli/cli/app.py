"""The `superpos` command: registers one module per subcommand.

Exit codes (architecture.md, CLI conventions): bad input anywhere below raises
:class:`~superpos_cli.errors.BadInput` (and click's own usage errors count as
bad input): one line on stderr, exit 2. Trials that failed while a sweep ran:
one line naming them, exit 1 (the document with every completed trial is
already printed). Ctrl-C: one line saying what completed and where it is
stored, exit 130. No traceback reaches the user in any of these.

Command modules import only typer and the torch-free spec at module level, so
``superpos --help`` and every bad-argument error finish before torch loads.
"""

from __future__ import annotations

import os
import sys

import typer
from typer.core import TyperGroup
from click import exceptions as click_errors

from superpos_cli import allocator
from superpos_cli.errors import BadInput, TrialsFailed


class _Group(TyperGroup):
    """Typer group that turns the errors above into one line and their exit code."""

    def main(self, *args, **kwargs):
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except typer.Exit as done:
            code = done.exit_code
        except click_errors.NoArgsIsHelpError as err:
            click_errors.echo(err.ctx.get_help())
            code = 0
        except click_errors.UsageError as err:
            command = err.ctx.command_path if err.ctx is not None else "superpos"
            click_errors.echo(f"error: {err.format_message()} (see {command} --help)", err=True)
            code = 2
        except typer.Abort:  # Ctrl-C while click itself was reading input
            from superpos_cli.experiments.interrupt import EXIT_INTERRUPTED, interrupt_message

            click_errors.echo(interrupt_message(KeyboardInterrupt()), err=True)
            code = EXIT_INTERRUPTED
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except BadInput as err:
            click_errors.echo(f"error: {err}", err=True)
            raise typer.Exit(2) from None
        except TrialsFailed as err:
            click_errors.echo(f"error: {err}", err=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt as err:
            from superpos_cli.experiments.interrupt import EXIT_INTERRUPTED, interrupt_message

            click_errors.echo(interrupt_message(err), err=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: typer's rich help imports rich.markdown (+0.15 s per start)
    help="Benchmark quantum-inspired training (Superpositional Gradient Descent) honestly.",
)


def _register() -> None:
    # Each command module registers itself; they import nothing from each other.
    from superpos_cli.cli import ablate, bench, circuit, compare, profile, reproduce, results, train

    for module in (train, compare, ablate, profile, bench, circuit, results, reproduce):
        module.register(app)


_register()


def main() -> None:
    """The command, for ``python -m superpos_cli`` and for callers that embed it
    (it ends with SystemExit, as any click program)."""
    allocator.keep_freed_memory()  # this process's trials and profiles (workers: allocator.WORKER_ENV)
    app()


def run() -> None:
    """The ``superpos`` console script: :func:`main`, then, once the command is done
    (its output written, every store and pool closed by their context managers), the
    process leaves with os._exit: the interpreter's own teardown of torch and scipy
    took about 1 s after every command. Under torchrun (WORLD_SIZE > 1) it exits
    normally, so the process group's atexit teardown runs."""
    try:
        main()
        code = 0
    except SystemExit as done:
        code = done.code
    if os.environ.get("WORLD_SIZE", "1") not in ("", "0", "1"):
        sys.exit(code)
    if not isinstance(code, int):  # sys.exit("message") semantics: the message, exit 1
        if code is not None:
            print(code, file=sys.stderr)
        code = 0 if code is None else 1
    _release_named_semaphores()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe (e.g. piped into head): nothing left to write
            pass
    os._exit(code)


def _release_named_semaphores() -> None:
    """Unlink the named semaphores of this process's worker pools, as a normal exit
    does: multiprocessing unlinks them in exit finalizers (priority 0), which
    os._exit skips, and its resource tracker then printed "There appear to be N
    leaked semaphore objects" after a parallel compare or ablate. Only finalizers of
    priority >= 0 run (semaphores, queue closes), not the queue feeders' joins."""
    util = sys.modules.get("multiprocessing.util")
    run_finalizers = getattr(util, "_run_finalizers", None)
    if run_finalizers is not None:
        try:
            run_finalizers(0)
        except Exception:  # noqa: BLE001 - leaving must not fail; the tracker cleans up anyway
            pass
