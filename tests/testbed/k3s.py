"""K3sNode: a node where only k3s is installed, as a server (k3s.service) or an agent
(k3s-agent.service), for the tests of trains-nodeprep on k3s.

What is real: Debian 12's systemd (a SystemdNode), k3s's own unit text (rendered as k3s's
install.sh writes it: `k3s_unit_text`), the real containerd, its shims and runc (through the
bed's runtime wrapper). What is not: the k3s binary, replaced by a stand-in (`k3s-stand-in`,
whose header says what it does) that starts that containerd as its child with k3s's argv and
socket; nothing of Kubernetes runs (no kubelet, no API server). Docker and the system
containerd are hidden, as on a node where only k3s is installed (node-k3s.sh)."""

from __future__ import annotations

import os
import shutil
import stat
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .host import NodeStartError, tail
from .layers import HERE, RUNTIME_PATH
from .systemd import SystemdNode

if TYPE_CHECKING:
    from .bed import TestBed

ROLES = ("server", "agent")
K3S_SOCKET = "/run/k3s/containerd/containerd.sock"
K3S_DATA_BIN = "/var/lib/rancher/k3s/data/current/bin"
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
# What a node with only k3s installed does not have: docker and the system containerd. Their
# binaries and units are whited out by read-only overlays (a layer of whiteouts made once per
# bed, over the host's directory), their /etc entries by whiteouts in the node's upper dir.
HIDDEN = {
    "/usr/bin": (
        "docker",
        "containerd",
        "containerd-shim",
        "containerd-shim-runc-v1",
        "containerd-shim-runc-v2",
        "ctr",
    ),
    "/usr/sbin": ("dockerd", "docker-proxy"),
    "/usr/lib/systemd/system": ("docker.service", "docker.socket", "containerd.service"),
}
HIDDEN_ETC = ("docker", "containerd", "init.d/docker", "default/docker")
HIDING_LAYERS = "k3s-hidden"  # below the bed's workdir: one layer per HIDDEN directory


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


def hiding_layer(directory: str) -> str:
    """The name of directory's layer of whiteouts below HIDING_LAYERS (/usr/bin: _usr_bin),
    as node-k3s.sh spells it."""
    return directory.replace("/", "_")


