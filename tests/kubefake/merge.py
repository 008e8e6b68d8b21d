"""PATCH bodies: the strategic merge patch kubectl apply sends (with the directives it
emits for these manifests) and the JSON merge patch of kubectl label."""

from __future__ import annotations

import copy
from typing import Any

# Merge keys of the lists in these manifests (strategic merge patch), by field name.
MERGE_KEYS = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
    "topologySpreadConstraints": "topologyKey",
    "addresses": "type",
    "taints": "key",
}


def _merge_key_for(field: str | None, items: list) -> str | None:
    if field == "ports":
        if all(isinstance(i, dict) and "containerPort" in i for i in items):
            return "containerPort"
        if all(isinstance(i, dict) and "port" in i for i in items):
            return "port"
        return None
    return MERGE_KEYS.get(field or "")


def strategic_merge(current: Any, patch: Any, field: str | None = None) -> Any:
    """Apply a (subset of a) strategic merge patch. Dicts merge, null deletes a key,
    lists of dicts with a known merge key merge by it, other lists are replaced."""
    if not isinstance(patch, dict) or not isinstance(current, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if patch.get("$patch") == "delete":
        return None
    result = copy.deepcopy(current)
    orders: dict[str, list] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name, []) if v not in value]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            merged = strategic_merge(result[key], value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        elif isinstance(value, list) and isinstance(result.get(key), list):
            result[key] = _merge_list(result[key], value, key)
        else:
            result[key] = _strip_directives(copy.deepcopy(value))
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _order_list(result[name], order, name)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_directives(v) for k, v in value.items() if not k.startswith("$")}
    if isinstance(value, list):
        return [
            _strip_directives(v)
            for v in value
            if not (isinstance(v, dict) and v.get("$patch") == "delete")
        ]
    return value


def _merge_list(current: list, patch: list, field: str) -> list:
    if any(isinstance(p, dict) and p.get("$patch") == "replace" for p in patch):
        return [
            _strip_directives(p)
            for p in patch
            if not (isinstance(p, dict) and p.get("$patch") == "replace")
        ]
    key = _merge_key_for(
        field, [i for i in current + patch if isinstance(i, dict) and i.get("$patch") is None]
    )
    if key is None:
        return _strip_directives(copy.deepcopy(patch))
    result = copy.deepcopy(current)
    for item in patch:
        if not isinstance(item, dict) or key not in item:
            continue
        idx = next(
            (i for i, c in enumerate(result) if isinstance(c, dict) and c.get(key) == item[key]),
            None,
        )
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
        elif idx is None:
            result.append(_strip_directives(copy.deepcopy(item)))
        else:
            result[idx] = strategic_merge(result[idx], item, field)
    return result


def _order_list(items: list, order: list, field: str) -> list:
    key = _merge_key_for(field, [i for i in items if isinstance(i, dict)])
    if key is None:
        return items
    rank = {o.get(key) if isinstance(o, dict) else o: n for n, o in enumerate(order)}
    return sorted(
        items, key=lambda i: rank.get(i.get(key) if isinstance(i, dict) else i, len(rank))
    )


def json_merge_patch(current: Any, patch: Any) -> Any:
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result
