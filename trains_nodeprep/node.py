"""The transport: run a script as root on a node, over SSH or locally.

This is the only module that imports fabric/paramiko, and it imports them lazily so that
`--help` and `--local` never pay for them. Every remote command is an argv list, quoted
once here. A sudo password travels on the command's stdin only: never in argv or output.
"""

from __future__ import annotations

import functools
import os
import re
import shlex
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConnectionFailed, UsageError

SUDO_PASSWORD_ENV = "TRAINS_NODEPREP_SUDO_PASSWORD"


@dataclass(frozen=True)
class Result:
    exit_status: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_status == 0


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


_TARGET = re.compile(r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d{1,5}))?$")


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
    user: str | None = None
    port: int | None = None
    identity_files: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    accept_new_host_keys: bool = False
    sudo_password: str | None = field(default=None, repr=False)


def root_argv(script: str, user: str, sudo_password: str | None) -> list[str]:
    """The argv that runs `script` as root for a login as `user`."""
    if user == "root":
        return ["sh", "-c", script]
    if sudo_password is not None:
        # -k: ignore cached credentials, so sudo always reads the password line we send.
        return ["sudo", "-k", "-S", "-p", "", "--", "sh", "-c", script]
    return ["sudo", "-n", "--", "sh", "-c", script]


def sudo_failure(result: Result, label: str, user: str) -> ConnectionFailed | None:
    """A clear error when sudo itself (not the script) refused to run."""
    if result.ok:
        return None
    text = result.stderr
    if "a password is required" in text:
        return ConnectionFailed(f"{label}: sudo asks {user} for a password; pass --ask-sudo-password or set {SUDO_PASSWORD_ENV}")
    if "incorrect password" in text or "Sorry, try again" in text:
        return ConnectionFailed(f"{label}: sudo refused the password for {user}; check --ask-sudo-password / {SUDO_PASSWORD_ENV}")
    if "is not in the sudoers file" in text or "is not allowed to execute" in text or "may not run sudo" in text:
        return ConnectionFailed(f"{label}: {user} may not run commands as root with sudo; log in as root or grant sudo rights")
    if result.exit_status == 127 and "sudo" in text:
        return ConnectionFailed(f"{label}: sudo is not installed and {user} is not root; log in as root (--user root)")
    return None


