"""MicroK8sNode: a node where only MicroK8s (the snap) is installed, for the tests of
trains-nodeprep on MicroK8s.

What is real: Debian 12's systemd (a DistributionNode); the daemons' units as snapd renders them
(`snap_unit_text`: snap.microk8s.daemon-containerd.service with KillMode=process, no Limit*
line, and snap.microk8s.daemon-kubelite.service); MicroK8s's run-containerd-with-args (a
faithful shortened rendering in microk8s/), which sources args/containerd-env (MicroK8s's
default `ulimit -n 65536 || true`, `ulimit -l 16384 || true`) and execs the real containerd
with the arguments of args/containerd, so containerd is the unit's main process at
/var/snap/microk8s/common/run/containerd.sock; its shims and runc (through the bed's runtime
wrapper). What is not: snapd (`/usr/bin/snap` is a stand-in that only does `snap run
microk8s[.APP]`), the `microk8s` command (a stand-in for start, stop and ctr), kubelite
(tnp-pause.c under kubelite's name: it only waits). The snap is a read-only directory in
/var/lib/snapd/snap (snapd's mount directory where there is no /snap: the host has none, and a
node cannot make one without writing to the host's root). Docker and the system containerd are
hidden, as on a node where only MicroK8s is installed (node-distro.sh)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .distro import DistributionNode, pause_binary
from .layers import HERE, RUNTIME_PATH

if TYPE_CHECKING:
    from .bed import TestBed

REVISION = "x1"  # as snapd numbers a snap installed from a file
SNAP_MOUNT_DIR = "/var/lib/snapd/snap"
SNAP = f"{SNAP_MOUNT_DIR}/microk8s/{REVISION}"
SNAP_DATA = f"/var/snap/microk8s/{REVISION}"
SNAP_COMMON = "/var/snap/microk8s/common"
ARGS = "/var/snap/microk8s/current/args"  # the path MicroK8s's documentation gives
MICROK8S_SOCKET = f"{SNAP_COMMON}/run/containerd.sock"
CONTAINERD_UNIT = "snap.microk8s.daemon-containerd"
KUBELITE_UNIT = "snap.microk8s.daemon-kubelite"
# containerd as run-containerd-with-args execs it (args/containerd expanded)
MICROK8S_CONTAINERD_ARGV = (
    f"{SNAP}/bin/containerd",
    "--config",
    f"{SNAP_DATA}/args/containerd.toml",
    "--root",
    f"{SNAP_COMMON}/var/lib/containerd",
    "--state",
    f"{SNAP_COMMON}/run/containerd",
    "--address",
    MICROK8S_SOCKET,
)
MICROK8S_BUSYBOX_ROOTFS = f"{SNAP_COMMON}/var/lib/tnp-busybox-rootfs"

# MicroK8s's default args files (microk8s-resources/default-args), as the snap's install hook
# copies them to $SNAP_DATA/args: the variables stay literal, the wrappers expand them.
CONTAINERD_ARGS = (
    "--config ${SNAP_DATA}/args/containerd.toml\n"
    "--root ${SNAP_COMMON}/var/lib/containerd\n"
    "--state ${SNAP_COMMON}/run/containerd\n"
    "--address ${SNAP_COMMON}/run/containerd.sock\n"
)
# MicroK8s's default containerd-env: its limit lines as MicroK8s ships them, its comments
# shortened. bash's ulimit sets soft and hard together; `|| true` keeps the inherited value
# when it cannot (in this sandbox no process may raise a hard limit: memlock above 8 MiB,
# nofile above 20000).
CONTAINERD_ENV = (
    "# Remember to restart MicroK8s after editing this file:\n"
    "#\n"
    "# sudo microk8s stop; sudo microk8s start\n"
    "#\n"
    "\n"
    "# A proxy for containerd goes here: HTTPS_PROXY=http://proxy:port/ (and NO_PROXY with the\n"
    "# cluster and services CIDRs).\n"
    "#\n"
    "\n"
    "# The path of the kata containers runtime, if any.\n"
    "#\n"
    "# KATA_PATH=\n"
    "#\n"
    "PATH=$PATH:$KATA_PATH\n"
    "\n"
    "# Attempt to change the maximum number of open file descriptors\n"
    "# this get inherited to the running containers\n"
    "#\n"
    "ulimit -n 65536 || true\n"
    "\n"
    "# Attempt to change the maximum locked memory limit\n"
    "# this get inherited to the running containers\n"
    "#\n"
    "ulimit -l 16384 || true\n"
)
# MicroK8s's containerd-template.toml, shortened; the default runtime's binary is the bed's
# runtime wrapper (MicroK8s's is its own runc), so containers record their rlimits; the opt
# plugin's directory is in SNAP_COMMON, not containerd's default /opt/containerd (a node's /opt
# stays empty, as the tests of the bed expect)
CONTAINERD_TEMPLATE = f"""# MicroK8s's containerd-template.toml, shortened by the test bed
version = 2
oom_score = 0

