"""Carry out a Plan on a node in one remote command: atomic writes, sysctl, restarts, wait, roll back.

The script is rendered by a pure function. Each file is replaced only if it still has the
content the facts saw (else nothing is written and the run plans again), through a temp
file in the same directory with the old file's mode, owner and SELinux context, after a
timestamped backup beside it. containerd (daemon-reload first) and then docker restart only
after every write succeeded. If one does not answer afterwards, every file is put back byte
for byte and the services this run restarted are restarted with the old config. The script
ignores SIGHUP: a dropped connection cannot stop it halfway.
"""

from __future__ import annotations

import base64
import dataclasses
import shlex
from dataclasses import dataclass

from .errors import ApplyError
from .facts import FactsParseError, NodeFacts, parse_facts
from .model import DAEMON_JSON, LOCK_FILE, LOCK_WAIT_SECONDS
from .plan import Plan

EXIT_STALE = 75  # a file changed since the facts were read: nothing was written, plan again

_PRELUDE = r"""
exec 7<&0 </dev/null  # fd 7: secrets sent on stdin (after the sudo password line, if any)
trap '' HUP PIPE
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
umask 022
NL='
'
# say KIND SUBJECT STATUS MESSAGE: one record per step; the message as it is after "=" when it has
# no tab or newline, else base64-encoded.
say() {
  case "$4" in
    *"$T"*|*"$NL"*) printf 'step\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf %s "$4" | base64 -w0)" ;;
    *) printf 'step\t%s\t%s\t%s\t=%s\n' "$1" "$2" "$3" "$4" ;;
  esac
}
# Each process started costs the node about a millisecond (50 nodes share their CPUs in a run):
# parameter expansions and builtins below wherever they do the same job as a command.
WRITTEN=""  # the backups made so far, one per line; each names its file: PATH.STAMP.bak or PATH.STAMP.absent.bak
restore_files() {
  set -f; IFS=$NL  # a line is one backup, whatever spaces or glob characters its path holds
  for backup in $WRITTEN; do
    case "$backup" in
      *.absent.bak) path=${backup%".$STAMP.absent.bak"}; rm -f "$path" "$backup" ;;
      *) path=${backup%".$STAMP.bak"}; cp -p "$backup" "$path.tnp-restore" && mv -f "$path.tnp-restore" "$path" && rm -f "$backup" ;;
    esac
    say restore "$path" ok ""
  done
  unset IFS; set +f
  WRITTEN=""
}
fail() { say error "$1" fail "$2"; restore_files; exit 1; }
resolve() { if [ -L "$1" ]; then R=$(readlink -f "$1"); else R=$1; fi; }  # sets R
checked() {  # path expected-sha256: the file still has the content the facts saw
  if [ -e "$1" ]; then have=$(sha256sum < "$1"); have=${have%% *}; else have=-; fi
  [ "$have" = "$2" ] && return 0
  say stale "$1" fail "changed on the node since its facts were read"; restore_files; exit 75
}
backup_of() {  # path: sets B to a copy beside it, or to an empty marker that says it did not exist
  if [ -e "$1" ]; then B="$1.$STAMP.bak"; cp -p "$1" "$B" || return 1
  else B="$1.$STAMP.absent.bak"; true > "$B" || return 1; fi
  # keep the newest $KEEP backups of this file: their names sort by stamp, and globs come sorted
  set -- "$1".*.bak
  while [ "$#" -gt "$KEEP" ]; do rm -f -- "$1"; shift; done
}
put() {  # path expected-sha256 content encoding(esc: for printf %b | b64) mode-if-new
  resolve "$1"; path=$R; checked "$path" "$2"
  dir=${path%/*}; [ -n "$dir" ] || dir=/
  [ -d "$dir" ] || mkdir -p "$dir" || fail "$1" "cannot create directory $dir"
  tmp="$dir/.${path##*/}.tnp.$STAMP.$$"
  set -C  # the temp file is new, never an existing file or link
  true > "$tmp" 2>/dev/null; created=$?; set +C
  [ "$created" = 0 ] || fail "$1" "cannot create a temp file in $dir (read-only or full?)"
  if [ "$4" = b64 ]; then printf %s "$3" | base64 -d > "$tmp"; else printf %b "$3" > "$tmp"; fi \
    || { rm -f "$tmp"; fail "$1" "cannot write $tmp"; }
  if [ -e "$path" ]; then
    chmod --reference="$path" "$tmp" && chown --reference="$path" "$tmp" || { rm -f "$tmp"; fail "$1" "cannot copy mode and owner of $path"; }
    if [ -e /sys/fs/selinux/enforce ] && command -v chcon >/dev/null 2>&1; then chcon --reference="$path" "$tmp" 2>/dev/null; fi
  elif [ "$5" != 0644 ]; then  # umask 022 already made it 0644
    chmod "$5" "$tmp"
  fi
  backup_of "$path" || { rm -f "$tmp"; fail "$1" "cannot write a backup beside $path"; }
  backup=$B
  sync "$tmp" 2>/dev/null
  mv -f "$tmp" "$path" || { rm -f "$tmp" "$backup"; fail "$1" "cannot replace $path"; }
  sync "$dir" 2>/dev/null
  WRITTEN="$WRITTEN$backup$NL"
  say write "$1" ok "$backup"
}
remove() {  # path expected-sha256
  resolve "$1"; path=$R; checked "$path" "$2"
  [ -e "$path" ] || return 0
  backup_of "$path" || fail "$1" "cannot write a backup beside $path"
  backup=$B
  rm -f "$path" || fail "$1" "cannot remove $path"
  WRITTEN="$WRITTEN$backup$NL"
  say remove "$1" ok "$backup"
}
ensure_dir() {  # path owner group mode ("-": leave as it is)
  mkdir -p "$1" || fail "$1" "cannot create directory $1"
  [ "$2" = - ] || chown "$2:$3" "$1" || fail "$1" "cannot chown $1 to $2:$3"
  [ "$4" = - ] || chmod "$4" "$1" || fail "$1" "cannot chmod $1 to $4"
  say dir "$1" ok ""
}
open_secrets() {  # skip to the marker (a sudo password line may come first; it is never echoed)
  while IFS= read -r line <&7; do [ "$line" = __TNP_SECRETS__ ] && return 0; done
  fail secrets "the secret file contents did not arrive on stdin"
}
next_secret() { IFS= read -r line <&7; printf %s "$line"; }  # one base64 line: never in argv
dockerd_pid() { pidof dockerd 2>/dev/null | cut -d' ' -f1; }
wait_docker() {
  # A restart can "succeed" while dockerd dies a moment later: wait for a new dockerd that answers.
  tries=$(($2 * 5))
  while [ "$tries" -gt 0 ]; do
    pid=$(dockerd_pid)
    if [ -n "$pid" ] && [ "$pid" != "$1" ] && timeout 5 docker version >/dev/null 2>&1; then return 0; fi
    sleep 0.2; tries=$((tries - 1))
  done
  return 1
}
docker_log() {
  if [ "$INIT" = systemd ]; then journalctl -u docker --no-pager -n 8 -o cat 2>/dev/null
  else tail -n 8 /var/log/docker.log 2>/dev/null; fi
}
containerd_pid() { systemctl show -p MainPID --value containerd.service 2>/dev/null | grep -v '^0$'; }
wait_containerd() {
  # Type=notify: a restart returns once containerd says it is ready; still, it must answer
  # (on its default socket, when it listens there: a custom address is left to systemd's word).
  tries=$(($2 * 5))
  while [ "$tries" -gt 0 ]; do
    pid=$(containerd_pid)
    if [ -n "$pid" ] && [ "$pid" != "$1" ] && systemctl is-active --quiet containerd.service \
       && { [ ! -S /run/containerd/containerd.sock ] || ! command -v ctr >/dev/null 2>&1 || timeout 5 ctr version >/dev/null 2>&1; }; then return 0; fi
    sleep 0.2; tries=$((tries - 1))
  done
  return 1
}
restart_containerd() {
  exec 8>&- 9>&-  # in this subshell only: containerd must not inherit (and hold) the run lock
  systemctl daemon-reload && systemctl reset-failed containerd.service >/dev/null 2>&1; systemctl restart containerd.service
}
containerd_log() { journalctl -u containerd --no-pager -n 8 -o cat 2>/dev/null; }
CONTAINERD_RESTARTED=""
restart_docker() {
  exec 8>&- 9>&-  # in this subshell only: dockerd must not inherit (and hold) the run lock
  if [ "$INIT" = systemd ]; then systemctl reset-failed docker docker.socket >/dev/null 2>&1; systemctl restart docker
  elif [ -n "$1" ]; then service docker restart
  else service docker start; fi
}
"""


