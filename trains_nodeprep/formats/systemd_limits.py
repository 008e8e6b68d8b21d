"""Pure: containerd's service limits as systemd sees them, and the drop-in that raises them.

containerd passes its own rlimits to the containers it starts (the CRI plugin puts none in
the spec), so the limits a pod gets are containerd.service's LimitNOFILE, LimitMEMLOCK, ...
The playbook names limits as docker does (nofile, memlock); here they become systemd's.
"""

from __future__ import annotations

from ..model import UNLIMITED, Ulimit

UNIT = "containerd.service"
# docker ulimit name -> systemd directive (systemd.exec(5) "Process Properties")
SYSTEMD_LIMITS = {
    "core": "LimitCORE",
    "cpu": "LimitCPU",
    "data": "LimitDATA",
    "fsize": "LimitFSIZE",
    "locks": "LimitLOCKS",
    "memlock": "LimitMEMLOCK",
    "msgqueue": "LimitMSGQUEUE",
    "nice": "LimitNICE",
    "nofile": "LimitNOFILE",
    "nproc": "LimitNPROC",
    "rss": "LimitRSS",
    "rtprio": "LimitRTPRIO",
    "rttime": "LimitRTTIME",
    "sigpending": "LimitSIGPENDING",
    "stack": "LimitSTACK",
}
# `ulimit` flags for the hint on nodes without systemd (units as the kernel counts them)
SHELL_ULIMIT_FLAGS = {
    "nofile": "-n",
    "nproc": "-u",
    "core": "-c",
    "stack": "-s",
    "fsize": "-f",
    "data": "-d",
    "cpu": "-t",
}
HEADER = (
    "# Managed by trains-nodeprep: minimums for trains-server (Elasticsearch), for the containers\n"
    "# containerd starts. Higher values are kept. Containers started before containerd restarted\n"
    "# keep their old limits until they are recreated.\n"
)
SHOW_PROPERTIES = ("LoadState", "ActiveState", "MainPID", "NeedDaemonReload", "DropInPaths")


def show_properties(desired: tuple[Ulimit, ...]) -> tuple[str, ...]:
    """What `systemctl show` must print for containerd: its state and each limit, hard and soft."""
    limits = []
    for want in desired:
        directive = SYSTEMD_LIMITS[want.name]
        limits += [directive, directive + "Soft"]
    return SHOW_PROPERTIES + tuple(limits)


def parse_show(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        name, equals, value = line.partition("=")
        if equals:
            values[name] = value
    return values


def parse_systemd_limit(value: str) -> int | None:
    """systemctl show prints a number or "infinity"; None for anything else."""
    value = value.strip()
    if value == "infinity":
        return UNLIMITED
    return int(value) if value.isdigit() else None


def effective_limits(show: dict[str, str], desired: tuple[Ulimit, ...]) -> dict[str, Ulimit]:
    """The limits containerd.service gets from its unit and drop-ins, as loaded by systemd."""
    found = {}
    for want in desired:
        directive = SYSTEMD_LIMITS[want.name]
        hard = parse_systemd_limit(show.get(directive, ""))
        soft = parse_systemd_limit(show.get(directive + "Soft", ""))
        if hard is not None and soft is not None:
            found[want.name] = Ulimit(want.name, soft, hard)
    return found


def parse_dropin(text: str) -> dict[str, Ulimit]:
    """The Limit*= lines of a drop-in's [Service] section (the last one of a name wins, as in
    systemd)."""
    by_directive = {directive: name for name, directive in SYSTEMD_LIMITS.items()}
    found = {}
    section = ""
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            section = line
            continue
        key, equals, value = line.partition("=")
        if section != "[Service]" or not equals or key.strip() not in by_directive:
            continue
        soft_text, _, hard_text = value.strip().partition(":")
        soft = parse_systemd_limit(soft_text)
        hard = parse_systemd_limit(hard_text or soft_text)
        if soft is not None and hard is not None:
            name = by_directive[key.strip()]
            found[name] = Ulimit(name, soft, hard)
    return found


def render_systemd_limit(limit: Ulimit) -> str:
    def value(v: int) -> str:
        return "infinity" if v == UNLIMITED else str(v)

    if limit.soft == limit.hard:
        return f"{SYSTEMD_LIMITS[limit.name]}={value(limit.hard)}"
    return f"{SYSTEMD_LIMITS[limit.name]}={value(limit.soft)}:{value(limit.hard)}"


def render_dropin(limits: list[Ulimit]) -> bytes:
    return (
        HEADER + "[Service]\n" + "".join(render_systemd_limit(limit) + "\n" for limit in limits)
    ).encode()


def dropin_limits(desired: tuple[Ulimit, ...], *sources: dict[str, Ulimit]) -> list[Ulimit]:
    """Each desired limit, raised to the highest value any source already gives: never lowered."""
    result = []
    for want in desired:
        limit = want
        for source in sources:
            if want.name in source:
                limit = limit.raised_to(source[want.name])
        result.append(limit)
    return result


def shell_ulimit_hint(desired: tuple[Ulimit, ...]) -> str:
    """The commands an init script would run before it starts containerd (no systemd on the
    node)."""
    commands = []
    for want in desired:
        if want.name == "memlock":  # `ulimit -l` counts KiB
            for side, value in (("-H", want.hard), ("-S", want.soft)):
                commands.append(
                    f"ulimit {side} -l {'unlimited' if value == UNLIMITED else value // 1024}"
                )
        elif want.name in SHELL_ULIMIT_FLAGS:
            flag = SHELL_ULIMIT_FLAGS[want.name]
            for side, value in (("-H", want.hard), ("-S", want.soft)):
                commands.append(
                    f"ulimit {side} {flag} {'unlimited' if value == UNLIMITED else value}"
                )
        else:
            commands.append(f"set RLIMIT_{want.name.upper()} to {want.display()}")
    return "; ".join(commands)
