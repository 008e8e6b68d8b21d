"""The command line: commands, options and exit codes. The work happens elsewhere."""

from __future__ import annotations

import json
import os
import sys
import threading
from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import __version__
from .errors import EXIT_USAGE, NodePrepError, UsageError

app = typer.Typer(
    name="trains-nodeprep",
    help=(
        "Get Kubernetes nodes ready for trains-server: Docker default ulimits and vm.max_map_count, "
        "over SSH or locally, safely and idempotently.\n\n"
        "Start with `trains-nodeprep check --local` (read-only), then `trains-nodeprep plan --host NODE` "
        "to see the diffs, then `trains-nodeprep run --host NODE`.\n\n"
        "Exit codes: 0 ready/ok, 1 a node drifts (check) or failed/was refused (run), "
        "2 usage or playbook error, 3 a node could not be reached, authenticated or sudo was refused."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Output(str, Enum):
    text = "text"
    json = "json"


Hosts = Annotated[Optional[list[str]], typer.Option("--host", "-H", help="Node as [user@]host[:port] or an ~/.ssh/config alias. Repeat for more nodes.", show_default=False)]
Local = Annotated[bool, typer.Option("--local", help="Act on this machine without SSH (uses sudo when not root).")]
PlaybookOpt = Annotated[Optional[Path], typer.Option("--playbook", "-p", help="Desired state as YAML. Default: the bundled playbooks/trains-node.yaml.", show_default=False)]
User = Annotated[Optional[str], typer.Option("--user", "-u", help="SSH login user for nodes given without user@ (default: ~/.ssh/config, else your local user).", show_default=False)]
Port = Annotated[Optional[int], typer.Option("--port", help="SSH port for nodes given without :port (default: ~/.ssh/config, else 22).", show_default=False)]
Identity = Annotated[Optional[list[Path]], typer.Option("--identity", "-i", help="Private key file; repeatable. Keys from ~/.ssh/config and your agent are tried too.", show_default=False)]
ConnectTimeout = Annotated[float, typer.Option("--connect-timeout", help="Seconds to wait for each node's SSH connection.")]
AcceptNew = Annotated[bool, typer.Option("--accept-new-host-keys", help="Trust and record host keys not yet in known_hosts. A CHANGED key is always refused.")]
AskSudo = Annotated[bool, typer.Option("--ask-sudo-password", help="Prompt once for the sudo password of a non-root login. For CI, set TRAINS_NODEPREP_SUDO_PASSWORD instead.")]
Parallel = Annotated[int, typer.Option("--parallel", min=1, max=256, help="Nodes handled at once.")]
OutputOpt = Annotated[Output, typer.Option("--output", "-o", help="text for people, json for machines (a stable, documented shape).")]
Debug = Annotated[bool, typer.Option("--debug", help="Show tracebacks for errors.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Confirm docker restarts without asking (needed when not in a terminal).")]
RestartTimeout = Annotated[int, typer.Option("--restart-timeout", min=5, max=600, help="Seconds docker may take to answer after a restart before the change is rolled back.")]
KeepBackups = Annotated[int, typer.Option("--keep-backups", min=1, max=1000, help="Backups kept beside each file (FILE.<UTC time>.bak); older ones are deleted.")]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"trains-nodeprep {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
) -> None:
    pass


class _Session:
    """What every node command needs: the playbook, the nodes, the consoles."""

    def __init__(self, hosts, local, playbook, user, port, identity, connect_timeout, accept_new, ask_sudo, output, debug) -> None:
        from rich.console import Console

        from .playbook import load_playbook

        self.debug = debug
        self.output = output
        # Human text goes to stdout unless stdout carries JSON; then everything human goes to stderr.
        self.out = Console(highlight=False)
        self.err = Console(stderr=True, highlight=False)
        self.human = self.err if output == Output.json else self.out
        if local and hosts:
            raise UsageError("--local and --host exclude each other: use --local on the node itself, --host from elsewhere")
        if not local and not hosts:
            raise UsageError("no nodes given: pass --host [user@]NODE (repeatable) or --local")
        self.desired = load_playbook(playbook)
        sudo_password = self._sudo_password(ask_sudo)
        if local:
            from .node import LocalNode

            self.nodes = [LocalNode(sudo_password)]
        else:
            from .node import SSHOptions, SSHNode, parse_target

            options = SSHOptions(
                user=user, port=port, identity_files=tuple(str(p) for p in identity or ()),
                connect_timeout=connect_timeout, accept_new_host_keys=accept_new, sudo_password=sudo_password,
            )
            targets = [parse_target(h) for h in hosts]
            labels = [t.label for t in targets]
            duplicates = sorted({label for label in labels if labels.count(label) > 1})
            if duplicates:
                raise UsageError(f"--host {duplicates[0]} is given twice: one run per node at a time")
            self.nodes = [SSHNode(t, options) for t in targets]

    @staticmethod
    def _sudo_password(ask: bool) -> str | None:
        from .node import SUDO_PASSWORD_ENV

        if ask:
            import getpass

            return getpass.getpass("sudo password: ")
        return os.environ.get(SUDO_PASSWORD_ENV) or None

    def finish(self, command: str, outcomes, code: int) -> None:
        if self.output == Output.json:
            from .report import outcomes_json

            self.out.file.write(json.dumps(outcomes_json(command, outcomes, code == 0), indent=2) + "\n")
        if self.debug:
            for outcome in outcomes:
                if outcome.traceback:
                    self.err.print(f"--- {outcome.label}\n{outcome.traceback}", markup=False)
        raise typer.Exit(code)


def _guard(debug: bool):
    """Turn our errors into one line on stderr and an exit code; tracebacks only with --debug."""

    class Guard:
        def __enter__(self):
            return self

        def __exit__(self, kind, error, traceback):
            if isinstance(error, NodePrepError):
                if debug:
                    import traceback as tb

                    tb.print_exception(kind, error, traceback)
                typer.echo(f"trains-nodeprep: error: {error}", err=True)
                raise typer.Exit(error.exit_code)
            if isinstance(error, KeyboardInterrupt):
                typer.echo("trains-nodeprep: interrupted", err=True)
                raise typer.Exit(130)
            return False

    return Guard()


@app.command()
def check(
    host: Hosts = None, local: Local = False, playbook: PlaybookOpt = None, user: User = None, port: Port = None,
    identity: Identity = None, connect_timeout: ConnectTimeout = 10.0, accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False, parallel: Parallel = 16, output: OutputOpt = Output.text,
    junit_xml: Annotated[Optional[Path], typer.Option("--junit-xml", help="Also write JUnit XML: one test case per requirement per node.", show_default=False)] = None,
    debug: Debug = False,
) -> None:
    """Report, read-only, whether each node is ready. Exit 0 when all are, 1 when any drifts.

    One line per requirement per node: expected, actual, ok/drift. Made for a pre-deploy CI step.
    """
    with _guard(debug):
        session = _Session(host, local, playbook, user, port, identity, connect_timeout, accept_new_host_keys, ask_sudo_password, output, debug)
        from .report import print_check, render_junit
        from .runner import check_node, for_each_node, overall_exit_code

        outcomes = for_each_node(session.nodes, lambda node: check_node(node, session.desired), parallel)
        code = overall_exit_code(outcomes)
        if output == Output.text:
            print_check(session.out, outcomes)
        if junit_xml:
            try:
                junit_xml.write_text(render_junit(outcomes), encoding="utf-8")
            except OSError as err:
                raise UsageError(f"cannot write --junit-xml {junit_xml}: {err.strerror}") from err
        session.finish("check", outcomes, code)


@app.command()
def plan(
    host: Hosts = None, local: Local = False, playbook: PlaybookOpt = None, user: User = None, port: Port = None,
    identity: Identity = None, connect_timeout: ConnectTimeout = 10.0, accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False, parallel: Parallel = 16, output: OutputOpt = Output.text, debug: Debug = False,
) -> None:
    """Show what `run` would change, as unified diffs and commands. Changes nothing."""
    with _guard(debug):
        _run(host, local, playbook, user, port, identity, connect_timeout, accept_new_host_keys, ask_sudo_password, parallel, output, debug,
             yes=False, dry_run=True, restart_timeout=60, keep_backups=5)


@app.command()
def run(
    host: Hosts = None, local: Local = False, playbook: PlaybookOpt = None, user: User = None, port: Port = None,
    identity: Identity = None, connect_timeout: ConnectTimeout = 10.0, accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False, parallel: Parallel = 16, output: OutputOpt = Output.text,
    yes: Yes = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Same as the plan command: show diffs, change nothing.")] = False,
    restart_timeout: RestartTimeout = 60, keep_backups: KeepBackups = 5, debug: Debug = False,
) -> None:
    """Bring each node to the playbook's state, verify it, and say what changed.

    Files are replaced atomically with a timestamped backup beside them; docker restarts only
    when its config changed, after a warning (in a terminal it asks; --yes confirms). A
    second run changes nothing.
    """
    with _guard(debug):
        _run(host, local, playbook, user, port, identity, connect_timeout, accept_new_host_keys, ask_sudo_password, parallel, output, debug,
             yes=yes, dry_run=dry_run, restart_timeout=restart_timeout, keep_backups=keep_backups)


@app.command()
def restore(
    host: Hosts = None, local: Local = False, playbook: PlaybookOpt = None, user: User = None, port: Port = None,
    identity: Identity = None, connect_timeout: ConnectTimeout = 10.0, accept_new_host_keys: AcceptNew = False,
    ask_sudo_password: AskSudo = False, parallel: Parallel = 16, output: OutputOpt = Output.text,
    file: Annotated[Optional[str], typer.Option("--file", help="Restore only this file's newest backup.", show_default=False)] = None,
    yes: Yes = False, restart_timeout: RestartTimeout = 60, keep_backups: KeepBackups = 5, debug: Debug = False,
) -> None:
    """Put back the files that the last change on each node replaced, from their backups.

    Restores every file backed up at the newest backup time (a file the change created is
    removed), restarts docker if a docker file changed, and verifies. The restore keeps a
    backup too: restoring again undoes it. Kernel values already set are not lowered.
    """
    with _guard(debug):
        session = _Session(host, local, playbook, user, port, identity, connect_timeout, accept_new_host_keys, ask_sudo_password, output, debug)
        from .report import print_run
        from .runner import for_each_node, overall_exit_code, restore_node

        confirm = _confirmer(session, yes)
        outcomes = for_each_node(
            session.nodes,
            lambda node: restore_node(node, session.desired, confirm=confirm, only_path=file, restart_timeout=restart_timeout, keep_backups=keep_backups),
            parallel,
        )
        code = overall_exit_code(outcomes)
        if output == Output.text:
            print_run(session.out, outcomes)
        session.finish("restore", outcomes, code)


def _confirmer(session: _Session, yes: bool):
    """Ask before a docker restart: say why, then --yes, a terminal prompt, or no."""
    prompt_lock = threading.Lock()
    interactive = sys.stdin.isatty()

    def confirm(label, node_plan, facts) -> bool:
        with prompt_lock:
            session.human.print(f"{label}: docker will restart ({node_plan.restart_reason}): every container on this node restarts", highlight=False)
            if yes:
                return True
            if not interactive:
                return False
            return typer.confirm(f"Restart docker on {label}?", default=False, err=session.output == Output.json)

    return confirm


def _run(host, local, playbook, user, port, identity, connect_timeout, accept_new, ask_sudo, parallel, output, debug, *, yes, dry_run, restart_timeout, keep_backups) -> None:
    session = _Session(host, local, playbook, user, port, identity, connect_timeout, accept_new, ask_sudo, output, debug)
    from .report import print_plan, print_run
    from .runner import for_each_node, overall_exit_code, run_node

    confirm = _confirmer(session, yes)
    outcomes = for_each_node(
        session.nodes,
        lambda node: run_node(node, session.desired, confirm=confirm, dry_run=dry_run, restart_timeout=restart_timeout, keep_backups=keep_backups),
        parallel,
    )
    code = overall_exit_code(outcomes)
    if output == Output.text:
        (print_plan if dry_run else print_run)(session.out, outcomes)
    session.finish("plan" if dry_run else "run", outcomes, code)


def main() -> None:
    try:
        app()
    except NodePrepError as err:  # pragma: no cover - commands guard themselves
        typer.echo(f"trains-nodeprep: error: {err}", err=True)
        sys.exit(EXIT_USAGE)
