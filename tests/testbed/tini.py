"""TiniNode: a sysvinit-style node, tini as PID 1 (no systemd), as on many older hosts and
on this machine itself: `systemctl` fails there, `service docker restart` works."""

from __future__ import annotations

import subprocess
import time
from typing import TYPE_CHECKING

from .host import NodeStartError, children, tail
from .layers import HERE
from .node import TestNode

if TYPE_CHECKING:
    from .bed import TestBed

RHEL_SYSCONFIG = (HERE / "sysconfig-docker.rhel").read_text()


class TiniNode(TestNode):
    """sshd (and, with docker=True, dockerd started by the node's /etc/init.d/docker) under
    tini, booted by node-init.sh. rhel=True: a RHEL-style node, whose dockerd flags come
    from OPTIONS in /etc/sysconfig/docker (RHEL_SYSCONFIG unless files= gives another)."""

    kind_name = "tini"

    def __init__(
        self,
        bed: TestBed,
        name: str,
        address: str,
        octet: int,
        *,
        known_host: bool,
        docker: bool = True,
        rhel: bool = False,
    ) -> None:
        super().__init__(bed, name, address, octet, known_host=known_host)
        self.docker = docker
        self.rhel = rhel

    def __repr__(self) -> str:
        return f"<TiniNode {self.name} {self.address} docker={self.docker} rhel={self.rhel}>"

    def default_files(self) -> dict[str, str | bytes]:
        return {"/etc/sysconfig/docker": RHEL_SYSCONFIG} if self.rhel else {}

    def _launch(self, t0: float) -> None:
        # unshare --kill-child: SIGKILL of unshare (it ignores SIGTERM) ends tini and with
        # it every process of the node, dockerd and containers included
        self._popen_init(
            [
                "unshare",
                "--mount",
                "--uts",
                "--pid",
                "--kill-child",
                "--mount-proc",
                "--propagation",
                "private",
                "tini",
                "--",
                "/bin/sh",
                self.init_script("node-init.sh"),
                str(self.dir),
            ],
            stdin=subprocess.DEVNULL,
        )
        self._wait_ready(t0)

    def _wait_ready(self, t0: float) -> None:
        """Until node-init.sh prints TNP-READY (sshd, and dockerd, answer) and sshd sends
        its banner."""
        deadline = t0 + self.bed.node_start_timeout
        ready = False
        while time.monotonic() < deadline:
            if not self.ns_pid:
                kids = children(self.init_pid)
                if kids:
                    self.ns_pid = kids[0]
            log = self.init_log.read_bytes()
            if b"TNP-FAILED" in log:
                break
            if b"TNP-READY" in log:
                ready = True
                break
            if self._popen is not None and self._popen.poll() is not None:
                break
            time.sleep(0.02)
        if ready and self.ns_pid and self._ssh_banner():
            return
        raise NodeStartError(
            f"node {self.name} ({self.address}) did not start within "
            f"{self.bed.node_start_timeout:.0f} s\n--- init.log:\n{tail(self.init_log)}"
            f"\n--- /var/log/docker.log:\n{tail(self.log_dir / 'docker.log')}"
            f"\n--- /var/log/sshd.log:\n{tail(self.log_dir / 'sshd.log')}"
        )
