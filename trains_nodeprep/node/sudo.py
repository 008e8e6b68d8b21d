"""Running a script as root from a login that may not be root: sudo's argv and its refusals.

The password is only ever written to sudo's stdin (password_line), never to argv or output.
"""

from __future__ import annotations

from ..errors import ConnectionFailed
from .base import Result

SUDO_PASSWORD_ENV = "TRAINS_NODEPREP_SUDO_PASSWORD"


def root_argv(script: str, user: str, sudo_password: str | None) -> list[str]:
    """The argv that runs `script` as root for a login as `user`."""
    if user == "root":
        return ["sh", "-c", script]
    if sudo_password is not None:
        # -k: ignore cached credentials, so sudo always reads the password line we send.
        return ["sudo", "-k", "-S", "-p", "", "--", "sh", "-c", script]
    return ["sudo", "-n", "--", "sh", "-c", script]


def password_line(user: str, sudo_password: str | None) -> bytes:
    """What goes on stdin ahead of the script's payload: the line `sudo -S` reads, if any."""
    if sudo_password is None or user == "root":
        return b""
    return (sudo_password + "\n").encode()


def sudo_failure(result: Result, label: str, user: str) -> ConnectionFailed | None:
    """A clear error when sudo itself (not the script) refused to run."""
    if result.ok:
        return None
    text = result.stderr
    if "a password is required" in text:
        return ConnectionFailed(
            f"{label}: sudo asks {user} for a password; "
            f"pass --ask-sudo-password or set {SUDO_PASSWORD_ENV}"
        )
    if "incorrect password" in text or "Sorry, try again" in text:
        return ConnectionFailed(
            f"{label}: sudo refused the password for {user}; "
            f"check --ask-sudo-password / {SUDO_PASSWORD_ENV}"
        )
    if (
        "is not in the sudoers file" in text
        or "is not allowed to execute" in text
        or "may not run sudo" in text
    ):
        return ConnectionFailed(
            f"{label}: {user} may not run commands as root with sudo; "
            "log in as root or grant sudo rights"
        )
    if result.exit_status == 127 and "sudo" in text:
        return ConnectionFailed(
            f"{label}: sudo is not installed and {user} is not root; log in as root (--user root)"
        )
    return None
