"""Facts: one read-only shell script run as root on the node, and pure parsers of its output.

The script prints one record per line: KIND <tab> NAME <tab> STATE <tab> DATA, where DATA is
base64, or "=" and a short value as it is (no tabs or newlines). A file is `absent`, `file`
(possibly empty), `directory` or `unreadable`: different answers that need different handling.
After the records comes one tar archive, raw, to the end of the output: the contents and mtimes
of all regular files read, the server's directories, and the node's clock. Any bytes survive the
trip, and the node starts one process for them all.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
import shlex
import tarfile
from dataclasses import dataclass, field

from .containerd_config import UNIT as CONTAINERD_UNIT
from .containerd_config import parse_show, show_properties
from .model import (
    DAEMON_JSON,
    DEFAULT_DOCKER,
    LOCK_FILE,
    LOCK_WAIT_SECONDS,
    SYSCONFIG_DOCKER,
    DesiredState,
)
from .runtime import CRI_SOCKETS, KUBELET_CONFIG, KUBELET_FLAG_FILES
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
    dockerd_pid: int | None
    dockerd_argv: tuple[str, ...]
    files: dict[str, FileFact]  # every file read, by path
    sysctl_runtime: dict[str, int | None]  # key -> current value (None: no such key)
    sysctl_files: tuple[str, ...] = field(default=())  # paths of the sysctl config files found
    docker_unit: str | None = None  # `systemctl cat docker.service` on systemd nodes
    backups: dict[str, tuple[str, ...]] = field(
        default_factory=dict
    )  # file -> its backups, oldest first
    directories: dict[str, DirFact] = field(default_factory=dict)
    dockerd_age: float | None = None  # seconds since dockerd started
    file_ages: dict[str, float] = field(
        default_factory=dict
    )  # seconds since each file read last changed (daemon.json, the drop-in: read only at start)
    containerd_installed: bool = False
    kubelet_argv: tuple[str, ...] = ()
    containerd_processes: tuple[
        tuple[int, tuple[str, ...]], ...
    ] = ()  # (pid, argv) of every containerd (docker may run its own)
    process_limits: dict[int, str] = field(
        default_factory=dict
    )  # pid -> /proc/PID/limits (containerd, nodes without systemd)
    sockets: tuple[str, ...] = ()  # the CRI sockets present
    containerd_unit: dict[str, str] | None = (
        None  # `systemctl show containerd.service` (systemd nodes)
    )
    containerd_age: float | None = None  # seconds since containerd.service's main process started
    unreadable_names: tuple[
        str, ...
    ] = ()  # files the facts had to read whose names hold a tab or newline

    @property
    def docker_running(self) -> bool:
        return self.dockerd_pid is not None

    def file(self, path: str) -> FileFact:
        return self.files.get(path, FileFact(path, "absent"))


_SHELL_FUNCTIONS = r"""
exec </dev/null
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
NL='
'
OUT=''  # the records, printed in one write at the end: each write would be one more SSH packet
emit() { OUT="$OUT$1$T$2$T$3$T$4$NL"; }
raw() { OUT="$OUT$1$T$2$T$3$T=$4$NL"; }  # a value without tabs or newlines, as it is
FILES=""  # regular files to send, one per line: all of them go in one tar at the end
readfile() {
  case "$1" in *"$T"*|*"$NL"*) emit oddname - ok "$(printf %s "$1" | base64 -w0)"; return 0 ;; esac  # records and FILES split there
  case "$NL$FILES" in *"$NL$1$NL"*) return 0 ;; esac
  if [ -d "$1" ]; then emit file "$1" directory ""
  elif [ -f "$1" ]; then raw want "$1" ok ''; FILES="$FILES$1$NL"
  elif [ -e "$1" ]; then emit file "$1" unreadable ""
  else emit file "$1" absent ""; fi
}
started() {  # NAME PID: when the process started, in clock ticks since boot, beside the uptime now
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ ticks _ < "/proc/$2/stat" && read -r up _ < /proc/uptime \
    && raw clock "$1-started" ok "$ticks $up"
}
"""
# The archive that ends the output: -h reads through symlinks (as stat -L and a hostPath do);
# --no-recursion: a directory is one entry, not its tree; pax headers carry mtimes to the nanosecond
# (atime and ctime left out). tar's 10 KiB records, zero-padded, keep it to one SSH packet per
# 10 KiB (512-byte records made ~10 packets, each costing the client ~0.1 ms). A path tar cannot
# read is simply not in it.
TAR_ARGV = (
    "tar",
    "--format=posix",
    "--pax-option=delete=atime,delete=ctime",
    "-chf",
    "-",
    "--no-recursion",
    "--",
)
ARCHIVE_MARKER = b"archive\tall\tok\t=\n"
NOW_ENTRY = "/proc/self"
# Forks are what this script costs the node (50 nodes on 2 cores feel each one): shell
# builtins (read, printf, globs) where they do; every file's content in one tar.


def render_facts_script(desired: DesiredState) -> str:
    """The read-only script; every path and key in it is quoted once here."""
    q = shlex.quote
    lines = ["T='\t'", _SHELL_FUNCTIONS.strip()]
    # A shared hold on the run lock: facts never see a node halfway through another run's apply.
    lines.append(
        f"[ -d {q(LOCK_FILE.rsplit('/', 1)[0])} ] || mkdir -p {q(LOCK_FILE.rsplit('/', 1)[0])}; exec 9>>{q(LOCK_FILE)} && flock -s -w {LOCK_WAIT_SECONDS} 9"
    )
    lines.append('raw id user ok "${USER:-$(id -un)}"')
    lines.append(
        "if [ -d /run/systemd/system ]; then raw init system ok systemd; "
        "elif command -v service >/dev/null 2>&1 || [ -x /usr/sbin/service ]; then raw init system ok sysvinit; "
        "else raw init system ok unknown; fi"
    )
    lines.append("if command -v dockerd >/dev/null 2>&1; then raw docker installed ok yes; fi")
    # Where a systemd unit (and its drop-ins) could pass flags to dockerd.
    lines.append(
        "[ -d /run/systemd/system ] && u=$(systemctl cat docker.service 2>/dev/null) && "
        'emit unit docker.service ok "$(printf %s "$u" | base64 -w0)"'
    )
    lines.append(
        "if command -v containerd >/dev/null 2>&1; then raw containerd installed ok yes; fi"
    )
    # One grep finds the running dockerd, kubelet and containerd (a process's name is its comm)
    # and reads the kernel's values (procfs answers whole reads only; the shell reads byte by byte).
    # A kernel value is a number, possibly negative; a process whose name starts with one is skipped.
    proc_paths = " ".join(q(setting.proc_path) for setting in desired.sysctls)
    lines.append(
        f"found=$(grep -sHxE 'dockerd|kubelet|containerd|-?[0-9].*' {proc_paths} /proc/[0-9]*/comm); "
        "set -f; IFS=$NL; set -- $found; unset IFS; set +f"
    )
    # Each daemon: argv (where flags really came from) and, for the first of each, when it
    # started: its start in clock ticks since boot against the uptime.
    sysctl_arms = " ".join(
        f'{q(s.proc_path)}) raw sysctl {q(s.key)} ok "$value"; got="$got"{q(s.key)}" " ;;'
        for s in desired.sysctls
    )
    lines.append(
        "got=' '; seen=' '; for line do path=${line%%:*}; value=${line#*:}; case \"$path\" in "
        f"{sysctl_arms} "
        "/proc/*/comm) case $value in dockerd|kubelet|containerd) ;; *) continue ;; esac; comm=$value; p=${path#/proc/}; p=${p%/comm}; "
        # argv raw, NUL-separated args joined by \\037 (a tab or newline inside an arg becomes one too)
        'printf "proc\\t%s\\t%s\\t=" "$comm" "$p"; tr "\\000\\t\\n" "\\037\\037\\037" < /proc/$p/cmdline; echo; '
        # without systemd, nothing but the process itself tells containerd's limits
        'if [ "$comm" = containerd ] && [ ! -d /run/systemd/system ]; then printf "limits\\t%s\\tok\\t" "$p"; base64 -w0 < /proc/$p/limits; echo; fi; '
        'case "$seen" in *" $comm "*) continue ;; esac; seen="$seen$comm "; '
        'started "$comm" "$p"; '
        '[ "$comm" = kubelet ] && kubelet_config=$(tr "\\000" "\\n" < /proc/$p/cmdline | sed -n "s/^--config=//p;/^--config$/{n;p;}"); '
        ";; esac; done"
    )
    for setting in desired.sysctls:
        lines.append(
            f'case "$got" in *" "{q(setting.key)}" "*) ;; *) raw sysctl {q(setting.key)} absent \'\' ;; esac'
        )
    # Which runtime the kubelet hands pods to: its flag files, its config, the CRI sockets.
    for path in KUBELET_FLAG_FILES + (KUBELET_CONFIG,):
        lines.append(f"[ -e {q(path)} ] && readfile {q(path)}")
    lines.append(
        f'[ -n "${{kubelet_config:-}}" ] && [ "$kubelet_config" != {q(KUBELET_CONFIG)} ] && readfile "$kubelet_config"'
    )
    lines.append(
        f'for s in {" ".join(q(s) for s in CRI_SOCKETS)}; do [ -S "$s" ] && raw socket "$s" ok \'\'; done'
    )
    # containerd's limits as systemd loaded them (unit + drop-ins), and when its main process started
    properties = " ".join(f"-p {name}" for name in show_properties(desired.ulimits))
    lines.append(
        f"if [ -d /run/systemd/system ] && s=$(systemctl show {CONTAINERD_UNIT} {properties} 2>/dev/null); then "
        f'emit unit-show {CONTAINERD_UNIT} ok "$(printf %s "$s" | base64 -w0)"; '
        'p=$(printf %s "$s" | sed -n "s/^MainPID=//p"); '
        '[ "${p:-0}" != 0 ] && started containerd.service "$p"; fi'
    )
    lines.append(f"readfile {q(desired.containerd_dropin)}")
    for path in (DAEMON_JSON, SYSCONFIG_DOCKER, DEFAULT_DOCKER):
        lines.append(f"readfile {q(path)}")
    directories = " ".join(q(d) for d in SYSCTL_DIRS)
    # /lib/sysctl.d is /usr/lib/sysctl.d on merged-/usr systems: read it once.
    lines.append(
        f"for d in {directories}; do "
        '[ "$d" = /lib/sysctl.d ] && [ /lib/sysctl.d -ef /usr/lib/sysctl.d ] && continue; '
        'for f in "$d"/*.conf; do [ -e "$f" ] && readfile "$f"; done; done'
    )
    lines.append(f"[ -e {q(SYSCTL_CONF)} ] && readfile {q(SYSCTL_CONF)}")
    lines.append(f"readfile {q(desired.sysctl_file)}")
    for server_file in desired.server_files:
        lines.append(f"readfile {q(server_file.path)}")
    # Backups beside every file the tool may write (shell globs come sorted), and the newest one's content (for `restore`).
    managed = " ".join(q(p) for p in managed_paths(desired))
    lines.append(
        f'for p in {managed} /etc/sysctl.d/*.conf; do set -- "$p".*.bak; [ -e "$1" ] || continue; '
        'for b in "$@"; do raw backup "$p" ok "$b"; done; eval "readfile "\\${$#}""; done'
    )
    # The server's directories go in the archive as entries (owner, mode; followed like a hostPath is).
    for directory in desired.directories:
        lines.append(f'FILES="$FILES"{q(directory.path)}"$NL"')
    lines.append("raw end end ok ''")
    # Last, the archive, raw (an SSH channel carries any bytes). Its first entry is the node's clock,
    # to age the files a daemon reads only at start: procfs makes tar's own /proc/PID entry, with the
    # time, when tar first looks at it. So tar must be a new process, never this shell `exec`ed (not
    # the last command: some shells exec that): this shell's own entry may have been made long ago, by
    # anything that scanned /proc while we waited for the lock. tar's complaints about paths it could
    # not read are not the script's failure: those paths are just not in the archive.
    lines.append("printf '%sarchive\\tall\\tok\\t=\\n' \"$OUT\"")
    # The paths as arguments, split at newlines only (no globbing): no process to feed them on stdin.
    lines.append(f"set -f; IFS=$NL; {shlex.join(TAR_ARGV)} {NOW_ENTRY} $FILES 2>/dev/null")
    lines.append("exit 0")
    return "\n".join(lines) + "\n"


def managed_paths(desired: DesiredState) -> tuple[str, ...]:
    """Every file `run` may write (and `restore` may put back)."""
    return (
        DAEMON_JSON,
        SYSCONFIG_DOCKER,
        DEFAULT_DOCKER,
        desired.containerd_dropin,
        desired.sysctl_file,
        SYSCTL_CONF,
    ) + tuple(f.path for f in desired.server_files)


class FactsParseError(ValueError):
    pass


def parse_facts(output: bytes) -> NodeFacts:
    """NodeFacts from the script's output; FactsParseError if it is cut short or garbled."""
    records, archive = _split_output(output)
    contents, mtimes, directories, now = _read_archive(archive)
    values: dict[tuple[str, str], tuple[str, bytes]] = {}
    files: dict[str, FileFact] = {}
    sysctl_runtime: dict[str, int | None] = {}
    backups: dict[str, list[str]] = {}
    clocks: dict[str, list[float]] = {}
    dockerd_pid = None
    dockerd_argv: tuple[str, ...] = ()
    kubelet_argv: tuple[str, ...] = ()
    containerd_processes: list[tuple[int, tuple[str, ...]]] = []
    process_limits: dict[int, str] = {}
    sockets: list[str] = []
    odd_names: list[str] = []
    complete = False
    for line in records.decode(errors="replace").split("\n"):  # only newline ends a record
        parts = line.split("\t")
        if len(parts) != 4:
            continue  # noise from a login shell's rc files
        kind, name, state, encoded = parts
        if encoded.startswith("="):
            data = encoded[1:].encode()
        else:
            try:
                data = base64.b64decode(encoded, validate=True)
            except ValueError as err:
                raise FactsParseError(f"bad data for {kind} {name}") from err
        text = data.decode(errors="replace")
        if kind == "file":
            if state not in FILE_STATES:
                raise FactsParseError(f"unknown file state {state!r} for {name}")
            files[name] = FileFact(name, state, data if state == "file" else None)
        elif kind == "sysctl":
            sysctl_runtime[name] = _int_or_none(text) if state == "ok" else None
        elif kind == "proc":
            argv = tuple(arg for arg in re.split("[\x1f\n]", text) if arg)
            if name == "dockerd" and dockerd_pid is None:
                dockerd_pid, dockerd_argv = int(state), argv
            elif name == "kubelet" and not kubelet_argv:
                kubelet_argv = argv
            elif name == "containerd":
                containerd_processes.append((int(state), argv))
        elif kind == "limits":
            process_limits[int(name)] = text
        elif kind == "socket":
            sockets.append(name)
        elif kind == "clock":
            clocks[name] = [float(x) for x in text.split() if _float_or_none(x) is not None]
        elif kind == "backup":
            backups.setdefault(name, []).append(text)
        elif kind == "oddname":
            odd_names.append(text)
        elif kind == "want":
            files[name] = FileFact(name, "unreadable")  # until the tar says otherwise
        elif kind == "end":
            complete = True
        else:
            values[(kind, name)] = (state, data)
    if not complete:
        raise FactsParseError("the facts output ended early")
    for path, fact in files.items():
        if fact.state == "unreadable" and path in contents:
            files[path] = FileFact(path, "file", contents[path])
    sysctl_files = tuple(
        path
        for path, fact in files.items()
        if fact.exists and _is_sysctl_config(path) and path.endswith(".conf")
    )
    unit_show = values.get(("unit-show", CONTAINERD_UNIT))
    file_ages = {path: now - mtime for path, mtime in mtimes.items()} if now is not None else {}
    return NodeFacts(
        user=values.get(("id", "user"), ("", b""))[1].decode(errors="replace").strip(),
        init_system=values.get(("init", "system"), ("", b"unknown"))[1].decode(errors="replace"),
        docker_installed=("docker", "installed") in values or dockerd_pid is not None,
        dockerd_pid=dockerd_pid,
        dockerd_argv=dockerd_argv,
        files=files,
        sysctl_runtime=sysctl_runtime,
        sysctl_files=sysctl_files,
        docker_unit=values[("unit", "docker.service")][1].decode(errors="replace")
        if ("unit", "docker.service") in values
        else None,
        backups={path: tuple(names) for path, names in backups.items()},
        directories=directories,
        dockerd_age=_process_age(clocks.get("dockerd-started")),
        file_ages=file_ages,
        containerd_installed=("containerd", "installed") in values or bool(containerd_processes),
        kubelet_argv=kubelet_argv,
        containerd_processes=tuple(containerd_processes),
        process_limits=process_limits,
        sockets=tuple(sockets),
        containerd_unit=parse_show(unit_show[1].decode(errors="replace")) if unit_show else None,
        containerd_age=_process_age(clocks.get("containerd.service-started")),
        unreadable_names=tuple(odd_names),
    )


