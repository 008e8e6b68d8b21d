"""Pure: a systemd unit's process limits raised in a drop-in of its own, never lowered.

Shared by the units whose processes' children run the pods' containers and inherit their limits:
containerd.service (requirements/containerd.py) and the units of k3s and RKE2, whose embedded
containerd is a child of the unit's main process (requirements/k3s.py, rke2.py). What the unit
has today is what systemd reports for it (`systemctl show`: the unit file and every drop-in), so
a value the unit already has that is higher (k3s's LimitNOFILE=1048576) is kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.facts import NodeFacts
from ..engine.types import Plan, Requirement, Service
from ..errors import ConfigError
from ..formats import systemd_limits
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

if TYPE_CHECKING:
    from ..engine.builder import PlanBuilder


@dataclass(frozen=True)
class UnitTarget:
    """One unit whose limits the pods' containers inherit."""

    unit: str  # containerd.service, k3s.service, ...
    dropin: str  # the drop-in this tool writes
    service: Service  # what a change restarts
    name: str  # for people and requirement ids: containerd, k3s, rke2
    show: dict[str, str] | None  # `systemctl show UNIT` (None: not read)
    age: float | None  # seconds since the unit's main process started
    not_loaded: str  # after "UNIT is not-found to systemd, ": why that matters, and the fix


def plan_unit_limits(
    facts: NodeFacts, wanted: tuple[Ulimit, ...], builder: PlanBuilder, target: UnitTarget
) -> None:
    """Requirements NAME.limit.* from systemd's view of the unit, the drop-in that raises them
    (each value the higher of the unit's and the playbook's), and a restart when the running
    main process started before the drop-in it needs."""
    unit = target.show or {}
    if unit.get("LoadState") != "loaded":
        problem = f"{target.unit} is {unit.get('LoadState') or 'unknown'} to systemd"
        _requirements(builder, target, {}, wanted, target.unit, problem)
        builder.blockers.append(f"{target.unit}: {problem}, {target.not_loaded}")
        return
    dropin = facts.file(target.dropin)
    try:
        require_readable(dropin)
    except ConfigError as err:
        builder.blockers.append(str(err))
        _requirements(builder, target, {}, wanted, err.path, err.problem)
        return
    effective = systemd_limits.effective_limits(unit, wanted)
    _requirements(builder, target, effective, wanted, f"{target.unit} (systemctl show)")
    ours = systemd_limits.parse_dropin(dropin.text or "")
    drop_ins = unit.get("DropInPaths", "").split()
    need_reload = unit.get("NeedDaemonReload") == "yes"
    if target.dropin in drop_ins and not need_reload:
        # Ours is loaded: where systemd's value differs from ours, a drop-in applied later decides.
        overridden = [w for w in wanted if w.name in ours and effective.get(w.name) != ours[w.name]]
        if too_low(effective, tuple(overridden)):
            later = drop_ins[drop_ins.index(target.dropin) + 1 :]
            builder.blockers.append(
                f"{target.dropin}: its limits are overridden by a drop-in applied "
                f"after it ({', '.join(later) or 'unknown'}); "
                "raise the limits there or remove them, so that this drop-in decides"
            )
            return
        effective = {name: limit for name, limit in effective.items() if name not in ours}
    new = systemd_limits.render_dropin(systemd_limits.dropin_limits(wanted, effective, ours))
    builder.change_file(dropin, new)
    if dropin.content != new:
        return
    if unit.get("ActiveState") != "active" or unit.get("MainPID", "0") == "0":
        if need_reload or target.dropin not in drop_ins:
            # stopped, and systemd would start it without the drop-in: reload, do not start
            builder.requirements.append(
                Requirement(
                    f"{target.name}.running-config",
                    f"systemd has loaded {target.dropin} ({target.unit} is stopped)",
                    "no: systemd has not reloaded its units since they changed",
                    False,
                    target.unit,
                )
            )
            builder.restart(target.service, f"systemd has not loaded {target.dropin}")
        return
    file_age = facts.file_ages.get(target.dropin)
    stale: str | None
    if need_reload:
        stale = "no: systemd has not reloaded its units since they changed"
    elif target.dropin not in drop_ins:
        stale = f"no: systemd has not loaded {target.dropin}"
    elif changed_after_start(file_age, target.age):
        stale = f"no: {target.dropin} changed after {target.name} started"
    else:
        stale = None
    builder.requirements.append(
        Requirement(
            f"{target.name}.running-config",
            f"{target.name} started after {target.dropin} last changed",
            stale or "yes",
            stale is None,
            f"{target.unit} pid {unit.get('MainPID')}",
        )
    )
    if stale is not None:
        builder.restart(
            target.service,
            f"{target.name} runs without the limits of {target.dropin} ({stale[4:]})",
        )


