"""A paramiko SSH server on 127.0.0.1, inside the test process: real SSH connections for unit
tests of the transport, without root, containers or sshd."""

from __future__ import annotations

import logging
import socket
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
import pytest

# (command, stdin) -> (stdout, stderr, exit status)
Handler = Callable[[str, bytes], tuple[bytes, bytes, int]]


def echo_stdin(command: str, stdin: bytes) -> tuple[bytes, bytes, int]:
    return stdin, b"to stderr", 0


@dataclass
class Exec:
    user: str
    command: str
    stdin: bytes


@dataclass
class LoopbackSSHServer:
    """Accepts one public key (`client_key_file`) for any user; `known_hosts` trusts its host
    key. `kex`/`ciphers` limit what the server accepts (in the server's own order of preference,
    which SSH ignores: the client's order decides)."""

    directory: Path
    handler: Handler = echo_stdin
    kex: tuple[str, ...] | None = None
    ciphers: tuple[str, ...] | None = None
    execs: list[Exec] = field(default_factory=list)
    transports: list[paramiko.Transport] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.host_key = paramiko.ECDSAKey.generate()
        self.client_key = paramiko.ECDSAKey.generate()
        self.client_key_file = self.directory / "id_ecdsa"
        self.client_key.write_private_key_file(str(self.client_key_file))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.known_hosts = self.directory / "known_hosts"
        self.known_hosts.write_text(self.known_hosts_line(self.host_key))
        # What the server agreed on, read from paramiko's debug log ("Kex: NAME", "Cipher ...")
        self.log_channel = f"loopback-ssh.{self.port}"
        self.log = _Lines()
        logger = logging.getLogger(self.log_channel)
        logger.setLevel(logging.DEBUG)
        logger.propagate = False
        logger.addHandler(self.log)
        threading.Thread(target=self._accept, daemon=True).start()

    def known_hosts_line(self, key: paramiko.PKey) -> str:
        return f"[127.0.0.1]:{self.port} {key.get_name()} {key.get_base64()}\n"

    def ssh_config(self, alias: str, user: str = "root") -> str:
        return (
            f"Host {alias}\n  HostName 127.0.0.1\n  Port {self.port}\n  User {user}\n"
            f"  IdentityFile {self.client_key_file}\n  UserKnownHostsFile {self.known_hosts}\n"
        )

    def close(self) -> None:
        self._listener.close()
        for transport in self.transports:
            transport.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return  # closed
            transport = paramiko.Transport(conn)
            transport.set_log_channel(self.log_channel)
            transport.add_server_key(self.host_key)
            options = transport.get_security_options()
            if self.kex:
                options.kex = self.kex
            if self.ciphers:
                options.ciphers = self.ciphers
            self.transports.append(transport)
            try:
                transport.start_server(server=_Interface(self))
            except (paramiko.SSHException, EOFError, OSError):
                pass  # the client gave up (a refused host key): wait for the next one


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


class _Interface(paramiko.ServerInterface):
    def __init__(self, server: LoopbackSSHServer) -> None:
        self.server = server
        self.user = ""

    def get_allowed_auths(self, username: str) -> str:
        return "publickey"

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        if key == self.server.client_key:
            self.user = username
            return paramiko.AUTH_SUCCESSFUL
        return paramiko.AUTH_FAILED

    def check_channel_request(self, kind: str, chanid: int) -> int:
        if kind == "session":
            return paramiko.OPEN_SUCCEEDED
        return paramiko.OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED

    def check_channel_exec_request(self, channel: paramiko.Channel, command: bytes) -> bool:
        threading.Thread(target=self._run, args=(channel, command.decode()), daemon=True).start()
        return True

    def _run(self, channel: paramiko.Channel, command: str) -> None:
        chunks = []
        while chunk := channel.recv(65536):
            chunks.append(chunk)
        stdin = b"".join(chunks)
        self.server.execs.append(Exec(self.user, command, stdin))
        stdout, stderr, status = self.server.handler(command, stdin)
        channel.sendall(stdout)
        channel.sendall_stderr(stderr)
        channel.send_exit_status(status)
        channel.close()


@pytest.fixture
def ssh_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """The only ssh config file SSHNode reads in this test (empty), a HOME without keys or
    known_hosts, and no ssh agent."""
    from trains_nodeprep.node import ssh

    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    config = tmp_path / "ssh_config"
    config.write_text("")
    monkeypatch.setattr(ssh, "SSH_CONFIG_FILES", (config,))
    ssh._ssh_config.cache_clear()
    yield config
    ssh._ssh_config.cache_clear()


@pytest.fixture
def loopback(tmp_path: Path) -> Iterator[LoopbackSSHServer]:
    server = LoopbackSSHServer(tmp_path)
    yield server
    server.close()
