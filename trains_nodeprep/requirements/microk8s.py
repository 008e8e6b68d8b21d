"""MicroK8s: its pods run in the snap's own containerd (snap.microk8s.daemon-containerd.service),
started by a wrapper that first sources `containerd-env` (its `ulimit` lines; MicroK8s's default
pins memlock at 16 MiB). The limits go there, each the higher of the file's (or, for a limit the
file does not set, the running containerd's) and the playbook's; every other line is kept. Then
the restart MicroK8s documents, `microk8s stop; microk8s start`, which restarts every pod: the
pods come back with the new limits. snapd may rewrite the daemon's unit, never this file.
"""

from __future__ import annotations

from ..engine.builder import PlanBuilder
from ..engine.facts import NodeFacts
from ..engine.types import Plan, Requirement, Service
from ..errors import ConfigError
from ..formats import containerd_env
from ..formats.proc_limits import parse_proc_limits
from ..model import DesiredState, Ulimit
from .base import (
    Concern,
    FactsNeeds,
    ManagedFile,
    ServiceSpec,
    changed_after_start,
    limit_requirements,
    no_records,
    require_readable,
    too_low,
)
from .unit_limits import unit_active

UNIT = "snap.microk8s.daemon-containerd.service"  # as snapd names the snap's daemon


def facts(desired: DesiredState) -> FactsNeeds:
    return FactsNeeds(
        calls=(
            ("installed_unit", UNIT, "-p", "LoadState", "-p", "ActiveState", "-p", "MainPID"),
            ("readfile_if_present", desired.microk8s_containerd_env),
        )
    )


def managed_files(desired: DesiredState) -> tuple[ManagedFile, ...]:
    return (ManagedFile(desired.microk8s_containerd_env, restarts=Service.MICROK8S),)


def _running_limits(facts: NodeFacts) -> dict[str, tuple[int, int]]:
    """The limits of the snap's running containerd (its unit's main process), if any."""
    main = (facts.unit_shows.get(UNIT) or {}).get("MainPID", "0")
    pid = int(main) if main.isdigit() else 0
    if pid and pid in facts.process_limits:
        return parse_proc_limits(facts.process_limits[pid])
    return {}


def plan(facts: NodeFacts, desired: DesiredState, builder: PlanBuilder) -> None:
    wanted = desired.ulimits
    if not wanted or builder.runtime is None or Service.MICROK8S not in builder.runtime.targets:
        return
    path = desired.microk8s_containerd_env
    env = facts.file(path)
    try:
        require_readable(env)
        if env.content is None:
            raise ConfigError(
                path,
                "does not exist, but MicroK8s runs here",
                "check the MicroK8s install (snap info microk8s); its containerd wrapper "
                "sources this file",
            )
        text = env.content.decode("utf-8")
    except UnicodeDecodeError:
        builder.blockers.append(f"{path}: not UTF-8 text; fix the file")
        limit_requirements(builder, "microk8s.limit", {}, wanted, path, "not UTF-8", "unknown")
        return
    except ConfigError as err:
        builder.blockers.append(str(err))
        limit_requirements(builder, "microk8s.limit", {}, wanted, err.path, err.problem, "unknown")
        return
    in_file = containerd_env.read_limits(text)
    running = _running_limits(facts)
    current: dict[str, Ulimit] = {}
    for want in wanted:
        soft, hard = in_file.get(want.name, (None, None))
        seen = running.get(want.name)
        # a side the file leaves alone is inherited: what the running containerd has
        soft = soft if soft is not None else seen[0] if seen else None
        hard = hard if hard is not None else seen[1] if seen else None
        if soft is not None and hard is not None:
            current[want.name] = Ulimit(want.name, soft, hard)
    limit_requirements(builder, "microk8s.limit", current, wanted, path, missing="unset")
    targets = [
        current[want.name].raised_to(want) if want.name in current else want for want in wanted
    ]
    try:
        new = containerd_env.merge(text, targets, path).encode()
    except ConfigError as err:
        builder.blockers.append(str(err))
        return
    if not too_low(current, wanted):
        new = env.content  # every limit is met already: nothing to write
    builder.change_file(env, new)
    if new != env.content:
        return
    show = facts.unit_shows.get(UNIT) or {}
    file_age = facts.file_ages.get(path)
    age = facts.unit_ages.get(UNIT)
    if not unit_active(show) or file_age is None or age is None:
        return
    stale = changed_after_start(file_age, age)
    builder.requirements.append(
        Requirement(
            "microk8s.running-config",
            f"containerd started after {path} last changed",
            f"no: {path} changed after containerd started" if stale else "yes",
            not stale,
            f"{UNIT} pid {show.get('MainPID')}",
        )
    )
    if stale:
        builder.restart(
            Service.MICROK8S, f"MicroK8s's containerd runs without the limits of {path}"
        )


def _before_restart(_plan: Plan, init_system: str) -> list[str]:
    if init_system != "systemd":
        return ["fail microk8s 'no systemd on this node: restart MicroK8s by hand'"]
    return []


def _commands(_init_system: str) -> list[str]:
    return ["microk8s stop", "microk8s start"]


def _warning(reason: str) -> str:
    return (
        f"MicroK8s will stop and start ({reason}): every pod on this node stops and starts "
        "again, with the new limits"
    )


CONCERN = Concern(
    name="microk8s",
    facts=facts,
    parse=no_records,  # the distribution module parses every unit's records
    plan=plan,
    managed_files=managed_files,
    services=(
        ServiceSpec(
            Service.MICROK8S,
            ("units.apply.sh", "microk8s.apply.sh"),
            _before_restart,
            _commands,
            _warning,
            running=lambda facts: unit_active(facts.unit_shows.get(UNIT)),
        ),
    ),
)
