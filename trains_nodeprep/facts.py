"""Facts: one read-only shell script run as root on the node, and pure parsers of its output.

The script prints one record per line: KIND <tab> NAME <tab> STATE <tab> BASE64, so file
contents of any bytes survive the trip. A file is `absent`, `file` (possibly empty),
`directory` or `unreadable`: three different answers that need different handling.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shlex
from dataclasses import dataclass, field

from .model import DAEMON_JSON, DEFAULT_DOCKER, LOCK_FILE, LOCK_WAIT_SECONDS, SYSCONFIG_DOCKER, DesiredState
from .sysctl import SYSCTL_CONF, SYSCTL_DIRS

FILE_STATES = ("absent", "file", "directory", "unreadable")


@dataclass(frozen=True)
class FileFact:
    path: str
    state: str
    content: bytes | None = None

    @property
    def exists(self) -> bool:
        return self.state != "absent"

    @property
    def text(self) -> str | None:
        return self.content.decode("utf-8", errors="replace") if self.content is not None else None

    @property
    def sha256(self) -> str:
        """Fingerprint the apply step compares before it replaces the file ('-' when absent)."""
        return hashlib.sha256(self.content).hexdigest() if self.content is not None else "-"


@dataclass(frozen=True)
class DirFact:
    path: str
    state: str  # ok | absent | notdir
    owner: int | None = None
    group: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class NodeFacts:
    user: str
    init_system: str  # systemd | sysvinit | unknown
    docker_installed: bool
    docker_version: str | None  # "20.10.24" from `dockerd --version`, None when not installed
    dockerd_pid: int | None
    dockerd_argv: tuple[str, ...]
    files: dict[str, FileFact]  # every file read, by path
    sysctl_runtime: dict[str, int | None]  # key -> current value (None: no such key)
    sysctl_files: tuple[str, ...] = field(default=())  # paths of the sysctl config files found
    docker_unit: str | None = None  # `systemctl cat docker.service` on systemd nodes
    backups: dict[str, tuple[str, ...]] = field(default_factory=dict)  # file -> its backups, oldest first
    directories: dict[str, DirFact] = field(default_factory=dict)
    dockerd_age: float | None = None  # seconds since dockerd started
    file_ages: dict[str, float] = field(default_factory=dict)  # seconds since daemon.json last changed

    @property
    def docker_running(self) -> bool:
        return self.dockerd_pid is not None

    def file(self, path: str) -> FileFact:
        return self.files.get(path, FileFact(path, "absent"))


_SHELL_FUNCTIONS = r"""
exec </dev/null
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
emit() { printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4"; }
readfile() {
  if [ -d "$1" ]; then emit file "$1" directory ""
  elif [ ! -e "$1" ]; then emit file "$1" absent ""
  elif c=$(base64 -w0 < "$1" 2>/dev/null); then emit file "$1" file "$c"
  else emit file "$1" unreadable ""; fi
}
"""


def render_facts_script(desired: DesiredState) -> str:
    """The read-only script; every path and key in it is quoted once here."""
    q = shlex.quote
    lines = [_SHELL_FUNCTIONS.strip()]
    # A shared hold on the run lock: facts never see a node halfway through another run's apply.
    lines.append(f"mkdir -p {q(LOCK_FILE.rsplit('/', 1)[0])} 2>/dev/null; exec 9>>{q(LOCK_FILE)} && flock -s -w {LOCK_WAIT_SECONDS} 9")
    lines.append('emit id user ok "$(id -un | base64 -w0)"')
    lines.append(
        "if [ -d /run/systemd/system ]; then emit init system ok c3lzdGVtZA==; "
        "elif command -v service >/dev/null 2>&1 || [ -x /usr/sbin/service ]; then emit init system ok c3lzdmluaXQ=; "
        "else emit init system ok dW5rbm93bg==; fi"
    )
    lines.append(
        "if v=$(dockerd --version 2>/dev/null); then emit docker version ok \"$(printf %s \"$v\" | base64 -w0)\"; "
        "else emit docker version absent ''; fi"
    )
    # Where a systemd unit (and its drop-ins) could pass flags to dockerd.
    lines.append(
        "[ -d /run/systemd/system ] && u=$(systemctl cat docker.service 2>/dev/null) && "
        "emit unit docker.service ok \"$(printf %s \"$u\" | base64 -w0)\""
    )
    # The running dockerd and its argv: where its flags really came from.
    lines.append(
        "for p in $(pidof dockerd 2>/dev/null); do "
        'emit proc dockerd "$p" "$(tr "\\000" "\\n" < /proc/$p/cmdline | base64 -w0)"; '
        # how long ago it started: uptime minus its start in clock ticks since boot (10 ms steps)
        "a=$(awk -v u=\"$(cut -d' ' -f1 /proc/uptime)\" -v s=\"$(cut -d' ' -f22 /proc/$p/stat)\" -v h=\"$(getconf CLK_TCK)\" "
        "'BEGIN {printf \"%.3f\", u - s / h}'); "
        'emit proc dockerd-age "$p" "$(printf %s "$a" | base64 -w0)"; break; done'
    )
    # how long ago daemon.json changed, on the same "now" (docker reads it only at start)
    lines.append(
        f"if m=$(stat -L -c %.9Y {q(DAEMON_JSON)} 2>/dev/null); then "
        "a=$(awk -v n=\"$(date +%s.%N)\" -v m=\"$m\" 'BEGIN {printf \"%.3f\", n - m}'); "
        f"emit age {q(DAEMON_JSON)} ok \"$(printf %s \"$a\" | base64 -w0)\"; fi"
    )
    for path in (DAEMON_JSON, SYSCONFIG_DOCKER, DEFAULT_DOCKER):
        lines.append(f"readfile {q(path)}")
    for setting in desired.sysctls:
        lines.append(
            f"if v=$(cat {q(setting.proc_path)} 2>/dev/null); then emit sysctl {q(setting.key)} ok \"$(printf %s \"$v\" | base64 -w0)\"; "
            f"else emit sysctl {q(setting.key)} absent ''; fi"
        )
    directories = " ".join(q(d) for d in SYSCTL_DIRS)
    # /lib/sysctl.d is /usr/lib/sysctl.d on merged-/usr systems: read it once.
    lines.append(
        f"for d in {directories}; do "
        '[ "$d" = /lib/sysctl.d ] && [ /lib/sysctl.d -ef /usr/lib/sysctl.d ] && continue; '
        'for f in "$d"/*.conf; do [ -e "$f" ] && readfile "$f"; done; done'
    )
    lines.append(f"[ -e {q(SYSCTL_CONF)} ] && readfile {q(SYSCTL_CONF)}")
    lines.append(f"readfile {q(desired.sysctl_file)}")
    for directory in desired.directories:
        lines.append(
            f"if [ -d {q(directory.path)} ]; then emit dir {q(directory.path)} ok \"$(stat -c '%u %g %a' {q(directory.path)} | base64 -w0)\"; "
            f"elif [ -e {q(directory.path)} ]; then emit dir {q(directory.path)} notdir ''; else emit dir {q(directory.path)} absent ''; fi"
        )
    for server_file in desired.server_files:
        lines.append(f"readfile {q(server_file.path)}")
    # Backups beside every file the tool may write, and the newest one's content (for `restore`).
    managed = " ".join(q(p) for p in managed_paths(desired))
    lines.append(
        f'for p in {managed} /etc/sysctl.d/*.conf; do '
        'b=$(ls -1d -- "$p".*.bak 2>/dev/null | sort); [ -n "$b" ] || continue; '
        'emit backups "$p" ok "$(printf %s "$b" | base64 -w0)"; readfile "$(printf %s "$b" | tail -n 1)"; done'
    )
    lines.append("emit end end ok ''")
    return "\n".join(lines) + "\n"


def managed_paths(desired: DesiredState) -> tuple[str, ...]:
    """Every file `run` may write (and `restore` may put back)."""
    return (DAEMON_JSON, SYSCONFIG_DOCKER, DEFAULT_DOCKER, desired.sysctl_file, SYSCTL_CONF) + tuple(f.path for f in desired.server_files)


class FactsParseError(ValueError):
    pass


def parse_facts(output: str) -> NodeFacts:
    """NodeFacts from the script's output; FactsParseError if it is cut short or garbled."""
    values: dict[tuple[str, str], tuple[str, bytes]] = {}
    files: dict[str, FileFact] = {}
    sysctl_runtime: dict[str, int | None] = {}
    dockerd_pid = None
    dockerd_argv: tuple[str, ...] = ()
    backups: dict[str, tuple[str, ...]] = {}
    directories: dict[str, DirFact] = {}
    dockerd_age = None
    file_ages: dict[str, float | None] = {}
    complete = False
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue  # noise from a login shell's rc files
        kind, name, state, encoded = parts
        try:
            data = base64.b64decode(encoded, validate=True)
        except ValueError as err:
            raise FactsParseError(f"bad data for {kind} {name}") from err
        if kind == "file":
            if state not in FILE_STATES:
                raise FactsParseError(f"unknown file state {state!r} for {name}")
            files[name] = FileFact(name, state, data if state == "file" else None)
        elif kind == "sysctl":
            sysctl_runtime[name] = _int_or_none(data.decode(errors="replace")) if state == "ok" else None
        elif kind == "proc" and name == "dockerd-age":
            dockerd_age = _float_or_none(data.decode(errors="replace"))
        elif kind == "age":
            file_ages[name] = _float_or_none(data.decode(errors="replace"))
        elif kind == "proc" and name == "dockerd" and dockerd_pid is None:
            dockerd_pid = int(state)
            dockerd_argv = tuple(arg for arg in data.decode(errors="replace").split("\n") if arg)
        elif kind == "dir":
            directories[name] = _dir_fact(name, state, data.decode(errors="replace"))
        elif kind == "backups":
            backups[name] = tuple(line for line in data.decode(errors="replace").splitlines() if line)
        elif kind == "end":
            complete = True
        else:
            values[(kind, name)] = (state, data)
    if not complete:
        raise FactsParseError("the facts output ended early")
    user = values.get(("id", "user"), ("", b""))[1].decode(errors="replace").strip()
    init_system = values.get(("init", "system"), ("", b"unknown"))[1].decode(errors="replace")
    sysctl_files = tuple(path for path, fact in files.items() if fact.exists and _is_sysctl_config(path) and path.endswith(".conf"))
    return NodeFacts(
        user=user,
        init_system=init_system,
        docker_installed=("docker", "version") in values and values[("docker", "version")][0] == "ok",
        docker_version=_docker_version(values.get(("docker", "version"), ("absent", b""))),
        dockerd_pid=dockerd_pid,
        dockerd_argv=dockerd_argv,
        files=files,
        sysctl_runtime=sysctl_runtime,
        sysctl_files=sysctl_files,
        docker_unit=values[("unit", "docker.service")][1].decode(errors="replace") if ("unit", "docker.service") in values else None,
        backups=backups,
        directories=directories,
        dockerd_age=dockerd_age,
        file_ages={path: value for path, value in file_ages.items() if value is not None},
    )


def _dir_fact(path: str, state: str, stat: str) -> DirFact:
    parts = stat.split()
    if state != "ok" or len(parts) != 3:
        return DirFact(path, state if state != "ok" else "absent")
    return DirFact(path, "ok", int(parts[0]), int(parts[1]), int(parts[2], 8))


def _docker_version(record: tuple[str, bytes]) -> str | None:
    state, data = record
    match = re.search(r"version (\d+\.\d+(?:\.\d+)?)", data.decode(errors="replace"))
    return match.group(1) if state == "ok" and match else None


def _is_sysctl_config(path: str) -> bool:
    return path == SYSCTL_CONF or any(path.startswith(d + "/") for d in SYSCTL_DIRS)


def _float_or_none(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def _int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
