"""What the node and the tool agree on: the record format, the markers and the exit codes.

Both remote scripts write records with lib.sh's `record FIELD... DATA`: tab-separated fields,
the last one the data, as it is after "=" when it holds no tab or newline, else in base64. Only a
newline ends a record; a line that is not a record (a login shell's motd, say) is skipped.
The constants below reach the scripts through `shell_constants()`: they are defined here once.
"""

from __future__ import annotations

import base64
import binascii
import shlex
from collections.abc import Iterator
from dataclasses import dataclass

EXIT_STALE = 75  # apply: a file changed since the facts were read; nothing was written, plan again
LOCK_FILE = "/run/lock/trains-nodeprep.lock"  # one apply at a time; facts never mid-apply
LOCK_WAIT_SECONDS = 60
VERIFY_MARKER = "__TNP_VERIFY__"  # apply: the facts read again for the verification follow it
SECRETS_MARKER = "__TNP_SECRETS__"  # stdin: secret file contents follow it (after a sudo password)
NOW_ENTRY = "/proc/self"  # facts: the archive's entry whose mtime is the node's clock
# The archive that ends the facts output: -h reads through symlinks (as a hostPath does);
# --no-recursion: a directory is one entry, not its tree; pax headers carry mtimes to the
# nanosecond (atime and ctime left out). tar's 10 KiB records, zero-padded, keep it to one SSH
# packet per 10 KiB. A path tar cannot read is simply not in it.
TAR_ARGV = (
    "tar",
    "--format=posix",
    "--pax-option=delete=atime,delete=ctime",
    "-chf",
    "-",
    "--no-recursion",
    "--",
)


@dataclass(frozen=True)
class Record:
    fields: tuple[str, ...]
    data: bytes

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")


class RecordError(ValueError):
    """A record whose data is neither "=" text nor base64."""


def encode_record(*fields: str, data: bytes | str = b"") -> bytes:
    """The bytes lib.sh's `record` writes for these fields and data."""
    raw = data.encode() if isinstance(data, str) else data
    if b"\t" in raw or b"\n" in raw:
        encoded = base64.b64encode(raw).decode()
    else:
        encoded = "=" + raw.decode("utf-8", errors="replace")
    return ("\t".join((*fields, encoded)) + "\n").encode()


def decode_records(
    text: str, fields: int, first: str | None = None, unreadable: bytes | None = None
) -> Iterator[Record]:
    """The records of `fields` fields (then the data) in `text`; with `first`, only those whose
    first field it is. Data that is neither "=" text nor base64 is `unreadable`, or, without it,
    a RecordError."""
    for line in text.split("\n"):
        parts = line.split("\t")
        if len(parts) != fields + 1 or (first is not None and parts[0] != first):
            continue
        encoded = parts[-1]
        if encoded.startswith("="):
            data = encoded[1:].encode()
        else:
            try:
                data = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError) as err:
                if unreadable is not None:
                    yield Record(tuple(parts[:-1]), unreadable)
                    continue
                raise RecordError(f"bad data for {' '.join(parts[:-1])}") from err
        yield Record(tuple(parts[:-1]), data)


ARCHIVE_MARKER = encode_record("archive", "all", "ok")  # the facts' archive follows it, raw


def shell_constants(script: str) -> str:
    """The constants the `facts` or `apply` script uses, as shell assignments for its head."""
    q = shlex.quote
    lock = [f"LOCK_FILE={q(LOCK_FILE)}", f"LOCK_WAIT={LOCK_WAIT_SECONDS}"]
    if script == "facts":
        return "\n".join(
            [
                *lock,
                f"NOW_ENTRY={q(NOW_ENTRY)}",
                f'tar_archive() {{ {shlex.join(TAR_ARGV)} "$@"; }}',
            ]
        )
    return "\n".join(
        [
            *lock,
            f"EXIT_STALE={EXIT_STALE}",
            f"SECRETS_MARKER={q(SECRETS_MARKER)}",
            f"VERIFY_MARKER={q(VERIFY_MARKER)}",
        ]
    )
