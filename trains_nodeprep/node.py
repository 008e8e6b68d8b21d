"""The transport: run a script as root on a node, over SSH or locally.

This is the only module that imports paramiko, and it imports it lazily so that
`--help` and `--local` never pay for them. Every remote command is an argv list, quoted
once here. A sudo password travels on the command's stdin only: never in argv or output.
"""

from __future__ import annotations

import functools
import io
import os
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConnectionFailed, UsageError
from .ssh_algorithms import UnusableKexAlgorithms, cipher_order, kex_order

SUDO_PASSWORD_ENV = "TRAINS_NODEPREP_SUDO_PASSWORD"


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
    r"^(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?:\[(?P<v6>[0-9A-Fa-f:.]+)\]|(?P<host>[A-Za-z0-9._-]+))(?::(?P<port>\d{1,5}))?$"
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
        return ConnectionFailed(
            f"{label}: sudo asks {user} for a password; pass --ask-sudo-password or set {SUDO_PASSWORD_ENV}"
        )
    if "incorrect password" in text or "Sorry, try again" in text:
        return ConnectionFailed(
            f"{label}: sudo refused the password for {user}; check --ask-sudo-password / {SUDO_PASSWORD_ENV}"
        )
    if (
        "is not in the sudoers file" in text
        or "is not allowed to execute" in text
        or "may not run sudo" in text
    ):
        return ConnectionFailed(
            f"{label}: {user} may not run commands as root with sudo; log in as root or grant sudo rights"
        )
    if result.exit_status == 127 and "sudo" in text:
        return ConnectionFailed(
            f"{label}: sudo is not installed and {user} is not root; log in as root (--user root)"
        )
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
        stdin = (
            (self.sudo_password + "\n").encode()
            if self.sudo_password is not None and self.user != "root"
            else b""
        )
        try:
            done = subprocess.run(argv, input=stdin + payload, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise ConnectionFailed(
                f"localhost: a command did not finish within {timeout:.0f} s"
            ) from err
        result = Result(done.returncode, done.stdout, done.stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, self.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        pass


class SSHNode:
    """A node reached over SSH with paramiko; one connection (and its hops) for every command."""

    def __init__(self, target: Target, options: SSHOptions) -> None:
        self.target = target
        self.options = options
        self.label = target.label
        self.exec_count = 0
        self._clients: list = []  # the ProxyJump hops' clients, then the node's; closed in reverse
        # Resolved here, in the main thread: ~/.ssh/config is parsed once per process. A bad entry
        # fails this node when it connects, not the others.
        self._route_error: ConnectionFailed | None = None
        try:
            self.route = resolve_route(target, options)
        except ConnectionFailed as err:
            self.route, self._route_error = (), err

    @property
    def user(self) -> str:
        return self.route[-1].user if self.route else self.target.user or self.options.user or ""

    def names(self) -> set[str]:
        """The target as given, its ~/.ssh/config HostName, and their addresses."""
        names = {self.target.host} | {hop.hostname for hop in self.route[-1:]}
        return names | _addresses_of(names)

    def _connect(self):
        if self._clients:
            return self._clients[-1]
        if self._route_error is not None:
            raise self._route_error
        for attempt in (1, 2):
            try:
                self._clients = _open_route(self.route, self.options, self.label)
                break
            except _TransientSSHError:
                # A busy sshd may drop a login mid-handshake; one more try before calling the node unreachable.
                if attempt == 2:
                    raise
                time.sleep(1)
        return self._clients[-1]

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """`payload` reaches the script on stdin, after the sudo password line if there is one."""
        client = self._connect()
        command = shlex.join(root_argv(script, self.user, self.options.sudo_password))
        self.exec_count += 1
        try:
            channel = client.get_transport().open_session(timeout=self.options.connect_timeout)
            channel.settimeout(timeout)
            channel.exec_command(command)
            if self.options.sudo_password is not None and self.user != "root":
                channel.sendall((self.options.sudo_password + "\n").encode())
            if payload:
                channel.sendall(payload)
            channel.shutdown_write()
            stdout = _read_all(channel.recv)
            stderr = _read_all(channel.recv_stderr)
            status = channel.recv_exit_status()
            channel.close()
        except TimeoutError as err:
            raise ConnectionFailed(
                f"{self.label}: no answer within {timeout:.0f} s; the node may be overloaded or the connection dropped"
            ) from err
        except (OSError, EOFError) as err:
            raise ConnectionFailed(
                f"{self.label}: the SSH connection dropped ({err or type(err).__name__}); run again once the node is reachable"
            ) from err
        result = Result(status, stdout, stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, self.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        _close_all(self._clients)
        self._clients = []


@dataclass(frozen=True)
class Hop:
    """One SSH login on the way to a node (ProxyJump hosts first, the node last), as ~/.ssh/config resolves it."""

    host: str  # as written
    hostname: str
    port: int
    user: str
    identity_files: tuple[str, ...]
    known_hosts: tuple[tuple[Path, ...], Path]  # files to trust keys from; the one new keys go to
    proxy_command: str | None = (
        None  # used for the first hop only (later hops go through the one before)
    )
    kex_algorithms: str | None = None  # KexAlgorithms, as written


def resolve_route(target: Target, options: SSHOptions) -> tuple[Hop, ...]:
    """The node and its ProxyJump hops from ~/.ssh/config and /etc/ssh/ssh_config, like ssh:
    the command line wins, then the first value found; ProxyJump wins over ProxyCommand. A hop is
    resolved from its own Host entry (HostName, User, Port, IdentityFile, ProxyCommand for the
    first), without its own ProxyJump."""
    settings = _lookup(target.host, target.label)
    node = _hop(
        target.host,
        target.user or options.user,
        target.port or options.port,
        options.identity_files,
        target.label,
        settings,
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
                f"{target.label}: ProxyJump {jump.strip()!r} in ~/.ssh/config is not [user@]host[:port]; fix that line"
            ) from err
        hops.append(
            _hop(
                hop_target.host,
                hop_target.user,
                hop_target.port,
                (),
                target.label,
                _lookup(hop_target.host, target.label),
            )
        )
    return (*hops, node)


def _hop(
    host: str,
    user: str | None,
    port: int | None,
    identity_files: tuple[str, ...],
    label: str,
    settings: dict,
) -> Hop:
    """`settings`: the host's ~/.ssh/config entry (_lookup)."""
    import getpass

    try:
        config_port = int(settings.get("port", 22))
    except ValueError:
        raise ConnectionFailed(
            f"{label}: Port {settings['port']!r} for {host} in ~/.ssh/config is not a number; fix that line"
        ) from None
    proxy_command = settings.get("proxycommand")
    return Hop(
        host=host,
        hostname=settings.get("hostname", host),
        port=port or config_port,
        user=user or settings.get("user") or getpass.getuser(),
        identity_files=tuple(identity_files) + tuple(settings.get("identityfile", ())),
        known_hosts=_known_hosts_files(settings),
        proxy_command=None
        if proxy_command is None or proxy_command.strip().lower() == "none"
        else proxy_command,
        kex_algorithms=settings.get("kexalgorithms"),
    )


def _lookup(host: str, label: str) -> dict:
    try:
        return dict(_ssh_config().lookup(host))
    except (
        Exception
    ) as err:  # paramiko raises several types for one bad line (e.g. Match exec needs invoke)
        raise ConnectionFailed(
            f"{label}: cannot use ~/.ssh/config for {host} ({err or type(err).__name__}); fix or remove that entry"
        ) from err


SSH_CONFIG_FILES = (Path("~/.ssh/config"), Path("/etc/ssh/ssh_config"))


@functools.cache
def _ssh_config():
    """~/.ssh/config, then /etc/ssh/ssh_config: parsed once per process (the first value found wins)."""
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
    paramiko = _import_paramiko(needs_invoke=any(MATCH_EXEC.search(text) for text in texts))
    config = _host_blocks_fast(paramiko.SSHConfig)()
    for text in texts:
        config.parse(io.StringIO(text))
    return config


def _host_blocks_fast(ssh_config_class):
    """paramiko's lookup asks getpass.getuser() (four environment reads, maybe the passwd file)
    for every block of the config, even a Host block with no Match line: two thirds of the
    lookup's time, ~1 ms per target with a 50-host config. Blocks without Match lines skip it;
    the rest are paramiko's own rules."""

    class SSHConfig(ssh_config_class):
        def _does_match(self, match_list, *args, **kwargs):
            return bool(match_list) and super()._does_match(match_list, *args, **kwargs)

    return SSHConfig


MATCH_EXEC = re.compile(r"^\s*match\b.*\bexec\b", re.IGNORECASE | re.MULTILINE)


def _import_paramiko(needs_invoke: bool):
    """paramiko imports invoke (~70 ms of start-up: asyncio, yaml, unittest.mock) only to run the
    `Match exec` lines of an ssh config, and does without it when it is missing; so unless the
    config has such a line, paramiko is imported as if invoke were not installed."""
    if "paramiko" in sys.modules or needs_invoke or "invoke" in sys.modules:
        import paramiko
    else:
        sys.modules["invoke"] = (
            None  # makes `import invoke` raise ImportError, which paramiko expects
        )
        try:
            import paramiko
        finally:
            del sys.modules["invoke"]
    _silence(paramiko)
    return paramiko


def _silence(paramiko) -> None:
    """paramiko's transport threads log what breaks a connection, with tracebacks; with no
    handler configured Python prints those on stderr. The node's one-line error says it instead."""
    import logging

    log = logging.getLogger(paramiko.__name__)
    if not any(isinstance(handler, logging.NullHandler) for handler in log.handlers):
        log.addHandler(logging.NullHandler())


def _open_route(route: tuple[Hop, ...], options: SSHOptions, label: str) -> list:
    """Logged-in clients along the route: each hop's connection carries the next (direct-tcpip)."""
    clients: list = []
    try:
        for previous, hop in zip((None, *route), route, strict=False):
            if clients:
                try:
                    sock = (
                        clients[-1]
                        .get_transport()
                        .open_channel(
                            "direct-tcpip",
                            (hop.hostname, hop.port),
                            ("", 0),
                            timeout=options.connect_timeout,
                        )
                    )
                except Exception as err:  # paramiko.ChannelException, SSHException, socket errors
                    raise ConnectionFailed(
                        f"{label}: the jump host {previous.host} could not reach {hop.hostname}:{hop.port} ({err}); check ProxyJump"
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


def _start_proxy_command(command: str, label: str):
    import paramiko

    try:
        return paramiko.ProxyCommand(command)
    except (paramiko.SSHException, OSError, ValueError) as err:
        raise ConnectionFailed(
            f"{label}: cannot start the ProxyCommand {command!r} from ~/.ssh/config ({err}); fix that line"
        ) from err


def _login(hop: Hop, sock, options: SSHOptions, label: str):
    import paramiko

    client = paramiko.SSHClient()
    # paramiko has no public setter for the read-only "system" keys: share the parsed set.
    client._system_host_keys = _trusted_host_keys(hop.known_hosts[0])
    client.set_missing_host_key_policy(
        _host_key_policy(hop.known_hosts[1], options.accept_new_host_keys)
    )
    try:
        client.connect(
            hop.hostname,
            port=hop.port,
            username=hop.user,
            key_filename=list(hop.identity_files) or None,
            timeout=options.connect_timeout,
            banner_timeout=options.connect_timeout,
            auth_timeout=options.connect_timeout,
            sock=sock,
            transport_factory=functools.partial(
                _tuned_transport, kex_algorithms=hop.kex_algorithms
            ),
        )
    except UnusableKexAlgorithms as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: {err}, in ~/.ssh/config for {hop.host}; fix that line"
        ) from err
    except UnknownHostKey as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: unknown host key ({err.fingerprint}) from {hop.hostname}; verify it, then add it to known_hosts "
            f"(ssh-keyscan {hop.hostname} >> ~/.ssh/known_hosts) or pass --accept-new-host-keys"
        ) from err
    except paramiko.BadHostKeyException as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: HOST KEY CHANGED for {hop.hostname}, possible man-in-the-middle; if the node was reinstalled, remove the old key "
            f"with ssh-keygen -R {hop.hostname}"
        ) from err
    except paramiko.AuthenticationException as err:
        client.close()
        raise ConnectionFailed(
            f"{label}: authentication refused for user {hop.user} on {hop.hostname}; check --user and --identity (or your ssh agent)"
        ) from err
    except (paramiko.SSHException, OSError, EOFError) as err:
        client.close()
        through = (
            " through the ProxyCommand of ~/.ssh/config"
            if isinstance(sock, paramiko.ProxyCommand)
            else ""
        )
        raise _TransientSSHError(
            f"{label}: SSH connection to {hop.hostname}:{hop.port}{through} failed ({err or type(err).__name__}); check the address, port and sshd{through and ', and that command'}"
        ) from err
    return client


def _tuned_transport(sock, disabled_algorithms=None, *, kex_algorithms: str | None = None):
    import paramiko

    transport = paramiko.Transport(sock, disabled_algorithms=disabled_algorithms)
    options = transport.get_security_options()
    options.ciphers = cipher_order(tuple(options.ciphers))
    options.kex = kex_order(tuple(options.kex), kex_algorithms)
    return transport


def _close_all(clients: list) -> None:
    for client in reversed(clients):
        client.close()


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


class _QuickAckSocket(socket.socket):
    """Acknowledges what it receives at once. sshd sends small packets without TCP_NODELAY, so
    after USERAUTH_SUCCESS it holds its next packet until that one is acknowledged; with the
    kernel's delayed ACK the first channel of every connection then waited 40 ms. The flag does
    not stick (the kernel leaves quick-ack mode on its own), hence once per read."""

    def recv(self, size: int, flags: int = 0) -> bytes:
        self.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 1)
        return super().recv(size, flags)


