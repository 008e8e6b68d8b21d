"""Never lower what docker's containers get today, as tables: facts in, requirements and the
written docker config out (no I/O).

Without default ulimits dockerd puts no rlimits in a container's spec: the container inherits
the limits of the containerd that docker uses (its own child, or the one at the socket its
--containerd flag names, containerd.service on Debian). Those limits are the floor: the values
written are the playbook's minimums raised to them, soft and hard each."""

from __future__ import annotations

import json

import pytest

from trains_nodeprep.engine.facts import FileFact, NodeFacts
from trains_nodeprep.engine.parse import parse_facts
from trains_nodeprep.engine.planner import make_plan
from trains_nodeprep.model import DAEMON_JSON, SYSCONFIG_DOCKER, DesiredState, SysctlSetting, Ulimit
from trains_nodeprep.remote.protocol import encode_record
from trains_nodeprep.requirements.inherited import docker_containerd, inherited_limits

from .fakes import facts_output

DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file="/etc/sysctl.d/99-trains.conf",
    source="test",
)
MIB8 = 8 * 1024 * 1024
SYSTEM_CONTAINERD = 800  # containerd.service's main process
DOCKERD = 42
DEBIAN_DOCKERD = (
    "/usr/sbin/dockerd",
    "-H",
    "fd://",
    "--containerd=/run/containerd/containerd.sock",
)
DOCKER_OWN = ("containerd", "--config", "/var/run/docker/containerd/containerd.toml")


def proc_limits(nofile: tuple[int, int], memlock: tuple[int, int]) -> str:
    """/proc/PID/limits as the kernel prints it (only the rows that matter here)."""

    def value(number: int) -> str:
        return "unlimited" if number == -1 else str(number)

    return (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        f"Max open files            {value(nofile[0]):<20} {value(nofile[1]):<20} files     \n"
        f"Max locked memory         {value(memlock[0]):<20} {value(memlock[1]):<20} bytes     \n"
    )


DEBIAN_CONTAINERD = proc_limits((1048576, 1048576), (MIB8, MIB8))  # LimitNOFILE=infinity


def node(
    files: dict[str, str] | None = None,
    *,
    containerds: dict[int, tuple[tuple[str, ...], str]] | None = None,
    parents: dict[int, int] | None = None,
    argv: tuple[str, ...] = DEBIAN_DOCKERD,
    docker_running: bool = True,
    init: str = "systemd",
) -> NodeFacts:
    """A docker node (no kubelet). `containerds`: pid -> (argv, /proc/PID/limits); by default
    Debian's containerd.service, with LimitNOFILE=infinity."""
    if containerds is None:
        containerds = {SYSTEM_CONTAINERD: (("/usr/bin/containerd",), DEBIAN_CONTAINERD)}
    return NodeFacts(
        user="root",
        init_system=init,
        docker_installed=True,
        dockerd_pid=DOCKERD if docker_running else None,
        dockerd_argv=argv if docker_running else (),
        files={p: FileFact(p, "file", c.encode()) for p, c in (files or {}).items()},
        sysctl_runtime={"vm.max_map_count": 262144},
        sysctl_files=("/etc/sysctl.d/99-trains.conf",),
        containerd_installed=True,
        containerd_processes=tuple((pid, a) for pid, (a, _) in containerds.items()),
        process_limits={pid: limits for pid, (_, limits) in containerds.items()},
        process_parents=parents if parents is not None else dict.fromkeys(containerds, 1),
        containerd_unit={"LoadState": "loaded", "MainPID": str(SYSTEM_CONTAINERD)}
        if init == "systemd"
        else None,
    )


def docker_requirements(plan) -> dict[str, tuple[bool, str, str]]:
    return {
        r.id: (r.ok, r.actual, r.where)
        for r in plan.requirements
        if r.id.startswith("docker.default-ulimit.")
    }


def written_ulimits(plan) -> dict[str, tuple[int, int]] | None:
    """The default-ulimits of the daemon.json the plan writes (None: it writes none)."""
    change = next((c for c in plan.file_changes if c.path == DAEMON_JSON), None)
    if change is None:
        return None
    entries = json.loads(change.new)["default-ulimits"]
    return {name: (entry["Soft"], entry["Hard"]) for name, entry in entries.items()}


def daemon_json(**limits: tuple[int, int]) -> str:
    entries = {n: {"Name": n, "Soft": soft, "Hard": hard} for n, (soft, hard) in limits.items()}
    return json.dumps({"default-ulimits": entries})


def inherited(pid: int = SYSTEM_CONTAINERD) -> str:
    return f"(inherited from containerd pid {pid})"


