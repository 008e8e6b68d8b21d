"""Pure: NodeFacts from the facts script's output: its records, then the tar archive.

The records common to every concern (who we are, the init system, files, backups, daemons
found by the scan, clocks) are read here; each requirement module reads its own kinds from the
same `Records` (its `parse`). The archive is read in memory, never extracted.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterable
from typing import Any, cast

from ..remote.protocol import ARCHIVE_MARKER, NOW_ENTRY, RecordError, decode_records
from .facts import FILE_STATES, DirFact, FileFact, FileState, NodeFacts

# Linux reports process start times in USER_HZ ticks, fixed at 100 by the kernel ABI.
CLOCK_TICKS_PER_SECOND = 100


class FactsParseError(ValueError):
    pass


class Records:
    """The facts' records by (kind, name), and the archive's contents, for the modules' parsers."""

    def __init__(self, records: Iterable[tuple[str, str, str, bytes]], now: float | None) -> None:
        self.all = list(records)
        self.now = now
        self._first: dict[tuple[str, str], tuple[str, bytes]] = {}
        for kind, name, state, data in self.all:
            self._first.setdefault((kind, name), (state, data))

    def has(self, kind: str, name: str) -> bool:
        return (kind, name) in self._first

    def text(self, kind: str, name: str) -> str | None:
        found = self._first.get((kind, name))
        return found[1].decode(errors="replace") if found else None

    def of_kind(self, kind: str) -> list[tuple[str, str, bytes]]:
        return [(name, state, data) for k, name, state, data in self.all if k == kind]

    def processes(self, name: str) -> list[tuple[int, tuple[str, ...]]]:
        """(pid, argv) of every running process of that name, as the scan found them."""
        found = []
        for process, pid, data in self.of_kind("proc"):
            if process == name:
                text = data.decode(errors="replace")
                found.append((int(pid), tuple(arg for arg in re.split("[\x1f\n]", text) if arg)))
        return found

    def age(self, clock: str) -> float | None:
        """Seconds since a process started, from its start in ticks since boot and the uptime."""
        words = (self.text("clock", clock) or "").split()
        numbers = [float(word) for word in words if _float_or_none(word) is not None]
        if len(numbers) != 2:
            return None
        ticks, uptime = numbers
        return uptime - ticks / CLOCK_TICKS_PER_SECOND


def parse_facts(output: bytes) -> NodeFacts:
    """NodeFacts from the script's output; FactsParseError if it is cut short or garbled."""
    from ..requirements.registry import CONCERNS

    text, archive = _split_output(output)
    contents, mtimes, directories, now = _read_archive(archive)
    try:
        decoded = [(*r.fields, r.data) for r in decode_records(text.decode(errors="replace"), 3)]
    except RecordError as err:
        raise FactsParseError(str(err)) from err
    records = Records(cast(list[tuple[str, str, str, bytes]], decoded), now)
    if not records.has("end", "end"):
        raise FactsParseError("the facts output ended early")
    fields: dict[str, Any] = _core_fields(records, contents)
    fields["directories"] = directories
    fields["file_ages"] = (
        {path: now - mtime for path, mtime in mtimes.items()} if now is not None else {}
    )
    for concern in CONCERNS:
        fields.update(concern.parse(records))
    return NodeFacts(**fields)


def _core_fields(records: Records, contents: dict[str, bytes]) -> dict[str, Any]:
    files: dict[str, FileFact] = {}
    for path, state, data in records.of_kind("file"):
        if state not in FILE_STATES:
            raise FactsParseError(f"unknown file state {state!r} for {path}")
        files[path] = FileFact(path, cast(FileState, state), data if state == "file" else None)
    for path, _state, _data in records.of_kind("want"):
        # a regular file the script asked tar for: unreadable unless the archive has it
        files[path] = (
            FileFact(path, "file", contents[path])
            if path in contents
            else FileFact(path, "unreadable")
        )
    backups: dict[str, list[str]] = {}
    for path, _state, data in records.of_kind("backup"):
        backups.setdefault(path, []).append(data.decode(errors="replace"))
    return {
        "user": (records.text("id", "user") or "").strip(),
        "init_system": records.text("init", "system") or "unknown",
        "files": files,
        "backups": {path: tuple(names) for path, names in backups.items()},
        "unreadable_names": tuple(
            data.decode(errors="replace") for _n, _s, data in records.of_kind("oddname")
        ),
    }


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
    """From the facts' archive, by absolute path: the regular files' contents and mtimes, and
    what each other entry is; and the node's clock (NOW_ENTRY)."""
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


def _float_or_none(text: str) -> float | None:
    try:
        return float(text.strip())
    except ValueError:
        return None


def int_or_none(text: str) -> int | None:
    try:
        return int(text.strip())
    except ValueError:
        return None