TCP_QUICKACK = getattr(socket, "TCP_QUICKACK", None)  # Linux only


def _open_socket(host: str, port: int, timeout: float, label: str) -> socket.socket:
    """Connect ourselves to set TCP_NODELAY: paramiko does not, and each small packet then waits ~40 ms."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except socket.gaierror as err:
        raise ConnectionFailed(
            f"{label}: cannot resolve host name {host!r}; check the name or use an IP address"
        ) from err
    except TimeoutError as err:
        raise ConnectionFailed(
            f"{label}: no answer from {host}:{port} within {timeout:.0f} s; check the address, port and firewall"
        ) from err
    except OSError as err:
        raise ConnectionFailed(
            f"{label}: cannot connect to {host}:{port} ({err.strerror or err}); check that sshd runs there"
        ) from err
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if TCP_QUICKACK is None:
        return sock
    quick = _QuickAckSocket(sock.family, sock.type, sock.proto, fileno=sock.detach())
    quick.settimeout(timeout)
    return quick


class _TransientSSHError(ConnectionFailed):
    """The SSH handshake broke off (not a refused key or login): worth one more try."""


class UnknownHostKey(Exception):
    def __init__(self, fingerprint: str) -> None:
        super().__init__(fingerprint)
        self.fingerprint = fingerprint


def _known_hosts_files(ssh_config: dict) -> tuple[tuple[Path, ...], Path]:
    """Files to trust keys from, and the one new keys are added to (ssh's UserKnownHostsFile)."""
    user_files = [
        Path(os.path.expanduser(p))
        for p in " ".join(
            ssh_config.get("userknownhostsfile", "~/.ssh/known_hosts").split()
        ).split()
    ]
    global_files = [
        Path(p) for p in ssh_config.get("globalknownhostsfile", "/etc/ssh/ssh_known_hosts").split()
    ]
    return tuple(user_files + global_files), user_files[0]


def _host_key_policy(add_to: Path, accept_new: bool):
    """Trust known_hosts only (paramiko's SSHClient raises on a changed key before asking this);
    with accept_new, record a new key, as ssh's StrictHostKeyChecking=accept-new does."""
    import base64
    import hashlib

    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(self, client, hostname, key):
            digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
            fingerprint = f"{key.get_name()} SHA256:{digest}"
            if not accept_new:
                raise UnknownHostKey(fingerprint)
            client.get_host_keys().add(hostname, key.get_name(), key)
            add_to.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _host_keys_lock, open(add_to, "a", encoding="ascii") as handle:
                os.chmod(add_to, 0o600)
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

    return Policy()


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
