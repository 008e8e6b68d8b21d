"""Pure: an environment file as systemd's EnvironmentFile= reads it, which is not a shell.

A unit that says `EnvironmentFile=/etc/sysconfig/docker` and `ExecStart=dockerd $OPTIONS` gives
dockerd the words of OPTIONS as systemd parsed the file. systemd's reader differs from a shell
that sources the same file in ways that matter to a flag file:
- a line `export OPTIONS=...` sets nothing (the name "export OPTIONS" is not a valid one);
- text after a closing quote continues the value (`OPTIONS='-a'  # why` is `-a# why`): there
  are no comments after a value, only lines that start with # or ;;
- inside double quotes, a backslash escapes only " \\ ` $ and a newline (a continued line);
  a raw newline is part of the value; unquoted, a backslash escapes any character.
This reads it the same way (systemd's src/basic/env-file.c), keeping the last assignment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHELL_NEEDS_ESCAPE = '"\\`$'
_WHITESPACE = " \t\n\r"


@dataclass(frozen=True)
class Assignment:
    name: str  # as written; only a valid name reaches the environment
    value: str
    line: int  # where the assignment starts, from 1

    @property
    def valid(self) -> bool:
        return bool(_NAME.fullmatch(self.name))


def assignments(text: str) -> list[Assignment]:
    """Every NAME=VALUE of the file in order, invalid names included (systemd drops those)."""
    found: list[Assignment] = []
    state = "pre-key"
    key: list[str] = []
    value: list[str] = []
    line = start_line = 1
    trailing = -1  # unquoted values lose their trailing whitespace: where it started

    def push() -> None:
        nonlocal key, value, trailing
        chars = value[:trailing] if state == "value" and trailing >= 0 else value
        found.append(Assignment("".join(key).rstrip(" \t"), "".join(chars), start_line))
        key, value, trailing = [], [], -1

    for char in text:
        if char == "\n" and state in ("pre-value", "value"):  # the end of an assignment
            push()
            state = "pre-key"
        elif state == "pre-key":
            if char in "#;":
                state = "comment"
            elif char not in _WHITESPACE:
                state, key, start_line = "key", [char], line
        elif state == "key":
            if char == "\n":
                state, key = "pre-key", []
            elif char == "=":
                state, trailing = "pre-value", -1
            else:
                key.append(char)
        elif state == "pre-value":
            if char == "'":
                state = "single"
            elif char == '"':
                state = "double"
            elif char == "\\":
                state = "escape"
            elif char not in _WHITESPACE:
                state = "value"
                value.append(char)
        elif state == "value":
            if char == "\\":
                state, trailing = "escape", -1
            else:
                if char not in _WHITESPACE:
                    trailing = -1
                elif trailing < 0:
                    trailing = len(value)
                value.append(char)
        elif state == "escape":
            state = "value"
            if char != "\n":  # an escaped newline continues the line
                value.append(char)
        elif state == "single":
            if char == "'":
                state = "pre-value"
            else:
                value.append(char)
        elif state == "double":
            if char == '"':
                state = "pre-value"
            elif char == "\\":
                state = "double-escape"
            else:
                value.append(char)
        elif state == "double-escape":
            state = "double"
            if char in _SHELL_NEEDS_ESCAPE:
                value.append(char)
            elif char != "\n":
                value += ["\\", char]
        elif state == "comment":
            if char == "\\":
                state = "comment-escape"
            elif char == "\n":
                state = "pre-key"
        elif state == "comment-escape":
            state = "pre-key" if char == "\n" else "comment"
        if char == "\n":
            line += 1
    if state not in ("pre-key", "key", "comment", "comment-escape"):
        push()
    return found


def environment(text: str) -> dict[str, str]:
    """What the unit's processes get from the file: the valid names, the last value of each."""
    return {a.name: a.value for a in assignments(text) if a.valid}