def _requirements(
    builder: PlanBuilder,
    target: UnitTarget,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    where: str,
    error: str | None = None,
) -> None:
    limit_requirements(
        builder, f"{target.name}.limit", current, desired, where, error, missing="unknown"
    )


def unit_active(show: dict[str, str] | None) -> bool:
    return show is not None and show.get("ActiveState") == "active"


@dataclass(frozen=True)
class DistributionUnit:
    """A distribution's unit whose main process starts the containerd that runs the pods."""

    distribution: str  # k3s | rke2
    unit: str  # k3s.service, rke2-agent.service, ...
    service: Service  # its restart (requirements/NAME.apply.sh)


def distribution_facts(units: tuple[DistributionUnit, ...], desired: DesiredState) -> FactsNeeds:
    """systemd's view of each unit that is installed, and each one's drop-in."""
    properties = systemd_limits.show_properties(desired.ulimits)
    flags = tuple(arg for name in properties for arg in ("-p", name))
    return FactsNeeds(
        calls=tuple(
            call
            for unit in units
            for call in (
                ("installed_unit", unit.unit, *flags),
                ("readfile", desired.unit_dropin(unit.unit)),
            )
        )
    )


def plan_distribution_units(
    units: tuple[DistributionUnit, ...],
    facts: NodeFacts,
    desired: DesiredState,
    builder: PlanBuilder,
) -> None:
    """The limits in a drop-in of the unit of the distribution that runs the pods."""
    wanted = desired.ulimits
    chosen = [u for u in units if builder.runtime and u.service in builder.runtime.targets]
    if not wanted or not chosen:
        return
    (unit,) = chosen
    name = unit.distribution
    if facts.init_system != "systemd":
        hint = systemd_limits.shell_ulimit_hint(wanted)
        builder.blockers.append(
            f"{name}: this node has no systemd (an OpenRC install?), so {name}'s init script "
            f"sets the limits its containerd inherits; trains-nodeprep edits systemd units "
            f"only: in that script run first {hint}, then restart {name}"
        )
        limit_requirements(
            builder, f"{name}.limit", {}, wanted, name, "no systemd on this node", "unknown"
        )
        return
    target = UnitTarget(
        unit.unit,
        desired.unit_dropin(unit.unit),
        unit.service,
        name,
        facts.unit_shows.get(unit.unit),
        facts.unit_ages.get(unit.unit),
        f"but {name} runs the pods of this node; install {name} with its systemd unit "
        "(as its install script does)",
    )
    plan_unit_limits(facts, wanted, builder, target)


def distribution_managed_files(
    units: tuple[DistributionUnit, ...],
) -> Callable[[DesiredState], tuple[ManagedFile, ...]]:
    def managed(_desired: DesiredState) -> tuple[ManagedFile, ...]:
        return tuple(
            ManagedFile(f"/etc/systemd/system/{u.unit}.d/*.conf", restarts=u.service) for u in units
        )

    return managed


def distribution_service(unit: DistributionUnit, shell: str) -> ServiceSpec:
    """Its restart: daemon-reload, restart the unit, wait for its new containerd (NAME.apply.sh
    on units.apply.sh)."""
    name = unit.distribution

    def before_restart(_plan: Plan, init_system: str) -> list[str]:
        if init_system != "systemd":
            return [f"fail {unit.service} 'no systemd on this node: restart {name} by hand'"]
        return []

    def commands(_init_system: str) -> list[str]:
        return ["systemctl daemon-reload", f"systemctl restart {unit.unit}"]

    def warning(reason: str) -> str:
        return (
            f"{unit.unit} will restart ({reason}): its containerd restarts and the running "
            "pods keep running (KillMode=process), but keep their old limits until they are "
            "recreated"
        )

    return ServiceSpec(
        unit.service,
        ("units.apply.sh", shell),
        before_restart,
        commands,
        warning,
        running=lambda facts: unit_active(facts.unit_shows.get(unit.unit)),
        when_stopped=("reload_units",),
    )


def distribution_concern(name: str, units: tuple[DistributionUnit, ...], shell: str) -> Concern:
    """The requirement module of a distribution whose units run its own containerd: its facts,
    plan, files and restarts (the distribution module parses every unit's records)."""
    return Concern(
        name=name,
        facts=lambda desired: distribution_facts(units, desired),
        parse=no_records,
        plan=lambda facts, desired, builder: plan_distribution_units(
            units, facts, desired, builder
        ),
        managed_files=distribution_managed_files(units),
        services=tuple(distribution_service(unit, shell) for unit in units),
    )