class LocalNode:
    """This machine, without SSH (for cloud-init or a node's own shell)."""

    def __init__(self, sudo_password: str | None = None) -> None:
        import getpass

        self.user = getpass.getuser() if os.geteuid() != 0 else "root"
        self.label = "localhost"
        self.sudo_password = sudo_password
        self.exec_count = 0

    def names(self) -> set[str]:
        """Names and addresses this machine goes by, to match it with a Kubernetes node."""
        names = {socket.gethostname(), socket.getfqdn()}
        return names | _addresses_of(names)

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """`payload` reaches the script on stdin, after the sudo password line if there is one."""
        self.exec_count += 1
        argv = root_argv(script, self.user, self.sudo_password)
        stdin = (self.sudo_password + "\n").encode() if self.sudo_password is not None and self.user != "root" else b""
        try:
            done = subprocess.run(argv, input=stdin + payload, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise ConnectionFailed(f"localhost: a command did not finish within {timeout:.0f} s") from err
        result = Result(done.returncode, done.stdout.decode("utf-8", errors="replace"), done.stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, self.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        pass


class SSHNode:
    """A node reached over SSH with fabric/paramiko; one connection for every command."""

    def __init__(self, target: Target, options: SSHOptions) -> None:
        from fabric import Connection

        self.target = target
        self.options = options
        self.label = target.label
        self.exec_count = 0
        self._connection = None
        # Made here, in the main thread: building a Connection writes to the process's one fabric
        # Config (invoke merges it), which is not safe while other threads read it to connect.
        self._unopened = Connection(
            target.host,
            config=_fabric_config(),
            user=target.user or options.user,
            port=target.port or options.port,
            connect_timeout=int(options.connect_timeout),
            connect_kwargs={
                "key_filename": list(options.identity_files),
                "banner_timeout": options.connect_timeout,
                "auth_timeout": options.connect_timeout,
            },
        )

    @property
    def user(self) -> str:
        return self._connect().user

    def names(self) -> set[str]:
        """The target as given, its ~/.ssh/config HostName, and their addresses."""
        names = {self.target.host, self._unopened.host}
        return names | _addresses_of(names)

    def _connect(self):
        if self._connection is not None:
            return self._connection
        connection = self._unopened
        _secure_host_keys(connection, self.options.accept_new_host_keys)
        for attempt in (1, 2):
            if connection.gateway is None:
                connection.connect_kwargs["sock"] = _open_socket(connection.host, connection.port, self.options.connect_timeout, self.label)
            try:
                _open(connection, self.label)
                break
            except _TransientSSHError:
                # A busy sshd may drop a login mid-handshake; one more try before calling the node unreachable.
                connection.close()
                if attempt == 2:
                    raise
                time.sleep(1)
        self._connection = connection
        return connection

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """`payload` reaches the script on stdin, after the sudo password line if there is one."""
        connection = self._connect()
        command = shlex.join(root_argv(script, connection.user, self.options.sudo_password))
        self.exec_count += 1
        try:
            channel = connection.transport.open_session(timeout=self.options.connect_timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if self.options.sudo_password is not None and connection.user != "root":
                channel.sendall((self.options.sudo_password + "\n").encode())
            if payload:
                channel.sendall(payload)
            channel.shutdown_write()
            stdout = _read_all(channel.recv)
            stderr = _read_all(channel.recv_stderr)
            status = channel.recv_exit_status()
            channel.close()
        except (socket.timeout, TimeoutError) as err:
            raise ConnectionFailed(f"{self.label}: no answer within {timeout:.0f} s; the node may be overloaded or the connection dropped") from err
        except (OSError, EOFError) as err:
            raise ConnectionFailed(f"{self.label}: the SSH connection dropped ({err or type(err).__name__}); run again once the node is reachable") from err
        result = Result(status, stdout.decode("utf-8", errors="replace"), stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, connection.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


@functools.lru_cache(maxsize=None)
def _fabric_config():
    """One fabric Config per process: ~/.ssh/config and invoke's config files are read and parsed
    once, not once per node. Connections are built from it in the main thread only (SSHNode)."""
    import fabric

    return fabric.Config()


def _addresses_of(names: set[str]) -> set[str]:
    addresses = set()
    for name in names:
        try:
            addresses.add(socket.gethostbyname(name))
        except OSError:
            pass
    return addresses


def _read_all(receive) -> bytes:
    chunks = []
    while True:
        chunk = receive(65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _open_socket(host: str, port: int, timeout: float, label: str) -> socket.socket:
    """Connect ourselves to set TCP_NODELAY: paramiko does not, and each small packet then waits ~40 ms."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as err:
        raise ConnectionFailed(f"{label}: cannot resolve host name {host!r}; check the name or use an IP address") from err
    except (socket.timeout, TimeoutError) as err:
        raise ConnectionFailed(f"{label}: no answer from {host}:{port} within {timeout:.0f} s; check the address, port and firewall") from err
    except OSError as err:
        raise ConnectionFailed(f"{label}: cannot connect to {host}:{port} ({err.strerror or err}); check that sshd runs there") from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def _open(connection, label: str) -> None:
    import paramiko

    try:
        connection.open()
    except UnknownHostKey as err:
        raise ConnectionFailed(
            f"{label}: unknown host key ({err.fingerprint}); verify it, then add it to known_hosts "
            f"(ssh-keyscan {connection.host} >> ~/.ssh/known_hosts) or pass --accept-new-host-keys"
        ) from err
    except paramiko.BadHostKeyException as err:
        raise ConnectionFailed(
            f"{label}: HOST KEY CHANGED, possible man-in-the-middle; if the node was reinstalled, remove the old key "
            f"with ssh-keygen -R {connection.host}"
        ) from err
    except paramiko.AuthenticationException as err:
        raise ConnectionFailed(f"{label}: authentication refused for user {connection.user}; check --user and --identity (or your ssh agent)") from err
    except (paramiko.SSHException, OSError, EOFError) as err:
        raise _TransientSSHError(f"{label}: SSH connection failed ({err or type(err).__name__}); check the address, port and sshd") from err


class _TransientSSHError(ConnectionFailed):
    """The SSH handshake broke off (not a refused key or login): worth one more try."""


class UnknownHostKey(Exception):
    def __init__(self, fingerprint: str) -> None:
        super().__init__(fingerprint)
        self.fingerprint = fingerprint


def _known_hosts_files(ssh_config: dict) -> tuple[list[Path], Path]:
    """Files to trust keys from, and the one new keys are added to (ssh's UserKnownHostsFile)."""
    user_files = [Path(os.path.expanduser(p)) for p in " ".join(ssh_config.get("userknownhostsfile", "~/.ssh/known_hosts").split()).split()]
    global_files = [Path(p) for p in ssh_config.get("globalknownhostsfile", "/etc/ssh/ssh_known_hosts").split()]
    return user_files + global_files, user_files[0]


def _secure_host_keys(connection, accept_new: bool) -> None:
    """Undo fabric's auto-add: trust known_hosts only; optionally record new keys (never changed ones)."""
    import base64
    import hashlib

    import paramiko

    files, add_to = _known_hosts_files(connection.ssh_config)

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
            fingerprint = f"{key.get_name()} SHA256:{digest}"
            if not accept_new:
                raise UnknownHostKey(fingerprint)
            client.get_host_keys().add(hostname, key.get_name(), key)
            add_to.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with open(add_to, "a", encoding="ascii") as handle:
                os.chmod(add_to, 0o600)
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

    trusted = _trusted_host_keys(tuple(files))
    hop = connection
    while hop is not None and not isinstance(hop, str):
        # paramiko has no public setter for the read-only "system" keys: share the parsed set.
        hop.client._system_host_keys = trusted
        hop.client.set_missing_host_key_policy(Policy())
        hop = hop.gateway


_host_keys_cache: dict[tuple, object] = {}
_host_keys_lock = threading.Lock()


def _trusted_host_keys(files: tuple[Path, ...]):
    """known_hosts parsed once per process (and again only when a file changes), shared by every node."""
    import paramiko

    stamp = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else None) for p in files)
    with _host_keys_lock:
        if stamp not in _host_keys_cache:
            keys = paramiko.HostKeys()
            for path in files:
                if path.is_file():
                    try:
                        keys.load(str(path))
                    except (OSError, paramiko.SSHException):
                        pass  # an unreadable known_hosts trusts nothing; the connection is then refused
            _host_keys_cache.clear()
            _host_keys_cache[stamp] = keys
        return _host_keys_cache[stamp]
