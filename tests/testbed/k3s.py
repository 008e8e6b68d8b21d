"""K3sNode: a node where only k3s is installed, as a server (k3s.service) or an agent
(k3s-agent.service), for the tests of trains-nodeprep on k3s.

What is real: Debian 12's systemd (a SystemdNode), k3s's own unit text (rendered as k3s's
install.sh writes it: `k3s_unit_text`), the real containerd, its shims and runc (through the
bed's runtime wrapper). What is not: the k3s binary, replaced by a stand-in (`k3s-stand-in`,
whose header says what it does) that starts that containerd as its child with k3s's argv and
socket; nothing of Kubernetes runs (no kubelet, no API server). Docker and the system
containerd are hidden, as on a node where only k3s is installed (node-distro.sh)."""

from __future__ import annotations

from pathlib import Path

from .distro import HIDDEN, HIDDEN_ETC, RoleNode, make_hiding_layers, whiteout
from .layers import HERE

__all__ = [
    "AGENT_ENV",
    "HIDDEN",
    "HIDDEN_ETC",
    "K3S_CONTAINERD_ARGV",
    "K3S_SOCKET",
    "K3sNode",
    "k3s_unit_text",
    "make_hiding_layers",
    "whiteout",
]

K3S_SOCKET = "/run/k3s/containerd/containerd.sock"
K3S_DATA_BIN = "/var/lib/rancher/k3s/data/current/bin"
# what data/current points to, and where the host's containerd binaries are bound
K3S_STAND_IN_DATA = "tnp-stand-in"
K3S_DATA_BIN_REAL = f"/var/lib/rancher/k3s/data/{K3S_STAND_IN_DATA}/bin"
# containerd as k3s starts it (the stand-in's child)
K3S_CONTAINERD_ARGV = (
    "containerd",
    "-c",
    "/var/lib/rancher/k3s/agent/etc/containerd/config.toml",
    "-a",
    K3S_SOCKET,
    "--state",
    "/run/k3s/containerd",
    "--root",
    "/var/lib/rancher/k3s/agent/containerd",
)
# containerd's output, where k3s sends it (in the node; below the node's own /var/lib)
K3S_CONTAINERD_LOG = "/var/lib/rancher/k3s/agent/containerd/containerd.log"
K3S_BUSYBOX_ROOTFS = "/var/lib/rancher/k3s/agent/tnp-busybox-rootfs"
# agent nodes join a server: install.sh requires K3S_URL and K3S_TOKEN and keeps them in the
# unit's env file (the stand-in does not join anything)
AGENT_ENV = "K3S_TOKEN=tnp-testbed-token\nK3S_URL=https://10.200.0.1:6443\n"


def k3s_unit_name(role: str) -> str:
    """k3s for a server, k3s-agent for an agent (install.sh's SYSTEM_NAME)."""
    return "k3s" if role == "server" else "k3s-agent"


def k3s_unit_text(role: str) -> str:
    """The unit k3s's install.sh writes (create_systemd_service_file) for `k3s server` or
    `k3s agent` with no further arguments: BIN_DIR /usr/local/bin, Type notify, its env file
    beside it. ExecStart ends with a continuation and an empty line, as install.sh renders an
    empty argument list."""
    name = k3s_unit_name(role)
    return (
        "[Unit]\n"
        "Description=Lightweight Kubernetes\n"
        "Documentation=https://k3s.io\n"
        "Wants=network-online.target\n"
        "After=network-online.target\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
        "\n"
        "[Service]\n"
        "Type=notify\n"
        "EnvironmentFile=-/etc/default/%N\n"
        "EnvironmentFile=-/etc/sysconfig/%N\n"
        f"EnvironmentFile=-/etc/systemd/system/{name}.service.env\n"
        "KillMode=process\n"
        "Delegate=yes\n"
        "User=root\n"
        "# Having non-zero Limit*s causes performance problems due to accounting overhead\n"
        "# in the kernel. We recommend using cgroups to do container-local accounting.\n"
        "LimitNOFILE=1048576\n"
        "LimitNPROC=infinity\n"
        "LimitCORE=infinity\n"
        "TasksMax=infinity\n"
        "TimeoutStartSec=0\n"
        "Restart=always\n"
        "RestartSec=5s\n"
        "ExecStartPre=-/sbin/modprobe br_netfilter\n"
        "ExecStartPre=-/sbin/modprobe overlay\n"
        "ExecStart=/usr/local/bin/k3s \\\n"
        f"    {role} \\\n"
        "\n"
    )


class K3sNode(RoleNode):
    """A DistributionNode where k3s's unit (role "server": k3s.service; "agent":
    k3s-agent.service) is enabled and starts the stand-in, which runs the real containerd at
    k3s's socket. Ready when systemd runs, the unit is active, `ctr --address K3S_SOCKET
    version` answers and sshd sends its banner."""

    kind_name = "k3s"
    socket = K3S_SOCKET
    containerd_bin = K3S_DATA_BIN_REAL
    containerd_log = K3S_CONTAINERD_LOG
    busybox_rootfs = K3S_BUSYBOX_ROOTFS

    def unit_name(self, role: str) -> str:
        return k3s_unit_name(role)

    def links(self) -> dict[str, str]:
        return {K3S_DATA_BIN.removesuffix("/bin"): K3S_STAND_IN_DATA}

    def default_files(self) -> dict[str, str | bytes]:
        env = AGENT_ENV if self.role == "agent" else ""
        return {self.unit_path: k3s_unit_text(self.role), f"{self.unit_path}.env": env}

    def _prepare(self) -> None:
        """DistributionNode's preparation, then the stand-in and its `ctr` link (as
        install.sh makes them) in /usr/local/bin."""
        super()._prepare()
        self.install(HERE / "k3s-stand-in", "/usr/local/bin/k3s")
        (self.overlay_upper("/usr/local/bin") / "ctr").symlink_to("k3s")

    def host_path(self, path: str) -> Path:
        """Where a file below the node's own /var/lib is on the host."""
        return self.node_path(path)

    # ----------------------------------------------------------------- helpers for tests
    def k3s_pid(self) -> int | None:
        """MainPID of the k3s unit (the stand-in, as k3s-server / k3s-agent)."""
        return self.unit_pid(self.unit)

    def run_k3s_container(self) -> dict[str, dict[str, tuple[int, int]]]:
        """run_distro_container (the name from before the distribution nodes shared it)."""
        return self.run_distro_container()

    def start_k3s_container(self, *command: str) -> str:
        """start_distro_container (the name from before the distribution nodes shared it)."""
        return self.start_distro_container(*command)
