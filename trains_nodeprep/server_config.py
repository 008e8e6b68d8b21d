"""Pure: trains-server's apiserver.conf with fixed users, from a users file the operator keeps.

The users file has one `username:password:Full Name` per line (# comments allowed; the
password may contain ':', the name may not). The
rendered file holds passwords: it is written 0600 root and its content is never shown.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from .errors import UsageError
from .model import APISERVER_CONF, ServerFile

_USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")


def parse_fixed_users(text: str, source: str) -> list[tuple[str, str, str]]:
    users = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        username, _, rest = line.partition(":")
        password, _, name = rest.rpartition(":")  # a password may hold ':', a name may not
        parts = [username, password, name]
        if not rest or ":" not in rest or not _USERNAME.match(username) or not password:
            # never echo the line: it holds a password
            raise UsageError(
                f"{source} line {number}: expected username:password:Full Name "
                "(username of letters, digits, _ . @ -)"
            )
        users.append((parts[0], parts[1], parts[2].strip() or parts[0]))
    if not users:
        raise UsageError(f"{source}: no users; add lines like jane:S3cret:Jane Doe")
    return users


def render_apiserver_conf(users: list[tuple[str, str, str]]) -> bytes:
    """HOCON accepts JSON strings, so json.dumps quotes every value safely."""
    entries = "\n".join(
        f"            {{ username: {json.dumps(u)}, password: {json.dumps(p)}, "
        f"name: {json.dumps(n)} }},"
        for u, p, n in users
    )
    return (
        "# Managed by trains-nodeprep (--fixed-users). Holds passwords: keep it 0600 root.\n"
        "auth {\n    fixed_users {\n        enabled: true\n        users: [\n"
        f"{entries}\n        ]\n    }}\n}}\n"
    ).encode()


def load_fixed_users(path: Path) -> ServerFile:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise UsageError(f"cannot read --fixed-users {path}: {err.strerror}") from err
    return ServerFile(
        APISERVER_CONF,
        render_apiserver_conf(parse_fixed_users(text, str(path))),
        0o600,
        secret=True,
    )
