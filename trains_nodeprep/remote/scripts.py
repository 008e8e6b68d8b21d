"""The two remote scripts, rendered from real shell files: one read-only facts script, and one
apply script per plan. Python adds only the protocol constants and the calls, each argument
quoted once here; the functions live in remote/*.sh and requirements/*.sh, which shellcheck
reads (see CONTRIBUTING.md)."""

from __future__ import annotations

import base64
import functools
import shlex
from importlib import resources

from ..engine.types import FileChange, Plan
from ..model import DesiredState
from ..requirements.registry import CONCERNS, managed_files, services
from .protocol import LOCK_FILE, LOCK_WAIT_SECONDS, SECRETS_MARKER, shell_constants


@functools.cache
def shell_file(package: str, name: str) -> str:
    """A shell file shipped in the package (remote/ or requirements/)."""
    return resources.files(f"trains_nodeprep.{package}").joinpath(name).read_text("utf-8")


def _call(*argv: str) -> str:
    return shlex.join(argv)


def _on_process(hooks: dict[str, str]) -> str:
    """The dispatcher the scan calls for each daemon it finds: the modules' hooks by name."""
    arms = "".join(
        f'    {shlex.quote(name)}) {hook} "$2" "$3" ;;\n' for name, hook in hooks.items()
    )
    return (
        'on_process() {\n  case "$1" in\n' + arms + "  esac\n}" if arms else "on_process() { :; }"
    )


def render_facts_script(desired: DesiredState) -> str:
    """The read-only script: every module's facts in one scan and one archive."""
    needs = [concern.facts(desired) for concern in CONCERNS]
    processes: dict[str, str | None] = {}
    for need in needs:
        processes.update(need.processes)
    values = [value for need in needs for value in need.values]
    parts = [
        shell_constants("facts"),
        shell_file("remote", "lib.sh"),
        shell_file("remote", "facts.sh"),
        *(shell_file("requirements", need.shell) for need in needs if need.shell),
        _on_process({name: hook for name, hook in processes.items() if hook}),
        "lock_shared",
        "read_identity",
        _call("scan", "|".join(processes), *values),
        *(_call(*argv) for need in needs for argv in need.calls),
        _call("backups", *dict.fromkeys(f.pattern for f in managed_files(desired))),
        "send",
        "exit 0",
    ]
    return "\n".join(parts) + "\n"


def render_apply_script(
    plan: Plan,
    *,
    init_system: str,
    stamp: str,
    restart_timeout: int,
    keep_backups: int,
    facts_script: str | None = None,
) -> str:
    """One script that applies `plan` and reports each step; then, if given, runs the facts
    script to read the node again for the verification, in the same round trip."""
    q = shlex.quote
    specs = services()
    lock_busy = (
        f"another trains-nodeprep run has held {LOCK_FILE} on this node for "
        f"{LOCK_WAIT_SECONDS} s; let it finish, then run again"
    )
    lines = [
        shell_constants("apply"),
        shell_file("remote", "lib.sh"),
        shell_file("remote", "apply.sh"),
        *(shell_file("requirements", c.apply_shell) for c in CONCERNS if c.apply_shell),
        *(
            shell_file("requirements", name)
            for name in dict.fromkeys(f for s in plan.restarts for f in specs[s].shell)
        ),
        f"STAMP={q(stamp)}",
        f"INIT={q(init_system)}",
        f"KEEP={int(keep_backups)}",
        f"lock_exclusive || {{ say lock {q(LOCK_FILE)} fail {q(lock_busy)}; exit 1; }}",
    ]
    if any(c.secret for c in plan.file_changes):
        lines.append("open_secrets")
    # Compare every file first, so a stale plan writes nothing at all.
    lines += [f'resolve {q(c.path)}; checked "$R" {q(c.old.sha256)}' for c in plan.file_changes]
    lines += [_call(*argv) for argv in plan.preflight]  # a change the node would reject: no write
    for directory in plan.dir_changes:
        owner = "-" if directory.owner is None else str(directory.owner)
        group = "-" if directory.group is None else str(directory.group)
        mode = "-" if directory.mode is None else f"{directory.mode:04o}"
        lines.append(_call("ensure_dir", directory.path, owner, group, mode))
    lines += [_file_line(change) for change in plan.file_changes]
    lines += [_call("set_sysctl", w.key, str(w.new)) for w in plan.sysctl_writes]
    lines += dict.fromkeys(line for s in plan.left_stopped for line in specs[s].when_stopped)
    for service in plan.restarts:
        lines += specs[service].before_restart(plan, init_system)
        lines.append(_call("restart", service, str(int(restart_timeout))))
    lines.append("say 'done' - ok ''")
    if facts_script is not None:
        # The change is done: let go of the run lock (the facts script takes it shared, and waits
        # if another run got it first), then read everything again, as a separate command would.
        lines += ["unlock", 'printf "%s\\n" "$VERIFY_MARKER"', f"(\n{facts_script})"]
    return "\n".join(lines) + "\n"


def _file_line(change: FileChange) -> str:
    q = shlex.quote
    if change.new is None:
        return _call("remove", change.path, change.old.sha256)
    if change.secret:
        content = '"$(next_secret)" b64'  # the content comes on stdin, never in argv
    elif b"\0" in change.new:
        content = f"{q(base64.b64encode(change.new).decode())} b64"
    else:
        content = f"{q(printf_escaped(change.new))} esc"
    return f"put {q(change.path)} {q(change.old.sha256)} {content} {change.mode:04o}"


def printf_escaped(content: bytes) -> str:
    """`content` for the shell's printf %b: printable ASCII, tab and newline as they are (a
    backslash doubled), every other byte as \\0NNN. No process decodes it; NUL is left to
    base64."""
    return "".join(
        "\\\\"
        if byte == 0x5C
        else chr(byte)
        if 0x20 <= byte < 0x7F or byte in (0x09, 0x0A)
        else f"\\0{byte:03o}"
        for byte in content
    )


def secrets_payload(plan: Plan) -> bytes:
    """Secret file contents, in plan order, for the script's stdin: a marker line, then one base64
    line each."""
    secrets = [c.new for c in plan.file_changes if c.secret and c.new is not None]
    if not secrets:
        return b""
    lines = [SECRETS_MARKER.encode(), *(base64.b64encode(content) for content in secrets)]
    return b"\n".join(lines) + b"\n"
