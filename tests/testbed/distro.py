"""DistributionNode: what the nodes of a Kubernetes distribution (k3s, RKE2, MicroK8s) share.

Such a node is a SystemdNode where only the distribution is installed: docker and the system
containerd are hidden (node-distro.sh), the host's containerd binaries are bound read-only where
the distribution keeps its own, the distribution's units are enabled, and a stand-in for the
distribution's binary (each kind's own) runs the real containerd at the distribution's socket.
The subclasses say where things are (class attributes and `_prepare`); the helpers for tests
(`containerd_pid`, `run_distro_container`, `container_rlimits`, ...) have one interface across
the kinds, so a test can be parametrized over them."""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

from .host import NodeStartError, tail
from .layers import HERE, RUNTIME_PATH
from .systemd import SystemdNode

if TYPE_CHECKING:
    from .bed import TestBed

# What a node with only a distribution installed does not have: docker and the system
# containerd. Their binaries and units are whited out by read-only overlays (a layer of
# whiteouts made once per bed, over the host's directory), their /etc entries by whiteouts in
# the node's upper dir.
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
HIDING_LAYERS = "distro-hidden"  # below the bed's workdir: one layer per HIDDEN directory
# the host's binaries a distribution ships its own copies of (bound read-only into its dir)
CONTAINERD_BINARIES = ("containerd", "containerd-shim-runc-v2", "ctr")
# A process that only waits and ignores its arguments (tnp-pause.c): copied to a kubelet's or
# kubelite's path, its comm is that file name and its command line the flags given to it.
PAUSE_SOURCE = HERE / "tnp-pause.c"
PAUSE_BINARY = "tnp-pause"  # below the bed's workdir, compiled once per bed


def hiding_layer(directory: str) -> str:
    """The name of directory's layer of whiteouts below HIDING_LAYERS (/usr/bin: _usr_bin),
    as node-distro.sh spells it."""
    return directory.replace("/", "_")


def make_hiding_layers(root: Path) -> None:
    """Once per bed: for each HIDDEN directory a layer holding a whiteout per hidden name
    (node-distro.sh mounts it as the upper lower layer of a read-only overlay)."""
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


def pause_binary(workdir: Path) -> Path:
    """The waiting process (tnp-pause.c), compiled once per bed with the machine's cc."""
    binary = workdir / PAUSE_BINARY
    if not binary.exists():
        if shutil.which("cc") is None:
            raise NodeStartError("the kubelet stand-in needs a C compiler (cc): install gcc")
        tmp = binary.with_name(binary.name + ".tmp")
        subprocess.run(
            ["cc", "-O2", "-o", str(tmp), str(PAUSE_SOURCE)], check=True, capture_output=True
        )
        os.rename(tmp, binary)
    return binary


