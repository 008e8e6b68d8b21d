"""TestBed: the set of nodes on this machine's bridge tnpbr0, and what they share: the /etc
layers, the SSH keys, the client side (HOME with ~/.ssh/config and known_hosts) and the
machine-wide lock (one bed at a time). Must run as root; see README.md."""

from __future__ import annotations

import fcntl
import io
import os
import re
import signal
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .host import (
    CGROUP_ROOT,
    CGROUP_TOP,
    cgroup_hierarchies_or_none,
    cgroup_procs,
    remove_cgroup_tree,
    run,
)
from .layers import build_bed_layer, build_systemd_layer, write_file
from .network import FIRST_OCTET, SUBNET_PREFIX, kill_leftover_namespaces, setup_bridge
from .node import TestNode
from .tini import TiniNode

LOCK_FILE = "/run/tnp-testbed.lock"
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class TestBed:
    """A set of nodes on the bridge tnpbr0. One bed per machine at a time (flock)."""

    __test__ = False  # not a pytest test class

    sudo_password: str = "tnp-Secured-2024!"
    node_start_timeout: float = 20.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.home = self.workdir / "home"
        self.layer = self.workdir / "layer"
        self.keys = self.workdir / "keys"
        self.nodes_dir = self.workdir / "nodes"
        self.nodes: dict[str, TestNode] = {}
        self._next_octet = FIRST_OCTET
        self._lock_fd: int | None = None
        self._busybox_tar: bytes | None = None
        self.started = False
        # what a node kind builds once per bed (Debian13Node: its rootfs), by the kind's key
        self.kind_assets: dict[str, Any] = {}
        self._at_stop: list[Callable[[], None]] = []  # run by stop(), after the nodes
        # names this bed's cgroup directory (systemd nodes): CGROUP_TOP/<id>/<node>
        self.id = f"bed{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # ----------------------------------------------------------------- life cycle
    def start(self, lock_timeout: float = 900.0) -> None:
        if os.geteuid() != 0:
            raise PermissionError("the test bed needs root")
        if self.started:
            return
        self._lock(lock_timeout)
        try:
            self.cleanup_leftovers()
            setup_bridge()
            for d in (self.home, self.keys, self.nodes_dir):
                d.mkdir(parents=True, exist_ok=True)
            self._make_keys()
            self._build_layers()
            self._write_ssh_client_files(reset=True)
        except BaseException:
            self._unlock()
            raise
        self.started = True

    def stop(self) -> None:
        errors = []
        for node in list(self.nodes.values()):
            try:
                node.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{node.name}: {exc!r}")
        self.cleanup_leftovers()
        for action in reversed(self._at_stop):
            try:
                action()
            except Exception as exc:
                errors.append(f"at stop: {exc!r}")
        self._at_stop.clear()
        self.kind_assets.clear()
        self.started = False
        self._unlock()
        if errors:
            raise RuntimeError("stopping nodes failed: " + "; ".join(errors))

    def at_stop(self, action: Callable[[], None]) -> None:
        """Run action when the bed stops, once its nodes are gone (e.g. remove a kind's
        per-bed assets below the workdir)."""
        self._at_stop.append(action)

    def __enter__(self) -> TestBed:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _lock(self, timeout: float) -> None:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    holder = Path(LOCK_FILE).read_text().strip()
                    raise RuntimeError(f"another test bed holds {LOCK_FILE} ({holder})")
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} workdir {self.workdir}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def cleanup_leftovers() -> None:
        """Kill nodes of any earlier (crashed) bed: netns tnp-*, their processes, veths tnpv*,
        and the processes and directories of /sys/fs/cgroup/*/tnp-testbed (systemd nodes).

        Only call it while holding the bed lock (start() does)."""
        kill_leftover_namespaces()
        hierarchies = [CGROUP_ROOT / h[0] / CGROUP_TOP for h in cgroup_hierarchies_or_none()]
        for top in hierarchies:  # first kill everything in any hierarchy, then rmdir
            for pid in cgroup_procs(top):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for top in hierarchies:
            remove_cgroup_tree(top)

    # ----------------------------------------------------------------- assets
    def _make_keys(self) -> None:
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(ssh, 0o700)
        for path, comment in (
            (ssh / "id_ed25519", "tnp-testbed-client"),
            (self.keys / "host_ed25519", "tnp-testbed-host"),
            (self.keys / "host_unknown_ed25519", "tnp-testbed-unknown-host"),
        ):
            if not path.exists():
                run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))

    def _build_layers(self) -> None:
        build_bed_layer(self.layer, self.keys, self.client_key, self.sudo_password)
        os.chmod(self.workdir, 0o755)
        build_systemd_layer(self.systemd_layer)

    @property
    def systemd_layer(self) -> Path:
        return self.workdir / "layer-systemd"

    def _write_ssh_client_files(self, reset: bool = False) -> None:
        """home/.ssh/config: one alias per node. known_hosts is only reset at start();
        afterwards lines are added/removed per node, so keys a client recorded stay."""
        ssh = self.home / ".ssh"
        if reset or not (ssh / "known_hosts").exists():
            write_file(ssh / "known_hosts", "", 0o644)
        conf = []
        for node in self.nodes.values():
            conf.append(
                f"Host {node.name}\n"
                f"    HostName {node.address}\n"
                f"    Port {node.port}\n"
                f"    User root\n"
                f"    IdentityFile {ssh / 'id_ed25519'}\n"
                f"    IdentitiesOnly yes\n"
                f"    StrictHostKeyChecking yes\n"
                f"    UserKnownHostsFile {ssh / 'known_hosts'}\n"
                f"    GlobalKnownHostsFile /dev/null\n"
                f"    HashKnownHosts no\n"
                f"    BatchMode yes\n"
                f"    ConnectTimeout 10\n\n"
            )
        write_file(ssh / "config", "".join(conf), 0o644)

    def _known_hosts_update(self, address: str, line: str | None) -> None:
        """Drop every known_hosts line for address; then append line (if given)."""
        path = self.known_hosts
        old = path.read_text().splitlines(keepends=True) if path.exists() else []
        keep = [
            entry
            for entry in old
            if address not in entry.split(" ", 1)[0].replace("[", "").split(",")
            and f"[{address}]:22" not in entry.split(" ", 1)[0].split(",")
        ]
        if line:
            keep.append(line.rstrip("\n") + "\n")
        write_file(path, "".join(keep), 0o644)

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.home / ".ssh" / "id_ed25519"

    def busybox_tar(self) -> bytes:
        """A tarball with a static busybox (/bin/busybox, sh, true, cat), for `docker import`."""
        if self._busybox_tar is None:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for d in ("bin", "tmp", "etc", "proc", "sys", "dev"):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                    tar.addfile(info)
                tar.add("/bin/busybox", arcname="bin/busybox")
                for name in ("sh", "true", "cat", "ls", "echo", "sleep", "env", "id"):
                    info = tarfile.TarInfo(f"bin/{name}")
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
                    tar.addfile(info)
            self._busybox_tar = buf.getvalue()
        return self._busybox_tar

    # ----------------------------------------------------------------- nodes
    def add_node(
        self,
        name: str,
        kind: type[TestNode] = TiniNode,
        *,
        known_host: bool = True,
        max_map_count: int = 65530,
        files: dict[str, str | bytes] | None = None,
        **options: Any,
    ) -> Any:
        """Start a node of the given kind (TiniNode, SystemdNode, ...; see README.md) and
        return it once sshd answers. options are the kind's own (e.g. docker=, rhel= of
        TiniNode, containerd= of SystemdNode); what every kind takes: known_host (its host
        key is in known_hosts, else a key no client knows), max_map_count (the node's own
        vm.max_map_count), files (path -> content, in place before the node's init runs)."""
        if not self.started:
            raise RuntimeError("TestBed.start() first")
        if not _NAME_RE.match(name):
            raise ValueError(f"bad node name {name!r} (want [a-z][a-z0-9-]*, <= 40 chars)")
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists")
        if not (isinstance(kind, type) and issubclass(kind, TestNode)):
            raise TypeError(f"kind must be a TestNode class (TiniNode, SystemdNode), not {kind!r}")
        octet = self._allocate_octet()
        node = kind(self, name, f"{SUBNET_PREFIX}{octet}", octet, known_host=known_host, **options)
        self.nodes[name] = node
        try:
            node.start(max_map_count, dict(files or {}))
        except BaseException:
            try:
                node.stop()
            finally:
                self.nodes.pop(name, None)
            raise
        self._known_hosts_update(
            node.address, f"{node.address} {node.host_public_key}" if known_host else None
        )
        self._write_ssh_client_files()
        return node

    def _allocate_octet(self) -> int:
        used = {n.octet for n in self.nodes.values()}
        for _ in range(256):
            octet = self._next_octet
            self._next_octet = FIRST_OCTET if octet >= 254 else octet + 1
            if octet not in used:
                return octet
        raise RuntimeError("no free node address in 10.200.0.0/24")

    def _node_gone(self, node: TestNode) -> None:
        self.nodes.pop(node.name, None)
        if self.started:
            self._known_hosts_update(node.address, None)
            self._write_ssh_client_files()
