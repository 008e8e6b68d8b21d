"""Usage errors, playbook errors and --help through the real console script (no nodes needed)."""

from __future__ import annotations

import os
import subprocess
import sys

from .cli import EXECUTABLE


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(EXECUTABLE), *args],
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
        timeout=60,
    )


def test_help_teaches_the_commands_and_exit_codes():
    result = cli("--help")

    assert result.returncode == 0
    for word in ("check", "plan", "run", "restore", "Exit codes"):
        assert word in result.stdout


def test_help_does_not_import_ssh_libraries():
    code = (
        "import sys; sys.argv=['trains-nodeprep','--help']\n"
        "from trains_nodeprep.cli import run_app\n"
        "run_app()\n"
        "print(sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('paramiko','fabric','invoke','yaml')))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)

    assert result.stdout.strip().splitlines()[-1] == "[]"


def test_a_host_with_shell_metacharacters_is_a_usage_error():
    result = cli("check", "--host", "node1;touch /tmp/pwned")

    assert result.returncode == 2
    assert "expected [user@]host[:port]" in result.stderr
    assert result.stderr.count("\n") == 1  # one line, no traceback


def test_local_and_host_together_is_a_usage_error():
    result = cli("check", "--local", "--host", "node1")

    assert result.returncode == 2 and "exclude each other" in result.stderr


def test_no_nodes_is_a_usage_error():
    result = cli("check")

    assert result.returncode == 2 and "no nodes given" in result.stderr


def test_a_bad_playbook_names_the_file_and_the_key(tmp_path):
    playbook = tmp_path / "bad.yaml"
    playbook.write_text(
        "version: 1\nsysctl:\n  settings:\n    'vm.max_map_count; reboot': 262144\n"
    )

    result = cli("check", "--local", "--playbook", str(playbook))

    assert result.returncode == 2
    assert (
        str(playbook) in result.stderr
        and "sysctl.settings.vm.max_map_count; reboot" in result.stderr
    )


def test_a_missing_playbook_is_a_usage_error(tmp_path):
    result = cli("check", "--local", "--playbook", str(tmp_path / "nope.yaml"))

    assert result.returncode == 2 and "cannot read playbook" in result.stderr
