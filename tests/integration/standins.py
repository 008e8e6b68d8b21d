"""Stand-ins for trains-server's three servers, each a small HTTP server (trains_standin.py)
started inside a test-bed node's network namespace on its NodePort (30008 API, 30080 web,
30081 files): trains-server's containers cannot run here. Stopped with the node, or by
`stop(name)` to take one down."""

from __future__ import annotations

import socket
import time
from pathlib import Path

SCRIPT = Path(__file__).with_name("trains_standin.py")
NODE_SCRIPT = "/usr/local/lib/trains-standin.py"
NODE_PORTS = {"api": 30008, "web": 30080, "files": 30081}


class StandIns:
    def __init__(self, node) -> None:
        self.node = node
        self.pids: dict[str, int] = {}  # name -> pid inside the node's PID namespace

    def start(self, *names: str) -> StandIns:
        """Start the stand-ins (default: all three) and wait until each accepts connections
        on the node's address."""
        # the node has its own /tmp (a checkout there is not visible inside): copy the script in
        self.node.write(NODE_SCRIPT, SCRIPT.read_bytes(), mode=0o755)
        for name in names or tuple(NODE_PORTS):
            port = NODE_PORTS[name]
            done = self.node.sh(
                f"/usr/bin/python3 {NODE_SCRIPT} {name} {port}"
                f" >/var/log/trains-standin-{name}.log 2>&1 & echo $!"
            )
            self.pids[name] = int(done.stdout.strip())
            self._wait(name, up=True)
        return self

    def stop(self, name: str) -> None:
        self.node.exec("kill", str(self.pids.pop(name)))
        self._wait(name, up=False)

    def _wait(self, name: str, *, up: bool, timeout: float = 10.0) -> None:
        port = NODE_PORTS[name]
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.node.address, port), timeout=1):
                    if up:
                        return
            except OSError:
                if not up:
                    return
            time.sleep(0.05)
        log = self.node.read(f"/var/log/trains-standin-{name}.log")
        state = "up" if up else "down"
        raise AssertionError(f"{name} stand-in on {self.node.address}:{port} not {state}: {log!r}")
