"""The typer app: its help, --version, the commands, and the console script's exit."""

from __future__ import annotations

import atexit
import inspect
import os
import sys
from collections.abc import Callable
from typing import Annotated

import typer

from .. import __version__
from ..errors import EXIT_OK, EXIT_USAGE, NodePrepError
from . import commands
from .guard import EXIT_INTERNAL, debug_requested, internal_error_line

app = typer.Typer(
    name="trains-nodeprep",
    help=(
        "Get Kubernetes nodes ready for trains-server (Docker default ulimits, vm.max_map_count),"
        " over SSH or locally, safely and idempotently, then deploy the server with"
        " kubectl apply -k.\n\n"
        "Start with `trains-nodeprep check --local` (read-only), then"
        " `trains-nodeprep plan --host NODE` to see the diffs, then"
        " `trains-nodeprep run --host NODE`. Without --host, the node labeled app=trains in your"
        " cluster is used.\n\n"
        "Exit codes: 0 ready/ok, 1 a node drifts (check) or failed/was refused (run), or a"
        " cluster pre-check failed, 2 usage or playbook error, 3 a node could not be reached,"
        " authenticated or sudo was refused, 4 an internal error (a bug: rerun with --debug and"
        " report it)."
    ),
    no_args_is_help=True,
    # The help texts are rich markup (as typer's default is since 0.15, stated for older ones):
    # a literal "[user@]" is written "\\[user@]" in them, else it vanishes as an unknown tag.
    rich_markup_mode="rich",
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _help_of(command: Callable[..., None]) -> str:
    """The command's docstring with each paragraph on one line: rich help keeps every newline."""
    paragraphs = inspect.cleandoc(command.__doc__ or "").split("\n\n")
    return "\n\n".join(" ".join(paragraph.splitlines()) for paragraph in paragraphs)


for command in (commands.check, commands.plan, commands.run, commands.restore, commands.label):
    app.command(help=_help_of(command))(command)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trains-nodeprep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    pass


def run_app() -> int:
    """The CLI; its exit code."""
    try:
        app()
    except SystemExit as exit_:
        if isinstance(exit_.code, str):
            typer.echo(exit_.code, err=True)
            return 1
        return exit_.code or EXIT_OK
    except NodePrepError as err:  # pragma: no cover - commands guard themselves
        typer.echo(f"trains-nodeprep: error: {err}", err=True)
        return EXIT_USAGE
    except Exception as error:  # outside any command (typer itself): still one line
        debug = debug_requested()
        if debug:
            import traceback

            traceback.print_exc()
        typer.echo(internal_error_line("trains-nodeprep", error, debug=debug), err=True)
        return EXIT_INTERNAL
    return EXIT_OK


def main() -> None:
    """The console script. It leaves as a normal exit does (exit handlers, such as the temporary
    directories' cleanup, then flushed output) but without tearing down the interpreter's ~400
    modules one by one, which would add 40-60 ms to every command."""
    code = run_app()
    atexit._run_exitfuncs()  # what sys.exit would run: weakref finalizers (TemporaryDirectory), ...
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except OSError:  # the reader went away (`| head`): nothing more can reach it
        pass
    os._exit(code)
