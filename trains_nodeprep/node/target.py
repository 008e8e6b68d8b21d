"""A node as named on the command line (`[user@]host[:port]`), and how to reach it over SSH."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..errors import UsageError


@dataclass(frozen=True)
class Target:
    """`[user@]host[:port]` as given on the command line ([v6] addresses in brackets)."""

    host: str
    user: str | None = None
    port: int | None = None

    @property
    def label(self) -> str:
        user = f"{self.user}@" if self.user else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        port = f":{self.port}" if self.port else ""
        return f"{user}{host}{port}"


_TARGET = re.compile(
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
    r"(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))"
    r"(?::(?P<port>\d{1,5}))?$"
)


def parse_target(text: str) -> Target:
    match = _TARGET.match(text.strip())
    if not match:
        raise UsageError(f"--host {text!r}: expected [user@]host[:port], e.g. admin@node1:22")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise UsageError(f"--host {text!r}: port {port} is out of range 1-65535")
    return Target(host=match["v6"] or match["host"], user=match["user"], port=port)


@dataclass(frozen=True)
class SSHOptions:
    """The command line's SSH options, shared by every node of a run."""

    user: str | None = None  # for targets without user@
    port: int | None = None  # for targets without :port
    identity_files: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    accept_new_host_keys: bool = False
    sudo_password: str | None = field(default=None, repr=False)
