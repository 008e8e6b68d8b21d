"""Run the real `trains-nodeprep` console script as a user would, against the test bed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

EXECUTABLE = Path(sys.executable).with_name("trains-nodeprep")


def trains_nodeprep(
    bed,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    home: Path | None = None,
    stdin=subprocess.DEVNULL,
) -> subprocess.CompletedProcess:
    """The CLI with HOME = the bed's client home (its ~/.ssh/config, key and known_hosts)."""
    environment = {
        k: v for k, v in os.environ.items() if not k.startswith(("TRAINS_NODEPREP_", "KUBECONFIG"))
    }
    environment.update({"HOME": str(home or bed.home), "COLUMNS": "200", "TERM": "dumb"})
    environment.update(env or {})
    return subprocess.run(
        [str(EXECUTABLE), *args],
        env=environment,
        stdin=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def json_output(result: subprocess.CompletedProcess) -> dict:
    assert result.stdout, result.stderr
    return json.loads(result.stdout)
