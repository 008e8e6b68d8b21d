"""Builders for what a node answers, and a fake node that replays those answers.

FakeNode is a TEST DOUBLE of a node (trains_nodeprep.node.Node): it runs nothing. Each
`run_as_root` returns the next canned Result and keeps the script and stdin it was sent, so the
converge loop (stale retry, confirmation, dry run, verification) and the check/run/restore
flows get fast unit tests without a test bed, as invoke's MockContext does for its users. The
answers are built with the same record encoder and archive format the real scripts use
(remote/protocol.py); tests/integration runs the real scripts on real nodes.
"""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from trains_nodeprep.model import DesiredState, SysctlSetting, Ulimit
from trains_nodeprep.node import Result
from trains_nodeprep.remote.protocol import (
    ARCHIVE_MARKER,
    EXIT_STALE,
    NOW_ENTRY,
    VERIFY_MARKER,
    encode_record,
)

SYSCTL_FILE = "/etc/sysctl.d/99-trains.conf"
DAEMON_JSON = "/etc/docker/daemon.json"
DESIRED = DesiredState(
    ulimits=(Ulimit("nofile", 1024, 65536), Ulimit("memlock", -1, -1)),
    sysctls=(SysctlSetting("vm.max_map_count", 262144),),
    sysctl_file=SYSCTL_FILE,
    source="test",
)
READY_DAEMON_JSON = (
    b'{"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536}, '
    b'"memlock": {"Name": "memlock", "Soft": -1, "Hard": -1}}}\n'
)
READY_FILES = {DAEMON_JSON: READY_DAEMON_JSON, SYSCTL_FILE: b"vm.max_map_count=262144\n"}


def facts_output(
    *,
    files: dict[str, bytes] | None = None,
    max_map_count: int = 262144,
    dockerd: bool = True,
    init: str = "sysvinit",
    backups: dict[str, list[str]] | None = None,
    complete: bool = True,
) -> bytes:
    """What the facts script prints on a node with these files (regular files, read as root)."""
    files = dict(READY_FILES if files is None else files)
    records = [("id", "user", "ok", "root"), ("init", "system", "ok", init)]
    if dockerd:
        records += [("docker", "installed", "ok", "yes"), ("proc", "dockerd", "42", "dockerd")]
    records.append(("sysctl", "vm.max_map_count", "ok", str(max_map_count)))
    for path, names in (backups or {}).items():
        records += [("backup", path, "ok", name) for name in names]
    records += [("want", path, "ok", "") for path in files]
    if complete:
        records.append(("end", "end", "ok", ""))
    text = b"".join(
        encode_record(kind, name, state, data=data) for kind, name, state, data in records
    )
    return text + ARCHIVE_MARKER + (_archive(files) if complete else b"")


def _archive(files: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        clock = tarfile.TarInfo(NOW_ENTRY.lstrip("/"))
        clock.type, clock.mtime = tarfile.DIRTYPE, 1_000_000
        archive.addfile(clock)
        for path, content in files.items():
            member = tarfile.TarInfo(path.lstrip("/"))
            member.size, member.mtime = len(content), 999_000
            archive.addfile(member, io.BytesIO(content))
    return buffer.getvalue()


def step(kind: str, subject: str, status: str = "ok", message: str = "") -> bytes:
    return encode_record("step", kind, subject, status, data=message)


def apply_output(steps: Iterable[bytes], after: bytes | None = None) -> bytes:
    """What the apply script prints: its steps, then (verification) the marker and the facts."""
    text = b"".join(steps)
    return text + (b"\n" + VERIFY_MARKER.encode() + b"\n" + after if after is not None else b"")


STALE_STEPS = [step("stale", DAEMON_JSON, "fail", "changed on the node since its facts were read")]
STALE = Result(EXIT_STALE, apply_output(STALE_STEPS), "")


@dataclass
class Sent:
    script: str
    payload: bytes


@dataclass
class FakeNode:
    """A node that answers each command with the next of `replies` (see the module docstring)."""

    replies: list[Result | Callable[[str], Result]]
    label: str = "fake1"
    user: str = "root"
    sent: list[Sent] = field(default_factory=list)
    progress: Callable[[str], None] | None = None
    closed: bool = False

    @property
    def exec_count(self) -> int:
        return len(self.sent)

    def names(self) -> set[str]:
        return {self.label}

    def run_as_root(self, script: str, timeout: float, payload: bytes = b"") -> Result:
        self.sent.append(Sent(script, payload))
        if not self.replies:
            raise AssertionError(
                f"the fake node got command {len(self.sent)}, which no test expected"
            )
        reply = self.replies.pop(0)
        return reply(script) if callable(reply) else reply

    def close(self) -> None:
        self.closed = True


def ok(output: bytes) -> Result:
    return Result(0, output, "")
