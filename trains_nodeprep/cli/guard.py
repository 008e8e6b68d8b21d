"""The error guard around every command: one line on stderr and an exit code, whatever went wrong.

Our own errors (NodePrepError) already say what failed and what to do; they keep their line and
exit code. Anything else is a bug of ours: it too becomes one line, naming the command and the
exception, and exit code 4, so that a CI step fails clearly instead of dumping a traceback (as
pre-commit's error handler does). With --debug, the traceback comes first.
"""

from __future__ import annotations

import contextlib
import sys
import traceback
from collections.abc import Iterator

import typer

from ..errors import NodePrepError

EXIT_INTERNAL = 4  # an unexpected error: a bug in trains-nodeprep (0-3 are the documented outcomes)
EXIT_INTERRUPTED = 130  # Ctrl-C, as a shell reports SIGINT (128 + 2)


def internal_error_line(command: str, error: BaseException, *, debug: bool) -> str:
    """One line for an unexpected exception: where, what type, its message, what to do."""
    message = " ".join(part.strip() for part in str(error).splitlines() if part.strip())
    what = f"{type(error).__name__}: {message}" if message else type(error).__name__
    todo = "report it with the traceback above" if debug else "rerun with --debug and report it"
    return f"trains-nodeprep: internal error in {command}: {what}; {todo}"


@contextlib.contextmanager
def error_guard(command: str, *, debug: bool) -> Iterator[None]:
    """Turns any exception of the block into one line on stderr and a non-zero exit code.

    typer's own exits pass through: an exit code, an aborted prompt (typer says "Aborted!").
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except NodePrepError as error:
        if debug:
            traceback.print_exc()
        _say(f"trains-nodeprep: error: {error}")
        raise typer.Exit(error.exit_code) from error
    except KeyboardInterrupt as interrupt:
        _say("trains-nodeprep: interrupted")
        raise typer.Exit(EXIT_INTERRUPTED) from interrupt
    except Exception as error:
        if debug:
            traceback.print_exc()
        _say(internal_error_line(command, error, debug=debug))
        raise typer.Exit(EXIT_INTERNAL) from error


def _say(line: str) -> None:
    typer.echo(line, err=True)


def debug_requested(argv: list[str] | None = None) -> bool:
    """--debug on the command line, for errors that come before a command has parsed it."""
    return "--debug" in (sys.argv[1:] if argv is None else argv)
