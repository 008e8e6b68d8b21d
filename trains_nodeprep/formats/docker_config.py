"""Pure: read and merge docker default ulimits in daemon.json and in sysconfig OPTIONS.

Merges keep everything they do not own: other keys and flags, quoting, comments, other
lines. When nothing needs to change they return the input unchanged, byte for byte.
"""

from __future__ import annotations

import functools
import json
import re
import shlex
from dataclasses import dataclass

from ..errors import ConfigError
from ..model import Ulimit, limit_at_least

DAEMON_JSON_KEY = "default-ulimits"
_INTEGER = re.compile(r"[+-]?[0-9]+")


# ---------------------------------------------------------------- ulimit values


def parse_ulimit_value(value: str, where: str) -> Ulimit:
    """Parse docker's flag form `name=soft[:hard]` (hard defaults to soft)."""
    name, sep, limits = value.partition("=")
    soft_text, _, hard_text = limits.partition(":")
    soft = hard = None
    if _INTEGER.fullmatch(soft_text) and (not hard_text or _INTEGER.fullmatch(hard_text)):
        soft = int(soft_text)  # not int() alone: it takes " 1", "1_000", which dockerd rejects
        hard = int(hard_text) if hard_text else soft
    if not sep or not name or soft is None or hard is None:
        raise ConfigError(
            where,
            f"cannot parse --default-ulimit {value!r}",
            "write it as NAME=SOFT:HARD, e.g. nofile=1024:65536",
        )
    _check_order(Ulimit(name, soft, hard), where)
    return Ulimit(name, soft, hard)


def _check_order(limit: Ulimit, where: str) -> None:
    if not limit_at_least(limit.hard, limit.soft):
        raise ConfigError(
            where,
            f"ulimit {limit.name} has soft {limit.soft} above hard {limit.hard}",
            "docker refuses that: lower soft or raise hard",
        )


def render_ulimit_flag(limit: Ulimit) -> str:
    return f"{limit.name}={limit.soft}:{limit.hard}"


def missing_ulimits(current: dict[str, Ulimit], desired: tuple[Ulimit, ...]) -> list[Ulimit]:
    """The desired limits that `current` does not meet, raised to keep what is higher."""
    result = []
    for want in desired:
        have = current.get(want.name)
        if have is None:
            result.append(want)
        elif not have.satisfies(want):
            result.append(have.raised_to(want))
    return result


# ---------------------------------------------------------------- daemon.json


def json_type(value) -> str:
    """The JSON name of a parsed value's type, for messages (array, not list)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {dict: "object", list: "array", str: "string", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )


def parse_daemon_json(content: bytes, path: str) -> dict:
    """The daemon.json object, or ConfigError naming line and column of what dockerd would
    reject."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ConfigError(
            path, f"is not UTF-8 (byte {err.start})", "save it as UTF-8 JSON"
        ) from err
    if text.startswith("\ufeff"):
        raise ConfigError(
            path, "starts with a byte-order mark", "remove the BOM; dockerd reads plain UTF-8 JSON"
        )
    if not text.strip():
        raise ConfigError(
            path, "is empty, which dockerd rejects as invalid JSON", "write {} into it or delete it"
        )
    try:
        data = json.loads(text, parse_constant=_reject_constant)
    except json.JSONDecodeError as err:
        raise ConfigError(
            path,
            f"invalid JSON at line {err.lineno} column {err.colno}: {err.msg}",
            "fix the JSON (dockerd will not start with it)",
        ) from err
    except ValueError as err:  # NaN, Infinity: Python reads them, dockerd does not
        raise ConfigError(
            path, f"invalid JSON: {err}", "fix the JSON (dockerd will not start with it)"
        ) from err
    if not isinstance(data, dict):
        raise ConfigError(
            path,
            f"top level is a JSON {json_type(data)}, not an object",
            "make it a JSON object {...}",
        )
    return data


def _reject_constant(name: str):
    raise ValueError(f"{name} is not a JSON value")


def _field(entry: dict, name: str):
    """Docker (Go's encoding/json) matches field names case-insensitively: Name, name, NAME."""
    for key, value in entry.items():
        if key.lower() == name:
            return key, value
    return None, None


def _entry_limit(key: str, entry, path: str) -> Ulimit:
    where = f"{path} ({DAEMON_JSON_KEY}.{key})"
    if not isinstance(entry, dict):
        raise ConfigError(
            path,
            f"{DAEMON_JSON_KEY}.{key} is not an object",
            'write it as {"Name": ..., "Soft": N, "Hard": N}',
        )
    _, name = _field(entry, "name")
    values = {}
    for field in ("soft", "hard"):
        _, value = _field(entry, field)
        if value is None:
            value = 0  # what dockerd assumes for a missing field
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(
                path,
                f"{DAEMON_JSON_KEY}.{key}.{field} is {value!r}, not an integer",
                "dockerd refuses that: use a whole number or -1",
            )
        values[field] = value
    if name is not None and not isinstance(name, str):
        raise ConfigError(
            path,
            f"{DAEMON_JSON_KEY}.{key}.Name is not a string",
            'use the ulimit\'s name, e.g. "nofile"',
        )
    limit = Ulimit(name or key, values["soft"], values["hard"])
    _check_order(limit, where)
    return limit


