"""What the facts script found on a node, as plain data (engine/parse.py reads it).

A file is `absent`, `file` (possibly empty), `directory` or `unreadable`: different answers
that need different handling.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal, get_args

FileState = Literal["absent", "file", "directory", "unreadable"]
DirState = Literal["ok", "absent", "notdir"]
FILE_STATES: tuple[str, ...] = get_args(FileState)


@dataclass(frozen=True)
class FileFact:
    path: str
    state: FileState
    content: bytes | None = None

    @property
    def exists(self) -> bool:
        return self.state != "absent"

    @property
    def text(self) -> str | None:
        return self.content.decode("utf-8", errors="replace") if self.content is not None else None

    @property
    def sha256(self) -> str:
        """Fingerprint the apply step compares before it replaces the file ('-' when absent)."""
        return hashlib.sha256(self.content).hexdigest() if self.content is not None else "-"


@dataclass(frozen=True)
class DirFact:
    path: str
    state: DirState
    owner: int | None = None
    group: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class NodeFacts:
    """Everything one facts script read, by concern. Ages are seconds, measured at one instant."""

    user: str
    init_system: str  # systemd | sysvinit | unknown
    # docker
    docker_installed: bool
    dockerd_pid: int | None
    dockerd_argv: tuple[str, ...]
    # every file read, by path
    files: dict[str, FileFact]
    # sysctl: key -> the kernel's value now (None: no such key); the sysctl files found
    sysctl_runtime: dict[str, int | None]
    sysctl_files: tuple[str, ...] = ()
    docker_unit: str | None = None  # `systemctl cat docker.service` on systemd nodes
    # file -> backups, oldest first
    backups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    directories: dict[str, DirFact] = field(default_factory=dict)
    dockerd_age: float | None = None  # since dockerd started
    # since each file read last changed (daemon.json and the drop-in are read only at start)
    file_ages: dict[str, float] = field(default_factory=dict)
    # containerd and the kubelet
    containerd_installed: bool = False
    kubelet_argv: tuple[str, ...] = ()
    # (pid, argv) of every containerd (docker may run its own)
    containerd_processes: tuple[tuple[int, tuple[str, ...]], ...] = ()
    # pid -> /proc/PID/limits of every running containerd
    process_limits: dict[int, str] = field(default_factory=dict)
    # pid -> parent pid of every running containerd (docker may have started its own)
    process_parents: dict[int, int] = field(default_factory=dict)
    sockets: tuple[str, ...] = ()  # the CRI sockets present
    containerd_unit: dict[str, str] | None = None  # `systemctl show containerd.service`
    containerd_age: float | None = None  # since containerd.service's main process started
    # files the facts had to read whose names hold a tab or newline
    unreadable_names: tuple[str, ...] = ()
    # a Kubernetes distribution's evidence: its processes by name, (pid, argv) each; the paths
    # of its units, data and args that exist
    distribution_processes: dict[str, tuple[tuple[int, tuple[str, ...]], ...]] = field(
        default_factory=dict
    )
    paths_present: tuple[str, ...] = ()
    # `systemctl show` of each unit read (the distributions' own: k3s.service, ...), and
    # seconds since its main process started
    unit_shows: dict[str, dict[str, str]] = field(default_factory=dict)
    unit_ages: dict[str, float] = field(default_factory=dict)
    # trains-server's moved data directories (playbook deploy.data-moves): absent, notdir,
    # empty or data
    data_dirs: dict[str, str] = field(default_factory=dict)

    @property
    def docker_running(self) -> bool:
        return self.dockerd_pid is not None

    def file(self, path: str) -> FileFact:
        return self.files.get(path, FileFact(path, "absent"))
