"""The planner on docker-only, containerd-only and mixed nodes, and containerd's drop-in (pure)."""

from __future__ import annotations

import json

import pytest

from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.formats.systemd_limits import (
    dropin_limits,
    parse_dropin,
    render_dropin,
    shell_ulimit_hint,
)
from trains_nodeprep.model import DAEMON_JSON, DesiredState, SysctlSetting, Ulimit

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)
DROPIN = DESIRED.containerd_dropin
CONFIG = "/var/lib/kubelet/config.yaml"
CONTAINERD_KUBELET = {CONFIG: "containerRuntimeEndpoint: unix:///run/containerd/containerd.sock\n"}
READY_JSON = json.dumps(
    {
        "default-ulimits": {
            "nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536},
            "memlock": {"Name": "memlock", "Soft": -1, "Hard": -1},
        }
    }
).encode()
READY_FILES = {"/etc/sysctl.d/99-trains.conf": "vm.max_map_count=262144\n"}
# Debian's containerd.service: LimitNOFILE=infinity; memlock from systemd's default (8 MiB)
STOCK_UNIT = {
    "LoadState": "loaded",
    "ActiveState": "active",
    "MainPID": "311",
    "NeedDaemonReload": "no",
    "DropInPaths": "",
    "LimitNOFILE": "infinity",
    "LimitNOFILESoft": "infinity",
    "LimitMEMLOCK": "8388608",
    "LimitMEMLOCKSoft": "8388608",
}


def loaded(unit=None, **changes):
    values = dict(unit or STOCK_UNIT)
    values.update(changes)
    return values


def node(
    files=None,
    *,
    docker=False,
    containerd=True,
    init="systemd",
    unit=None,
    ages=None,
    containerd_age=100.0,
    processes=(),
    limits=None,
):
    facts_files = {
        p: FileFact(p, "file", c.encode() if isinstance(c, str) else c)
        for p, c in (files or {}).items()
    }
    return NodeFacts(
        user="root",
        init_system=init,
        docker_installed=docker,
        dockerd_pid=42 if docker else None,
        dockerd_argv=("/usr/sbin/dockerd",) if docker else (),
        files=facts_files,
        sysctl_runtime={"vm.max_map_count": 262144},
        sysctl_files=("/etc/sysctl.d/99-trains.conf",),
        containerd_installed=containerd,
        containerd_unit=unit if unit is not None else (STOCK_UNIT if init == "systemd" else None),
        file_ages=ages or {},
        containerd_age=containerd_age,
        containerd_processes=processes,
        process_limits=limits or {},
    )


def by_id(plan):
    return {r.id: r for r in plan.requirements}


def test_docker_only_node_is_planned_as_before():
    plan = make_plan(node(READY_FILES, docker=True, containerd=False, init="sysvinit"), DESIRED)
    assert plan.runtime.targets == ("docker",)
    assert [c.path for c in plan.file_changes] == [DAEMON_JSON]
    assert plan.restart_docker and not plan.restart_containerd
    assert not any(r.id.startswith("containerd.") for r in plan.requirements)


def test_containerd_node_gets_a_dropin_that_keeps_higher_limits_and_a_restart():
    plan = make_plan(node({**READY_FILES, **CONTAINERD_KUBELET}), DESIRED)

    assert plan.runtime.kubelet == "containerd" and plan.runtime.targets == ("containerd",)
    assert [c.path for c in plan.file_changes] == [DROPIN]
    change = plan.file_changes[0]
    assert change.restarts_containerd and not change.restarts_docker
    # nofile infinity stays infinity (never lowered); memlock is raised from 8 MiB
    assert parse_dropin(change.new.decode()) == {
        "nofile": Ulimit("nofile", -1, -1),
        "memlock": Ulimit("memlock", -1, -1),
    }
    assert plan.restart_containerd and not plan.restart_docker
    reqs = by_id(plan)
    assert reqs["containerd.limit.nofile"].ok and not reqs["containerd.limit.memlock"].ok
    assert reqs["containerd.limit.memlock"].actual == "8388608"
    assert not any(r.startswith("docker.") for r in reqs)


def test_containerd_node_with_its_dropin_loaded_is_ready():
    unit = loaded(
        DropInPaths=DROPIN,
        LimitNOFILE="65536",
        LimitNOFILESoft="1024",
        LimitMEMLOCK="infinity",
        LimitMEMLOCKSoft="infinity",
    )
    content = render_dropin([Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)])
    plan = make_plan(
        node(
            {**READY_FILES, **CONTAINERD_KUBELET, DROPIN: content},
            unit=unit,
            ages={DROPIN: 500.0},
            containerd_age=100.0,
        ),
        DESIRED,
    )
    assert plan.empty and plan.ready, plan.requirements
    assert by_id(plan)["containerd.running-config"].ok


@pytest.mark.parametrize(
    "unit_changes, ages, why",
    [
        ({"NeedDaemonReload": "yes"}, {DROPIN: 500.0}, "reloaded"),
        ({"DropInPaths": ""}, {DROPIN: 500.0}, "not loaded"),
        ({}, {DROPIN: 10.0}, "changed after containerd started"),
    ],
)
def test_right_dropin_that_containerd_does_not_use_yet_plans_a_restart_only(
    unit_changes, ages, why
):
    content = render_dropin([Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)])
    unit = loaded(
        DropInPaths=DROPIN,
        LimitNOFILE="65536",
        LimitNOFILESoft="1024",
        LimitMEMLOCK="infinity",
        LimitMEMLOCKSoft="infinity",
    )
    unit.update(unit_changes)
    plan = make_plan(
        node(
            {**READY_FILES, **CONTAINERD_KUBELET, DROPIN: content},
            unit=unit,
            ages=ages,
            containerd_age=100.0,
        ),
        DESIRED,
    )
    assert plan.file_changes == () and plan.restart_containerd and not plan.restart_docker
    assert why in by_id(plan)["containerd.running-config"].actual