# name, facts, what daemon.json gets (None: nothing written), the requirements' (ok, actual)
CASES = [
    (
        "inherited higher nofile kept, inherited lower memlock raised",
        node(),
        {"nofile": (1048576, 1048576), "memlock": (-1, -1)},
        {
            "nofile": (True, f"1048576 {inherited()}"),
            "memlock": (False, f"8388608 {inherited()}"),
        },
    ),
    (
        "soft and hard each the higher of the two",
        node(
            containerds={
                SYSTEM_CONTAINERD: (("containerd",), proc_limits((1024, 1048576), (MIB8, MIB8)))
            }
        ),
        {"nofile": (1024, 1048576), "memlock": (-1, -1)},
        {
            "nofile": (True, f"1024:1048576 {inherited()}"),
            "memlock": (False, f"8388608 {inherited()}"),
        },
    ),
    (
        "inherited lower than the playbook: its minimums",
        node(
            containerds={
                SYSTEM_CONTAINERD: (("containerd",), proc_limits((1024, 4096), (65536, 65536)))
            }
        ),
        {"nofile": (1024, 65536), "memlock": (-1, -1)},
        {
            "nofile": (False, f"1024:4096 {inherited()}"),
            "memlock": (False, f"65536 {inherited()}"),
        },
    ),
    (
        "the soft limit inherited above the playbook's hard one",
        node(
            containerds={
                SYSTEM_CONTAINERD: (("containerd",), proc_limits((70000, 70000), (MIB8, -1)))
            }
        ),
        {"nofile": (70000, 70000), "memlock": (-1, -1)},
        {
            "nofile": (True, f"70000 {inherited()}"),
            "memlock": (False, f"8388608:unlimited {inherited()}"),
        },
    ),
    (
        "everything inherited is enough: nothing written, docker keeps running",
        node(
            containerds={
                SYSTEM_CONTAINERD: (("containerd",), proc_limits((1048576, 1048576), (-1, -1)))
            }
        ),
        None,
        {
            "nofile": (True, f"1048576 {inherited()}"),
            "memlock": (True, f"unlimited {inherited()}"),
        },
    ),
    (
        "docker's own child containerd (docker 20.10 under sysvinit), not the system one",
        node(
            containerds={
                SYSTEM_CONTAINERD: (("/usr/bin/containerd",), DEBIAN_CONTAINERD),
                900: (DOCKER_OWN, proc_limits((20000, 20000), (MIB8, MIB8))),
            },
            parents={SYSTEM_CONTAINERD: 1, 900: DOCKERD},
            argv=("/usr/sbin/dockerd", "--add-runtime", "tnp=/usr/bin/tnp"),
            init="sysvinit",
        ),
        {"nofile": (20000, 65536), "memlock": (-1, -1)},
        {
            "nofile": (False, f"20000 {inherited(900)}"),
            "memlock": (False, f"8388608 {inherited(900)}"),
        },
    ),
    (
        "default-ulimits present: docker uses only those, inherited limits do not count",
        node({DAEMON_JSON: daemon_json(nofile=(1024, 4096), memlock=(-1, -1))}),
        {"nofile": (1024, 65536), "memlock": (-1, -1)},
        {"nofile": (False, "1024:4096"), "memlock": (True, "unlimited")},
    ),
    (
        "default-ulimits for nofile only: memlock is what containers inherit",
        node({DAEMON_JSON: daemon_json(nofile=(1024, 65536))}),
        {"nofile": (1024, 65536), "memlock": (-1, -1)},
        {"nofile": (True, "1024:65536"), "memlock": (False, f"8388608 {inherited()}")},
    ),
    (
        "an unlimited nofile read from /proc is never written (the kernel refuses it)",
        node(containerds={SYSTEM_CONTAINERD: (("containerd",), proc_limits((-1, -1), (-1, -1)))}),
        {"nofile": (1024, 65536), "memlock": (-1, -1)},
        {"nofile": (False, "unset"), "memlock": (True, f"unlimited {inherited()}")},
    ),
]


