"""The CLI's error guard and its adapters: whatever a command raises ends as one line and a code."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trains_nodeprep import workflows
from trains_nodeprep.cli import application, run_app
from trains_nodeprep.cli.guard import EXIT_INTERNAL, EXIT_INTERRUPTED
from trains_nodeprep.errors import ConnectionFailed, UsageError
from trains_nodeprep.workflows import ClusterArgs, NodeArgs, Output, RestoreOptions, RunOptions


def cli(monkeypatch, capsys, *argv: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "argv", ["trains-nodeprep", *argv])
    code = run_app()
    out, err = capsys.readouterr()
    return code, out, err


def raising(error: BaseException):
    def flow(*args, **kwargs) -> int:
        raise error

    return flow


def test_an_unexpected_exception_is_one_line_and_exit_4_without_a_traceback(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "check", raising(KeyError("boom")))

    code, out, err = cli(monkeypatch, capsys, "check", "--local")

    assert code == EXIT_INTERNAL == 4
    assert err == (
        "trains-nodeprep: internal error in check: KeyError: 'boom';"
        " rerun with --debug and report it\n"
    )
    assert "Traceback" not in out + err


def test_a_message_over_several_lines_still_gives_one_line(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "run", raising(ValueError("first\n  second\n")))

    code, _, err = cli(monkeypatch, capsys, "run", "--local", "--yes")

    assert code == EXIT_INTERNAL
    assert err.count("\n") == 1
    assert "internal error in run: ValueError: first second;" in err


def test_with_debug_the_traceback_comes_first_then_the_line(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "restore", raising(RuntimeError("odd")))

    code, _, err = cli(monkeypatch, capsys, "restore", "--local", "--debug")

    assert code == EXIT_INTERNAL
    assert err.startswith("Traceback (most recent call last):")
    assert "raise error" in err and "RuntimeError: odd" in err
    assert err.splitlines()[-1] == (
        "trains-nodeprep: internal error in restore: RuntimeError: odd;"
        " report it with the traceback above"
    )


def test_a_plan_names_itself_and_run_dry_run_names_plan(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "plan", raising(TypeError("x")))
    monkeypatch.setattr(workflows, "run", raising(TypeError("x")))

    assert "internal error in plan:" in cli(monkeypatch, capsys, "plan", "--local")[2]
    assert "internal error in plan:" in cli(monkeypatch, capsys, "run", "--dry-run", "--local")[2]


@pytest.mark.parametrize(
    ("error", "code"),
    [(UsageError("bad option"), 2), (ConnectionFailed("node1: unreachable"), 3)],
)
def test_our_own_errors_keep_their_line_and_exit_code(monkeypatch, capsys, error, code):
    monkeypatch.setattr(workflows, "check", raising(error))

    exit_code, _, err = cli(monkeypatch, capsys, "check", "--local")

    assert exit_code == code
    assert err == f"trains-nodeprep: error: {error}\n"


def test_ctrl_c_is_130(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "check", raising(KeyboardInterrupt()))

    code, _, err = cli(monkeypatch, capsys, "check", "--local")

    assert code == EXIT_INTERRUPTED == 130
    assert err == "trains-nodeprep: interrupted\n"


def test_an_error_outside_any_command_is_one_line_too(monkeypatch, capsys):
    monkeypatch.setattr(application, "app", raising(AttributeError("no such thing")))

    code, _, err = cli(monkeypatch, capsys, "check")

    assert code == EXIT_INTERNAL
    assert err == (
        "trains-nodeprep: internal error in trains-nodeprep: AttributeError: no such thing;"
        " rerun with --debug and report it\n"
    )


def test_the_flow_returns_the_exit_code(monkeypatch, capsys):
    monkeypatch.setattr(workflows, "check", lambda *args, **kwargs: 1)

    assert cli(monkeypatch, capsys, "check", "--local")[0] == 1


def test_run_gets_every_option_by_name(monkeypatch, capsys):
    seen = {}

    def run(nodes, cluster, options, *, ask) -> int:
        seen.update(nodes=nodes, cluster=cluster, options=options, ask=ask)
        return 0

    monkeypatch.setattr(workflows, "run", run)

    code, _, _ = cli(
        monkeypatch,
        capsys,
        "run",
        "-H",
        "admin@node1",
        "--host",
        "node2:2222",
        "--hosts-file",
        "hosts.txt",
        "-u",
        "deploy",
        "--port",
        "2200",
        "-i",
        "key1",
        "--connect-timeout",
        "3",
        "--accept-new-host-keys",
        "--parallel",
        "8",
        "-o",
        "json",
        "--yes",
        "--restart-timeout",
        "30",
        "--keep-backups",
        "2",
        "--no-deploy",
        "--wait",
        "100",
        "--kubeconfig",
        "kc",
        "--context",
        "ctx",
        "--selector",
        "role=trains",
        "--allow-many-labeled",
        "--kustomize",
        "overlay",
        "--image-version",
        "1.2.3",
        "--fixed-users",
        "users.txt",
        "--debug",
    )

    assert code == 0
    assert seen["nodes"] == NodeArgs(
        hosts=["admin@node1", "node2:2222"],
        hosts_file=Path("hosts.txt"),
        local=False,
        playbook=None,
        fixed_users=Path("users.txt"),
        user="deploy",
        port=2200,
        identity=[Path("key1")],
        connect_timeout=3.0,
        accept_new=True,
        ask_sudo=False,
        parallel=8,
        output=Output.JSON,
        debug=True,
    )
    assert seen["cluster"] == ClusterArgs(
        enabled=False,
        kubeconfig=Path("kc"),
        context="ctx",
        selector="role=trains",
        kustomize=Path("overlay"),
        image_version="1.2.3",
        allow_many=True,
    )
    assert seen["options"] == RunOptions(
        yes=True, dry_run=False, restart_timeout=30, keep_backups=2, wait=100
    )
    assert callable(seen["ask"])


def test_the_defaults_of_the_cli_are_the_workflows_defaults(monkeypatch, capsys):
    seen = {}

    def restore(nodes, options, *, ask) -> int:
        seen.update(nodes=nodes, options=options)
        return 0

    monkeypatch.setattr(workflows, "restore", restore)

    assert cli(monkeypatch, capsys, "restore", "--local", "--file", "/etc/x")[0] == 0
    assert seen["nodes"] == NodeArgs(local=True)
    assert seen["options"] == RestoreOptions(only_path="/etc/x")


def test_the_workflows_do_not_need_typer():
    code = (
        "import sys, trains_nodeprep.workflows\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click', 'rich')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)

    assert done.stdout.strip() == "[]"
