"""k3s nodes, server and agent, prepared where their pods really get their limits: a drop-in of
k3s's own unit, a daemon-reload and one restart of that unit, whose new containerd (its child)
hands the new limits to every container started afterwards.

The nodes are tests/testbed K3sNode: the real systemd, k3s's own unit text, the real containerd
and runc (through the bed's wrapper, which records what each container inherits). k3s itself
cannot be installed here: a STAND-IN for its binary starts that containerd with k3s's argv and
socket (tests/testbed/k3s-stand-in). What is real is where the limits come from.

Root in this sandbox cannot raise a hard limit above this process's own (nofile 20000, memlock
8 MiB): the containers get the unit's limits capped there (`capped`), while `systemctl show`
reports the unit's values as written.
"""

from __future__ import annotations

import json
import resource

import pytest

from tests.integration.cli import json_output, trains_nodeprep
from tests.testbed import K3sNode

# limits a site set before (as older systems had): below the playbook's, raised by the tool
SITE_DROPIN = "[Service]\nLimitNOFILE=4096\nLimitMEMLOCK=65536\n"


def host_hard(res: int) -> int:
    hard = resource.getrlimit(res)[1]
    return -1 if hard == resource.RLIM_INFINITY else hard


def capped(value: int, res: int) -> int:
    """What a container gets of value here: at most this process's hard limit."""
    cap = host_hard(res)
    if cap == -1:
        return value
    return cap if value == -1 else min(value, cap)


def requirement(report: dict, rid: str) -> dict:
    return {r["id"]: r for r in report["requirements"]}[rid]


@pytest.mark.parametrize("role", ["server", "agent"])
def test_a_k3s_node_gets_its_limits_in_a_drop_in_of_its_own_unit(bed, make_node, role):
    unit = "k3s" if role == "server" else "k3s-agent"
    dropin = f"/etc/systemd/system/{unit}.service.d/99-trains.conf"
    node = make_node(
        kind=K3sNode,
        role=role,
        files={f"/etc/systemd/system/{unit}.service.d/10-site.conf": SITE_DROPIN},
    )
    before = node.run_k3s_container()["inherited"]
    assert before["RLIMIT_NOFILE"] == (4096, 4096) and before["RLIMIT_MEMLOCK"] == (65536, 65536)
    k3s, containerd = node.k3s_pid(), node.containerd_pid()

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert checked.returncode == 1, checked.stdout + checked.stderr
    (report,) = json_output(checked)["nodes"]
    assert report["runtime"]["distribution"] == f"k3s-{role}"
    assert report["runtime"]["targets"] == [unit]
    assert requirement(report, "k3s.limit.memlock")["actual"] == "65536"
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (done,) = json_output(ran)["nodes"]
    assert done["status"] == "changed" and done["applied"]["restarted"] == [unit]
    # each value the higher of the unit's and the playbook's: soft nofile 4096 stays
    assert (
        node.read(dropin)
        .decode()
        .endswith("[Service]\nLimitNOFILE=4096:65536\nLimitMEMLOCK=infinity\n")
    )
    assert node.unit_show("LimitNOFILE", "LimitNOFILESoft", "LimitMEMLOCK") == {
        "LimitNOFILE": "65536",
        "LimitNOFILESoft": "4096",
        "LimitMEMLOCK": "infinity",
    }
    assert node.k3s_pid() not in (None, k3s) and node.containerd_pid() not in (None, containerd)
    assert node.journal(unit, lines=500).count(f"Started {unit}.service") == 2  # one restart
    after = node.run_k3s_container()["inherited"]
    assert after == {  # containerd (Go) raises its soft nofile to the hard one
        "RLIMIT_NOFILE": (capped(65536, resource.RLIMIT_NOFILE),) * 2,
        "RLIMIT_MEMLOCK": (capped(-1, resource.RLIMIT_MEMLOCK),) * 2,
    }
    # nothing written where k3s's pods do not look
    for path in ("/etc/docker/daemon.json", "/etc/systemd/system/containerd.service.d"):
        assert node.exec("test", "-e", path, check=False).returncode == 1, path

    rechecked = trains_nodeprep(bed, "check", "--host", node.name)
    k3s = node.k3s_pid()
    again = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert rechecked.returncode == 0, rechecked.stdout + rechecked.stderr
    assert json_output(again)["nodes"][0]["status"] == "unchanged"
    assert node.k3s_pid() == k3s


def test_restore_puts_a_k3s_node_back_and_restarts_k3s(bed, make_node):
    node = make_node(kind=K3sNode)
    dropin = "/etc/systemd/system/k3s.service.d/99-trains.conf"
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert node.unit_show("LimitMEMLOCK") == {"LimitMEMLOCK": "infinity"}
    k3s = node.k3s_pid()

    restored = trains_nodeprep(bed, "restore", "--host", node.name, "--yes", "-o", "json")

    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert json_output(restored)["nodes"][0]["applied"]["restarted"] == ["k3s"]
    assert node.exec("test", "-e", dropin, check=False).returncode == 1
    assert node.unit_show("LimitMEMLOCK") == {"LimitMEMLOCK": "8388608"}
    assert node.k3s_pid() not in (None, k3s)
    assert trains_nodeprep(bed, "check", "--host", node.name).returncode == 1


def test_a_stopped_k3s_is_configured_and_left_stopped(bed, make_node):
    node = make_node(kind=K3sNode)
    node.systemctl("stop", "k3s")

    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert ran.returncode == 0, ran.stdout + ran.stderr
    (report,) = json.loads(ran.stdout)["nodes"]
    assert report["status"] == "changed" and report["applied"]["restarted"] == []
    assert report["notes"] == [
        "k3s is not running and is left stopped: the new config applies when it starts"
    ]
    assert node.systemctl("is-active", "k3s", check=False).stdout.strip() == "inactive"
    node.systemctl("start", "k3s")
    assert node.run_k3s_container()["inherited"]["RLIMIT_MEMLOCK"] == (
        (capped(-1, resource.RLIMIT_MEMLOCK),) * 2
    )
    checked = trains_nodeprep(bed, "check", "--host", node.name)
    assert checked.returncode == 0, checked.stdout
