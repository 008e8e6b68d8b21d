"""What the engine uses of a node (the `Node` protocol), and what a command on it returns."""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# Hears what a node is doing now ("reading facts", "applying", ...): set by runner.for_each_node.
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Result:
    exit_status: int
    output: bytes  # stdout as sent: the facts end in a binary archive
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0

    @property
    def stdout(self) -> str:
        return self.output.decode("utf-8", errors="replace")


@runtime_checkable
class Node(Protocol):
    """A machine the engine reads and changes: SSHNode, LocalNode, or a fake in unit tests."""

    progress: Progress | None  # set by for_each_node; None until then

    @property
    def label(self) -> str:
        """How reports and errors name the node (the --host as given, or localhost)."""
        ...

    @property
    def user(self) -> str:
        """The login user; not root means every command goes through sudo."""
        ...

    @property
    def exec_count(self) -> int:
        """Commands sent so far (reported as remote_commands: check 1, a changing run 2)."""
        ...

    def names(self) -> set[str]:
        """Names and addresses the node goes by, to find it among the cluster's nodes."""
        ...

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """Runs `script` with sh as root; `payload` reaches it on stdin. Raises ConnectionFailed
        when the node cannot be reached or sudo refuses, not when the script fails."""
        ...

    def close(self) -> None: ...


def with_addresses(names: set[str]) -> set[str]:
    """`names` and the IPv4 addresses they resolve to (names that do not resolve are kept)."""
    addresses = set()
    for name in names:
        try:
            addresses.add(socket.gethostbyname(name))
        except OSError:
            pass
    return names | addresses
