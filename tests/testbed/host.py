"""Small helpers of the test bed that act on this machine: run a command with a clean
environment, walk /proc (children, namespaces' pids, zombies), network links and namespaces,
and the cgroup v1 hierarchies that systemd nodes get a directory in. No test-bed state here."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# what every command of the bed (and inside a node) runs with: never the caller's environment
CLEAN_ENV = {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_TOP = "tnp-testbed"  # /sys/fs/cgroup/<hierarchy>/tnp-testbed/<bed id>/<node>


class NodeStartError(RuntimeError):
    """A node did not come up (its console, logs or journal are in the message)."""


def run(
    *argv: str, check: bool = True, input: bytes | None = None, timeout: float | None = 60
) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=CLEAN_ENV)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def children(pid: int) -> list[int]:
    """Direct children of pid (this kernel has no /proc/PID/task/TID/children)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def netns_pids(netns: str) -> list[int]:
    proc = run("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split()]


def link_exists(name: str) -> bool:
    return run("ip", "link", "show", "dev", name, check=False).returncode == 0


def cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """The host's cgroup hierarchies: (directory below /sys/fs/cgroup, fstype, options),
    e.g. ("memory", "cgroup", "memory"), ("systemd", "cgroup", "name=systemd"),
    ("unified", "cgroup2", "")."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mount_point = pre.split()[4]
            fstype, _source, options = post.split()[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            if mount_point == str(CGROUP_ROOT):
                raise NodeStartError(
                    "systemd nodes need cgroup v1 hierarchies below "
                    "/sys/fs/cgroup; this machine has a pure cgroup v2 "
                    "mount there (not supported by the test bed)"
                )
            parent, _, name = mount_point.rpartition("/")
            if parent != str(CGROUP_ROOT):
                continue
            opts = [o for o in options.split(",") if o not in ("rw", "ro")]
            found.append((name, fstype, ",".join(opts)))
    return found


def cgroup_hierarchies_or_none() -> list[tuple[str, str, str]]:
    try:
        return cgroup_hierarchies()
    except NodeStartError:
        return []


def cgroup_procs(path: Path) -> list[int]:
    """pids (host view) in the cgroup directory path and all its descendants."""
    pids = []
    for dirpath, _dirs, _files in os.walk(path):
        try:
            pids += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pass
    return pids


def remove_cgroup_tree(path: Path, timeout: float = 10.0) -> None:
    """SIGKILL every process in the cgroup tree at path, then remove its directories
    (deepest first). Raises RuntimeError if that does not succeed within timeout."""
    deadline = time.monotonic() + timeout
    while path.exists():
        for pid in cgroup_procs(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for dirpath, _dirs, _files in os.walk(path, topdown=False):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                break  # busy (processes still exiting): retry
        if not path.exists():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"cannot remove cgroup {path}: processes {cgroup_procs(path)} remain"
            )
        time.sleep(0.05)


def make_cgroup(path: Path) -> None:
    """mkdir -p of a cgroup directory; in a cpuset hierarchy copy cpus and mems down, which
    a new v1 cpuset lacks (no process could join it otherwise)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        for key in ("cpuset.cpus", "cpuset.mems"):
            f = d / key
            if f.exists() and not f.read_text().strip():
                f.write_text((d.parent / key).read_text())


def descendants(pid: int, depth: int = 5) -> list[int]:
    found, level = [], [pid]
    for _ in range(depth):
        level = [kid for p in level for kid in children(p)]
        found += level
    return found


def nspid(pid: int) -> list[int]:
    """NSpid of pid: its pid in each PID namespace, outermost first ([] if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return f"({path}: absent)"
    return data[-limit:].decode(errors="replace")
