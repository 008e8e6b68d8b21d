"""Pure: what docker's containers get for a limit docker sets no default ulimit for.

dockerd then puts no rlimits in a container's spec, so the container inherits them down the
chain runc <- shim <- containerd: the limits of the containerd that docker uses. That is the
containerd dockerd started as its own child (docker 20.10 without a system containerd), else
the one listening on the socket that dockerd's `--containerd` flag (or daemon.json's
`containerd` key) names, by default /run/containerd/containerd.sock: containerd.service on a
systemd node, whose Debian unit has LimitNOFILE=infinity.

The soft nofile in /proc/PID/limits may be above what containers get (Go programs raise their
own soft nofile to the hard one; since Go 1.21 their children get the old one back): keeping
it can only raise a container's limit, never lower it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..engine.facts import NodeFacts
from ..engine.parse import int_or_none
from ..formats.proc_limits import parse_proc_limits
from ..model import UNLIMITED, Ulimit

DEFAULT_SOCKET = "/run/containerd/containerd.sock"
# where dockerd keeps the config and socket of the containerd it runs itself
DOCKER_OWN_CONTAINERD = "/docker/containerd"
DOCKER_OWN_SOCKET = "/var/run/docker/containerd/containerd.sock"


@dataclass(frozen=True)
class Inherited:
    """The limits containers inherit today, by docker's names, and from which process; when
    they are not known, `source` is None and `unknown` says why."""

    limits: dict[str, Ulimit] = field(default_factory=dict)
    source: str | None = None
    unknown: str = ""


def _flag_value(argv: tuple[str, ...], *names: str) -> str | None:
    """The value of the last of `names` on a command line (`--flag VALUE` or `--flag=VALUE`)."""
    found = None
    for index, arg in enumerate(argv):
        for name in names:
            if arg == name and index + 1 < len(argv):
                found = argv[index + 1]
            elif arg.startswith(name + "="):
                found = arg.split("=", 1)[1]
    return found


def _socket(address: str) -> str:
    return address.removeprefix("unix://")


def containerd_address(argv: tuple[str, ...]) -> str:
    """The socket a containerd listens on, from its flags (its config file is not read)."""
    flag = _flag_value(argv[1:], "--address", "-a")
    if flag:
        return _socket(flag)
    if any(DOCKER_OWN_CONTAINERD in arg for arg in argv):
        return DOCKER_OWN_SOCKET  # set in the config dockerd wrote for it
    return DEFAULT_SOCKET


def docker_containerd(facts: NodeFacts, daemon_json_address: str | None) -> int | str:
    """The pid of the containerd whose limits docker's containers inherit, or why it is not
    known."""
    if not facts.docker_running:
        return "docker is not running"
    running = dict(facts.containerd_processes)
    children = [pid for pid in running if facts.process_parents.get(pid) == facts.dockerd_pid]
    if children:
        return children[0]
    named = _flag_value(facts.dockerd_argv[1:], "--containerd") or daemon_json_address
    if not named:
        # without --containerd, dockerd takes over the containerd an earlier dockerd started
        # (its pid file), else the one at the default socket
        own = [a for a in running.items() if any(DOCKER_OWN_CONTAINERD in arg for arg in a[1])]
        if own:
            return own[0][0]
    address = _socket(named or DEFAULT_SOCKET)
    listening = [pid for pid, argv in running.items() if containerd_address(argv) == address]
    if len(listening) == 1:
        return listening[0]
    main_pid = int_or_none((facts.containerd_unit or {}).get("MainPID") or "")
    if main_pid in listening:  # several: containerd.service's is the one at its socket
        return main_pid
    if listening:
        return f"{len(listening)} containerds listen on {address}, which dockerd uses"
    return f"no running containerd listens on {address}, which dockerd uses"


def inherited_limits(facts: NodeFacts, daemon_json_address: str | None = None) -> Inherited:
    """What docker's containers inherit today, read from that containerd's /proc/PID/limits."""
    found = docker_containerd(facts, daemon_json_address)
    if isinstance(found, str):
        return Inherited(unknown=found)
    rows = parse_proc_limits(facts.process_limits.get(found, ""))
    if not rows:
        return Inherited(unknown=f"the limits of containerd pid {found} were not read")
    limits = {
        name: Ulimit(name, soft, hard)
        for name, (soft, hard) in rows.items()
        # the kernel refuses an unlimited nofile (it is capped by fs.nr_open): never keep one
        if not (name == "nofile" and UNLIMITED in (soft, hard))
    }
    return Inherited(limits, f"containerd pid {found}")