def daemon_json_ulimits(config: dict, path: str) -> dict[str, Ulimit]:
    """The ulimits dockerd would read, by limit name (taken from each entry's Name, as docker
    does)."""
    entries = config.get(DAEMON_JSON_KEY)
    if entries is None:
        return {}
    if not isinstance(entries, dict):
        raise ConfigError(
            path,
            f"{DAEMON_JSON_KEY} is a JSON {json_type(entries)}, not an object",
            'use {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536}}',
        )
    return {
        limit.name: limit
        for key, entry in entries.items()
        for limit in [_entry_limit(key, entry, path)]
    }


def _indent_of(text: str):
    match = re.search(r"\n([ \t]+)\S", text)
    if not match:
        return 2
    indent = match.group(1)
    return "\t" if indent.startswith("\t") else len(indent)


def merge_daemon_json(content: bytes | None, desired: tuple[Ulimit, ...], path: str) -> bytes:
    """daemon.json with `desired` ulimits merged in; `content` None means the file is absent."""
    config = parse_daemon_json(content, path) if content is not None else {}
    todo = missing_ulimits(daemon_json_ulimits(config, path), desired)
    entries = config.get(DAEMON_JSON_KEY) or {}  # null reads as no entries, as in dockerd
    has_nameless = any(not _field(e, "name")[1] for e in entries.values())
    if not todo and not has_nameless:
        return content if content is not None else b""
    for key, entry in entries.items():
        if not _field(entry, "name")[1]:
            # an entry without Name (or with "" / null) breaks container start (RLIMIT_: unknown)
            entry[_field(entry, "name")[0] or "Name"] = key
    for limit in todo:
        key, entry = _find_entry(entries, limit.name)
        if entry is None:
            if limit.name in entries:
                other = _field(entries[limit.name], "name")[1]
                raise ConfigError(
                    path,
                    f"{DAEMON_JSON_KEY}.{limit.name} has Name {other!r}",
                    f"rename that entry's key to {other!r} "
                    f"so that a {limit.name} entry can be added",
                )
            entries[limit.name] = {"Name": limit.name, "Soft": limit.soft, "Hard": limit.hard}
            continue
        for field, value in (("soft", limit.soft), ("hard", limit.hard)):
            entry[_field(entry, field)[0] or field.capitalize()] = value
    config[DAEMON_JSON_KEY] = entries
    text = content.decode("utf-8") if content is not None else ""
    return (json.dumps(config, indent=_indent_of(text)) + "\n").encode("utf-8")


def _find_entry(entries: dict, name: str):
    for key, entry in entries.items():
        if _field(entry, "name")[1] == name:
            return key, entry
    return None, None


# ---------------------------------------------------------------- sysconfig OPTIONS

# The same shape serves /etc/sysconfig/docker OPTIONS and /etc/default/docker DOCKER_OPTS.
SYSCONFIG_VARIABLE = "OPTIONS"
DEFAULT_VARIABLE = "DOCKER_OPTS"


@functools.lru_cache(maxsize=4)
def _assignment(variable: str) -> re.Pattern:
    return re.compile(rf"^[ \t]*(?:export[ \t]+)?{re.escape(variable)}=", re.M)


_ULIMIT_FLAG = re.compile(r"--default-ulimit(?:=|[ \t]+)(?P<value>[^\s'\"]+)")


@dataclass(frozen=True)
class _OptionsValue:
    start: int  # offset of the value's first character (inside the quotes)
    end: int  # offset just past the value's last character
    quote: str  # '"', "'" or "" when unquoted


def _options_values(text: str, path: str, variable: str) -> list[_OptionsValue]:
    values = []
    for match in _assignment(variable).finditer(text):
        start = match.end()
        quote = text[start] if start < len(text) and text[start] in "\"'" else ""
        if quote:
            end = _closing_quote(text, start + 1, quote)
            if end < 0:
                line = text.count("\n", 0, start) + 1
                raise ConfigError(
                    path,
                    f"unterminated {quote} in {variable} at line {line}",
                    f"close the quote (docker would read a broken {variable})",
                )
            values.append(_OptionsValue(start + 1, end, quote))
        else:
            # Unquoted: systemd's EnvironmentFile (how docker.service reads this file) takes the
            # rest of the line, spaces included; a shell stops at ';' and at a ' #' comment.
            end = start
            while (
                end < len(text)
                and text[end] not in "\n;"
                and not (text[end] == "#" and end > start and text[end - 1] in " \t")
            ):
                end += 1
            end = start + len(text[start:end].rstrip(" \t"))
            values.append(_OptionsValue(start, end, ""))
    return values