def make_hiding_layers(root: Path) -> None:
    """Once per bed: for each HIDDEN directory a layer holding a whiteout per hidden name
    (node-k3s.sh mounts it as the upper lower layer of a read-only overlay)."""
    if root.is_dir():
        return
    tmp = root.with_name(root.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for directory, names in HIDDEN.items():
        for name in names:
            whiteout(tmp / hiding_layer(directory) / name)
    for d in (tmp, *tmp.iterdir()):
        os.chmod(d, 0o755)
    os.rename(tmp, root)


def whiteout(path: Path) -> None:
    """An overlayfs whiteout at path (an upper directory): the lower layers' entry is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(0, 0))


class K3sNode(SystemdNode):
    """A SystemdNode without docker.service and containerd.service, where k3s's unit
    (role "server": k3s.service; "agent": k3s-agent.service) is enabled and starts the
    stand-in, which runs the real containerd at k3s's socket. Ready when systemd runs, the
    unit is active, `ctr --address K3S_SOCKET version` answers and sshd sends its banner."""

    kind_name = "k3s"

    def __init__(
        self,
        bed: TestBed,
        name: str,
        address: str,
        octet: int,
        *,
        known_host: bool,
        role: str = "server",
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"K3sNode role must be one of {ROLES}, not {role!r}")
        super().__init__(
            bed, name, address, octet, known_host=known_host, docker=False, containerd=False
        )
        self.role = role
        self.unit = k3s_unit_name(role)

    def __repr__(self) -> str:
        return f"<K3sNode {self.name} {self.address} role={self.role}>"

    @property
    def unit_path(self) -> str:
        return f"/etc/systemd/system/{self.unit}.service"

    def default_files(self) -> dict[str, str | bytes]:
        env = AGENT_ENV if self.role == "agent" else ""
        return {self.unit_path: k3s_unit_text(self.role), f"{self.unit_path}.env": env}

    def _prepare(self) -> None:
        """SystemdNode's preparation, then: the unit enabled (its wants link), docker's and
        containerd's /etc entries whited out, the stand-in and its `ctr` link in the upper
        directory of /usr/local/bin (where the host's docker client is whited out),
        node-k3s.sh as the node's kind-mounts.sh, and the bed's hiding layers."""
        super()._prepare()
        upper = self.dir / "upper"
        wants = upper / "systemd" / "system" / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        (wants / f"{self.unit}.service").symlink_to(self.unit_path)
        for entry in HIDDEN_ETC:
            whiteout(upper / entry)
        bin_upper = self.dir / "usr-local-bin"
        bin_upper.mkdir()
        (self.dir / "usr-local-bin-work").mkdir()
        shutil.copyfile(HERE / "k3s-stand-in", bin_upper / "k3s")
        os.chmod(bin_upper / "k3s", 0o755)
        (bin_upper / "ctr").symlink_to("k3s")
        whiteout(bin_upper / "docker")
        shutil.copyfile(HERE / "node-k3s.sh", self.dir / "kind-mounts.sh")
        make_hiding_layers(self.bed.workdir / HIDING_LAYERS)

    def _launch(self, t0: float) -> None:
        """Boot as a SystemdNode (systemd running, sshd answers), then wait for k3s."""
        super()._launch(t0)
        try:
            self._wait_service(
                self.unit,
                ("ctr", "--address", K3S_SOCKET, "--timeout", "2s", "version"),
                t0 + self.bed.node_start_timeout,
            )
        except NodeStartError as exc:
            raise NodeStartError(
                f"k3s node {self.name} ({self.address}): {exc}"
                f"\n--- journal of {self.unit}:\n{self.journal(self.unit, 40)}"
                f"\n--- {K3S_CONTAINERD_LOG}:\n{tail(self.host_path(K3S_CONTAINERD_LOG))}"
            ) from exc

    def host_path(self, path: str) -> Path:
        """Where a file below the node's own /var/lib is on the host."""
        return self.dir / "var-lib" / Path(path).relative_to("/var/lib")

    # ----------------------------------------------------------------- helpers for tests
    def k3s_pid(self) -> int | None:
        """MainPID of the k3s unit (the stand-in, as k3s-server / k3s-agent)."""
        return self.unit_pid(self.unit)

    def containerd_pid(self) -> int | None:
        """pid (in the node) of the containerd whose parent is the k3s unit's main process."""
        parent = self.k3s_pid()
        if parent is None:
            return None
        out = self.exec("pgrep", "-P", str(parent), "-x", "containerd", check=False).stdout
        pids = sorted(int(p) for p in out.split())
        return pids[0] if pids else None

    def argv(self, pid: int) -> list[str]:
        """The command line of a process of the node."""
        raw = self.read(f"/proc/{pid}/cmdline") or b""
        return [a.decode() for a in raw.split(b"\0") if a]

    def unit_show(self, *names: str) -> dict[str, str]:
        """`systemctl show -p NAME... UNIT` as {NAME: value}, e.g. unit_show("LimitNOFILE",
        "LimitMEMLOCK") == {"LimitNOFILE": "1048576", "LimitMEMLOCK": "8388608"}."""
        props = [arg for name in names for arg in ("-p", name)]
        out = self.systemctl("show", *props, self.unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def run_k3s_container(self) -> dict[str, dict[str, tuple[int, int]]]:
        """A short container through k3s's containerd and the runtime wrapper (`ctr --address
        K3S_SOCKET run --rm --rootfs --runc-binary TNP-RUNTIME ROOTFS ID /bin/true`); what the
        wrapper recorded, as SystemdNode.run_containerd_container: {"requested": ...,
        "inherited": ...} of (soft, hard), unlimited = -1."""
        return self.container_rlimits(self._ctr_run("/bin/true"))

    def start_k3s_container(self, *command: str) -> str:
        """A container that keeps running (`ctr run -d`), its shim too, until it ends or the
        node stops; returns its id (see container_rlimits, task_pid)."""
        return self._ctr_run(*command, detach=True)

    def task_pid(self, cid: str) -> int:
        """pid (in the node) of a running container's first process (`ctr task ls`)."""
        out = self.exec("ctr", "--address", K3S_SOCKET, "task", "ls").stdout
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise RuntimeError(f"no task {cid} in {self.name}:\n{out}")

    def _ctr_run(self, *command: str, detach: bool = False) -> str:
        if self.exec("test", "-x", f"{K3S_BUSYBOX_ROOTFS}/bin/busybox", check=False).returncode:
            self.exec("mkdir", "-p", K3S_BUSYBOX_ROOTFS)
            self.exec(
                "tar", "-x", "-C", K3S_BUSYBOX_ROOTFS, "-f", "-", input=self.bed.busybox_tar()
            )
        cid = f"tnp-{uuid.uuid4().hex[:12]}"
        mode = ["-d"] if detach else ["--rm"]
        proc = self.exec(
            "ctr",
            "--address",
            K3S_SOCKET,
            "run",
            *mode,
            "--rootfs",
            "--runc-binary",
            RUNTIME_PATH,
            K3S_BUSYBOX_ROOTFS,
            cid,
            *command,
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"ctr run in {self.name} failed ({proc.returncode}): {proc.stderr}"
                f"\n--- runtime errors: {tail(self.log_dir / 'tnp-runtime.err')}"
                f"\n--- journal:\n{self.journal(self.unit, 20)}"
                f"\n--- {K3S_CONTAINERD_LOG}:\n{tail(self.host_path(K3S_CONTAINERD_LOG))}"
            )
        return cid