@dataclass(frozen=True)
class Step:
    kind: str  # write | remove | restore | sysctl | validate | restart | rollback | lock | stale | error | done
    subject: str  # the file, key or service
    status: str  # ok | fail | info
    message: str


@dataclass(frozen=True)
class ApplyResult:
    exit_status: int
    steps: tuple[Step, ...]
    after: NodeFacts | None = (
        None  # the node read again once the change was done (None: read it separately)
    )

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not any(s.status == "fail" for s in self.steps)

    @property
    def stale(self) -> bool:
        return any(s.kind == "stale" for s in self.steps)

    @property
    def backups(self) -> tuple[str, ...]:
        return tuple(s.message for s in self.steps if s.kind in ("write", "remove") and s.message)

    @property
    def restarted(self) -> tuple[str, ...]:
        """The services this apply restarted: docker, containerd."""
        return tuple(s.subject for s in self.steps if s.kind == "restart" and s.status == "ok")

    @property
    def restarted_docker(self) -> bool:
        return "docker" in self.restarted

    @property
    def rolled_back(self) -> bool:
        return any(s.kind == "restore" for s in self.steps)

    @property
    def failure(self) -> str:
        failed = [s for s in self.steps if s.status == "fail"]
        return (
            "; ".join(f"{s.subject}: {s.message}" for s in failed)
            or f"the apply script exited with status {self.exit_status}"
        )