def _process_age(clock: list[float] | None) -> float | None:
    """Seconds since a process started, from its start in ticks since boot and the uptime."""
    if not clock or len(clock) != 2:
        return None
    ticks, uptime = clock
    return uptime - ticks / CLOCK_TICKS_PER_SECOND


# Linux reports process start times in USER_HZ ticks, fixed at 100 by the kernel ABI.
CLOCK_TICKS_PER_SECOND = 100


def _split_output(output: bytes) -> tuple[bytes, bytes]:
    """The records, and the archive after its marker line (FactsParseError without one)."""
    if output.startswith(ARCHIVE_MARKER):
        at = 0
    else:
        found = output.find(b"\n" + ARCHIVE_MARKER)
        if found < 0:
            raise FactsParseError("the facts output ended early")
        at = found + 1
    return output[:at], output[at + len(ARCHIVE_MARKER) :]


def _read_archive(
    data: bytes,
) -> tuple[dict[str, bytes], dict[str, float], dict[str, DirFact], float | None]:
    """From the facts' archive (read in memory, never extracted), by absolute path: the regular
    files' contents and mtimes, and what each other entry is; and the node's clock (NOW_ENTRY)."""
    contents: dict[str, bytes] = {}
    mtimes: dict[str, float] = {}
    directories: dict[str, DirFact] = {}
    now = None
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:") as archive:
            for member in archive:
                path = "/" + member.name.lstrip("/")
                if path == NOW_ENTRY:
                    now = float(member.mtime)
                elif member.isdir():
                    directories[path] = DirFact(
                        path, "ok", member.uid, member.gid, member.mode & 0o7777
                    )
                else:
                    directories[path] = DirFact(path, "notdir")
                    # islnk: a hard link, a second path to a file already in the archive
                    handle = (
                        archive.extractfile(member) if member.isfile() or member.islnk() else None
                    )
                    if handle is not None:
                        contents[path] = handle.read()
                        mtimes[path] = float(member.mtime)
            end = archive.offset  # where the members ended
    except (tarfile.TarError, KeyError, ValueError) as err:
        raise FactsParseError(f"the files' archive is damaged: {err}") from err
    if data[end : end + 1024] != bytes(1024):  # tar ends an archive with two zero blocks
        raise FactsParseError("the files' archive is damaged: it ends early")
    return contents, mtimes, directories, now


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
