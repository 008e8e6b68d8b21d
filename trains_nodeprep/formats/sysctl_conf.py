"""Pure: parse and render sysctl.d files, and work out which value wins at boot.

At boot, systemd-sysctl and `sysctl --system` read *.conf files from these directories;
a file name in an earlier directory masks the same name in a later one, and the files
are applied in name order, so the last assignment of a key wins.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

SYSCTL_DIRS = (
    "/etc/sysctl.d",
    "/run/sysctl.d",
    "/usr/local/lib/sysctl.d",
    "/usr/lib/sysctl.d",
    "/lib/sysctl.d",
)
SYSCTL_CONF = "/etc/sysctl.conf"  # procps `sysctl --system` reads it after the directories

_ASSIGNMENT = re.compile(r"^\s*-?\s*(?P<key>[^=\s]+)\s*=\s*(?P<value>.*?)\s*$")


def normalize_key(key: str) -> str:
    return key.replace("/", ".")


def parse_sysctl_conf(text: str) -> list[tuple[str, str]]:
    """(key, value) assignments in file order; comments (# and ;) and blank lines skipped."""
    result = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped[0] in "#;":
            continue
        match = _ASSIGNMENT.match(line)
        if match:
            result.append((normalize_key(match.group("key")), match.group("value")))
    return result


@dataclass(frozen=True)
class BootValue:
    value: str
    path: str  # the file whose assignment wins at boot


def boot_order(paths: list[str]) -> list[str]:
    """The files applied at boot, in application order (masked names dropped)."""
    chosen: dict[str, str] = {}
    split = sorted(posixpath.split(path) + (path,) for path in paths)
    for directory in SYSCTL_DIRS:
        for parent, name, path in split:
            if parent == directory:
                chosen.setdefault(name, path)
    ordered = [chosen[name] for name in sorted(chosen)]
    if SYSCTL_CONF in paths:
        ordered.append(SYSCTL_CONF)
    return ordered


def boot_values(files: dict[str, str]) -> dict[str, BootValue]:
    """key -> the value and file that win at boot, from {path: content} of every sysctl file."""
    result: dict[str, BootValue] = {}
    for path in boot_order(list(files)):
        for key, value in parse_sysctl_conf(files[path]):
            result[key] = BootValue(value, path)
    return result


def render_sysctl_file(existing: str | None, settings: dict[str, int], header: str) -> str:
    """`existing` with each key set to its value: lines edited in place, new keys appended.

    Comments and unrelated keys are kept. A key assigned twice keeps only its last line's
    position updated, earlier ones are left (the last one wins anyway).
    """
    if existing is None:
        lines = [header] if header else []
        lines += [f"{key}={value}" for key, value in settings.items()]
        return "\n".join(lines) + "\n"
    lines = existing.splitlines()
    last_line_of: dict[str, int] = {}
    for index, line in enumerate(lines):
        stripped = line.strip()
        if stripped and stripped[0] not in "#;":
            match = _ASSIGNMENT.match(line)
            if match:
                last_line_of[normalize_key(match.group("key"))] = index
    for key, value in settings.items():
        if key in last_line_of:
            index = last_line_of[key]
            match = _ASSIGNMENT.match(lines[index])
            assert match is not None  # last_line_of holds only lines that matched
            if match.group("value") != str(value):
                start, end = match.span("value")
                lines[index] = lines[index][:start] + str(value) + lines[index][end:]
        else:
            lines.append(f"{key}={value}")
    rendered = "\n".join(lines)
    return rendered + "\n" if rendered or existing.endswith("\n") else rendered


def parse_int(value: str | None) -> int | None:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None