VERIFY_MARKER = b"__TNP_VERIFY__\n"


def render_apply_script(
    plan: Plan,
    *,
    init_system: str,
    stamp: str,
    restart_timeout: int,
    keep_backups: int,
    facts_script: str | None = None,
) -> str:
    """One shell script that applies `plan` and reports each step on stdout; then, if given, runs
    the facts script to read the node again for the verification, in the same round trip."""
    q = shlex.quote
    lines = [
        "T='\t'",
        _PRELUDE.strip(),
        f"STAMP={q(stamp)}",
        f"INIT={q(init_system)}",
        f"KEEP={int(keep_backups)}",
    ]
    lines.append(f"mkdir -p {q(LOCK_FILE.rsplit('/', 1)[0])} && exec 9>{q(LOCK_FILE)}")
    lines.append(
        f"flock -w {LOCK_WAIT_SECONDS} 9 || {{ say lock {q(LOCK_FILE)} fail "
        f"{q(f'another trains-nodeprep run has held {LOCK_FILE} on this node for {LOCK_WAIT_SECONDS} s; let it finish, then run again')}; exit 1; }}"
    )
    if any(c.secret for c in plan.file_changes):
        lines.append("open_secrets")
    # Compare every file first, so a stale plan writes nothing at all.
    for change in plan.file_changes:
        lines.append(f'resolve {q(change.path)}; checked "$R" {q(change.old.sha256)}')
    for directory in plan.dir_changes:
        owner = "-" if directory.owner is None else str(directory.owner)
        group = "-" if directory.group is None else str(directory.group)
        mode = "-" if directory.mode is None else f"{directory.mode:04o}"
        lines.append(f"ensure_dir {q(directory.path)} {owner} {group} {mode}")
    for change in plan.file_changes:
        if change.new is None:
            lines.append(f"remove {q(change.path)} {q(change.old.sha256)}")
        else:
            if change.secret:
                content = '"$(next_secret)" b64'
            elif b"\0" in change.new:
                content = f"{q(base64.b64encode(change.new).decode())} b64"
            else:
                content = f"{q(printf_escaped(change.new))} esc"
            lines.append(f"put {q(change.path)} {q(change.old.sha256)} {content} {change.mode:04o}")
    for write in plan.sysctl_writes:
        assignment = f"{write.key}={write.new}"
        lines.append(
            f'if out=$(sysctl -w {q(assignment)} 2>&1); then say sysctl {q(write.key)} ok "$out"; '
            f'else fail {q(write.key)} "sysctl -w {assignment} failed: $out"; fi'
        )
    if plan.restart_containerd:
        lines += _restart_containerd_lines(init_system, restart_timeout)
    if plan.restart_docker:
        lines += _restart_lines(plan, init_system, restart_timeout)
    lines.append("say done - ok ''")
    if facts_script is not None:
        # The change is done: let go of the run lock (the facts script takes it shared, and waits
        # if another run got it first), then read everything again, as a separate command would.
        lines.append("exec 9>&-")
        lines.append(f"printf %s {shlex.quote(VERIFY_MARKER.decode())}")
        lines.append(f"(\n{facts_script})")
    return "\n".join(lines) + "\n"


