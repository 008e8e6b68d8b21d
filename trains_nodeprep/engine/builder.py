"""The plan being built: what each requirement module adds while planning one node."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..requirements.base import ManagedFile
from ..requirements.runtime import RuntimeChoice
from .facts import FileFact
from .types import DirChange, FileChange, Plan, Requirement, Service, SysctlWrite


@dataclass
class PlanBuilder:
    managed: tuple[ManagedFile, ...]  # every file a change may touch (see requirements.registry)
    runtime: RuntimeChoice | None = None
    requirements: list[Requirement] = field(default_factory=list)
    file_changes: list[FileChange] = field(default_factory=list)
    sysctl_writes: list[SysctlWrite] = field(default_factory=list)
    dir_changes: list[DirChange] = field(default_factory=list)
    restart_reasons: list[tuple[Service, str]] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    # services that are not running: a change starts none that the kubelet does not need
    stopped: frozenset[Service] = frozenset()
    notes: list[str] = field(default_factory=list)
    left_stopped: list[Service] = field(default_factory=list)
    preflight: list[tuple[str, ...]] = field(default_factory=list)

    def change_file(self, old: FileFact, new: bytes | None, mode: int = 0o644) -> None:
        """Plan `old` to hold `new` (None: removed), unless it already does. What a change
        restarts and whether its content is secret come from the managed file it is."""
        if old.content == new:
            return
        managed = managed_file(self.managed, old.path)
        self.file_changes.append(
            FileChange(old.path, old, new, managed.restarts, managed.secret, mode)
        )
        if managed.restarts is not None:
            self.restart(managed.restarts, f"{old.path} changed")

    def restart(self, service: Service, reason: str) -> None:
        if service not in self.stopped or self._kubelet_runtime(service):
            self.restart_reasons.append((service, reason))
            return
        if service not in self.left_stopped:
            self.left_stopped.append(service)
        note = (
            f"{service} is not running and is left stopped: the new config applies when it starts"
        )
        if note not in self.notes:
            self.notes.append(note)

    def _kubelet_runtime(self, service: Service) -> bool:
        """The runtime a kubeadm-style kubelet hands its pods to: started when stopped, since
        the node's pods need it (and its start validates the new config)."""
        choice = self.runtime
        return choice is not None and choice.distribution == "kubeadm" and choice.kubelet == service

    def plan(self) -> Plan:
        if self.blockers:
            # Refuse the node as a whole: nothing is written next to a config we cannot trust.
            return Plan(
                tuple(self.requirements), blockers=tuple(self.blockers), runtime=self.runtime
            )
        return Plan(
            requirements=tuple(self.requirements),
            file_changes=tuple(self.file_changes),
            sysctl_writes=tuple(self.sysctl_writes),
            dir_changes=tuple(self.dir_changes),
            restart_reasons=tuple(self.restart_reasons),
            runtime=self.runtime,
            notes=tuple(self.notes),
            left_stopped=tuple(self.left_stopped),
            preflight=tuple(self.preflight),
        )


def managed_file(managed: tuple[ManagedFile, ...], path: str) -> ManagedFile:
    """The managed file `path` is; a path no module manages is a bug, never written."""
    for candidate in managed:
        if candidate.matches(path):
            return candidate
    raise ValueError(f"{path} is not a file trains-nodeprep manages")