def test_later_dropin_that_lowers_the_limits_is_refused_by_name():
    content = render_dropin([Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)])
    later = "/etc/systemd/system/containerd.service.d/zz-local.conf"
    unit = loaded(
        DropInPaths=f"{DROPIN} {later}",
        LimitNOFILE="4096",
        LimitNOFILESoft="4096",
        LimitMEMLOCK="infinity",
        LimitMEMLOCKSoft="infinity",
    )
    plan = make_plan(
        node({**READY_FILES, **CONTAINERD_KUBELET, DROPIN: content}, unit=unit), DESIRED
    )
    assert plan.blockers and later in plan.blockers[0] and plan.file_changes == ()


def test_later_dropin_that_raises_a_limit_is_left_alone():
    content = render_dropin([Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)])
    unit = loaded(
        DropInPaths=f"{DROPIN} /etc/systemd/system/containerd.service.d/zz.conf",
        LimitNOFILE="1048576",
        LimitNOFILESoft="1048576",
        LimitMEMLOCK="infinity",
        LimitMEMLOCKSoft="infinity",
    )
    plan = make_plan(
        node(
            {**READY_FILES, **CONTAINERD_KUBELET, DROPIN: content}, unit=unit, ages={DROPIN: 500.0}
        ),
        DESIRED,
    )
    assert plan.empty and plan.ready


def test_mixed_node_gets_daemon_json_and_dropin_and_both_restarts():
    plan = make_plan(node({**READY_FILES, **CONTAINERD_KUBELET}, docker=True), DESIRED)
    assert plan.runtime.targets == ("docker", "containerd")
    assert sorted(c.path for c in plan.file_changes) == sorted([DAEMON_JSON, DROPIN])
    assert plan.restarts == ("containerd", "docker")
    assert {"docker.default-ulimit.nofile", "containerd.limit.nofile"} <= set(by_id(plan))


def test_mixed_node_ready_in_docker_but_not_containerd_is_not_ready():
    plan = make_plan(
        node({**READY_FILES, **CONTAINERD_KUBELET, DAEMON_JSON: READY_JSON}, docker=True), DESIRED
    )
    assert (
        not plan.ready
        and [c.path for c in plan.file_changes] == [DROPIN]
        and not plan.restart_docker
    )


def test_containerd_not_a_systemd_service_is_refused():
    plan = make_plan(
        node({**READY_FILES, **CONTAINERD_KUBELET}, unit={"LoadState": "not-found"}), DESIRED
    )
    assert (
        plan.blockers
        and "not-found" in plan.blockers[0]
        and "ulimit -H -n 65536" in plan.blockers[0]
    )


LOW_LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max open files            1024                 4096                 files
Max locked memory         65536                65536                bytes
"""
HIGH_LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max open files            1024                 65536                files
Max locked memory         unlimited            unlimited            bytes
"""


def test_without_systemd_containerd_limits_are_read_from_the_process_and_low_ones_refused():
    processes = (
        (90, ("/usr/bin/containerd", "--config", "/var/run/docker/containerd/containerd.toml")),
        (80, ("/usr/bin/containerd",)),
    )
    plan = make_plan(
        node(
            {**READY_FILES, **CONTAINERD_KUBELET},
            init="sysvinit",
            processes=processes,
            limits={80: LOW_LIMITS, 90: HIGH_LIMITS},
        ),
        DESIRED,
    )
    assert (
        plan.blockers
        and "no systemd" in plan.blockers[0]
        and "ulimit -H -n 65536; ulimit -S -n 1024; ulimit -H -l unlimited" in plan.blockers[0]
    )
    assert by_id(plan)["containerd.limit.nofile"].actual == "1024:4096"
    assert "/proc/80/limits" in by_id(plan)["containerd.limit.nofile"].where


def test_without_systemd_containerd_with_high_limits_is_ready():
    plan = make_plan(
        node(
            {**READY_FILES, **CONTAINERD_KUBELET},
            init="sysvinit",
            processes=((80, ("/usr/bin/containerd",)),),
            limits={80: HIGH_LIMITS},
        ),
        DESIRED,
    )
    assert plan.ready and plan.empty


def test_dropin_render_parse_round_trip_and_never_lowers():
    limits = dropin_limits(
        DESIRED.ulimits,
        {"nofile": Ulimit("nofile", 4096, 1048576)},
        {"memlock": Ulimit("memlock", 1024, 2048)},
    )
    assert limits == [Ulimit("nofile", 4096, 1048576), Ulimit("memlock", -1, -1)]
    text = render_dropin(limits).decode()
    assert "[Service]\nLimitNOFILE=4096:1048576\nLimitMEMLOCK=infinity\n" in text
    assert parse_dropin(text) == {"nofile": limits[0], "memlock": limits[1]}
    assert parse_dropin("[Unit]\nLimitNOFILE=5\n[Service]\nLimitNOFILE=7\nLimitNOFILE=9\n") == {
        "nofile": Ulimit("nofile", 9, 9)
    }


def test_shell_hint_counts_memlock_in_kib():
    assert (
        shell_ulimit_hint((Ulimit("memlock", 65536, 131072),))
        == "ulimit -H -l 128; ulimit -S -l 64"
    )
