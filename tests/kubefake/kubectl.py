"""Running the real kubectl against a fake: KubectlResult and run_kubectl."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class KubectlResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def kubectl_binary() -> str:
    return shutil.which("kubectl") or "/usr/bin/kubectl"


def run_kubectl(
    kubeconfig: Path, *args: str, cache_dir: Path, timeout: float = 60, check: bool = True
) -> KubectlResult:
    """Run the real kubectl against the kubeconfig with its own cache directory."""
    cmd = [kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={cache_dir}", *args]
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    result = KubectlResult(cmd, out.returncode, out.stdout, out.stderr, time.monotonic() - start)
    if check and out.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} exited {out.returncode}:\n{out.stderr}{out.stdout}"
        )
    return result
