"""SSHNode and LocalNode against the Node protocol, over real SSH to an in-process server: the
argv quoted once, the sudo password on stdin only, strict host keys, one-line errors."""

from __future__ import annotations

import shlex
import subprocess
import sys

import pytest

from trains_nodeprep.errors import EXIT_CONNECTION, ConnectionFailed
from trains_nodeprep.node import LocalNode, Node, SSHNode, SSHOptions, parse_target

from .loopback_ssh import LoopbackSSHServer, loopback, ssh_config_file  # noqa: F401


def node_for(server: LoopbackSSHServer, config, user="root", **options) -> SSHNode:
    config.write_text(server.ssh_config("loop", user))
    return SSHNode(parse_target("loop"), SSHOptions(connect_timeout=5, **options))


def test_both_transports_are_nodes(ssh_config_file):
    assert isinstance(LocalNode(), Node)
    assert isinstance(SSHNode(parse_target("admin@node1"), SSHOptions()), Node)


def test_a_root_login_runs_sh_with_the_script_quoted_once_and_the_payload_on_stdin(
    loopback, ssh_config_file
):
    node = node_for(loopback, ssh_config_file)
    script = "echo 'it''s' \"$HOME\"; exit 3"
    try:
        result = node.run_as_root(script, timeout=10, payload=b"payload\n")
        again = node.run_as_root("true", timeout=10)
    finally:
        node.close()

    assert [e.command for e in loopback.execs] == [
        shlex.join(["sh", "-c", script]),
        shlex.join(["sh", "-c", "true"]),
    ]
    assert loopback.execs[0].user == "root" and loopback.execs[0].stdin == b"payload\n"
    assert result.output == b"payload\n" and result.stderr == "to stderr" and result.ok
    assert again.ok and node.exec_count == 2
    assert len(loopback.transports) == 1  # one connection for every command


def test_the_sudo_password_goes_on_stdin_before_the_payload_never_in_the_command(
    loopback, ssh_config_file
):
    node = node_for(loopback, ssh_config_file, user="admin", sudo_password="s3cret pass")
    try:
        node.run_as_root("id -u", timeout=10, payload=b"data")
    finally:
        node.close()

    (done,) = loopback.execs
    assert done.user == "admin"
    assert shlex.split(done.command) == ["sudo", "-k", "-S", "-p", "", "--", "sh", "-c", "id -u"]
    assert done.stdin == b"s3cret pass\ndata"


def test_without_a_password_sudo_must_not_ask(loopback, ssh_config_file):
    loopback.handler = lambda command, stdin: (b"", b"sudo: a password is required\n", 1)
    node = node_for(loopback, ssh_config_file, user="admin")
    try:
        with pytest.raises(ConnectionFailed) as raised:
            node.run_as_root("true", timeout=10)
    finally:
        node.close()

    assert shlex.split(loopback.execs[0].command)[:3] == ["sudo", "-n", "--"]
    assert "pass --ask-sudo-password or set TRAINS_NODEPREP_SUDO_PASSWORD" in str(raised.value)
    assert raised.value.exit_code == EXIT_CONNECTION


def test_an_unknown_host_key_is_refused_with_its_fingerprint_and_nothing_recorded(
    loopback, ssh_config_file
):
    loopback.known_hosts.write_text("")
    node = node_for(loopback, ssh_config_file)
    with pytest.raises(ConnectionFailed) as raised:
        node.run_as_root("true", timeout=10)

    message = str(raised.value)
    assert message.startswith("loop: unknown host key (ecdsa-sha2-nistp256 SHA256:"), message
    assert "--accept-new-host-keys" in message and "\n" not in message
    assert loopback.known_hosts.read_text() == "" and loopback.execs == []


def test_accept_new_records_an_unknown_key_in_the_user_known_hosts_file(loopback, ssh_config_file):
    loopback.known_hosts.write_text("")
    node = node_for(loopback, ssh_config_file, accept_new_host_keys=True)
    try:
        assert node.run_as_root("true", timeout=10).ok
    finally:
        node.close()

    assert loopback.known_hosts.read_text() == loopback.known_hosts_line(loopback.host_key)


def test_a_changed_host_key_is_refused_even_with_accept_new(loopback, ssh_config_file):
    import paramiko

    forged = loopback.known_hosts_line(paramiko.ECDSAKey.generate())
    loopback.known_hosts.write_text(forged)
    node = node_for(loopback, ssh_config_file, accept_new_host_keys=True)
    with pytest.raises(ConnectionFailed, match="HOST KEY CHANGED for 127.0.0.1"):
        node.run_as_root("true", timeout=10)

    assert loopback.known_hosts.read_text() == forged and loopback.execs == []


def test_nothing_listening_is_one_line_with_exit_code_3(ssh_config_file):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    node = SSHNode(parse_target(f"root@127.0.0.1:{port}"), SSHOptions(connect_timeout=2))
    with pytest.raises(ConnectionFailed) as raised:
        node.run_as_root("true", timeout=5)

    assert str(raised.value).startswith(f"root@127.0.0.1:{port}: cannot connect to 127.0.0.1:")
    assert raised.value.exit_code == EXIT_CONNECTION


def test_local_node_runs_the_script_with_the_payload_on_stdin():
    node = LocalNode()
    if node.user != "root":
        pytest.skip("runs the script directly only as root")  # the suite runs as root
    result = node.run_as_root("cat; echo err >&2; exit 4", timeout=10, payload=b"in")

    assert (result.output, result.stderr, result.exit_status) == (b"in", "err\n", 4)
    assert node.exec_count == 1


def test_help_and_local_never_import_paramiko_nor_the_ssh_side():
    """`--help` and `--local` pay neither for paramiko (~100 ms) nor for node/ssh.py."""
    code = (
        "import atexit, sys\n"
        "from trains_nodeprep.cli import main\n"
        "from trains_nodeprep.node import LocalNode, SUDO_PASSWORD_ENV\n"
        "LocalNode()\n"
        "atexit.register(lambda: print(sorted(\n"
        "    m for m in sys.modules if 'paramiko' in m or m.endswith('node.ssh')\n"
        ")))\n"
        "sys.argv = ['trains-nodeprep', '--help']\n"
        "main()\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)

    assert "Usage" in done.stdout
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