class DistributionNode(SystemdNode):
    """A SystemdNode without docker.service and containerd.service, where a distribution's
    units (`enabled_units`, at `unit_paths`) are enabled; `unit` is the one whose restart
    brings a new containerd. Ready when systemd runs, every enabled unit is active, the
    distribution's containerd answers `ctr version` at `socket` and sshd sends its banner."""

    kind_name = "distribution"
    socket = ""  # containerd's socket in the node
    ctr = "ctr"  # the ctr a test runs (path in the node)
    containerd_bin = ""  # where the host's containerd binaries are bound in the node
    containerd_log = ""  # containerd's output in the node (for error messages), or ""
    busybox_rootfs = ""  # a container rootfs for ctr run, below the node's own /var/lib
    # host directories the node overlays with a directory of its own (node-distro.sh)
    overlays: tuple[str, ...] = ("/usr/local/bin",)

    def __init__(
        self, bed: TestBed, name: str, address: str, octet: int, *, known_host: bool
    ) -> None:
        super().__init__(
            bed, name, address, octet, known_host=known_host, docker=False, containerd=False
        )
        self.unit = ""

    # ----------------------------------------------------------------- what a kind sets
    @property
    def unit_paths(self) -> dict[str, str]:
        """{unit name without .service: path of its unit file in the node}, enabled at boot."""
        raise NotImplementedError

    def links(self) -> dict[str, str]:
        """Symbolic links node-distro.sh makes in the node ({link: target}), after the binds
        and before the hiding (e.g. a data directory's `current`)."""
        return {}

    def read_only_dirs(self) -> tuple[str, ...]:
        """Directories of the node bound onto themselves read-only once their files are in
        place (a snap's squashfs)."""
        return ()

    # ----------------------------------------------------------------- preparation
    def overlay_upper(self, directory: str) -> Path:
        """The node's upper directory of an overlaid host directory (`overlays`)."""
        return self.dir / ("ovl" + hiding_layer(directory))

    def added_layer(self, directory: str) -> Path:
        """A per-node layer above the hiding layer of a HIDDEN directory (what the kind adds
        there, e.g. /usr/bin/snap); made on first use."""
        layer = self.dir / ("add" + hiding_layer(directory))
        layer.mkdir(exist_ok=True)
        os.chmod(layer, 0o755)
        return layer

    def node_path(self, path: str) -> Path:
        """Where a file below the node's own /var/lib or /var/snap is on the host."""
        for prefix, sub in (("/var/lib", "var-lib"), ("/var/snap", "var-snap")):
            if path == prefix or path.startswith(prefix + "/"):
                return self.dir / sub / Path(path).relative_to(prefix)
        raise ValueError(f"{path} is not below the node's /var/lib or /var/snap")

    def put(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        """Write a file of the node (below its /var/lib or /var/snap) before boot."""
        target = self.node_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
        os.chmod(target, mode)

    def install(self, source: Path, path: str) -> None:
        """Copy an executable of the bed (a stand-in) to a path of the node before boot:
        below /usr/local/bin (the node's upper directory) or the node's /var/lib, /var/snap."""
        if path.startswith("/usr/local/bin/"):
            target = self.overlay_upper("/usr/local/bin") / Path(path).name
        else:
            target = self.node_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
        os.chmod(target, 0o755)

    def _prepare(self) -> None:
        """SystemdNode's preparation, then: the units enabled (wants links), docker's and
        containerd's /etc entries whited out, the node's upper directories of `overlays` (the
        host's docker client whited out in /usr/local/bin), node-distro.sh as the node's
        kind-mounts.sh with its settings in node.env, and the bed's hiding layers."""
        super()._prepare()
        upper = self.dir / "upper"
        wants = upper / "systemd" / "system" / "multi-user.target.wants"
        wants.mkdir(parents=True, exist_ok=True)
        for unit, path in self.unit_paths.items():
            (wants / f"{unit}.service").symlink_to(path)
        for entry in HIDDEN_ETC:
            whiteout(upper / entry)
        for directory in self.overlays:
            self.overlay_upper(directory).mkdir()
            (self.dir / (self.overlay_upper(directory).name + "-work")).mkdir()
        whiteout(self.overlay_upper("/usr/local/bin") / "docker")
        shutil.copyfile(HERE / "node-distro.sh", self.dir / "kind-mounts.sh")
        settings = {
            "DISTRO_BIN": self.containerd_bin,
            "DISTRO_BINARIES": " ".join(CONTAINERD_BINARIES),
            "DISTRO_LINKS": " ".join(f"{link}={to}" for link, to in self.links().items()),
            "DISTRO_RO_DIRS": " ".join(self.read_only_dirs()),
            "DISTRO_OVERLAYS": " ".join(self.overlays),
        }
        with open(self.dir / "node.env", "a") as f:
            f.writelines(f"{key}={shlex.quote(value)}\n" for key, value in settings.items())
        make_hiding_layers(self.bed.workdir / HIDING_LAYERS)

    def _launch(self, t0: float) -> None:
        """Boot as a SystemdNode (systemd running, sshd answers), then wait for the
        distribution's units and its containerd."""
        super()._launch(t0)
        try:
            for unit in self.unit_paths:
                argv = (*self.ctr_argv, "--timeout", "2s", "version")
                self._wait_service(unit, argv, t0 + self.bed.node_start_timeout)
        except NodeStartError as exc:
            journals = "".join(
                f"\n--- journal of {unit}:\n{self.journal(unit, 40)}" for unit in self.unit_paths
            )
            raise NodeStartError(
                f"{self.kind_name} node {self.name} ({self.address}): {exc}{journals}"
                f"{self._containerd_log_tail()}"
            ) from exc

    def _containerd_log_tail(self) -> str:
        if not self.containerd_log:
            return ""
        return f"\n--- {self.containerd_log}:\n{tail(self.node_path(self.containerd_log))}"

    # ----------------------------------------------------------------- helpers for tests
    @property
    def ctr_argv(self) -> tuple[str, ...]:
        """The command line that runs ctr at the distribution's containerd."""
        return (self.ctr, "--address", self.socket)

    def containerd_pid(self) -> int | None:
        """pid (in the node) of the distribution's containerd: by default the containerd
        whose parent is the main process of `unit` (k3s, RKE2)."""
        parent = self.unit_pid(self.unit)
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
        """`systemctl show -p NAME... UNIT` of `unit` as {NAME: value}, e.g.
        unit_show("LimitNOFILE", "LimitMEMLOCK") == {"LimitNOFILE": "1048576",
        "LimitMEMLOCK": "8388608"}."""
        props = [arg for name in names for arg in ("-p", name)]
        out = self.systemctl("show", *props, self.unit).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def run_distro_container(self) -> dict[str, dict[str, tuple[int, int]]]:
        """A short container through the distribution's containerd and the runtime wrapper
        (`CTR --address SOCKET run --rm --rootfs --runc-binary TNP-RUNTIME ROOTFS ID
        /bin/true`); what the wrapper recorded, as SystemdNode.run_containerd_container:
        {"requested": ..., "inherited": ...} of (soft, hard), unlimited = -1."""
        return self.container_rlimits(self._ctr_run("/bin/true"))

    def start_distro_container(self, *command: str) -> str:
        """A container that keeps running (`ctr run -d`), its shim too, until it ends or the
        node stops; returns its id (see container_rlimits, task_pid)."""
        return self._ctr_run(*command, detach=True)

    def task_pid(self, cid: str) -> int:
        """pid (in the node) of a running container's first process (`ctr task ls`)."""
        out = self.exec(*self.ctr_argv, "task", "ls").stdout
        for line in out.splitlines()[1:]:
            fields = line.split()
            if fields and fields[0] == cid:
                return int(fields[1])
        raise RuntimeError(f"no task {cid} in {self.name}:\n{out}")

    def _ctr_run(self, *command: str, detach: bool = False) -> str:
        rootfs = self.busybox_rootfs
        if self.exec("test", "-x", f"{rootfs}/bin/busybox", check=False).returncode:
            self.exec("mkdir", "-p", rootfs)
            self.exec("tar", "-x", "-C", rootfs, "-f", "-", input=self.bed.busybox_tar())
        cid = f"tnp-{uuid.uuid4().hex[:12]}"
        mode = ["-d"] if detach else ["--rm"]
        proc = self.exec(
            *self.ctr_argv,
            "run",
            *mode,
            "--rootfs",
            "--runc-binary",
            RUNTIME_PATH,
            rootfs,
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
                f"{self._containerd_log_tail()}"
            )
        return cid


ROLES = ("server", "agent")


class RoleNode(DistributionNode):
    """A DistributionNode whose distribution runs as a server or an agent, each with its own
    unit (k3s, RKE2): `role` picks it; `unit_dir` is where the install puts the unit file."""

    unit_dir = "/etc/systemd/system"

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
            raise ValueError(f"{type(self).__name__} role must be one of {ROLES}, not {role!r}")
        super().__init__(bed, name, address, octet, known_host=known_host)
        self.role = role
        self.unit = self.unit_name(role)

    def unit_name(self, role: str) -> str:
        """The unit of that role, without .service."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} {self.address} role={self.role}>"

    @property
    def unit_path(self) -> str:
        return f"{self.unit_dir}/{self.unit}.service"

    @property
    def unit_paths(self) -> dict[str, str]:
        return {self.unit: self.unit_path}
