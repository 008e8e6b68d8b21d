"""The engine's data: requirements, plans and their parts, the services a change restarts, and
the states of files, nodes and apply steps. Plain frozen data; no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

from .facts import FileFact

if TYPE_CHECKING:
    from ..requirements.runtime import RuntimeChoice


class Service(StrEnum):
    """A daemon that a changed file restarts; the apply script restarts them in this order."""

    CONTAINERD = "containerd"
    DOCKER = "docker"
    # the units whose own containerd runs the pods of k3s and RKE2 (requirements/k3s.py, rke2.py)
    K3S = "k3s"
    K3S_AGENT = "k3s-agent"
    RKE2_SERVER = "rke2-server"
    RKE2_AGENT = "rke2-agent"
    MICROK8S = "microk8s"  # `microk8s stop; microk8s start` (requirements/microk8s.py)


class NodeStatus(StrEnum):
    # check
    READY = "ready"
    DRIFT = "drift"
    # run, plan, restore
    UNCHANGED = "unchanged"
    CHANGED = "changed"
    PLANNED = "planned"
    FAILED = "failed"
    # any command
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    ERROR = "error"


class StepKind(StrEnum):
    """What one step of the apply script did (its record's second field)."""

    LOCK = "lock"
    STALE = "stale"
    DIR = "dir"
    WRITE = "write"
    REMOVE = "remove"
    SYSCTL = "sysctl"
    RELOAD = "reload"
    VALIDATE = "validate"
    RESTART = "restart"
    RESTORE = "restore"
    ROLLBACK = "rollback"
    ERROR = "error"
    DONE = "done"


StepStatus = Literal["ok", "fail", "info"]


@dataclass(frozen=True)
class Requirement:
    """One line of `check`: a stable id, what is expected, what the node has."""

    id: str
    expected: str
    actual: str
    ok: bool
    where: str = ""


@dataclass(frozen=True)
class FileChange:
    path: str
    old: FileFact
    new: bytes | None  # None: remove the file (restore of a file that did not exist)
    restarts: Service | None = None  # what must restart to read it (from the managed files)
    secret: bool = False  # holds passwords: the content is never shown
    mode: int = 0o644  # for a new file; an existing file keeps its own

    @property
    def restarts_docker(self) -> bool:
        return self.restarts is Service.DOCKER

    @property
    def restarts_containerd(self) -> bool:
        return self.restarts is Service.CONTAINERD


@dataclass(frozen=True)
class DirChange:
    path: str
    create: bool
    owner: int | None
    group: int | None
    mode: int | None


@dataclass(frozen=True)
class SysctlWrite:
    key: str
    old: int | None
    new: int


@dataclass(frozen=True)
class Plan:
    requirements: tuple[Requirement, ...]
    file_changes: tuple[FileChange, ...] = ()
    sysctl_writes: tuple[SysctlWrite, ...] = ()
    dir_changes: tuple[DirChange, ...] = ()
    restart_reasons: tuple[tuple[Service, str], ...] = ()  # why each service restarts
    blockers: tuple[str, ...] = ()
    # for people, beside the changes: e.g. a changed service that is stopped and left stopped
    notes: tuple[str, ...] = ()
    left_stopped: tuple[Service, ...] = ()  # changed, not running, so not restarted
    # the apply script's checks before any write (argv of its functions, e.g. validate_docker)
    preflight: tuple[tuple[str, ...], ...] = ()
    runtime: RuntimeChoice | None = None  # where the limits go on this node, and why

    @property
    def empty(self) -> bool:
        return not (
            self.file_changes
            or self.sysctl_writes
            or self.dir_changes
            or self.restart_reasons
            or self.left_stopped
            or self.blockers
        )

    @property
    def restarts(self) -> tuple[Service, ...]:
        """The services this plan restarts, in the order the apply restarts them."""
        wanted = {service for service, _ in self.restart_reasons}
        return tuple(service for service in Service if service in wanted)

    def reason(self, service: Service) -> str:
        return "; ".join(reason for s, reason in self.restart_reasons if s is service)

    @property
    def restart_docker(self) -> bool:
        return Service.DOCKER in self.restarts

    @property
    def restart_containerd(self) -> bool:
        return Service.CONTAINERD in self.restarts

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.requirements) and self.empty