def _restart_lines(plan: Plan, init_system: str, restart_timeout: int) -> list[str]:
    lines = []
    if init_system not in ("systemd", "sysvinit"):
        lines.append(
            "fail docker 'no systemctl or service command on this node: restart docker by hand'"
        )
    if any(c.path == DAEMON_JSON and c.new is not None for c in plan.file_changes):
        # `dockerd --validate` exists from Docker 23.0; older engines: the restart is the validation.
        lines += [
            "version=$(dockerd --version 2>/dev/null); major=$(printf %s \"$version\" | sed -n 's/^Docker version \\([0-9]*\\)\\..*/\\1/p')",
            'if [ "${major:-0}" -ge 23 ]; then',
            f'  if out=$(dockerd --validate --config-file {DAEMON_JSON} 2>&1); then say validate docker ok "$out"; '
            'else fail docker "dockerd --validate rejected the new daemon.json: $out"; fi',
            'else say validate docker info "${version:-dockerd} has no --validate (Docker 23+): the restart is the validation"; fi',
        ]
    timeout = int(restart_timeout)
    lines += [
        "old_pid=$(dockerd_pid)",
        '(restart_docker "$old_pid") >/dev/null 2>&1',
        f'if wait_docker "${{old_pid:-none}}" {timeout}; then say restart docker ok "$(dockerd_pid)"; else',
        f'  log=$(docker_log); say restart docker fail "docker did not answer within {timeout} s after the restart: $log"',
        '  failed_pid=$(dockerd_pid); restore_files; (restart_docker "$failed_pid") >/dev/null 2>&1',
        # the restored drop-in must reach containerd too, if this run restarted it
        '  if [ -n "$CONTAINERD_RESTARTED" ]; then c_pid=$(containerd_pid); (restart_containerd) >/dev/null 2>&1; '
        f'wait_containerd "${{c_pid:-none}}" {timeout} || say rollback containerd fail "containerd does not answer after its drop-in was restored: $(containerd_log)"; fi',
        f'  if wait_docker "${{failed_pid:-none}}" {timeout}; then say rollback docker ok "files restored, docker restarted with the previous config"; '
        "else say rollback docker fail 'files restored, but docker is still not answering: check it on the node now'; fi",
        "  exit 1",
        "fi",
    ]
    return lines


