"""~/.ssh/config resolution, pure: the config texts, a target and the command line's options in,
the route of SSH logins out (ProxyJump hops first, the node last), as ssh resolves it.

No file is read here: ssh.py reads ~/.ssh/config and /etc/ssh/ssh_config and passes their
texts, and the local user name on demand. (paramiko's lookup itself reads the environment for
its %u and ~ tokens.)
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailed, UsageError
from .target import SSHOptions, Target, parse_target
from .tweaks import host_blocks_fast, import_paramiko, needs_invoke

if TYPE_CHECKING:
    import paramiko

# One host's entry, as paramiko's SSHConfig.lookup gives it: lowercase keys, `identityfile` a
# list, every other value a string.
Settings = Mapping[str, Any]
Lookup = Callable[[str], Settings]


@dataclass(frozen=True)
class Hop:
    """One SSH login on the way to a node (ProxyJump hosts first, the node last), as
    ~/.ssh/config resolves it."""

    host: str  # as written
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: tuple[tuple[Path, ...], Path]  # files to trust keys from; the one new keys go to
    # used for the first hop only (later hops go through the one before)
    proxy_command: str | None = None
    kex_algorithms: str | None = None  # KexAlgorithms, as written


def parse_ssh_config(texts: Sequence[str]) -> paramiko.SSHConfig:
    """The config made of `texts`, most important first (~/.ssh/config, then
    /etc/ssh/ssh_config): for each setting the first value found wins."""
    paramiko = import_paramiko(needs_invoke=needs_invoke(texts))
    config = host_blocks_fast(paramiko.SSHConfig)()
    for text in texts:
        config.parse(io.StringIO(text))
    return config


def resolve_route(
    target: Target, options: SSHOptions, lookup: Lookup, local_user: Callable[[], str]
) -> tuple[Hop, ...]:
    """The node and its ProxyJump hops, like ssh: the command line wins, then the first value
    found; ProxyJump wins over ProxyCommand. A hop is resolved from its own Host entry (HostName,
    User, Port, IdentityFile, ProxyCommand for the first), without its own ProxyJump.

    `lookup(host)` is a parsed config's lookup; `local_user()` names the user for a hop that
    neither the command line nor the config gives one."""
    settings = _settings(lookup, target.host, target.label)
    node = hop(
        target.host,
        target.user or options.user,
        target.port or options.port,
        options.identity_files,
        target.label,
        settings,
        local_user,
    )
    jumps = settings.get("proxyjump", "none")
    if jumps.strip().lower() == "none":
        return (node,)
    hops = []
    for jump in jumps.split(","):
        try:
            hop_target = parse_target(jump.strip().removeprefix("ssh://"))
        except UsageError as err:
            raise ConnectionFailed(
                f"{target.label}: ProxyJump {jump.strip()!r} in ~/.ssh/config is not "
                "[user@]host[:port]; fix that line"
            ) from err
        hops.append(
            hop(
                hop_target.host,
                hop_target.user,
                hop_target.port,
                (),
                target.label,
                _settings(lookup, hop_target.host, target.label),
                local_user,
            )
        )
    return (*hops, node)


def hop(
    host: str,
    user: str | None,
    port: int | None,
    identity_files: tuple[str, ...],
    label: str,
    settings: Settings,
    local_user: Callable[[], str],
) -> Hop:
    """One login to `host`: `user`, `port` and `identity_files` from the command line (or the
    ProxyJump entry) first, then the host's `settings` (its ~/.ssh/config entry)."""
    try:
        config_port = int(settings.get("port", 22))
    except ValueError:
        raise ConnectionFailed(
            f"{label}: Port {settings['port']!r} for {host} in ~/.ssh/config is not a number; "
            "fix that line"
        ) from None
    proxy_command = settings.get("proxycommand")
    return Hop(
        host=host,
        hostname=settings.get("hostname", host),
        port=port or config_port,
        user=user or settings.get("user") or local_user(),
        identity_files=tuple(identity_files) + tuple(settings.get("identityfile", ())),
        known_hosts=known_hosts_files(settings),
        proxy_command=None
        if proxy_command is None or proxy_command.strip().lower() == "none"
        else proxy_command,
        kex_algorithms=settings.get("kexalgorithms"),
    )


def known_hosts_files(settings: Settings) -> tuple[tuple[Path, ...], Path]:
    """Files to trust keys from, and the one new keys are added to (ssh's UserKnownHostsFile)."""
    user_files = [
        Path(os.path.expanduser(p))
        for p in " ".join(settings.get("userknownhostsfile", "~/.ssh/known_hosts").split()).split()
    ]
    global_files = [
        Path(p) for p in settings.get("globalknownhostsfile", "/etc/ssh/ssh_known_hosts").split()
    ]
    return tuple(user_files + global_files), user_files[0]


def _settings(lookup: Lookup, host: str, label: str) -> Settings:
    try:
        return dict(lookup(host))
    except Exception as err:  # paramiko raises several types for one bad line (e.g. Match exec)
        raise ConnectionFailed(
            f"{label}: cannot use ~/.ssh/config for {host} ({err or type(err).__name__}); "
            "fix or remove that entry"
        ) from err
