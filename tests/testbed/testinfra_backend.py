"""The SSH client side of the test bed for tests: a testinfra Host whose paramiko backend
checks host keys against the bed's known_hosts (testinfra's own accepts any key)."""

from __future__ import annotations

import functools
import os
from typing import Any


@functools.cache
def strict_paramiko_backend() -> type:
    import paramiko
    from testinfra.backend.paramiko import ParamikoBackend

    class StrictParamikoBackend(ParamikoBackend):
        known_hosts: str = ""

        @functools.cached_property
        def client(self) -> paramiko.SSHClient:
            client = paramiko.SSHClient()
            client.load_host_keys(self.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            cfg: dict[str, Any] = {
                "hostname": self.host.name,
                "port": 22,
                "username": self.host.user,
                "timeout": self.timeout,
                "allow_agent": False,
                "look_for_keys": False,
            }
            ssh_config = paramiko.SSHConfig.from_path(self.ssh_config)
            self._load_ssh_config(client, cfg, ssh_config, os.path.dirname(self.ssh_config))
            if self.host.user:  # testinfra would let the config's "User root" win
                cfg["username"] = self.host.user
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(**cfg)
            return client

    return StrictParamikoBackend
