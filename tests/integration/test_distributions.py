"""Kubernetes distributions, told apart on real nodes by what the one facts command sees.

The processes here are stand-ins: a copy of sleep named as the distribution's main process is
(its comm: k3s-server, kubelite), beside the distribution's real unit file or args file. What is
real is the node, the facts script, and that nothing is written to docker's or containerd's
places on such a node. (k3s's own binaries cannot be installed here.)"""

from __future__ import annotations

import json

from tests.integration.cli import trains_nodeprep

K3S_UNIT = """[Unit]
Description=Lightweight Kubernetes
[Service]
Type=notify
KillMode=process
Delegate=yes
LimitNOFILE=1048576
LimitNPROC=infinity
LimitCORE=infinity
TasksMax=infinity
ExecStart=/usr/local/bin/k3s server
"""


def start_process_named(node, name: str) -> None:
    node.sh(f"cp /bin/sleep /run/{name} && (/run/{name} 600 >/dev/null 2>&1 &)")


def test_a_k3s_server_node_without_systemd_is_told_and_refused_with_what_to_set(bed, make_node):
    """A tini node (no systemd) where k3s-server runs: as an OpenRC install, whose init script
    sets k3s's limits; the real systemd k3s node is in test_k3s.py."""
    node = make_node(files={"/etc/systemd/system/k3s.service": K3S_UNIT})
    start_process_named(node, "k3s-server")
    pid = node.docker_pid()

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert checked.returncode == 1, checked.stderr
    (report,) = json.loads(checked.stdout)["nodes"]
    assert report["runtime"]["distribution"] == "k3s-server"
    assert report["runtime"]["targets"] == ["k3s"]
    assert "no systemd" in report["blockers"][0] and "ulimit -H -n 65536" in report["blockers"][0]
    assert ran.returncode == 1 and json.loads(ran.stdout)["nodes"][0]["status"] == "refused"
    assert node.read("/etc/docker/daemon.json") is None
    assert node.read("/etc/sysctl.d/99-trains.conf") is None
    assert node.docker_pid() == pid  # docker, installed but not the pods' runtime, untouched


def test_a_microk8s_node_is_told_by_kubelite_and_its_args(bed, make_node):
    node = make_node(
        docker=False, files={"/var/snap/microk8s/current/args/kubelet": "--node-ip=10.0.0.5\n"}
    )
    start_process_named(node, "kubelite")

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")

    (report,) = json.loads(checked.stdout)["nodes"]
    assert report["runtime"]["distribution"] == "microk8s"
    assert "args/containerd-env: does not exist" in report["blockers"][0]


def test_a_plain_docker_node_is_kubeadm_style_or_none(bed, make_node):
    node = make_node()

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")

    (report,) = json.loads(checked.stdout)["nodes"]
    assert report["runtime"]["distribution"] == "none" and report["runtime"]["targets"] == [
        "docker"
    ]
