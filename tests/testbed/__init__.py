"""Integration test bed for trains-nodeprep: real sshd (+ dockerd, containerd) "nodes" on
this machine, each in its own network, mount, UTS and PID namespaces. Must run as root.

    bed = TestBed(workdir); bed.start()
    node = bed.add_node("n1", TiniNode, docker=True)          # tini as PID 1, `service`
    sd = bed.add_node("n2", SystemdNode, docker=False)        # the real systemd 252
    node.exec("cat", "/etc/docker/daemon.json")               # as root inside the node
    sd.systemctl("restart", "containerd"); sd.unit_pid("containerd")
    k3s = bed.add_node("n3", K3sNode, role="server")          # k3s's unit, a stand-in k3s
    rke2 = bed.add_node("n4", Rke2Node)                       # RKE2's unit, a stand-in rke2
    d13 = bed.add_node("n5", Debian13Node)                    # a real Debian 13, systemd 257
    bed.stop()

In tests, the fixtures `bed` and `make_node` (tests/conftest.py loads this package as a
plugin): make_node(docker=False), make_node(kind=SystemdNode, docker=True).

Modules: host (process, netns and cgroup helpers), network (bridge, veths), layers (the
shared /etc layers), bed (TestBed), node (TestNode, what every kind has), tini (TiniNode),
systemd (SystemdNode), distro (DistributionNode: what k3s, RKE2 and MicroK8s nodes share),
k3s (K3sNode, with the stand-in k3s-stand-in), rke2 (Rke2Node, rke2-stand-in),
microk8s (MicroK8sNode, with the stand-ins in microk8s/), trixie (Debian13Node: a real
Debian 13 from an mmdebstrap rootfs), testinfra_backend (strict host keys), fixtures. What a
node is, the kinds, timings and how to add a kind: README.md in this directory.
"""

from __future__ import annotations

from .bed import LOCK_FILE, TestBed
from .distro import DistributionNode
from .fixtures import bed, make_node
from .host import NodeStartError
from .k3s import K3S_CONTAINERD_ARGV, K3S_SOCKET, K3sNode, k3s_unit_text
from .layers import BED_USERS
from .microk8s import MICROK8S_CONTAINERD_ARGV, MICROK8S_SOCKET, MicroK8sNode
from .node import IMAGE, RLIMITS_RECORD, TestNode
from .rke2 import RKE2_CONTAINERD_ARGV, RKE2_SOCKET, Rke2Node, rke2_unit_text
from .systemd import SystemdNode
from .tini import RHEL_SYSCONFIG, TiniNode
from .trixie import Debian13Node, RootfsError

__all__ = [
    "BED_USERS",
    "Debian13Node",
    "DistributionNode",
    "IMAGE",
    "K3S_CONTAINERD_ARGV",
    "K3S_SOCKET",
    "K3sNode",
    "LOCK_FILE",
    "MICROK8S_CONTAINERD_ARGV",
    "MICROK8S_SOCKET",
    "MicroK8sNode",
    "RHEL_SYSCONFIG",
    "RKE2_CONTAINERD_ARGV",
    "RKE2_SOCKET",
    "RLIMITS_RECORD",
    "Rke2Node",
    "RootfsError",
    "NodeStartError",
    "SystemdNode",
    "TestBed",
    "TestNode",
    "TiniNode",
    "bed",
    "k3s_unit_text",
    "make_node",
    "rke2_unit_text",
]
