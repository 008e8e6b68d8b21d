"""A node over SSH with paramiko: one connection (through its ProxyJump hops or ProxyCommand)
for every command of a run, strict host-key checking, sudo when the login is not root.

paramiko is imported lazily (tweaks.import_paramiko) so that `--help` and `--local` never pay for
it. Every remote command is an argv list, quoted once here with shlex.join.
"""

from __future__ import annotations

import functools
import shlex
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConnectionFailed
from .algorithms import UnusableKexAlgorithms
from .base import Progress, Result, with_addresses
from .host_keys import UnknownHostKey, host_key_policy, trusted_host_keys
from .ssh_config import Hop, Settings, parse_ssh_config, resolve_route
from .sudo import password_line, root_argv, sudo_failure
from .target import SSHOptions, Target
from .tweaks import quick_acks, read_all, share_host_keys, tuned_transport

if TYPE_CHECKING:
    import paramiko

SSH_CONFIG_FILES = (Path("~/.ssh/config"), Path("/etc/ssh/ssh_config"))


class SSHNode:
    """A node reached over SSH with paramiko; one connection (and its hops) for every command."""

    def __init__(self, target: Target, options: SSHOptions) -> None:
        self.target = target
        self.options = options
        self.label = target.label
        self.exec_count = 0
        self.progress: Progress | None = None
        # the ProxyJump hops' clients, then the node's; closed in reverse
        self._clients: list[paramiko.SSHClient] = []
        # Resolved here, in the main thread: ~/.ssh/config is parsed once per process. A bad entry
        # fails this node when it connects, not the others.
        self._route_error: ConnectionFailed | None = None
        self.route: tuple[Hop, ...]
        try:
            self.route = resolve_route(target, options, _lookup, _local_user)
        except ConnectionFailed as err:
            self.route, self._route_error = (), err

    @property
    def user(self) -> str:
        return self.route[-1].user if self.route else self.target.user or self.options.user or ""

    def names(self) -> set[str]:
        """The target as given, its ~/.ssh/config HostName, and their addresses."""
        return with_addresses({self.target.host} | {hop.hostname for hop in self.route[-1:]})

    def _connect(self) -> paramiko.SSHClient:
        if self._clients:
            return self._clients[-1]
        if self._route_error is not None:
            raise self._route_error
        for attempt in (1, 2):
            try:
                self._clients = _open_route(self.route, self.options, self.label)
                break
            except _TransientSSHError:
                # A busy sshd may drop a login mid-handshake: one more try before calling the
                # node unreachable.
                if attempt == 2:
                    raise
                time.sleep(1)
        return self._clients[-1]

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """`payload` reaches the script on stdin, after the sudo password line if there is one."""
        client = self._connect()
        command = shlex.join(root_argv(script, self.user, self.options.sudo_password))
        stdin = password_line(self.user, self.options.sudo_password) + payload
        self.exec_count += 1
        try:
            channel = _transport(client).open_session(timeout=self.options.connect_timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if stdin:
                channel.sendall(stdin)
            channel.shutdown_write()
            stdout = read_all(channel.recv)
            stderr = read_all(channel.recv_stderr)
            status = channel.recv_exit_status()
            channel.close()
        except TimeoutError as err:
            raise ConnectionFailed(
                f"{self.label}: no answer within {timeout:.0f} s; "
                "the node may be overloaded or the connection dropped"
            ) from err
        except (OSError, EOFError) as err:
            raise ConnectionFailed(
                f"{self.label}: the SSH connection dropped ({err or type(err).__name__}); "
                "run again once the node is reachable"
            ) from err
        result = Result(status, stdout, stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, self.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        _close_all(self._clients)
        self._clients = []


@functools.cache
def _ssh_config() -> paramiko.SSHConfig:
    """SSH_CONFIG_FILES, parsed once per process (the first value found wins)."""
    texts = []
    for path in SSH_CONFIG_FILES:
        try:
            texts.append(path.expanduser().read_text(encoding="utf-8", errors="replace"))
        except FileNotFoundError:
            pass
        except OSError as err:
            raise ConnectionFailed(
                f"cannot read {path} ({err.strerror or err}); fix its permissions or move it away"
            ) from err
    return parse_ssh_config(texts)


def _lookup(host: str) -> Settings:
    # Reads the files on first use, inside resolve_route: an unreadable or unparsable config
    # becomes that node's one-line error.
    return _ssh_config().lookup(host)


def _local_user() -> str:
    import getpass

    return getpass.getuser()


def _transport(client: paramiko.SSHClient) -> paramiko.Transport:
    transport = client.get_transport()
    assert transport is not None, "used after close()"
    return transport


def _open_route(route: tuple[Hop, ...], options: SSHOptions, label: str) -> list[Any]:
    """Logged-in clients along the route: each hop's connection carries the next (direct-tcpip)."""
    clients: list[paramiko.SSHClient] = []
    try:
        for previous, hop in zip((None, *route), route, strict=False):
            sock: Any
            if previous is not None:
                try:
                    sock = _transport(clients[-1]).open_channel(
                        "direct-tcpip",
                        (hop.hostname, hop.port),
                        ("", 0),
                        timeout=options.connect_timeout,
                    )
                except Exception as err:  # paramiko.ChannelException, SSHException, socket errors
                    raise ConnectionFailed(
                        f"{label}: the jump host {previous.host} could not reach "
                        f"{hop.hostname}:{hop.port} ({err}); check ProxyJump"
                    ) from err
            elif hop.proxy_command:
                sock = _start_proxy_command(hop.proxy_command, label)
            else:
                sock = _open_socket(hop.hostname, hop.port, options.connect_timeout, label)
            clients.append(_login(hop, sock, options, label))
    except BaseException:
        _close_all(clients)
        raise
    return clients


def _start_proxy_command(command: str, label: str) -> paramiko.ProxyCommand:
    import paramiko

    try:
        return paramiko.ProxyCommand(command)
    except (paramiko.SSHException, OSError, ValueError) as err:
        raise ConnectionFailed(
            f"{label}: cannot start the ProxyCommand {command!r} from ~/.ssh/config ({err}); "
            "fix that line"
        ) from err


def _login(hop: Hop, sock: Any, options: SSHOptions, label: str) -> paramiko.SSHClient:
    import paramiko

    client = paramiko.SSHClient()
    share_host_keys(client, trusted_host_keys(hop.known_hosts[0]))
    client.set_missing_host_key_policy(
        host_key_policy(hop.known_hosts[1], options.accept_new_host_keys)
    )
    try:
        client.connect(
            hop.hostname,
            port=hop.port,
            username=hop.user,
            # a list is fine (paramiko's docs: "str or list(str)"; its stubs say str)
            key_filename=list(hop.identity_files) or None,  # type: ignore[arg-type]
            timeout=options.connect_timeout,
            banner_timeout=options.connect_timeout,
            auth_timeout=options.connect_timeout,
            sock=sock,
            transport_factory=functools.partial(tuned_transport, kex_algorithms=hop.kex_algorithms),
        )
    except UnusableKexAlgorithms as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: {err}, in ~/.ssh/config for {hop.host}; fix that line"
        ) from err
    except UnknownHostKey as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: unknown host key ({err.fingerprint}) from {hop.hostname}; verify it, then "
            f"add it to known_hosts (ssh-keyscan {hop.hostname} >> ~/.ssh/known_hosts) "
            "or pass --accept-new-host-keys"
        ) from err
    except paramiko.BadHostKeyException as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: HOST KEY CHANGED for {hop.hostname}, possible man-in-the-middle; if the "
            f"node was reinstalled, remove the old key with ssh-keygen -R {hop.hostname}"
        ) from err
    except paramiko.AuthenticationException as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: authentication refused for user {hop.user} on {hop.hostname}; "
            "check --user and --identity (or your ssh agent)"
        ) from err
    except (paramiko.SSHException, OSError, EOFError) as err:
        client.close()
        through = (
            " through the ProxyCommand of ~/.ssh/config"
            if isinstance(sock, paramiko.ProxyCommand)
            else ""
        )
        raise _TransientSSHError(
            f"{label}: SSH connection to {hop.hostname}:{hop.port}{through} failed "
            f"({err or type(err).__name__}); check the address, port and sshd"
            f"{through and ', and that command'}"
        ) from err
    return client


def _close_all(clients: list[paramiko.SSHClient]) -> None:
    for client in reversed(clients):
        client.close()


def _open_socket(host: str, port: int, timeout: float, label: str) -> socket.socket:
    """Connect ourselves to set TCP_NODELAY (paramiko does not, and each small packet then waits
    ~40 ms) and to acknowledge at once (tweaks.QuickAckSocket)."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as err:
        raise ConnectionFailed(
            f"{label}: cannot resolve host name {host!r}; check the name or use an IP address"
        ) from err
    except TimeoutError as err:
        raise ConnectionFailed(
            f"{label}: no answer from {host}:{port} within {timeout:.0f} s; "
            "check the address, port and firewall"
        ) from err
    except OSError as err:
        raise ConnectionFailed(
            f"{label}: cannot connect to {host}:{port} ({err.strerror or err}); "
            "check that sshd runs there"
        ) from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return quick_acks(sock, timeout)


class _TransientSSHError(ConnectionFailed):
    """The SSH handshake broke off (not a refused key or login): worth one more try."""
