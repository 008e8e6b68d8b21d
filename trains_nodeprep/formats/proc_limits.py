"""Pure: /proc/PID/limits, the limits a running process really has (a pod's PID 1, or containerd
on a node without systemd), by the names docker gives them."""

from __future__ import annotations

import re

from ..model import UNLIMITED

# The rows of /proc/PID/limits (fs/proc/base.c, lnames[]) -> docker's ulimit names.
# "as" (Max address space) is listed for completeness: dockerd does not accept it.
PROC_LIMIT_NAMES = {
    "Max cpu time": "cpu",
    "Max file size": "fsize",
    "Max data size": "data",
    "Max stack size": "stack",
    "Max core file size": "core",
    "Max resident set": "rss",
    "Max processes": "nproc",
    "Max open files": "nofile",
    "Max locked memory": "memlock",
    "Max address space": "as",
    "Max file locks": "locks",
    "Max pending signals": "sigpending",
    "Max msgqueue size": "msgqueue",
    "Max nice priority": "nice",
    "Max realtime priority": "rtprio",
    "Max realtime timeout": "rttime",
}

_LIMIT_ROW = re.compile(
    r"^(?P<name>Max [A-Za-z ]+?)\s+(?P<soft>\d+|unlimited)\s+(?P<hard>\d+|unlimited)(?:\s+\S+)?\s*$"
)


def _limit_value(text: str) -> int:
    return UNLIMITED if text == "unlimited" else int(text)


def parse_proc_limits(text: str) -> dict[str, tuple[int, int]]:
    """/proc/PID/limits -> {docker ulimit name: (soft, hard)}; unlimited is -1.
    Rows it does not know are skipped; an empty dict means nothing was recognised."""
    limits = {}
    for line in (text or "").splitlines():
        match = _LIMIT_ROW.match(line.strip())
        if match and match["name"] in PROC_LIMIT_NAMES:
            limits[PROC_LIMIT_NAMES[match["name"]]] = (
                _limit_value(match["soft"]),
                _limit_value(match["hard"]),
            )
    return limits