@pytest.mark.parametrize(
    ("facts", "written", "requirements"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_docker_limits_are_judged_by_what_containers_get_today(facts, written, requirements):
    plan = make_plan(facts, DESIRED)

    assert not plan.blockers
    assert written_ulimits(plan) == written
    assert plan.restart_docker == (written is not None)
    got = docker_requirements(plan)
    assert {name: got[f"docker.default-ulimit.{name}"][:2] for name in requirements} == (
        requirements
    )
    assert all(where.startswith(DAEMON_JSON) for _ok, _actual, where in got.values())


def test_docker_not_running_gets_the_playbook_minimums_and_says_why():
    plan = make_plan(node(docker_running=False), DESIRED)

    assert written_ulimits(plan) == {"nofile": (1024, 65536), "memlock": (-1, -1)}
    for ok, actual, where in docker_requirements(plan).values():
        assert (ok, actual) == (False, "unset")
        assert where == (
            f"{DAEMON_JSON}; what containers inherit is unknown: docker is not running"
        )


def test_no_containerd_found_gets_the_playbook_minimums_and_says_why():
    plan = make_plan(node(containerds={}), DESIRED)

    assert written_ulimits(plan) == {"nofile": (1024, 65536), "memlock": (-1, -1)}
    [(_ok, _actual, where), *_] = docker_requirements(plan).values()
    assert where.endswith(
        "no running containerd listens on /run/containerd/containerd.sock, which dockerd uses"
    )


def test_unlimited_nofile_from_proc_says_so_in_where():
    facts = node(containerds={SYSTEM_CONTAINERD: (("c",), proc_limits((-1, -1), (-1, -1)))})

    nofile = docker_requirements(make_plan(facts, DESIRED))["docker.default-ulimit.nofile"]

    assert nofile[2].endswith(f"containerd pid {SYSTEM_CONTAINERD} has no nofile limit read")


def test_rhel_sysconfig_without_flags_gets_flags_raised_to_the_inherited_limits():
    facts = node({SYSCONFIG_DOCKER: 'OPTIONS="--selinux-enabled"\n'}, init="sysvinit")

    plan = make_plan(facts, DESIRED)

    [change] = [c for c in plan.file_changes if c.path == SYSCONFIG_DOCKER]
    assert change.new == (
        b'OPTIONS="--selinux-enabled --default-ulimit nofile=1048576:1048576 '
        b'--default-ulimit memlock=-1:-1"\n'
    )


def test_flags_docker_already_takes_are_judged_as_before():
    sysconfig = 'OPTIONS="--default-ulimit nofile=1024:4096"\n'

    plan = make_plan(node({SYSCONFIG_DOCKER: sysconfig}, init="sysvinit"), DESIRED)

    [change] = [c for c in plan.file_changes if c.path == SYSCONFIG_DOCKER]
    # nofile is docker's own (raised to the minimum); memlock is inherited (8 MiB: raised)
    assert change.new == (
        b'OPTIONS="--default-ulimit nofile=1024:65536 --default-ulimit memlock=-1:-1"\n'
    )


def test_everything_inherited_enough_with_a_flagless_sysconfig_restarts_nothing():
    high = proc_limits((1048576, 1048576), (-1, -1))
    facts = node(
        {SYSCONFIG_DOCKER: 'OPTIONS="--selinux-enabled"\n'},
        containerds={SYSTEM_CONTAINERD: (("containerd",), high)},
        init="sysvinit",
    )

    plan = make_plan(facts, DESIRED)

    assert not plan.restart_docker and not any(
        c.path == SYSCONFIG_DOCKER for c in plan.file_changes
    )
    assert not any(r.id == "docker.running-config" for r in plan.requirements)


# ------------------------------------------------------------- which containerd docker uses


def test_several_containerds_at_the_socket_containerd_service_main_pid_decides():
    facts = node(
        containerds={
            700: (("containerd",), proc_limits((1024, 4096), (MIB8, MIB8))),
            SYSTEM_CONTAINERD: (("containerd",), DEBIAN_CONTAINERD),
        }
    )

    assert docker_containerd(facts, None) == SYSTEM_CONTAINERD


def test_the_socket_dockerd_names_decides():
    other = "/run/other/containerd.sock"
    facts = node(
        containerds={
            SYSTEM_CONTAINERD: (("containerd",), DEBIAN_CONTAINERD),
            701: (("containerd", "--address", other), proc_limits((4096, 4096), (MIB8, MIB8))),
        },
        argv=("/usr/sbin/dockerd", "--containerd", f"unix://{other}"),
    )

    assert docker_containerd(facts, None) == 701
    assert docker_containerd(node(argv=("dockerd",)), other).startswith(
        f"no running containerd listens on {other}"
    )


def test_a_containerd_an_earlier_dockerd_started_is_docker_s_own():
    facts = node(
        containerds={
            SYSTEM_CONTAINERD: (("containerd",), DEBIAN_CONTAINERD),
            900: (DOCKER_OWN, proc_limits((20000, 20000), (MIB8, MIB8))),
        },
        argv=("/usr/sbin/dockerd",),
    )  # both reparented to init

    assert docker_containerd(facts, None) == 900
    assert inherited_limits(facts).limits["nofile"] == Ulimit("nofile", 20000, 20000)


def test_the_facts_record_each_containerd_s_parent_and_limits():
    rows = DEBIAN_CONTAINERD.replace("\n", "|")
    records = [
        ("proc", "containerd", "800", "/usr/bin/containerd"),
        ("parent", "800", "ok", "1"),
        ("limits", "800", "ok", rows),
    ]
    output = facts_output()
    at = output.index(b"end\tend")
    extra = b"".join(encode_record(k, n, s, data=d) for k, n, s, d in records)

    facts = parse_facts(output[:at] + extra + output[at:])

    assert facts.process_parents == {800: 1}
    assert facts.process_limits[800] == DEBIAN_CONTAINERD
    assert facts.containerd_processes == ((800, ("/usr/bin/containerd",)),)
