"""k3s, RKE2 and MicroK8s nodes prepared where their pods really get their limits: for k3s and
RKE2 (server and agent) a drop-in of the distribution's own unit, a daemon-reload and one restart
of that unit, whose new containerd (its child) hands the new limits to every container started
afterwards; for MicroK8s the ulimit lines of containerd-env and `microk8s stop; microk8s start`.

The nodes are tests/testbed K3sNode, Rke2Node and MicroK8sNode: the real systemd, the
distribution's own unit text, the real containerd and runc (through the bed's wrapper, which
records what each container inherits). The distributions cannot be installed here: STAND-INS for
their binaries (tests/testbed/k3s-stand-in, rke2-stand-in, microk8s/) start that containerd with
the distribution's argv and socket. What is real is where the limits come from.

Root in this sandbox cannot raise a hard limit above this process's own (nofile 20000, memlock
8 MiB): the containers get the unit's limits capped there (`capped`), while `systemctl show`
reports the unit's values as written.
"""

from __future__ import annotations

import json
import resource

import pytest

from tests.integration.cli import json_output, trains_nodeprep
from tests.testbed import K3sNode, MicroK8sNode, Rke2Node

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


UNITS = {
    (K3sNode, "server"): "k3s",
    (K3sNode, "agent"): "k3s-agent",
    (Rke2Node, "server"): "rke2-server",
    (Rke2Node, "agent"): "rke2-agent",
}


@pytest.mark.parametrize(("kind", "role"), list(UNITS), ids=list(UNITS.values()))
def test_k3s_and_rke2_get_their_limits_in_a_drop_in_of_their_own_unit(bed, make_node, kind, role):
    unit = UNITS[kind, role]
    name = unit.split("-")[0]
    dropin = f"/etc/systemd/system/{unit}.service.d/99-trains.conf"
    node = make_node(
        kind=kind,
        role=role,
        files={f"/etc/systemd/system/{unit}.service.d/10-site.conf": SITE_DROPIN},
    )
    before = node.run_distro_container()["inherited"]
    assert before["RLIMIT_NOFILE"] == (4096, 4096) and before["RLIMIT_MEMLOCK"] == (65536, 65536)
    k3s, containerd = node.unit_pid(unit), node.containerd_pid()

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert checked.returncode == 1, checked.stdout + checked.stderr
    (report,) = json_output(checked)["nodes"]
    assert report["runtime"]["distribution"] == f"{name}-{role}"
    assert report["runtime"]["targets"] == [unit]
    assert requirement(report, f"{name}.limit.memlock")["actual"] == "65536"
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
    assert node.unit_pid(unit) not in (None, k3s)
    assert node.containerd_pid() not in (None, containerd)
    assert node.journal(unit, lines=500).count(f"Started {unit}.service") == 2  # one restart
    after = node.run_distro_container()["inherited"]
    assert after == {  # containerd (Go) raises its soft nofile to the hard one
        "RLIMIT_NOFILE": (capped(65536, resource.RLIMIT_NOFILE),) * 2,
        "RLIMIT_MEMLOCK": (capped(-1, resource.RLIMIT_MEMLOCK),) * 2,
    }
    # nothing written where k3s's pods do not look
    for path in ("/etc/docker/daemon.json", "/etc/systemd/system/containerd.service.d"):
        assert node.exec("test", "-e", path, check=False).returncode == 1, path

    rechecked = trains_nodeprep(bed, "check", "--host", node.name)
    k3s = node.unit_pid(unit)
    again = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert rechecked.returncode == 0, rechecked.stdout + rechecked.stderr
    assert json_output(again)["nodes"][0]["status"] == "unchanged"
    assert node.unit_pid(unit) == k3s


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


ENV = "/var/snap/microk8s/current/args/containerd-env"


def test_microk8s_gets_its_containerd_env_raised_and_stops_and_starts(bed, make_node):
    node = make_node(kind=MicroK8sNode)
    default = node.read(ENV).decode()
    # a site that lowered both (the defaults, 65536 and 16 MiB, cannot be set in this sandbox)
    lowered = default.replace("ulimit -n 65536", "ulimit -n 4096").replace(
        "ulimit -l 16384", "ulimit -l 4096"
    )
    node.write(ENV, lowered)
    node.exec("sh", "-c", "microk8s stop && microk8s start")
    before = node.run_distro_container()["inherited"]
    assert before == {"RLIMIT_NOFILE": (4096, 4096), "RLIMIT_MEMLOCK": (4 << 20, 4 << 20)}
    containerd = node.containerd_pid()

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert checked.returncode == 1
    (report,) = json_output(checked)["nodes"]
    assert report["runtime"]["distribution"] == "microk8s"
    assert requirement(report, "microk8s.limit.memlock")["actual"] == str(4 << 20)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    (done,) = json_output(ran)["nodes"]
    assert done["status"] == "changed" and done["applied"]["restarted"] == ["microk8s"]
    # every other line kept; soft nofile 4096 kept, hard raised; memlock unlimited
    assert node.read(ENV).decode() == lowered.replace(
        "ulimit -n 4096 || true", "ulimit -Hn 65536 || true\nulimit -Sn 4096 || true"
    ).replace("ulimit -l 4096", "ulimit -l unlimited")
    assert node.containerd_pid() not in (None, containerd)
    after = node.run_distro_container()["inherited"]
    # the sandbox refuses hard limits above its own (the unit's), so `|| true` keeps those; and
    # containerd (Go) raises its soft nofile to the hard one
    assert after == {
        "RLIMIT_NOFILE": (capped(65536, resource.RLIMIT_NOFILE),) * 2,
        "RLIMIT_MEMLOCK": (capped(-1, resource.RLIMIT_MEMLOCK),) * 2,
    }

    rechecked = trains_nodeprep(bed, "check", "--host", node.name)
    containerd = node.containerd_pid()
    again = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")
    unchanged_pid = node.containerd_pid()
    restored = trains_nodeprep(bed, "restore", "--host", node.name, "--yes", "-o", "json")

    assert rechecked.returncode == 0, rechecked.stdout + rechecked.stderr
    assert json_output(again)["nodes"][0]["status"] == "unchanged"
    assert unchanged_pid == containerd
    assert restored.returncode == 0, restored.stdout + restored.stderr
    assert node.read(ENV).decode() == lowered
    assert node.run_distro_container()["inherited"] == before
