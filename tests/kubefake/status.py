"""Errors as the API server sends them: Status objects, and the exception that becomes one."""

from __future__ import annotations

import datetime as _dt
from typing import Any

from .resources import Resource


def timestamp() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_body(code: int, reason: str, message: str, details: dict | None = None) -> dict:
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "code": code,
    }
    if details:
        body["details"] = details
    return body


class APIError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = status_body(code, reason, message, details)


def not_found(res: Resource, name: str) -> APIError:
    return APIError(
        404,
        "NotFound",
        f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )
