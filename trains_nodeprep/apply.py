"""Carry out a Plan on a node in one remote command: atomic writes, sysctl, restart, wait, roll back.

The script is rendered by a pure function. Each file is replaced only if it still has the
content the facts saw (else nothing is written), through a temp file in the same
directory with the old file's mode and owner, after a timestamped backup beside it.
Docker restarts only after every write succeeded. If docker does not answer afterwards,
every file is put back byte for byte and docker is restarted with the old config.
"""

from __future__ import annotations

import base64
import shlex
from dataclasses import dataclass

from .errors import ApplyError
from .plan import Plan

LOCK_FILE = "/run/lock/trains-nodeprep.lock"
LOCK_WAIT_SECONDS = 60

_PRELUDE = r"""
exec </dev/null
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
umask 022
# say KIND SUBJECT STATUS MESSAGE: one record per step, the message base64-encoded.
say() { printf 'step\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$(printf %s "$4" | base64 -w0)"; }
WRITTEN=""
restore_files() {
  for entry in $WRITTEN; do
    path=${entry%%|*}; backup=${entry#*|}
    if [ "$backup" = - ]; then rm -f "$path"
    else cp -p "$backup" "$path.tnp-restore" && mv -f "$path.tnp-restore" "$path" && rm -f "$backup"; fi
    say restore "$path" ok ""
  done
  WRITTEN=""
}
fail() { say error "$1" fail "$2"; restore_files; exit 1; }
put() {
  path=$1; want_sha=$2
  [ -L "$path" ] && path=$(readlink -f "$path")
  if [ -e "$path" ]; then have_sha=$(sha256sum < "$path" | cut -d' ' -f1); else have_sha=-; fi
  [ "$have_sha" = "$want_sha" ] || fail "$1" "changed on the node since its facts were read; run again"
  dir=$(dirname "$path")
  mkdir -p "$dir" || fail "$1" "cannot create directory $dir"
  tmp=$(mktemp "$dir/.$(basename "$path").tnp.XXXXXX") || fail "$1" "cannot create a temp file in $dir (read-only or full?)"
  if ! printf %s "$3" | base64 -d > "$tmp"; then rm -f "$tmp"; fail "$1" "cannot write $tmp"; fi
  if [ -e "$path" ]; then
    chmod --reference="$path" "$tmp" && chown --reference="$path" "$tmp" || { rm -f "$tmp"; fail "$1" "cannot copy mode and owner of $path"; }
    backup="$path.$STAMP.bak"; n=1
    while [ -e "$backup" ]; do backup="$path.$STAMP.$n.bak"; n=$((n+1)); done
    cp -p "$path" "$backup" || { rm -f "$tmp"; fail "$1" "cannot back up $path to $backup"; }
  else
    chmod 0644 "$tmp"; backup=-
  fi
  sync "$tmp" 2>/dev/null
  mv -f "$tmp" "$path" || { rm -f "$tmp"; [ "$backup" = - ] || rm -f "$backup"; fail "$1" "cannot replace $path"; }
  sync "$dir" 2>/dev/null
  WRITTEN="$WRITTEN $path|$backup"
  say write "$1" ok "$backup"
}
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
restart_docker() {
  if [ "$INIT" = systemd ]; then systemctl reset-failed docker docker.socket >/dev/null 2>&1; systemctl restart docker
  elif [ -n "$1" ]; then service docker restart
  else service docker start; fi
}
"""


@dataclass(frozen=True)
class Step:
    kind: str  # write | restore | sysctl | restart | rollback | lock | error | done
    subject: str  # the file, key or service
    status: str  # ok | fail
    message: str

@dataclass(frozen=True)
class ApplyResult:
    exit_status: int
    steps: tuple[Step, ...]

    @property
    def ok(self) -> bool:
        return self.exit_status == 0 and not any(s.status == "fail" for s in self.steps)

    @property
    def backups(self) -> tuple[str, ...]:
        return tuple(s.message for s in self.steps if s.kind == "write" and s.message != "-")

    @property
    def restarted_docker(self) -> bool:
        return any(s.kind == "restart" and s.status == "ok" for s in self.steps)

    @property
    def rolled_back(self) -> bool:
        return any(s.kind == "restore" for s in self.steps)

    @property
    def failure(self) -> str:
        failed = [s for s in self.steps if s.status == "fail"]
        return "; ".join(f"{s.subject}: {s.message}" for s in failed) or f"the apply script exited with status {self.exit_status}"


