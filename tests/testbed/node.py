"""TestNode: what every kind of test-bed node has, whatever its init (see README.md).

A node is one network namespace (an address on the bed's bridge) and a process tree in its
own mount, UTS and PID namespaces whose init is chosen by the kind (TiniNode, SystemdNode).
This class owns what does not depend on the init: the node's directory on the host, its
initial files, its SSH identity, running commands inside it (exec, read, write), docker and
runtime-wrapper helpers, and the kill-and-clean-up of stop(). A kind adds how the node boots
(_launch), when it is ready, and what stop() must remove besides."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .host import CLEAN_ENV, netns_pids, pid_alive, tail
from .layers import BED_USERS, HERE
from .network import NETNS_PREFIX, VETH_PREFIX, add_node_network, remove_node_network
from .testinfra_backend import strict_paramiko_backend

if TYPE_CHECKING:
    from .bed import TestBed

IMAGE = "tnp-busybox"
RLIMITS_RECORD = "/var/log/tnp-rlimits.jsonl"
UNLIMITED = 2**64 - 1
# Directories of the node kept on the host (NODE_DIR/<name>), mounted by node-common.sh:
# overlay upper/work dirs of /etc and /var, and the node's own /var/lib, /opt, /var/snap,
# /var/lib/docker, /var/lib/containerd and /var/log.
NODE_SUBDIRS = (
    "upper",
    "work",
    "var-upper",
    "var-work",
    "var-lib",
    "opt",
    "var-snap",
    "var-lib-docker",
    "var-lib-containerd",
    "var-log",
    "files",
)


def signed(v: int) -> int:
    """An rlimit as the runtime wrapper recorded it, with unlimited as -1."""
    return -1 if v >= UNLIMITED else int(v)


class TestNode:
    """One node of a bed; subclasses are the node kinds. Made by TestBed.add_node(name,
    kind=..., **options), which passes the kind's own options (e.g. docker=) to __init__."""

    __test__ = False  # not a pytest test class

    port = 22
    kind_name = "base"
    # nsenter options of exec(): the namespaces a command inside the node joins
    namespaces: tuple[str, ...] = ("-m", "-u", "-n", "-p")
    docker: bool = False

    def __init__(
        self, bed: TestBed, name: str, address: str, octet: int, *, known_host: bool
    ) -> None:
        self.bed = bed
        self.name = name
        self.address = address
        self.octet = octet
        self.known_host = known_host
        self.netns = NETNS_PREFIX + name
        self.veth = f"{VETH_PREFIX}{octet}"
        self.dir = bed.nodes_dir / name
        self.init_pid: int = 0  # pid of the process the bed started (host view)
        self.ns_pid: int = 0  # pid of the node's PID 1 (host view)
        self._popen: subprocess.Popen[bytes] | None = None
        self.start_seconds: float | None = None
        key = bed.keys / ("host_ed25519.pub" if known_host else "host_unknown_ed25519.pub")
        self.host_public_key = " ".join(key.read_text().split()[:2])

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address} docker={self.docker}>"

    @property
    def init_log(self) -> Path:
        return self.dir / "init.log"

    @property
    def log_dir(self) -> Path:
        """The node's /var/log, seen from the host."""
        return self.dir / "var-log"

    # ----------------------------------------------------------------- what a kind provides
    def default_files(self) -> dict[str, str | bytes]:
        """Initial files the kind puts in the node unless the caller gives the same path."""
        return {}

    def _prepare(self) -> None:
        """Kind-specific preparation of the node directory, before the network exists."""

    def _launch(self, t0: float) -> None:
        """Start the node's init (sets self._popen and self.init_pid) and wait until it is
        ready (sets self.ns_pid); NodeStartError if it does not come up."""
        raise NotImplementedError

    def _after_kill(self) -> None:
        """Remove what the kind made outside the node directory, once every process of
        the node is gone."""

    def _kill_init(self) -> None:
        """SIGKILL the node's processes; by default the process the bed started, whose
        death ends the whole PID namespace."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass

    # ----------------------------------------------------------------- start / stop
    def start(self, max_map_count: int, files: dict[str, str | bytes]) -> None:
        t0 = time.monotonic()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for sub in NODE_SUBDIRS:
            (self.dir / sub).mkdir(parents=True)
        for sub in ("var-log", "var-lib", "opt", "var-snap"):
            os.chmod(self.dir / sub, 0o755)
        (self.dir / "max_map_count").write_text(f"{int(max_map_count)}\n")
        if not self.known_host:
            (self.dir / "upper" / "ssh").mkdir()
            key = self.dir / "upper" / "ssh" / "ssh_host_ed25519_key"
            shutil.copyfile(self.bed.keys / "host_unknown_ed25519", key)
            os.chmod(key, 0o600)
            shutil.copyfile(
                self.bed.keys / "host_unknown_ed25519.pub",
                self.dir / "upper" / "ssh" / "ssh_host_ed25519_key.pub",
            )
        manifest = []
        for i, (path, content) in enumerate({**self.default_files(), **files}.items()):
            if not path.startswith("/") or "\n" in path:
                raise ValueError(f"bad node file path {path!r}")
            data = content.encode() if isinstance(content, str) else content
            (self.dir / "files" / str(i)).write_bytes(data)
            manifest.append(f"{i} 0644 {path}\n")
        (self.dir / "files" / "MANIFEST").write_text("".join(manifest))
        (self.dir / "node.env").write_text(
            f"NODE_NAME={shlex.quote(self.name)}\n"
            f"NODE_ADDRESS={self.address}\n"
            f"BED_DIR={shlex.quote(str(self.bed.workdir))}\n"
            f"DOCKER={1 if self.docker else 0}\n"
            f"BED_USERS={shlex.quote(' '.join(BED_USERS))}\n"
            # The Python that runs the tests, so `trains-nodeprep --local` can run inside a
            # node even when that Python lives where nodes have their own (pyenv below
            # /root)...
            f"PYTHON_PREFIX={shlex.quote(os.path.realpath(sys.base_prefix))}\n"
            # ... and the venv of the tests (CI clones below /tmp, which nodes hide too).
            f"VENV_PREFIX={shlex.quote(os.path.realpath(sys.prefix))}\n"
        )
        self._prepare()
        add_node_network(self.netns, self.veth, self.address)
        self._launch(t0)
        self.start_seconds = time.monotonic() - t0

    def _popen_init(self, argv: list[str], stdin: int) -> None:
        """Start argv (the node's init, in its network namespace) as a new session, its
        output in init.log."""
        with open(self.init_log, "wb") as log:
            self._popen = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", *argv],
                stdin=stdin,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
                cwd="/",
            )
        self.init_pid = self._popen.pid

    @staticmethod
    def init_script(name: str) -> str:
        """Path of a shell file of the bed (node-init.sh, ...)."""
        return str(HERE / name)

    def _ssh_banner(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Kill the node (all its processes), remove its netns, veth, what the kind made
        (cgroups of systemd nodes) and its directory."""
        self._kill_init()
        if self._popen is not None:
            try:
                self._popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = netns_pids(self.netns) if Path(f"/run/netns/{self.netns}").exists() else []
            if not pids and not (self.ns_pid and pid_alive(self.ns_pid)):
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"node {self.name}: processes still alive after SIGKILL")
        self._after_kill()
        if self._popen is not None and self._popen.stdin is not None:
            try:
                self._popen.stdin.close()
            except OSError:
                pass
        remove_node_network(self.netns, self.veth)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        self.init_pid = self.ns_pid = 0
        self.bed._node_gone(self)

    # ----------------------------------------------------------------- inside the node
    def exec(
        self,
        *argv: str,
        check: bool = True,
        input: bytes | str | None = None,
        text: bool = True,
        timeout: float | None = 120,
    ) -> subprocess.CompletedProcess[Any]:
        """Run argv as root inside the node (its mount/net/pid/uts namespaces).

        stdout/stderr are str (UTF-8, undecodable bytes replaced) unless text=False;
        input may be bytes or str. A clean environment (PATH with /usr/sbin, HOME=/root)."""
        if not self.ns_pid:
            raise RuntimeError(f"node {self.name} is not running")
        if isinstance(input, str):
            input = input.encode()
        cmd = [
            "nsenter",
            "-t",
            str(self.ns_pid),
            "-m",
            "-u",
            "-n",
            "-p",
            *self.namespaces,
            "--",
            *argv,
        ]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, timeout=timeout, env=CLEAN_ENV, cwd="/"
        )
        proc.args = list(argv)
        if text:
            proc.stdout = proc.stdout.decode(errors="replace")
            proc.stderr = proc.stderr.decode(errors="replace")
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, list(argv), proc.stdout, proc.stderr
            )
        return proc

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess[Any]:
        """exec("/bin/sh", "-c", script)"""
        return self.exec("/bin/sh", "-c", script, check=check)

    def read(self, path: str) -> bytes | None:
        proc = self.exec(
            "/bin/sh",
            "-c",
            'if [ -e "$1" ]; then exec cat -- "$1"; else exit 99; fi',
            "sh",
            path,
            check=False,
            text=False,
        )
        if proc.returncode == 99:
            return None
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, ["cat", path], proc.stdout, proc.stderr.decode(errors="replace")
            )
        return proc.stdout

    def write(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.exec(
            "/bin/sh",
            "-c",
            'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
            "sh",
            path,
            f"{mode:o}",
            input=data,
        )

    def max_map_count(self) -> int:
        return int(self.exec("cat", "/proc/sys/vm/max_map_count").stdout)

    def docker_pid(self) -> int | None:
        """pid (as seen in the node) of the running dockerd, or None."""
        out = self.exec(
            "/bin/sh",
            "-c",
            "for p in /proc/[0-9]*; do "
            '[ "$(cat $p/comm 2>/dev/null)" = dockerd ] || continue; '
            'grep -q "^State:.*Z" $p/status 2>/dev/null && continue; '
            "echo ${p#/proc/}; done",
            check=False,
        ).stdout.split()
        pids = sorted(int(p) for p in out)
        return pids[0] if pids else None

    def dockerd_argv(self) -> list[str] | None:
        pid = self.docker_pid()
        if pid is None:
            return None
        raw = self.read(f"/proc/{pid}/cmdline") or b""
        return [a.decode() for a in raw.split(b"\0") if a]

    def docker_restart(self) -> subprocess.CompletedProcess[Any]:
        """`service docker restart` inside the node, then wait until `docker info` answers."""
        proc = self.exec("service", "docker", "restart", check=False)
        self.wait_docker()
        return proc

    def wait_docker(self, timeout: float = 20.0) -> dict[str, Any]:
        """Wait until `docker info` answers; return a few of its fields."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.exec(
                "docker",
                "info",
                "--format",
                '{"LoggingDriver": {{json .LoggingDriver}}, '
                '"DefaultRuntime": {{json .DefaultRuntime}}}',
                check=False,
            )
            if proc.returncode == 0:
                return json.loads(proc.stdout)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker in {self.name} does not answer:\n"
                    f"{proc.stderr}\n--- docker.log:\n"
                    f"{tail(self.log_dir / 'docker.log')}"
                )
            time.sleep(0.1)

    def ensure_image(self) -> None:
        if self.exec("docker", "image", "inspect", IMAGE, check=False).returncode == 0:
            return
        self.exec("docker", "import", "-", IMAGE, input=self.bed.busybox_tar())

    def run_container(self, *docker_run_args: str) -> dict[str, tuple[int, int]]:
        """`docker run --rm tnp-busybox true`; the rlimits the runtime wrapper saw requested
        for it, e.g. {"RLIMIT_NOFILE": (1024, 65536)} (unlimited = -1; {} if none)."""
        info = self.wait_docker()
        self.ensure_image()
        cidfile = f"/tmp/tnp-cid-{uuid.uuid4().hex}"
        # journald (RHEL's default) cannot work without systemd-journald: log nothing then
        log = ["--log-driver", "none"] if info.get("LoggingDriver") == "journald" else []
        proc = self.exec(
            "docker",
            "run",
            "--rm",
            *log,
            "--cidfile",
            cidfile,
            *docker_run_args,
            IMAGE,
            "true",
            check=False,
        )
        cid = (self.read(cidfile) or b"").decode().strip()
        self.exec("rm", "-f", cidfile)
        if proc.returncode != 0:
            raise RuntimeError(
                f"docker run in {self.name} failed ({proc.returncode}): "
                f"{proc.stderr}\n--- docker.log:\n{tail(self.log_dir / 'docker.log')}"
            )
        for rec in reversed(self.rlimit_records()):
            if rec.get("id") == cid:
                return {
                    rl["type"]: (signed(rl["soft"]), signed(rl["hard"]))
                    for rl in rec.get("rlimits") or []
                }
        raise RuntimeError(
            f"no rlimit record for container {cid} in {RLIMITS_RECORD}"
            f" (runtime errors: {tail(self.log_dir / 'tnp-runtime.err')})"
        )

    def rlimit_records(self) -> list[dict[str, Any]]:
        data = self.read(RLIMITS_RECORD) or b""
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def ssh_argv(self, user: str = "root") -> list[str]:
        """argv prefix for the system ssh client: ssh_argv("deploy") + ["id"]."""
        return ["ssh", "-F", str(self.bed.ssh_config), "-l", user, self.name]

    def host(self, user: str = "root") -> Any:
        """A testinfra Host (paramiko backend) for user@node, through home/.ssh/config.

        Unlike testinfra's own paramiko backend, it checks the host key against
        home/.ssh/known_hosts (reject unknown), and it is not cached by testinfra."""
        import testinfra.host

        backend = strict_paramiko_backend()(
            f"{user}@{self.name}", ssh_config=str(self.bed.ssh_config)
        )
        backend.known_hosts = str(self.bed.known_hosts)
        host = testinfra.host.Host(backend)
        backend.set_host(host)
        return host
