"""Label and field selectors, as kubectl sends them in labelSelector= and fieldSelector=."""

from __future__ import annotations

import re
from typing import Any

from .status import APIError

_TERM_RE = re.compile(r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*))?\s*$")


def _terms(selector: str) -> list[str]:
    return [term for term in (selector or "").split(",") if term.strip()]


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """The label selectors kubectl sends for -l (the tool and the tests use only these):
    k=v, k==v, k!=v, k, !k; comma-separated terms must all hold."""
    for term in _terms(selector):
        m = _TERM_RE.match(term)
        if not m:
            raise APIError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        neg, key, op, value = m.groups()
        if neg:
            if op:
                raise APIError(400, "BadRequest", f"unable to parse requirement: {term!r}")
            if key in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        elif key not in labels:
            return False
    return True


def _field_value(obj: dict, path: str) -> str | None:
    cur: Any = obj
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return None
        cur = cur[part]
    return None if cur is None else str(cur)


def field_selector_matches(selector: str, obj: dict) -> bool:
    for term in _terms(selector):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise APIError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        actual = _field_value(obj, path) or ""
        if (op == "!=") == (actual == value):
            return False
    return True
