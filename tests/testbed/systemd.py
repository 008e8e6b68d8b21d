"""SystemdNode: a Debian 12 node whose PID 1 is the real systemd (252), with Debian's own
ssh.service, containerd.service and, with docker=True, docker.socket + docker.service."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import time
import uuid
from typing import TYPE_CHECKING, Any

from .host import (
    CGROUP_ROOT,
    CGROUP_TOP,
    NodeStartError,
    cgroup_hierarchies,
    descendants,
    make_cgroup,
    nspid,
    pid_alive,
    remove_cgroup_tree,
    tail,
)
from .layers import RUNTIME_PATH
from .node import RLIMITS_RECORD, TestNode, signed

if TYPE_CHECKING:
    from .bed import TestBed

BUSYBOX_ROOTFS = "/var/lib/containerd/tnp-busybox-rootfs"  # in the node (its own /var/lib)


class SystemdNode(TestNode):
    """Booted by node-init-systemd.sh under script(1) in new mount, UTS, IPC, PID and cgroup
    namespaces; see README.md. containerd=False leaves containerd.service disabled."""

    kind_name = "systemd"
    namespaces = ("-m", "-u", "-n", "-p", "-i", "-C")

    def __init__(
        self,
        bed: TestBed,
        name: str,
        address: str,
        octet: int,
        *,
        known_host: bool,
        docker: bool = True,
        containerd: bool = True,
    ) -> None:
        super().__init__(bed, name, address, octet, known_host=known_host)
        self.docker = docker
        self.containerd = containerd  # containerd.service enabled
        # the node's cgroup, relative to each hierarchy's root
        self.cgroup_path = f"{CGROUP_TOP}/{bed.id}/{name}"
        self.system_state: str | None = None  # `systemctl is-system-running` at start

    def __repr__(self) -> str:
        return (
            f"<SystemdNode {self.name} {self.address} docker={self.docker} "
            f"containerd={self.containerd}>"
        )

    def _prepare(self) -> None:
        """The node's own hostname, machine-id and enabled units (wants links in its /etc
        upper dir), and its cgroup in every host hierarchy."""
        hierarchies = cgroup_hierarchies()
        if not hierarchies:
            raise NodeStartError("no cgroup hierarchies below /sys/fs/cgroup")
        upper = self.dir / "upper"
        (upper / "hostname").write_text(self.name + "\n")
        (upper / "machine-id").write_text(uuid.uuid4().hex + "\n")
        wants = {"multi-user.target.wants": ["ssh.service"], "sockets.target.wants": []}
        if self.containerd:
            wants["multi-user.target.wants"].append("containerd.service")
        if self.docker:
            wants["multi-user.target.wants"].append("docker.service")
            wants["sockets.target.wants"].append("docker.socket")
        for target, units in wants.items():
            d = upper / "systemd" / "system" / target
            d.mkdir(parents=True, exist_ok=True)
            for unit in units:
                (d / unit).symlink_to(f"/lib/systemd/system/{unit}")
        with open(self.dir / "node.env", "a") as f:
            f.write(
                f"CGROUP_PATH={shlex.quote(self.cgroup_path)}\n"
                "CGROUP_MOUNTS=" + shlex.quote(" ".join(":".join(h) for h in hierarchies)) + "\n"
            )
        for h in hierarchies:
            make_cgroup(CGROUP_ROOT / h[0] / self.cgroup_path)

    def _launch(self, t0: float) -> None:
        """Boot the real systemd as the node's PID 1 (node-init-systemd.sh)."""
        init = (
            f"exec unshare --mount --uts --ipc --pid --fork --kill-child "
            f"--propagation private /bin/sh {shlex.quote(self.init_script('node-init-systemd.sh'))}"
            f" {shlex.quote(str(self.dir))}"
        )
        # script(1): its pty becomes the node's /dev/console. Its stdin is a pipe that stays
        # open until stop() (script may end its session at EOF on stdin).
        self._popen_init(["script", "-qefc", init, "/dev/null"], stdin=subprocess.PIPE)
        self._wait_ready(t0)

    def _wait_ready(self, t0: float) -> None:
        """Until sshd answers, `systemctl is-system-running` says running or degraded,
        `ctr version` answers (containerd=True) and `docker info` answers (docker=True)."""
        deadline = t0 + self.bed.node_start_timeout
        why = "timed out"
        booted = False
        while True:
            if time.monotonic() > deadline:
                break
            if self._popen is not None and self._popen.poll() is not None:
                why = f"init exited with status {self._popen.returncode}"
                break
            if not self.ns_pid:
                for pid in descendants(self.init_pid):
                    ns = nspid(pid)
                    if len(ns) > 1 and ns[-1] == 1:
                        self.ns_pid = pid
                        break
            log = self.init_log.read_bytes()
            if b"TNP-FAILED" in log:
                why = "init failed"
                break
            # TNP-BOOT in NODE_DIR/booted, not on the console: systemd's console reset at
            # start may flush that line before script(1) has copied it to init.log
            booted = self.dir / "booted"
            if not (self.ns_pid and booted.is_file() and b"TNP-BOOT" in booted.read_bytes()):
                time.sleep(0.02)
                continue
            state = self.exec(
                "systemctl", "is-system-running", check=False, timeout=10
            ).stdout.strip()
            self.system_state = state
            if state in ("maintenance", "stopping"):  # "offline": not listening yet
                why = f"systemctl is-system-running: {state}"
                break
            if state not in ("running", "degraded"):
                time.sleep(0.05)
                continue
            booted = True
            break
        if booted:
            try:
                if self.containerd:
                    self._wait_service(
                        "containerd", ("ctr", "--timeout", "2s", "version"), deadline
                    )
                if self.docker:
                    self._wait_service("docker", ("docker", "info"), deadline)
                if not self._ssh_banner(max(0.5, deadline - time.monotonic())):
                    raise NodeStartError("sshd does not answer")
                return
            except NodeStartError as exc:
                why = str(exc)
        journal = ""
        if self.ns_pid and pid_alive(self.ns_pid):
            try:
                journal = self.exec(
                    "journalctl", "-b", "-n", "80", "--no-pager", check=False, timeout=10
                ).stdout
                journal += (
                    "\n--- systemctl --failed:\n"
                    + self.exec(
                        "systemctl", "--failed", "--no-pager", check=False, timeout=10
                    ).stdout
                )
            except (OSError, subprocess.SubprocessError) as exc:  # the node may be dying
                journal = f"(journal not readable: {exc!r})"
        raise NodeStartError(
            f"systemd node {self.name} ({self.address}) did not start ({why}, "
            f"system state {self.system_state}, timeout {self.bed.node_start_timeout:.0f} s)"
            f"\n--- init.log (console):\n{tail(self.init_log)}\n--- journal:\n{journal}"
        )

    def _wait_service(self, unit: str, argv: tuple[str, ...], deadline: float) -> None:
        """Until unit is active and argv succeeds; NodeStartError if the unit failed or
        the deadline passed."""
        while True:
            state = self.exec(
                "systemctl", "is-active", unit, check=False, timeout=10
            ).stdout.strip()
            if state == "failed":
                raise NodeStartError(f"{unit}.service failed")
            err = f"{unit}.service is {state}"
            if state == "active":
                try:
                    proc = self.exec(*argv, check=False, timeout=5)
                    if proc.returncode == 0:
                        return
                    err = f"{' '.join(argv)}: {proc.stderr.strip()}"
                except subprocess.TimeoutExpired:
                    err = f"{' '.join(argv)} timed out"
            if time.monotonic() > deadline:
                raise NodeStartError(f"{unit} does not answer ({err})")
            time.sleep(0.05)

    def _kill_init(self) -> None:
        # systemd ignores SIGTERM; SIGKILL of a PID namespace's init kills all of it
        if self.ns_pid:
            try:
                os.kill(self.ns_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        super()._kill_init()

    def _after_kill(self) -> None:
        for h in cgroup_hierarchies():
            remove_cgroup_tree(CGROUP_ROOT / h[0] / self.cgroup_path)

    # ----------------------------------------------------------------- helpers for tests
    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[Any]:
        """`systemctl ARGS` inside a systemd node (str stdout/stderr)."""
        return self.exec("systemctl", *args, check=check)

    def unit_pid(self, unit: str) -> int | None:
        """MainPID of unit (as seen in the node), or None if it has no running main process."""
        out = self.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip()
        return int(out) if out and out != "0" else None

    def journal(self, unit: str, lines: int = 50) -> str:
        """The last lines of `journalctl -u unit` in a systemd node."""
        return self.exec(
            "journalctl", "-u", unit, "-n", str(int(lines)), "--no-pager", check=False
        ).stdout

    def run_containerd_container(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Run a short container through containerd alone (no docker, no image registry):
        `ctr run --rm --rootfs --runc-binary TNP-RUNTIME BUSYBOX-ROOTFS ID true`.

        Returns what the runtime wrapper recorded for it: {"requested": rlimits in the
        container's spec (ctr's default spec asks RLIMIT_NOFILE 1024:1024), "inherited": the
        wrapper's own RLIMIT_NOFILE and RLIMIT_MEMLOCK, i.e. what containerd (through its
        shim) passes to what it starts; that is what a pod gets from the CRI plugin, which
        puts no rlimits in the spec}. Values are (soft, hard), unlimited = -1."""
        if self.exec("test", "-x", f"{BUSYBOX_ROOTFS}/bin/busybox", check=False).returncode:
            self.exec("mkdir", "-p", BUSYBOX_ROOTFS)
            self.exec("tar", "-x", "-C", BUSYBOX_ROOTFS, "-f", "-", input=self.bed.busybox_tar())
        cid = f"tnp-{uuid.uuid4().hex[:12]}"
        proc = self.exec(
            "ctr",
            "run",
            "--rm",
            "--rootfs",
            "--runc-binary",
            RUNTIME_PATH,
            BUSYBOX_ROOTFS,
            cid,
            "/bin/true",
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"ctr run in {self.name} failed ({proc.returncode}): {proc.stderr}"
                f"\n--- runtime errors: {tail(self.log_dir / 'tnp-runtime.err')}"
                f"\n--- journal:\n{self.journal('containerd', 20)}"
            )
        return self.container_rlimits(cid)

    def container_rlimits(self, cid: str) -> dict[str, dict[str, tuple[int, int]]]:
        """The runtime wrapper's record of container cid: requested and inherited rlimits."""
        for rec in reversed(self.rlimit_records()):
            if rec.get("id") == cid:
                return {
                    key: {
                        rl["type"]: (signed(rl["soft"]), signed(rl["hard"]))
                        for rl in rec.get(field) or []
                    }
                    for key, field in (("requested", "rlimits"), ("inherited", "process_rlimits"))
                }
        raise RuntimeError(
            f"no rlimit record for container {cid} in {RLIMITS_RECORD}"
            f" (runtime errors: {tail(self.log_dir / 'tnp-runtime.err')})"
        )
