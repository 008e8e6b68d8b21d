"""Never lower what docker's containers get today, on real docker nodes (tests/testbed).

Without default ulimits, dockerd asks runc for no rlimits: a container inherits the limits of
the containerd that docker uses. On the sysvinit node (docker 20.10) that is dockerd's own
child containerd; on the systemd node, Debian 12's docker.service passes
`--containerd=/run/containerd/containerd.sock`: Debian's unchanged containerd.service, with
`LimitNOFILE=infinity`. The runtime wrapper records, for each container, the rlimits its spec
requests and its own (what containerd, through the shim, passes down): a container run before
the tool came shows what containers inherited; one run after shows what docker now asks for.
Root here lacks CAP_SYS_RESOURCE, so what is inherited is capped at the sandbox's limits
(nofile 20000, memlock 8 MiB): the test compares with what was recorded, not with constants.
"""

from __future__ import annotations

import json
import re

import pytest

from tests.testbed import Debian13Node, SystemdNode, TiniNode
from tests.testbed.node import signed

from .cli import json_output, trains_nodeprep

MINIMUMS = {"RLIMIT_NOFILE": (1024, 65536), "RLIMIT_MEMLOCK": (-1, -1)}  # bundled playbook


def key(value: int) -> float:
    return float("inf") if value == -1 else value


def not_below(limit: tuple[int, int], floor: tuple[int, int]) -> bool:
    return key(limit[0]) >= key(floor[0]) and key(limit[1]) >= key(floor[1])


def inherited_by_a_container(node) -> dict[str, tuple[int, int]]:
    """Run a container now; the rlimits it inherited (it requests none)."""
    assert node.run_container() == {}, "docker asks for rlimits before the tool came"
    record = node.rlimit_records()[-1]
    return {
        rl["type"]: (signed(rl["soft"]), signed(rl["hard"])) for rl in record["process_rlimits"]
    }


def docker_containerd_pid(node) -> int:
    """The containerd docker uses, as the node itself sees it."""
    if isinstance(node, SystemdNode):
        return node.unit_pid("containerd")
    child = node.exec("pgrep", "-x", "-P", str(node.docker_pid()), "containerd").stdout.split()
    assert len(child) == 1, child
    return int(child[0])


@pytest.mark.parametrize(
    "kind",
    [TiniNode, SystemdNode, Debian13Node],
    ids=["sysvinit-dockerd-own-containerd", "systemd-units", "debian13"],
)
def test_containers_limits_after_run_are_not_below_what_they_inherited_before(bed, make_node, kind):
    node = make_node(kind=kind, docker=True)
    before = inherited_by_a_container(node)
    containerd = docker_containerd_pid(node)

    check = json_output(trains_nodeprep(bed, "check", "--host", node.name, "-o", "json"))

    reqs = {r["id"]: r for r in check["nodes"][0]["requirements"]}
    for name, rlimit in (("nofile", "RLIMIT_NOFILE"), ("memlock", "RLIMIT_MEMLOCK")):
        requirement = reqs[f"docker.default-ulimit.{name}"]
        match = re.fullmatch(
            r"(\S+) \(inherited from containerd pid (\d+)\)", requirement["actual"]
        )
        assert match, requirement
        assert int(match[2]) == containerd
        shown = [int(v) if v != "unlimited" else -1 for v in match[1].split(":")]
        soft, hard = shown if len(shown) == 2 else shown * 2
        # hard as containerd has it; soft maybe higher (Go raises its own soft nofile)
        assert hard == before[rlimit][1] and not_below((soft, hard), before[rlimit]), requirement
        assert requirement["ok"] == not_below(before[rlimit], MINIMUMS[rlimit])
    assert reqs["docker.default-ulimit.memlock"]["ok"] is False  # 8 MiB at most here

    run = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert run.returncode == 0, run.stdout + run.stderr
    assert json_output(run)["nodes"][0]["status"] == "changed"
    notes = json_output(run)["nodes"][0]["applied"]["notes"]
    # Docker 26 (Debian 13) validates the new daemon.json before it is written; 20.10 cannot
    validated = not any("the restart is the validation" in note for note in notes)
    assert validated == (kind is Debian13Node), notes
    after = node.run_container()  # what dockerd now asks runc for
    for rlimit, minimum in MINIMUMS.items():
        assert not_below(after[rlimit], before[rlimit]), (rlimit, after, before)
        assert not_below(after[rlimit], minimum), (rlimit, after)
    # hard limits: exactly the higher of the two; soft at least that (containerd's own soft)
    assert after["RLIMIT_NOFILE"][1] == max(65536, before["RLIMIT_NOFILE"][1])
    assert after["RLIMIT_MEMLOCK"] == (-1, -1)
    written = json.loads(node.read("/etc/docker/daemon.json"))["default-ulimits"]
    assert (written["nofile"]["Soft"], written["nofile"]["Hard"]) == after["RLIMIT_NOFILE"]

    again = json_output(trains_nodeprep(bed, "run", "--host", node.name, "-o", "json"))
    assert again["nodes"][0]["status"] == "unchanged"


def test_with_docker_stopped_the_playbook_minimums_are_written_and_check_says_why(bed, make_node):
    node = make_node(docker=False)

    check = json_output(trains_nodeprep(bed, "check", "--host", node.name, "-o", "json"))

    nofile = {r["id"]: r for r in check["nodes"][0]["requirements"]}["docker.default-ulimit.nofile"]
    assert (nofile["ok"], nofile["actual"]) == (False, "unset")
    assert nofile["where"] == (
        "/etc/docker/daemon.json; what containers inherit is unknown: docker is not running"
    )
    plan = trains_nodeprep(bed, "plan", "--host", node.name)
    assert plan.returncode == 0, plan.stdout + plan.stderr
    assert '"Soft": 1024' in plan.stdout and '"Hard": 65536' in plan.stdout