def render_apply_script(plan: Plan, *, init_system: str, stamp: str, restart_timeout: int) -> str:
    """One shell script that applies `plan` and reports each step on stdout."""
    q = shlex.quote
    lines = [_PRELUDE.strip(), f"STAMP={q(stamp)}", f"INIT={q(init_system)}"]
    lines.append(f"mkdir -p {q(LOCK_FILE.rsplit('/', 1)[0])} && exec 9>{q(LOCK_FILE)}")
    lines.append(
        f"flock -w {LOCK_WAIT_SECONDS} 9 || {{ say lock {q(LOCK_FILE)} fail "
        f"{q(f'another trains-nodeprep run holds {LOCK_FILE} on this node; wait for it to finish and run again')}; exit 1; }}"
    )
    for change in plan.file_changes:
        encoded = base64.b64encode(change.new).decode()
        lines.append(f"put {q(change.path)} {q(change.old.sha256)} {q(encoded)}")
    for write in plan.sysctl_writes:
        assignment = f"{write.key}={write.new}"
        lines.append(
            f"if out=$(sysctl -w {q(assignment)} 2>&1); then say sysctl {q(write.key)} ok \"$out\"; "
            f"else fail {q(write.key)} \"sysctl -w {assignment} failed: $out\"; fi"
        )
    if plan.restart_docker:
        if init_system not in ("systemd", "sysvinit"):
            lines.append("fail docker 'no systemctl or service command on this node: restart docker by hand'")
        old = "$(dockerd_pid)"
        lines.append(f"old_pid={old}")
        lines.append('restart_docker "$old_pid" >/dev/null 2>&1')
        lines.append(f"if wait_docker \"${{old_pid:-none}}\" {int(restart_timeout)}; then say restart docker ok \"$(dockerd_pid)\"; else")
        lines.append(f"  log=$(docker_log); say restart docker fail \"docker did not answer within {int(restart_timeout)} s after the restart: $log\"")
        lines.append("  failed_pid=$(dockerd_pid); restore_files; restart_docker \"$failed_pid\" >/dev/null 2>&1")
        lines.append(
            f"  if wait_docker \"${{failed_pid:-none}}\" {int(restart_timeout)}; then say rollback docker ok 'files restored, docker restarted with the previous config'; "
            "else say rollback docker fail 'files restored, but docker is still not answering: check it on the node now'; fi"
        )
        lines.append("  exit 1")
        lines.append("fi")
    lines.append("say done - ok ''")
    return "\n".join(lines) + "\n"


def parse_apply_output(exit_status: int, output: str) -> ApplyResult:
    steps = []
    for line in output.splitlines():
        parts = line.split("\t")
        if len(parts) != 5 or parts[0] != "step":
            continue  # noise from a login shell's rc files
        try:
            message = base64.b64decode(parts[4]).decode("utf-8", errors="replace").strip()
        except ValueError:
            message = "(unreadable message)"
        steps.append(Step(parts[1], parts[2], parts[3], message))
    return ApplyResult(exit_status, tuple(steps))


def apply_plan(node, plan: Plan, *, init_system: str, stamp: str, restart_timeout: int) -> ApplyResult:
    script = render_apply_script(plan, init_system=init_system, stamp=stamp, restart_timeout=restart_timeout)
    result = node.run_as_root(script, timeout=LOCK_WAIT_SECONDS + 2 * restart_timeout + 60)
    applied = parse_apply_output(result.exit_status, result.stdout)
    if not any(s.kind == "done" for s in applied.steps) and applied.ok:
        raise ApplyError(f"{node.label}: the apply script stopped early (exit {result.exit_status}): {result.stderr.strip()[-300:]}")
    return applied