def options_words(text: str, path: str, variable: str) -> list[str] | None:
    """The words a shell sourcing the file gives `$variable` (its last assignment), as an
    init script passes them to dockerd; None when it is not assigned."""
    values = _options_values(text, path, variable)
    if not values:
        return None
    last = values[-1]
    raw = text[last.start : last.end]
    if last.quote != "'":
        raw = raw.replace("\\\n", "")  # a continued line, inside double quotes or bare
    try:
        if last.quote:  # the value without its quotes, then split where `$variable` is used
            return "".join(shlex.split(f"{last.quote}{raw}{last.quote}")).split()
        return shlex.split(raw)
    except ValueError:
        return raw.split()


def _closing_quote(text: str, pos: int, quote: str) -> int:
    while pos < len(text):
        char = text[pos]
        if quote == '"' and char == "\\":
            pos += 2
            continue
        if char == quote:
            return pos
        pos += 1
    return -1


def _flag_ulimits_in(value: str, path: str) -> dict[str, tuple[Ulimit, re.Match]]:
    found = {}
    for match in _ULIMIT_FLAG.finditer(value):
        limit = parse_ulimit_value(match.group("value"), path)
        found[limit.name] = (limit, match)  # the last flag wins, as in dockerd
    return found


def sysconfig_ulimits(
    text: str, path: str, variable: str = SYSCONFIG_VARIABLE
) -> dict[str, Ulimit]:
    """The --default-ulimit flags in the effective (last) assignment of `variable`."""
    values = _options_values(text, path, variable)
    if not values:
        return {}
    last = values[-1]
    return {
        name: limit
        for name, (limit, _) in _flag_ulimits_in(text[last.start : last.end], path).items()
    }


def merge_sysconfig(
    text: str, desired: tuple[Ulimit, ...], path: str, variable: str = SYSCONFIG_VARIABLE
) -> str:
    """The file with `desired` ulimits as flags in `variable`; weaker flags raised in place."""
    values = _options_values(text, path, variable)
    if not values:
        todo = missing_ulimits({}, desired)
        if not todo:
            return text
        flags = " ".join(f"--default-ulimit {render_ulimit_flag(limit)}" for limit in todo)
        separator = "" if not text or text.endswith("\n") else "\n"
        return f'{text}{separator}{variable}="{flags}"\n'
    last = values[-1]
    value = text[last.start : last.end]
    existing = _flag_ulimits_in(value, path)
    todo = missing_ulimits({name: limit for name, (limit, _) in existing.items()}, desired)
    if not todo:
        return text
    replacements = []  # (start, end, new text) within value
    appended = []
    for limit in todo:
        if limit.name in existing:
            match = existing[limit.name][1]
            replacements.append(
                (match.start("value"), match.end("value"), render_ulimit_flag(limit))
            )
        else:
            appended.append(f"--default-ulimit {render_ulimit_flag(limit)}")
    for start, end, new in sorted(replacements, reverse=True):
        value = value[:start] + new + value[end:]
    if appended:
        value = f"{value} {' '.join(appended)}" if value.strip() else " ".join(appended)
    if last.quote:
        return text[: last.start] + value + text[last.end :]
    if any(char in value for char in "\"'\\"):
        line = text.count("\n", 0, last.start) + 1
        raise ConfigError(
            path,
            f"unquoted {variable} at line {line} contains quotes or backslashes",
            f"put the whole value in quotes, e.g. {variable}='...'",
        )
    return text[: last.start] + f'"{value}"' + text[last.end :]


def unit_exec_start(unit_text: str) -> tuple[str, ...]:
    """argv of the effective ExecStart= of `systemctl cat` output (an empty ExecStart= resets)."""
    import shlex

    effective: tuple[str, ...] = ()
    for line in unit_text.replace("\\\n", " ").splitlines():
        stripped = line.strip()
        if stripped.startswith("ExecStart="):
            command = stripped[len("ExecStart=") :].lstrip("-@:+!")
            try:
                effective = tuple(shlex.split(command)) if command else ()
            except ValueError:
                effective = tuple(command.split())
    return effective


def cmdline_ulimits(argv: tuple[str, ...], where: str) -> dict[str, Ulimit]:
    """--default-ulimit flags on a running dockerd's command line."""
    found = {}
    for index, arg in enumerate(argv):
        value = None
        if arg == "--default-ulimit" and index + 1 < len(argv):
            value = argv[index + 1]
        elif arg.startswith("--default-ulimit="):
            value = arg.split("=", 1)[1]
        if value is not None:
            limit = parse_ulimit_value(value, where)
            found[limit.name] = limit
    return found
