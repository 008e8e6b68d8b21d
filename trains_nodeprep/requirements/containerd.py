"""containerd: the service limits every container it starts inherits (its CRI plugin puts no
rlimits in a pod's spec), raised in a drop-in of containerd.service, then a daemon-reload and a
restart of containerd when the drop-in changed or the running containerd started before it.
Without systemd, the running containerd's own limits are only read. Every running containerd's
limits and parent are read on every node: docker's containers inherit them too when docker sets
no default ulimits (requirements/inherited.py).
"""

from __future__ import annotations

from typing import Any

from ..engine.builder import PlanBuilder
from ..engine.facts import NodeFacts
from ..engine.parse import Records, int_or_none
from ..engine.types import Plan, Service
from ..formats import systemd_limits
from ..formats.proc_limits import parse_proc_limits
from ..model import CONTAINERD_DROPIN_DIR, DesiredState, Ulimit
from .base import (
    Concern,
    FactsNeeds,
    ManagedFile,
    ServiceSpec,
    limit_requirements,
    too_low,
)
from .runtime import CONTAINERD
from .unit_limits import UnitTarget, plan_unit_limits, unit_active

UNIT = systemd_limits.UNIT


def facts(desired: DesiredState) -> FactsNeeds:
    properties = systemd_limits.show_properties(desired.ulimits)
    return FactsNeeds(
        shell="containerd.facts.sh",
        processes={"containerd": "containerd_process"},
        calls=(
            ("containerd_installed",),
            ("containerd_unit", *(arg for name in properties for arg in ("-p", name))),
            ("readfile", desired.containerd_dropin),
        ),
    )


def parse(records: Records) -> dict[str, Any]:
    show = records.text("unit-show", UNIT)
    running = records.processes("containerd")
    return {
        "containerd_installed": records.has("containerd", "installed") or bool(running),
        "containerd_processes": tuple(running),
        # the script joins the rows with "|" (no base64 needed); older records had newlines
        "process_limits": {
            int(pid): data.decode(errors="replace").replace("|", "\n")
            for pid, _s, data in records.of_kind("limits")
        },
        "process_parents": {
            int(pid): parent
            for pid, _s, data in records.of_kind("parent")
            if (parent := int_or_none(data.decode(errors="replace"))) is not None
        },
        "containerd_unit": systemd_limits.parse_show(show) if show is not None else None,
        "containerd_age": records.age("containerd.service-started"),
    }


def managed_files(_desired: DesiredState) -> tuple[ManagedFile, ...]:
    return (ManagedFile(CONTAINERD_DROPIN_DIR + "/*.conf", restarts=Service.CONTAINERD),)


def _before_restart(_plan: Plan, init_system: str) -> list[str]:
    if init_system != "systemd":
        return ["fail containerd 'no systemd on this node: restart containerd by hand'"]
    return []


def _commands(_init_system: str) -> list[str]:
    return ["systemctl daemon-reload", "systemctl restart containerd"]


def _warning(reason: str) -> str:
    return (
        f"containerd will restart ({reason}): running containers keep running, but keep their "
        "old limits until they are recreated (delete the Elasticsearch pod afterwards)"
    )


def _containerd_requirements(
    builder: PlanBuilder,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    where: str,
    error: str | None = None,
) -> None:
    limit_requirements(
        builder, "containerd.limit", current, desired, where, error, missing="unknown"
    )


def _standalone_containerd(facts: NodeFacts) -> int | None:
    """The containerd the kubelet talks to, not one that dockerd started for itself."""
    for pid, argv in facts.containerd_processes:
        if not any("/docker/containerd" in arg for arg in argv):
            return pid
    return None


def plan(facts: NodeFacts, desired: DesiredState, builder: PlanBuilder) -> None:
    """containerd's containers inherit its own limits: raise them in a drop-in of
    containerd.service."""
    wanted = desired.ulimits
    if not wanted or builder.runtime is None or CONTAINERD not in builder.runtime.targets:
        return
    if facts.init_system != "systemd":
        _plan_containerd_without_systemd(facts, wanted, builder)
        return
    fix = (
        "but the kubelet uses containerd; install containerd as a systemd service "
        f"(or set its limits where it is started: {systemd_limits.shell_ulimit_hint(wanted)})"
    )
    target = UnitTarget(
        UNIT,
        desired.containerd_dropin,
        Service.CONTAINERD,
        "containerd",
        facts.containerd_unit,
        facts.containerd_age,
        fix,
    )
    plan_unit_limits(facts, wanted, builder, target)


def _plan_containerd_without_systemd(
    facts: NodeFacts, wanted: tuple[Ulimit, ...], builder: PlanBuilder
) -> None:
    """No systemd: the init script that starts containerd sets its limits; this tool only reads
    them."""
    pid = _standalone_containerd(facts)
    hint = systemd_limits.shell_ulimit_hint(wanted)
    if pid is None or pid not in facts.process_limits:
        _containerd_requirements(builder, {}, wanted, "containerd", "containerd is not running")
        builder.blockers.append(
            "containerd: not running, and this node has no systemd to hold its limits; "
            f"start it from an init script that first runs: {hint}"
        )
        return
    seen = {
        name: Ulimit(name, soft, hard)
        for name, (soft, hard) in parse_proc_limits(facts.process_limits[pid]).items()
    }
    _containerd_requirements(builder, seen, wanted, f"/proc/{pid}/limits (containerd)")
    if too_low(seen, wanted):
        builder.blockers.append(
            f"containerd (pid {pid}): runs with limits too low for Elasticsearch, "
            "and this node has no systemd, so its init system "
            f"sets them; in the script that starts containerd run first: {hint}; "
            "then restart containerd"
        )


CONCERN = Concern(
    name="containerd",
    facts=facts,
    parse=parse,
    plan=plan,
    managed_files=managed_files,
    services=(
        ServiceSpec(
            Service.CONTAINERD,
            ("containerd.apply.sh",),
            _before_restart,
            _commands,
            _warning,
            running=lambda facts: unit_active(facts.containerd_unit),
            when_stopped=("reload_units",),
        ),
    ),
)
