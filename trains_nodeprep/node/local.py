"""This machine as a node, without SSH: the script runs in a subprocess (with sudo if not root)."""

from __future__ import annotations

import os
import socket
import subprocess

from ..errors import ConnectionFailed
from .base import Progress, Result, with_addresses
from .sudo import password_line, root_argv, sudo_failure


class LocalNode:
    """This machine, without SSH (for cloud-init or a node's own shell)."""

    def __init__(self, sudo_password: str | None = None) -> None:
        import getpass

        self.user = getpass.getuser() if os.geteuid() != 0 else "root"
        self.label = "localhost"
        self.sudo_password = sudo_password
        self.exec_count = 0
        self.progress: Progress | None = None

    def names(self) -> set[str]:
        """Names and addresses this machine goes by, to match it with a Kubernetes node."""
        return with_addresses({socket.gethostname(), socket.getfqdn()})

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        """`payload` reaches the script on stdin, after the sudo password line if there is one."""
        self.exec_count += 1
        argv = root_argv(script, self.user, self.sudo_password)
        stdin = password_line(self.user, self.sudo_password)
        try:
            done = subprocess.run(argv, input=stdin + payload, capture_output=True, timeout=timeout)
        except subprocess.TimeoutExpired as err:
            raise ConnectionFailed(
                f"localhost: a command did not finish within {timeout:.0f} s"
            ) from err
        result = Result(done.returncode, done.stdout, done.stderr.decode("utf-8", errors="replace"))
        failure = sudo_failure(result, self.label, self.user)
        if failure:
            raise failure
        return result

    def close(self) -> None:
        pass
