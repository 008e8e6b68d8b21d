"""The objects the fake keeps, by (kind, namespace, name), and the change log watches read."""

from __future__ import annotations

import copy
import threading


class Store:
    """Objects by (kind, namespace, name), and the log of changes that watches read."""

    def __init__(self) -> None:
        self.lock = threading.RLock()
        self.changed = threading.Condition(self.lock)
        self.objects: dict[tuple[str, str, str], dict] = {}  # (kind, namespace, name) -> object
        self.events: list[
            tuple[int, str, str, str, dict]
        ] = []  # (rv, ADDED|MODIFIED|DELETED, kind, namespace, object)
        self.rv = 1
        self._ips = 0

    def put(self, key: tuple[str, str, str], obj: dict) -> None:
        with self.lock:
            previous = self.objects.get(key)
            self.objects[key] = obj
            if previous is None or previous["metadata"].get("resourceVersion") != obj[
                "metadata"
            ].get("resourceVersion"):
                self._event("ADDED" if previous is None else "MODIFIED", key, obj)

    def remove(self, key: tuple[str, str, str]) -> dict:
        with self.lock:
            obj = copy.deepcopy(self.objects.pop(key))
            obj["metadata"]["resourceVersion"] = self.next_rv()
            self._event("DELETED", key, obj)
            return obj

    def _event(self, kind: str, key: tuple[str, str, str], obj: dict) -> None:
        self.events.append(
            (int(obj["metadata"]["resourceVersion"]), kind, key[0], key[1], copy.deepcopy(obj))
        )
        del self.events[:-10000]
        self.changed.notify_all()

    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def next_cluster_ip(self) -> str:
        self._ips += 1
        return f"10.96.{self._ips // 250}.{self._ips % 250 + 1}"
