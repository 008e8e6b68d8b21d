"""The interface every requirement module fills in, and what several of them share.

A requirement module is one concern (docker, containerd, sysctl, ...). It says, as data, what
the facts script must read for it (its shell functions in NAME.facts.sh, the daemons and kernel
values of the one scan, the calls to make), how to turn its records into facts, how to plan
(requirements, file changes, blockers, restarts), which files it manages, and which services
it restarts. The engine composes every module into ONE facts script and ONE apply script.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..engine.facts import FileFact, NodeFacts
from ..engine.types import Plan, Requirement, Service
from ..errors import ConfigError
from ..model import DesiredState, Ulimit

if TYPE_CHECKING:
    from ..engine.builder import PlanBuilder
    from ..engine.parse import Records

Argv = tuple[str, ...]


@dataclass(frozen=True)
class FactsNeeds:
    """What one module adds to the facts script."""

    shell: str | None = None  # its functions: a file of the requirements package (NAME.facts.sh)
    processes: Mapping[str, str | None] = field(default_factory=dict)  # name -> on_process hook
    values: tuple[str, ...] = ()  # /proc/sys paths to read
    calls: tuple[Argv, ...] = ()  # its functions' calls, after the scan, each quoted once


@dataclass(frozen=True)
class ManagedFile:
    """A file the tool may write (and `restore` put back): a path, or DIR/GLOB for a directory's
    files. `restarts`: the service that reads it only at start; `secret`: never shown."""

    pattern: str
    restarts: Service | None = None
    secret: bool = False

    def matches(self, path: str) -> bool:
        if "*" not in self.pattern:
            return path == self.pattern
        directory, _, glob = self.pattern.rpartition("/")
        parent, _, name = path.rpartition("/")
        return parent == directory and fnmatch.fnmatchcase(name, glob)


@dataclass(frozen=True)
class ServiceSpec:
    """A service the apply script may restart, through the functions of its NAME.apply.sh."""

    service: Service
    # its shell files (NAME.apply.sh): SERVICE_pid, restart_SERVICE, wait_SERVICE, SERVICE_log,
    # with "-" in SERVICE spelled "_" (k3s_agent_pid)
    shell: tuple[str, ...]
    # the apply script's lines before `restart SERVICE` (checks, validation), for this plan
    before_restart: Callable[[Plan, str], list[str]]
    commands: Callable[[str], list[str]]  # init system -> the commands, for `plan`
    warning: Callable[[str], str]  # reason -> what the restart does to the node's workloads
    # whether it runs now: a change to a stopped service leaves it stopped
    running: Callable[[NodeFacts], bool]
    # the apply script's lines when it changed but is left stopped (apply.sh: reload_units)
    when_stopped: tuple[str, ...] = ()


@dataclass(frozen=True)
class Concern:
    name: str
    facts: Callable[[DesiredState], FactsNeeds]
    parse: Callable[[Records], dict[str, Any]]  # NodeFacts fields
    plan: Callable[[NodeFacts, DesiredState, PlanBuilder], None]
    managed_files: Callable[[DesiredState], tuple[ManagedFile, ...]]
    services: tuple[ServiceSpec, ...] = ()
    apply_shell: str | None = None  # functions its plans call in the apply script (NAME.apply.sh)


def no_records(_records: Records) -> dict[str, Any]:
    return {}


def no_files(_desired: DesiredState) -> tuple[ManagedFile, ...]:
    return ()


def require_readable(fact: FileFact) -> None:
    """ConfigError unless the file is absent or a readable file."""
    if fact.state == "directory":
        raise ConfigError(fact.path, "is a directory", "move it away; it must be a file")
    if fact.state == "unreadable":
        raise ConfigError(
            fact.path,
            "exists but cannot be read as root",
            "check the file (permissions, filesystem)",
        )


def limit_requirements(
    builder: PlanBuilder,
    prefix: str,
    current: Mapping[str, Ulimit],
    desired: tuple[Ulimit, ...],
    where: str,
    error: str | None = None,
    missing: str = "unset",
) -> None:
    """One requirement per desired limit, `prefix.NAME`; an `error` fails them all."""
    for want in desired:
        have = current.get(want.name)
        actual = f"error: {error}" if error else have.display() if have else missing
        ok = error is None and have is not None and have.satisfies(want)
        builder.requirements.append(
            Requirement(f"{prefix}.{want.name}", f">= {want.display()}", actual, ok, where)
        )


def changed_after_start(file_age: float | None, process_age: float | None) -> bool:
    """The file changed after the process started, so the process does not read it yet (both
    ages measured at one instant; 50 ms of slack for the clock ticks of a process's start)."""
    return file_age is not None and process_age is not None and file_age < process_age - 0.05


def too_low(effective: Mapping[str, Ulimit], wanted: tuple[Ulimit, ...]) -> bool:
    return any(
        want.name not in effective or not effective[want.name].satisfies(want) for want in wanted
    )
