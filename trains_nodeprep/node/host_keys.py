"""Strict host-key checking: which known_hosts keys are trusted, and what an unknown key does.

An unknown key is refused unless --accept-new-host-keys (then it is recorded, as ssh's
StrictHostKeyChecking=accept-new does); a changed key is always refused (by paramiko's
SSHClient, before the policy is asked).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import paramiko


class UnknownHostKey(Exception):
    def __init__(self, fingerprint: str) -> None:
        super().__init__(fingerprint)
        self.fingerprint = fingerprint


def fingerprint(key: paramiko.PKey) -> str:
    """As ssh prints it: `ssh-ed25519 SHA256:...` (base64 without padding)."""
    import base64
    import hashlib

    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"{key.get_name()} SHA256:{digest}"


def host_key_policy(add_to: Path, accept_new: bool) -> paramiko.MissingHostKeyPolicy:
    """Trust known_hosts only; with accept_new, record a new key in `add_to`."""
    import paramiko

    class Policy(paramiko.MissingHostKeyPolicy):
        def missing_host_key(
            self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
        ) -> None:
            if not accept_new:
                raise UnknownHostKey(fingerprint(key))
            client.get_host_keys().add(hostname, key.get_name(), key)
            add_to.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            with _host_keys_lock, open(add_to, "a", encoding="ascii") as handle:
                os.chmod(add_to, 0o600)
                handle.write(f"{hostname} {key.get_name()} {key.get_base64()}\n")

    return Policy()


_host_keys_cache: dict[tuple[tuple[str, int | None], ...], paramiko.HostKeys] = {}
_host_keys_lock = threading.Lock()


def trusted_host_keys(files: tuple[Path, ...]) -> paramiko.HostKeys:
    """known_hosts parsed once per process (and again only when a file changes), shared by
    every node."""
    import paramiko

    stamp = tuple((str(p), p.stat().st_mtime_ns if p.is_file() else None) for p in files)
    with _host_keys_lock:
        if stamp not in _host_keys_cache:
            keys = paramiko.HostKeys()
            for path in files:
                if path.is_file():
                    try:
                        keys.load(str(path))
                    except (OSError, paramiko.SSHException):
                        pass  # an unreadable known_hosts trusts nothing: the connection is refused
            _host_keys_cache.clear()
            _host_keys_cache[stamp] = keys
        return _host_keys_cache[stamp]
