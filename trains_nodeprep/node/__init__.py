"""The transport: run a script as root on a node, over SSH (ssh.py) or locally (local.py).

Only this package imports paramiko, and lazily: `--help` and `--local` never pay for it. The
SSH side itself is imported on first use of one of its names, so `--local` does without it too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .base import Node, Progress, Result
from .local import LocalNode
from .sudo import SUDO_PASSWORD_ENV

if TYPE_CHECKING:
    from .ssh import SSHNode
    from .target import SSHOptions, Target, parse_target

_LAZY = {"SSHNode": ".ssh", "SSHOptions": ".target", "Target": ".target", "parse_target": ".target"}

__all__ = [
    "SUDO_PASSWORD_ENV",
    "LocalNode",
    "Node",
    "Progress",
    "Result",
    "SSHNode",
    "SSHOptions",
    "Target",
    "parse_target",
]


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_LAZY[name], __name__), name)
