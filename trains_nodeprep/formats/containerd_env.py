"""Pure: the `ulimit` lines of MicroK8s's containerd-env, read and raised.

MicroK8s's containerd wrapper (run-containerd-with-args) sources this bash file, then execs
containerd, so the lines set the limits containerd and every pod container inherit. MicroK8s's
default has `ulimit -n 65536 || true` and `ulimit -l 16384 || true`. In bash a `ulimit` without
-S or -H sets the soft and the hard limit together; `-l` counts KiB, /proc and the playbook
count bytes. Every other line of the file is kept as it is.
"""

from __future__ import annotations

import re

from ..errors import ConfigError
from ..model import UNLIMITED, Ulimit

# playbook name -> ulimit letter, and the unit ulimit counts in (bytes per unit)
LETTERS = {"nofile": ("n", 1), "memlock": ("l", 1024)}
_LINE = re.compile(
    r"^\s*ulimit\s+(?P<flags>(?:-[SHa-z]+\s+)+)(?P<value>unlimited|\d+)"
    r"\s*(?:\|\|\s*true)?\s*(?:#.*)?$"
)


def _parsed(line: str) -> tuple[str, bool, bool, int] | None:
    """(letter, sets soft, sets hard, value in the playbook's unit) of one `ulimit` line."""
    match = _LINE.match(line)
    if match is None:
        return None
    letters = "".join(flag.lstrip("-") for flag in match["flags"].split())
    soft, hard = "S" in letters, "H" in letters
    limits = [c for c in letters if c not in "SH"]
    if len(limits) != 1:
        return None
    (letter,) = limits
    scale = next((s for name, (c, s) in LETTERS.items() if c == letter), 1)
    value = UNLIMITED if match["value"] == "unlimited" else int(match["value"]) * scale
    if not soft and not hard:
        soft = hard = True
    return letter, soft, hard, value


def read_limits(text: str) -> dict[str, tuple[int | None, int | None]]:
    """The limits the file sets, by playbook name: (soft, hard), None for a side it leaves as
    inherited. The last line of a side wins, as in bash."""
    found: dict[str, tuple[int | None, int | None]] = {}
    for line in text.splitlines():
        parsed = _parsed(line)
        if parsed is None:
            continue
        letter, soft, hard, value = parsed
        name = next((n for n, (c, _s) in LETTERS.items() if c == letter), None)
        if name is None:
            continue
        old_soft, old_hard = found.get(name, (None, None))
        found[name] = (value if soft else old_soft, value if hard else old_hard)
    return found


def render_line(limit: Ulimit) -> list[str]:
    letter, scale = LETTERS[limit.name]

    def value(v: int) -> str:
        return "unlimited" if v == UNLIMITED else str(-(-v // scale))  # never round down

    if limit.soft == limit.hard:
        return [f"ulimit -{letter} {value(limit.hard)} || true"]
    # hard first: a soft limit above the current hard one would be refused
    return [
        f"ulimit -H{letter} {value(limit.hard)} || true",
        f"ulimit -S{letter} {value(limit.soft)} || true",
    ]


COMMENT = "# trains-nodeprep: minimums for trains-server (Elasticsearch); higher values are kept"


def merge(text: str, targets: list[Ulimit], path: str) -> str:
    """The file with each target's lines replaced, where its first line was (or appended)."""
    unsupported = [t.name for t in targets if t.name not in LETTERS]
    if unsupported:
        raise ConfigError(
            path,
            f"trains-nodeprep writes nofile and memlock here, not {', '.join(unsupported)}",
            "set those limits in this file by hand, or drop them from the playbook",
        )
    by_letter = {LETTERS[t.name][0]: t for t in targets}
    out: list[str] = []
    written: set[str] = set()
    lines = text.splitlines()
    for line in lines:
        parsed = _parsed(line)
        if parsed is None or parsed[0] not in by_letter:
            out.append(line)
            continue
        letter = parsed[0]
        if letter not in written:
            written.add(letter)
            out += render_line(by_letter[letter])
    missing = [t for t in targets if LETTERS[t.name][0] not in written]
    if missing:
        if COMMENT not in lines:
            out.append(COMMENT)
        for target in missing:
            out += render_line(target)
    return "\n".join(out) + "\n"
