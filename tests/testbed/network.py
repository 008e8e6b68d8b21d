"""The bed's network: the host bridge tnpbr0 (10.200.0.1/24) and, per node, a network
namespace with a veth pair whose host end is a port of that bridge. The subnet exists only
between the host and the nodes: nodes have no route out."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from .host import link_exists, netns_pids, run

BRIDGE = "tnpbr0"
SUBNET_PREFIX = "10.200.0."
BRIDGE_ADDRESS = SUBNET_PREFIX + "1"
BRIDGE_MAC = "02:74:6e:70:00:01"
FIRST_OCTET = 10  # node addresses are 10.200.0.10 .. 10.200.0.254
NETNS_PREFIX = "tnp-"
VETH_PREFIX = "tnpv"


def setup_bridge() -> None:
    if not link_exists(BRIDGE):
        run("ip", "link", "add", BRIDGE, "type", "bridge")
    addrs = run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout.decode()
    if f"{BRIDGE_ADDRESS}/24" not in addrs:
        run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
    # A bridge without an address of its own takes its lowest port's MAC, and changes it as
    # nodes (ports) come and go: nodes that learned the old MAC for the host then send into
    # the void until their ARP entry expires (seen: an SSH reply stuck for 60 s while other
    # nodes started and stopped). A fixed, locally administered MAC never changes.
    run("ip", "link", "set", BRIDGE, "address", BRIDGE_MAC)
    run("ip", "link", "set", BRIDGE, "up")


def remove_bridge() -> None:
    run("ip", "link", "del", BRIDGE, check=False)


def add_node_network(netns: str, veth: str, address: str) -> None:
    """netns with eth0 = address/24, its peer veth on the bridge. A stale host-side veth
    can outlive its namespace for minutes: it is deleted first."""
    if link_exists(veth):
        run("ip", "link", "del", veth, check=False)
    if Path(f"/run/netns/{netns}").exists():
        run("ip", "netns", "del", netns, check=False)
    run("ip", "netns", "add", netns)
    run("ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", netns)
    run("ip", "link", "set", veth, "master", BRIDGE, "up")
    run("ip", "-n", netns, "addr", "add", f"{address}/24", "dev", "eth0")
    run("ip", "-n", netns, "link", "set", "eth0", "up")
    run("ip", "-n", netns, "link", "set", "lo", "up")


def remove_node_network(netns: str, veth: str) -> None:
    run("ip", "link", "del", veth, check=False)
    run("ip", "netns", "del", netns, check=False)


def kill_leftover_namespaces() -> None:
    """Kill the processes of every tnp-* network namespace (nodes of an earlier, crashed
    bed), then delete those namespaces and every tnpv* veth."""
    out = run("ip", "netns", "list", check=False).stdout.decode()
    names = [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]
    for netns in names:
        for pid in netns_pids(netns):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 10
    for netns in names:
        while netns_pids(netns) and time.monotonic() < deadline:
            time.sleep(0.05)
    out = run("ip", "-o", "link", "show", check=False).stdout.decode()
    for line in out.splitlines():
        m = re.match(r"\d+: (" + VETH_PREFIX + r"\d+)[@:]", line)
        if m:
            run("ip", "link", "del", m.group(1), check=False)
    for netns in names:
        run("ip", "netns", "del", netns, check=False)