[plugins."io.containerd.internal.v1.opt"]
  path = "{SNAP_COMMON}/opt/containerd"

[grpc]
  uid = 0
  gid = 0
  max_recv_message_size = 16777216
  max_send_message_size = 16777216

[plugins."io.containerd.grpc.v1.cri"]
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"

  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "${{RUNTIME}}"

    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"

      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "{RUNTIME_PATH}"

  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "${{SNAP_DATA}}/opt/cni/bin"
    conf_dir = "${{SNAP_DATA}}/args/cni-network"
"""
# a few of MicroK8s's default kubelet flags (kubelite reads them from this file)
KUBELET_ARGS = (
    "--kubeconfig=${SNAP_DATA}/credentials/kubelet.config\n"
    "--cert-dir=${SNAP_DATA}/certs\n"
    "--client-ca-file=${SNAP_DATA}/certs/ca.crt\n"
    "--anonymous-auth=false\n"
    "--root-dir=${SNAP_COMMON}/var/lib/kubelet\n"
    "--fail-swap-on=false\n"
    "--container-runtime-endpoint=${SNAP_COMMON}/run/containerd.sock\n"
    "--containerd=${SNAP_COMMON}/run/containerd.sock\n"
    '--node-labels="microk8s.io/cluster=true"\n'
    "--authentication-token-webhook=true\n"
    "--read-only-port=0\n"
)


def snap_unit_text(app: str) -> str:
    """The unit snapd writes for a daemon of the microk8s snap (snapd's wrappers template,
    for a classic system daemon with MicroK8s's snapcraft.yaml settings: `daemon: simple`,
    snapd's default Restart=on-failure and stop timeout; daemon-containerd with
    `stop-mode: sigterm`, which renders KillMode=process and KillSignal=SIGTERM, so stopping
    containerd leaves the shims and pods running). The mount unit is that of the snap's
    directory in /var/lib/snapd/snap."""
    mount = f"{SNAP.strip('/').replace('/', '-')}.mount"
    kill = "KillMode=process\nKillSignal=SIGTERM\n" if app == "daemon-containerd" else ""
    return (
        "[Unit]\n"
        "# Auto-generated, DO NOT EDIT\n"
        f"Description=Service for snap application microk8s.{app}\n"
        f"Requires={mount}\n"
        "Wants=network.target\n"
        f"After={mount} network.target snapd.apparmor.service\n"
        "X-Snappy=yes\n"
        "\n"
        "[Service]\n"
        "EnvironmentFile=-/etc/environment\n"
        f"ExecStart=/usr/bin/snap run microk8s.{app}\n"
        f"SyslogIdentifier=microk8s.{app}\n"
        "Restart=on-failure\n"
        f"WorkingDirectory={SNAP_DATA}\n"
        "TimeoutStopSec=30\n"
        "Type=simple\n"
        f"{kill}"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )


class MicroK8sNode(DistributionNode):
    """A DistributionNode where the microk8s snap's daemon-containerd and daemon-kubelite units
    are enabled; `unit` is snap.microk8s.daemon-containerd, whose main process is the real
    containerd. Ready when systemd runs, both units are active, `ctr --address
    MICROK8S_SOCKET version` answers and sshd sends its banner."""

    kind_name = "microk8s"
    socket = MICROK8S_SOCKET
    ctr = f"{SNAP}/bin/ctr"
    containerd_bin = f"{SNAP}/bin"
    busybox_rootfs = MICROK8S_BUSYBOX_ROOTFS

    def __init__(
        self, bed: TestBed, name: str, address: str, octet: int, *, known_host: bool
    ) -> None:
        super().__init__(bed, name, address, octet, known_host=known_host)
        self.unit = CONTAINERD_UNIT

    def __repr__(self) -> str:
        return f"<MicroK8sNode {self.name} {self.address}>"

    @property
    def unit_paths(self) -> dict[str, str]:
        return {u: f"/etc/systemd/system/{u}.service" for u in (CONTAINERD_UNIT, KUBELITE_UNIT)}

    def read_only_dirs(self) -> tuple[str, ...]:
        return (SNAP,)

    def default_files(self) -> dict[str, str | bytes]:
        return {
            path: snap_unit_text(unit.removeprefix("snap.microk8s."))
            for unit, path in self.unit_paths.items()
        }

    def _prepare(self) -> None:
        """DistributionNode's preparation, then the snap: its directory (wrappers, kubelite,
        the runc link; the containerd binaries are bound in at boot), SNAP_DATA with the args
        files and `current`, SNAP_COMMON, the snap stand-in in /usr/bin and the `microk8s`
        command (/var/lib/snapd/snap/bin/microk8s -> /usr/bin/snap, as snapd makes it, and
        /usr/local/bin/microk8s, so it is on every PATH)."""
        super()._prepare()
        stand_ins = HERE / "microk8s"
        for name in ("run-containerd-with-args", "run-kubelite-with-args", "microk8s.wrapper"):
            self.install(stand_ins / name, f"{SNAP}/{name}")
        self.install(pause_binary(self.bed.workdir), f"{SNAP}/kubelite")
        self.node_path(f"{SNAP}/bin").mkdir(parents=True, exist_ok=True)
        self.node_path(f"{SNAP}/bin/runc").symlink_to(RUNTIME_PATH)
        self.node_path(f"{SNAP_MOUNT_DIR}/microk8s/current").symlink_to(REVISION)
        bin_dir = self.node_path(f"{SNAP_MOUNT_DIR}/bin")
        bin_dir.mkdir()
        (bin_dir / "microk8s").symlink_to("/usr/bin/snap")
        (self.overlay_upper("/usr/local/bin") / "microk8s").symlink_to(
            f"{SNAP_MOUNT_DIR}/bin/microk8s"
        )
        snap = self.added_layer("/usr/bin") / "snap"
        snap.write_bytes((stand_ins / "snap").read_bytes())
        snap.chmod(0o755)
        args = {
            "containerd": CONTAINERD_ARGS,
            "containerd-env": CONTAINERD_ENV,
            "containerd-template.toml": CONTAINERD_TEMPLATE,
            "kubelet": KUBELET_ARGS,
        }
        for name, text in args.items():
            self.put(f"{SNAP_DATA}/args/{name}", text)
        self.node_path("/var/snap/microk8s/current").symlink_to(REVISION)
        self.node_path(f"{SNAP_COMMON}/run").mkdir(parents=True)

    # ----------------------------------------------------------------- helpers for tests
    def containerd_pid(self, timeout: float = 5.0) -> int | None:
        """MainPID of snap.microk8s.daemon-containerd: the wrapper execs containerd. Right
        after a (re)start the main process may still be the wrapper (systemctl returns once it
        is forked): wait up to `timeout` seconds for the exec."""
        deadline = time.monotonic() + timeout
        while True:
            pid = self.unit_pid(self.unit)
            if pid is None:
                return None
            if self.read(f"/proc/{pid}/comm") == b"containerd\n":
                return pid
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.05)

    def kubelite_pid(self) -> int | None:
        """MainPID of snap.microk8s.daemon-kubelite (kubelite's stand-in)."""
        return self.unit_pid(KUBELITE_UNIT)

    def microk8s(self, *args: str) -> str:
        """`microk8s ARGS` in the node (as root); its output."""
        return self.exec("microk8s", *args, timeout=120).stdout
