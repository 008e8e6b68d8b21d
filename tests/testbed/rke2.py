"""Rke2Node: a node where only RKE2 is installed (from its tarball), as a server
(rke2-server.service) or an agent (rke2-agent.service), for the tests of trains-nodeprep on RKE2.

What is real: Debian 12's systemd (a DistributionNode), RKE2's own unit text (as its tarball
installs it in /usr/local/lib/systemd/system: `rke2_unit_text`), the real containerd, its shims
and runc (through the bed's runtime wrapper), RKE2's layout (binaries in
/var/lib/rancher/rke2/data/VERSION/bin, /var/lib/rancher/rke2/bin pointing there). What is not:
the rke2 binary, replaced by a stand-in (`rke2-stand-in`, whose header says what it does) that
starts that containerd and a kubelet process as its children; the kubelet is `tnp-pause.c`
under the kubelet's name and with RKE2's kubelet flags, so it only waits. Docker and the system
containerd are hidden, as on a node where only RKE2 is installed (node-distro.sh)."""

from __future__ import annotations

from .distro import RoleNode, pause_binary
from .layers import HERE

RKE2_SOCKET = "/run/k3s/containerd/containerd.sock"  # the same as k3s's
RKE2_UNIT_DIR = "/usr/local/lib/systemd/system"  # where the tarball puts the units
# a data directory as RKE2 unpacks its runtime image to: data/VERSION/bin
RKE2_VERSION = "v1.31.4-rke2r1-tnp0000000000"
RKE2_DATA_BIN = f"/var/lib/rancher/rke2/data/{RKE2_VERSION}/bin"
RKE2_BIN = "/var/lib/rancher/rke2/bin"  # -> data/VERSION/bin
RKE2_AGENT_DIR = "/var/lib/rancher/rke2/agent"
# containerd as RKE2 starts it (the stand-in's child)
RKE2_CONTAINERD_ARGV = (
    "containerd",
    "-c",
    f"{RKE2_AGENT_DIR}/etc/containerd/config.toml",
    "-a",
    RKE2_SOCKET,
    "--state",
    "/run/k3s/containerd",
    "--root",
    f"{RKE2_AGENT_DIR}/containerd",
)
RKE2_KUBELET = f"{RKE2_DATA_BIN}/kubelet"
RKE2_CONTAINERD_LOG = f"{RKE2_AGENT_DIR}/containerd/containerd.log"
RKE2_BUSYBOX_ROOTFS = f"{RKE2_AGENT_DIR}/tnp-busybox-rootfs"
# the env file the tarball installs beside the unit
RKE2_UNIT_ENV = "HOME=/root\n"


def rke2_unit_name(role: str) -> str:
    return f"rke2-{role}"


def rke2_unit_text(role: str) -> str:
    """The unit RKE2 bundles (bundle/lib/systemd/system/rke2-server.service or
    rke2-agent.service; the tarball installs it in /usr/local/lib/systemd/system). Type=notify
    as RKE2's recent units have (older ones lacked the line; RKE2 sends READY=1 either way)."""
    name = rke2_unit_name(role)
    other = rke2_unit_name("agent" if role == "server" else "server")
    return (
        "[Unit]\n"
        f"Description=Rancher Kubernetes Engine v2 ({role})\n"
        "Documentation=https://github.com/rancher/rke2#readme\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        f"Conflicts={other}.service\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
        "\n"
        "[Service]\n"
        "Type=notify\n"
        f"EnvironmentFile=-/etc/default/{name}\n"
        f"EnvironmentFile=-/etc/sysconfig/{name}\n"
        f"EnvironmentFile=-{RKE2_UNIT_DIR}/{name}.env\n"
        "KillMode=process\n"
        "Delegate=yes\n"
        "LimitNOFILE=1048576\n"
        "LimitNPROC=infinity\n"
        "LimitCORE=infinity\n"
        "TasksMax=infinity\n"
        "TimeoutStartSec=0\n"
        "Restart=always\n"
        "RestartSec=5s\n"
        "ExecStartPre=-/sbin/modprobe br_netfilter\n"
        "ExecStartPre=-/sbin/modprobe overlay\n"
        f"ExecStart=/usr/local/bin/rke2 {role}\n"
        f'ExecStopPost=-/bin/sh -c "systemd-cgls /system.slice/{name}.service | '
        "grep -Eo '[0-9]+ (containerd|kubelet)' | awk '{print $1}' | xargs -r kill\"\n"
    )


class Rke2Node(RoleNode):
    """A DistributionNode where RKE2's unit (role "server": rke2-server.service; "agent":
    rke2-agent.service) is enabled and starts the stand-in `rke2`, the parent of the real
    containerd (at RKE2_SOCKET) and of a kubelet process. Ready when systemd runs, the unit is
    active, `ctr --address RKE2_SOCKET version` answers and sshd sends its banner."""

    kind_name = "rke2"
    socket = RKE2_SOCKET
    ctr = f"{RKE2_BIN}/ctr"
    containerd_bin = RKE2_DATA_BIN
    containerd_log = RKE2_CONTAINERD_LOG
    busybox_rootfs = RKE2_BUSYBOX_ROOTFS
    overlays = ("/usr/local/bin", "/usr/local/lib")

    unit_dir = RKE2_UNIT_DIR

    def unit_name(self, role: str) -> str:
        return rke2_unit_name(role)

    def links(self) -> dict[str, str]:
        return {RKE2_BIN: f"data/{RKE2_VERSION}/bin"}

    def default_files(self) -> dict[str, str | bytes]:
        return {
            self.unit_path: rke2_unit_text(self.role),
            f"{RKE2_UNIT_DIR}/{self.unit}.env": RKE2_UNIT_ENV,
        }

    def _prepare(self) -> None:
        """DistributionNode's preparation, then the stand-in as /usr/local/bin/rke2 and the
        kubelet (tnp-pause under RKE2's kubelet path) in the data directory."""
        super()._prepare()
        self.install(HERE / "rke2-stand-in", "/usr/local/bin/rke2")
        self.install(pause_binary(self.bed.workdir), RKE2_KUBELET)

    # ----------------------------------------------------------------- helpers for tests
    def rke2_pid(self) -> int | None:
        """MainPID of the RKE2 unit (the stand-in, comm rke2)."""
        return self.unit_pid(self.unit)

    def kubelet_pid(self) -> int | None:
        """pid (in the node) of the kubelet whose parent is the RKE2 unit's main process."""
        parent = self.rke2_pid()
        if parent is None:
            return None
        out = self.exec("pgrep", "-P", str(parent), "-x", "kubelet", check=False).stdout
        pids = sorted(int(p) for p in out.split())
        return pids[0] if pids else None