def _restart_containerd_lines(init_system: str, restart_timeout: int) -> list[str]:
    timeout = int(restart_timeout)
    lines = []
    if init_system != "systemd":
        lines.append("fail containerd 'no systemd on this node: restart containerd by hand'")
    return lines + [
        "old_cpid=$(containerd_pid)",
        "(restart_containerd) >/dev/null 2>&1",
        f'if wait_containerd "${{old_cpid:-none}}" {timeout}; then CONTAINERD_RESTARTED=1; say restart containerd ok "$(containerd_pid)"; else',
        f'  log=$(containerd_log); say restart containerd fail "containerd did not answer within {timeout} s after the restart: $log"',
        "  failed_cpid=$(containerd_pid); restore_files; (restart_containerd) >/dev/null 2>&1",
        f'  if wait_containerd "${{failed_cpid:-none}}" {timeout}; then say rollback containerd ok "files restored, containerd restarted with the previous limits"; '
        "else say rollback containerd fail 'files restored, but containerd is still not answering: check it on the node now'; fi",
        "  exit 1",
        "fi",
    ]


def printf_escaped(content: bytes) -> str:
    """`content` for the shell's printf %b: printable ASCII, tab and newline as they are (a backslash
    doubled), every other byte as \\0NNN. No process decodes it; NUL is left to base64."""
    return "".join(
        "\\\\"
        if byte == 0x5C
        else chr(byte)
        if 0x20 <= byte < 0x7F or byte in (0x09, 0x0A)
        else f"\\0{byte:03o}"
        for byte in content
    )


def secrets_payload(plan: Plan) -> bytes:
    """Secret file contents, in plan order, for the script's stdin: a marker line, then one base64 line each."""
    secrets = [c.new for c in plan.file_changes if c.secret and c.new is not None]
    if not secrets:
        return b""
    return b"__TNP_SECRETS__\n" + b"".join(base64.b64encode(content) + b"\n" for content in secrets)


def parse_apply_output(exit_status: int, output: str) -> ApplyResult:
    steps = []
    for line in output.split("\n"):  # only newline ends a record: a message as it is may hold \r
        parts = line.split("\t")
        if len(parts) != 5 or parts[0] != "step":
            continue  # noise from a login shell's rc files
        if parts[4].startswith("="):
            message = parts[4][1:].strip()
        else:
            try:
                message = base64.b64decode(parts[4]).decode("utf-8", errors="replace").strip()
            except ValueError:
                message = "(unreadable message)"
        steps.append(Step(parts[1], parts[2], parts[3], message))
    return ApplyResult(exit_status, tuple(steps))


def apply_plan(
    node,
    plan: Plan,
    *,
    init_system: str,
    stamp: str,
    restart_timeout: int,
    keep_backups: int,
    facts_script: str | None = None,
) -> ApplyResult:
    """Apply `plan` on the node; with `facts_script`, the result carries the node's facts read afterwards."""
    script = render_apply_script(
        plan,
        init_system=init_system,
        stamp=stamp,
        restart_timeout=restart_timeout,
        keep_backups=keep_backups,
        facts_script=facts_script,
    )
    timeout = 2 * LOCK_WAIT_SECONDS + 2 * restart_timeout + 60
    result = node.run_as_root(script, timeout=timeout, payload=secrets_payload(plan))
    # The steps come first; file contents in the facts after the marker are never read as steps.
    steps, marker, facts_output = result.output.partition(b"\n" + VERIFY_MARKER)
    applied = parse_apply_output(result.exit_status, steps.decode("utf-8", errors="replace"))
    if not any(s.kind == "done" for s in applied.steps) and applied.ok:
        raise ApplyError(
            f"{node.label}: the apply script stopped early (exit {result.exit_status}): {result.stderr.strip()[-300:]}"
        )
    if marker and applied.ok:
        try:
            return dataclasses.replace(applied, after=parse_facts(facts_output))
        except FactsParseError:
            pass  # the runner reads the node again with a command of its own
    return applied
