"""Speed-ups that lean on private details of paramiko or CPython, kept together.

Each one is pinned by a guard test in tests/unit/test_transport_tweaks.py that fails when an
upgrade takes the detail away: when one fails, fix or drop the tweak here, nowhere else. Without
them everything still works, only slower (or, for `silence`, with tracebacks on stderr).
"""

from __future__ import annotations

import re
import socket
import sys
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from .algorithms import cipher_order, kex_order

if TYPE_CHECKING:
    import paramiko

# An ssh config line that paramiko can only run with invoke.
MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def needs_invoke(config_texts: Sequence[str]) -> bool:
    return any(MATCH_EXEC.search(text) for text in config_texts)


def import_paramiko(needs_invoke: bool) -> ModuleType:
    """paramiko imports invoke (~70 ms of start-up: asyncio, yaml, unittest.mock) only to run the
    `Match exec` lines of an ssh config, and does without it when it is missing; so unless the
    config has such a line, paramiko is imported as if invoke were not installed.

    Relies on: paramiko.config catching the ImportError of `import invoke` (CPython raises it for
    a None entry in sys.modules)."""
    if "paramiko" in sys.modules or needs_invoke or "invoke" in sys.modules:
        import paramiko
    else:
        sys.modules["invoke"] = None  # type: ignore[assignment]  # `import invoke` then fails
        try:
            import paramiko
        finally:
            del sys.modules["invoke"]
    silence(paramiko)
    return paramiko


def silence(paramiko: ModuleType) -> None:
    """paramiko's transport threads log what breaks a connection, with tracebacks; with no
    handler configured Python prints those on stderr. The node's one-line error says it instead.

    Relies on: paramiko logging under loggers named after its package ("paramiko.transport")."""
    import logging  # here: `--help` and `--local` do without it

    log = logging.getLogger(paramiko.__name__)
    if not any(isinstance(handler, logging.NullHandler) for handler in log.handlers):
        log.addHandler(logging.NullHandler())


def host_blocks_fast(ssh_config_class: type[paramiko.SSHConfig]) -> type[paramiko.SSHConfig]:
    """paramiko's lookup asks getpass.getuser() (four environment reads, maybe the passwd file)
    for every block of the config, even a Host block with no Match line: two thirds of the
    lookup's time, ~1 ms per target with a 50-host config. Blocks without Match lines skip it;
    the rest are paramiko's own rules.

    Relies on: SSHConfig._lookup asking self._does_match(match_list, ...) for each block."""

    class SSHConfig(ssh_config_class):  # type: ignore[valid-type,misc]
        def _does_match(self, match_list: list[Any], *args: Any, **kwargs: Any) -> Any:
            return bool(match_list) and super()._does_match(match_list, *args, **kwargs)

    return SSHConfig


def tuned_transport(
    sock: Any,
    disabled_algorithms: dict[str, list[str]] | None = None,
    *,
    kex_algorithms: str | None = None,
) -> paramiko.Transport:
    """A client Transport offering AES-GCM first and ECDH P-256 before curve25519 (see
    algorithms.py), or the KexAlgorithms of ~/.ssh/config; for SSHClient.connect's
    transport_factory (bind kex_algorithms with functools.partial).

    Relies on: SSHClient.connect calling transport_factory(sock, disabled_algorithms=...), and
    the SecurityOptions of get_security_options() setting what the KEXINIT offers."""
    import paramiko

    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    options.ciphers = cipher_order(tuple(options.ciphers))
    options.kex = kex_order(tuple(options.kex), kex_algorithms)
    return transport


def share_host_keys(client: paramiko.SSHClient, keys: paramiko.HostKeys) -> None:
    """Gives `client` the known_hosts keys parsed once per process for every node (instead of
    once per connection), as its read-only "system" keys.

    Relies on: SSHClient keeping those keys in `_system_host_keys` (no public setter) and
    checking the server's key against them in connect."""
    client._system_host_keys = keys  # type: ignore[attr-defined]


def read_all(receive: Callable[[int], bytes]) -> bytes:
    """Everything a channel sends, read with `receive` (Channel.recv or recv_stderr) in 64 KiB
    pieces until EOF: no file object (Channel.makefile) and its line buffering in between.

    Relies on: a paramiko Channel's recv returning b"" once the other side closed its output."""
    chunks: list[bytes] = []
    while True:
        chunk = receive(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)  # Linux only


class QuickAckSocket(socket.socket):
    """Acknowledges what it receives at once. sshd sends small packets without TCP_NODELAY, so
    after USERAUTH_SUCCESS it holds its next packet until that one is acknowledged; with the
    kernel's delayed ACK the first channel of every connection then waited 40 ms. The flag does
    not stick (the kernel leaves quick-ack mode on its own), hence once per read.

    Relies on: paramiko's Packetizer reading with sock.recv (not recv_into), and CPython letting
    a socket.socket subclass adopt a connected socket's file descriptor (fileno=)."""

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)  # type: ignore[arg-type]
        return super().recv(size, flags)


def quick_acks(sock: socket.socket, timeout: float) -> socket.socket:
    """`sock`, connected, as a QuickAckSocket (as it is where the platform has no quick ACKs)."""
    if TCP_QUICKACK is None:
        return sock
    quick = QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    return quick
