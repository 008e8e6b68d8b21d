"""FakeKubeAPI: a TEST DOUBLE of the Kubernetes API server, for driving the real
`kubectl` end to end on a machine where no real kube-apiserver can run.

It is NOT a Kubernetes API server. It is a small stdlib HTTP server (plain HTTP on
127.0.0.1, a random free port, no authentication, no TLS) that keeps objects as
JSON in memory and answers the requests the real kubectl 1.32 makes for:

- ``kubectl version -o json`` (``/version``). The kubectl here is Google Cloud
  SDK's dispatcher: before every command it asks ``/version?timeout=5s`` and runs
  the kubectl.1.MINOR it ships nearest to the server's version, so the
  ``server_version`` the fake reports (default v1.32.4) picks the real kubectl
  that runs. Servers v1.29 to v1.33 work with kubectl's defaults; with v1.27 or
  v1.28 the older kubectl validates against OpenAPI v2 (protobuf, not served
  here) and ``kubectl apply`` needs ``--validate=false``;
- ``kubectl get nodes [-l SELECTOR] -o json``, ``kubectl get node NAME -o json``,
  ``kubectl get services -A -o json`` (lists and gets, label and field selectors;
  plain ``kubectl get`` gets a small server-side Table: the usual columns for
  nodes, services, deployments and namespaces, NAME and AGE otherwise);
- ``kubectl label node NAME k=v`` (GET, then a merge PATCH);
- ``kubectl apply -k DIR``, client-side apply (GET, 404 -> POST; found -> a
  strategic-merge PATCH carrying the last-applied annotation; a second apply of
  the same tree patches nothing and kubectl prints "unchanged");
- ``kubectl rollout status deployment/NAME``: every Deployment is reported
  rolled out at once (status.observedGeneration == metadata.generation, all
  replica counts == spec.replicas, conditions Available and Progressing True);
  watches (``?watch=true``) stream ADDED/MODIFIED/DELETED events of the stored
  objects. ``kubectl wait --for=condition=Available``,
  ``kubectl apply --dry-run=client`` and ``kubectl delete -k`` work too (a
  deleted Namespace is ``Terminating`` until it is empty, or for 0.2 s, then
  goes with what is left in it).
- ``kubectl get pods -n NS -l SELECTOR -o json`` of the pods a test adds with
  ``add_pod`` (no controller makes pods from Deployments here), and
  ``kubectl exec -n NS POD [-c CONTAINER] -- cat PATH [PATH...]``. Exec runs
  NOTHING: there is no container and no process. ``cat`` prints the contents
  that ``add_pod(..., files={PATH: TEXT})`` gave the pod; a path not given gets
  ``cat: PATH: No such file or directory`` on stderr and exit code 1, as the real
  cat; any other command (or a ``cat`` option) gets a FakeKubeAPI message on
  stderr and exit code 126. The protocol is the one kubectl 1.30+ uses (checked
  with kubectl 1.30 to 1.33): it GETs the pod (an unknown pod is kubectl's own
  ``Error from server (NotFound): pods "X" not found``), then
  ``GET .../pods/NAME/exec?command=..&container=..&stdout=true&stderr=true`` as
  a WebSocket upgrade offering the subprotocol ``v5.channel.k8s.io``. The fake
  answers RFC 6455 101 (``v5`` or ``v4.channel.k8s.io``), sends unmasked binary
  frames whose first byte is the channel (1 stdout, 2 stderr, 3 the error
  channel: a ``Status``, ``Success`` or ``Failure``/``NonZeroExitCode`` with the
  exit code in ``details.causes``, which kubectl exits with after printing
  "command terminated with exit code N"), then, 0.2 s later, a close frame (1000); it answers
  pings, ignores stdin and v5 close signals (channel 255). A refused upgrade
  (unknown container, a pod not Running) answers a 400 ``Status``; kubectl
  then retries over SPDY (``POST``) and prints that same error. SPDY itself is
  not served (400 saying so): kubectl 1.29 and older (server_version v1.27 to
  v1.29 here) or ``KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false`` cannot exec.
  ``execs`` records (namespace, pod, container, command, subprotocol) of each.

What it serves for that: legacy (non-aggregated) discovery (``/api``, ``/apis``,
``/api/v1``, ``/apis/apps/v1``: requests for aggregated discovery get plain JSON,
and client-go falls back), and a minimal OpenAPI v3 (``/openapi/v3`` and one
document per group-version) that only says every PATCH accepts the
``fieldValidation`` query parameter, so kubectl's default ``--validate=strict``
defers validation to the "server" instead of fetching the OpenAPI v2 schema
(``/openapi/v2`` answers 404; kubectl then computes strategic merge patches from
its compiled-in types).

Resources: namespaces, nodes, services, pods (stored, plus ``exec``), configmaps, secrets
(stored only), deployments. Server-side behaviour it imitates: uid,
resourceVersion, creationTimestamp, generation (bumped when spec changes);
404 NotFound / 409 AlreadyExists / 422 Invalid as ``Status`` objects; creating a
namespaced object in a missing namespace is refused; Services get a clusterIP,
``protocol: TCP``, ``targetPort`` defaults and node ports (taken ports are
refused with 422 "provided port is already allocated", as the real one does;
range 30000-32767); a new Namespace is ``Active``. Seeded like a fresh cluster:
namespaces default, kube-system, kube-public, kube-node-lease and the Service
default/kubernetes (ClusterIP, no node port).

What it does NOT do: authentication/authorization, TLS, admission, defaulting
or validation beyond the above (``fieldValidation`` is accepted and ignored),
a real strategic merge patch (PATCH bodies are deep-merged, with the SMP
directives kubectl emits for these manifests: ``$setElementOrder``,
``$retainKeys``, ``$patch: delete/replace``, ``$deleteFromPrimitiveList``, and
list merge by the usual merge keys), JSON patch (``application/json-patch+json``
answers 415), server-side apply (``application/apply-patch+yaml`` answers 415),
bookmarks, "410 Gone" for old resource versions, controllers (no ReplicaSets or
Pods appear), garbage collection, finalizers, ``kubectl delete`` options (grace periods, propagation), server-side dry run
(``?dryRun=All`` answers 400, so ``--dry-run=server`` and ``kubectl diff`` do
not work), protobuf (JSON only), aggregated discovery, subresources other than
``status`` and ``exec``, logs/attach/port-forward/cp, exec of anything but
``cat`` (no container, process or shell; stdin is read and dropped, a TTY is
not emulated: ``-i``/``-t`` get the same canned output), exec over SPDY, pod lifecycle (a pod stays as ``add_pod`` left it).

Pytest fixtures here: ``kube_api`` (a started FakeKubeAPI, stopped after the
test), ``kubeconfig`` (a kubeconfig for it in tmp_path) and ``kubectl`` (runs the
real kubectl with that kubeconfig and a cache dir of the test's own; returns a
``KubectlResult`` with stdout, stderr, returncode, seconds and ``.json()``).
Import them into a test module, or list ``tests.kubefake`` in ``pytest_plugins``.

kubectl keeps a discovery and HTTP cache (``~/.kube/cache`` by default). Give
every kubectl call a fresh ``--cache-dir`` (or ``KUBECACHEDIR``, or a temp
``HOME``), or the cache of one test's server outlives it and leaks into the next.
"""

from __future__ import annotations

import base64
import copy
import datetime as _dt
import hashlib
import http.server
import json
import re
import select
import shutil
import socket
import subprocess
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import pytest

__all__ = ["FakeKubeAPI", "kube_api", "kubeconfig", "kubectl", "KubectlResult"]

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}

NODE_PORT_RANGE = (30000, 32767)


@dataclass(frozen=True)
class _Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[_Resource, ...] = (
    _Resource(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _Resource("", "v1", "nodes", "node", "Node", False, ("no",)),
    _Resource(
        "",
        "v1",
        "services",
        "service",
        "Service",
        True,
        ("svc",),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    _Resource("", "v1", "pods", "pod", "Pod", True, ("po",)),
    _Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    _Resource("", "v1", "secrets", "secret", "Secret", True),
    _Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",)),
)
_BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
_BY_KIND = {r.kind: r for r in RESOURCES}
_GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})

# Merge keys of the lists in these manifests (strategic merge patch), by field name.
_MERGE_KEYS = {
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


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _status(code: int, reason: str, message: str, details: dict | None = None) -> dict:
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


class _APIError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: dict | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.body = _status(code, reason, message, details)


def _not_found(res: _Resource, name: str) -> _APIError:
    return _APIError(
        404,
        "NotFound",
        f'{res.plural}{"." + res.group if res.group else ""} "{name}" not found',
        {"name": name, "group": res.group, "kind": res.plural},
    )


# ---------------------------------------------------------------- selectors
_SET_RE = re.compile(
    r"^\s*(!?)([A-Za-z0-9_./-]+)\s*(?:(==|=|!=)\s*([A-Za-z0-9_.-]*)|\s+(in|notin)\s*\(([^)]*)\))?\s*$"
)


def _split_selector(selector: str) -> list[str]:
    """Split at commas that are not inside parentheses."""
    parts, depth, cur = [], 0, ""
    for ch in selector:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur)
    return parts


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """The label selector syntax kubectl sends: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b)."""
    for term in _split_selector(selector or ""):
        m = _SET_RE.match(term)
        if not m:
            raise _APIError(400, "BadRequest", f"unable to parse requirement: {term!r}")
        neg, key, op, value, setop, values = m.groups()
        if neg:
            if op or setop:
                raise _APIError(400, "BadRequest", f"unable to parse requirement: {term!r}")
            if key in labels:
                return False
        elif op in ("=", "=="):
            if labels.get(key) != value:
                return False
        elif op == "!=":
            if labels.get(key) == value:
                return False
        elif setop:
            vals = {v.strip() for v in values.split(",") if v.strip()}
            if setop == "in" and labels.get(key) not in vals:
                return False
            if setop == "notin" and key in labels and labels[key] in vals:
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
    for term in _split_selector(selector or ""):
        m = re.match(r"^\s*([A-Za-z0-9_.]+)\s*(==|=|!=)\s*(.*?)\s*$", term)
        if not m:
            raise _APIError(400, "BadRequest", f"invalid field selector: {term!r}")
        path, op, value = m.groups()
        actual = _field_value(obj, path) or ""
        if (op == "!=") == (actual == value):
            return False
    return True


# ---------------------------------------------------------------- patches
def _merge_key_for(field: str | None, items: list) -> str | None:
    if field == "ports":
        if all(isinstance(i, dict) and "containerPort" in i for i in items):
            return "containerPort"
        if all(isinstance(i, dict) and "port" in i for i in items):
            return "port"
        return None
    return _MERGE_KEYS.get(field or "")


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


# ---------------------------------------------------------------- the store
class _Store:
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


class FakeKubeAPI:
    """A test double of the Kubernetes API server (no real one can run here).

    Plain HTTP on 127.0.0.1 at a random free port; see the module docstring for
    what it implements and what it does not. ``requests`` records (method, path)
    of every request in order; the path keeps its query string. ``execs`` records
    (namespace, pod, container, command, subprotocol) of every exec that got
    its WebSocket upgrade.
    """

    def __init__(self, *, server_version: str = SERVER_VERSION["gitVersion"]) -> None:
        """``server_version`` ("v1.MINOR.PATCH..."): what /version reports. The
        kubectl here is Google Cloud SDK's dispatcher: it asks /version first and
        runs the kubectl.1.MINOR it ships nearest to the server's version."""
        m = re.match(r"^v?(\d+)\.(\d+)\.(\d+)(.*)$", server_version)
        if not m:
            raise ValueError(f"server_version must look like v1.32.4, not {server_version!r}")
        self.server_version = dict(
            SERVER_VERSION, major=m[1], minor=m[2], gitVersion=f"v{m[1]}.{m[2]}.{m[3]}{m[4]}"
        )
        self._store = _Store()
        self._httpd: http.server.ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._timers: list[threading.Timer] = []
        self.requests: list[tuple[str, str]] = []
        self._requests_lock = threading.Lock()
        self._pod_files: dict[
            tuple[str, str], dict[str, str]
        ] = {}  # (namespace, pod) -> path -> content
        self.execs: list[
            tuple[str, str, str, tuple[str, ...], str]
        ] = []  # (namespace, pod, container, command, protocol)
        self.url = ""
        self._seed()

    # ---------------------------------------------------------- lifecycle
    def start(self) -> None:
        if self._httpd is not None:
            return
        api = self

        class Handler(_Handler):
            fake = api

        self._stopping.clear()
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(
            target=self._httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="FakeKubeAPI",
            daemon=True,
        )
        self._thread.start()

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._stopping.set()
        with self._store.changed:
            self._store.changed.notify_all()  # wake the watches
        for timer in self._timers:
            timer.cancel()
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> FakeKubeAPI:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---------------------------------------------------------- test-facing API
    def write_kubeconfig(self, path: Path, context: str = "fake") -> Path:
        """Write a kubeconfig whose current context points kubectl at this server
        (``server: http://127.0.0.1:PORT``, no credentials) and return its path.

        kubectl also keeps a discovery/HTTP cache, by default in ~/.kube/cache:
        run it with a fresh ``--cache-dir`` (or ``KUBECACHEDIR``, or ``HOME``) per
        test, or one test's cache outlives its server.
        """
        if not self.url:
            raise RuntimeError("start() the FakeKubeAPI before writing a kubeconfig for it")
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": context, "cluster": {"server": self.url}}],
            "users": [{"name": context, "user": {}}],
            "contexts": [{"name": context, "context": {"cluster": context, "user": context}}],
            "current-context": context,
            "preferences": {},
        }
        path.write_text(json.dumps(config, indent=2) + "\n")  # JSON is YAML
        path.chmod(0o600)
        return path

    def add_node(
        self,
        name: str,
        *,
        labels: dict[str, str] | None = None,
        internal_ip: str | None = None,
        hostname: str | None = None,
    ) -> None:
        """A Ready node with the usual kubernetes.io labels plus ``labels``."""
        all_labels = {
            "beta.kubernetes.io/arch": "amd64",
            "beta.kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "kubernetes.io/hostname": hostname or name,
            "kubernetes.io/os": "linux",
        }
        all_labels.update(labels or {})
        addresses = []
        if internal_ip:
            addresses.append({"type": "InternalIP", "address": internal_ip})
        addresses.append({"type": "Hostname", "address": hostname or name})
        node = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {"name": name, "labels": all_labels},
            "spec": {},
            "status": {
                "addresses": addresses,
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "KubeletReady",
                        "message": "kubelet is posting ready status",
                        "lastHeartbeatTime": _now(),
                        "lastTransitionTime": _now(),
                    }
                ],
                "nodeInfo": {
                    "kubeletVersion": self.server_version["gitVersion"],
                    "containerRuntimeVersion": "containerd://1.7.0",
                    "operatingSystem": "linux",
                    "architecture": "amd64",
                    "osImage": "Fake Linux",
                    "kernelVersion": "6.1.0",
                    "kubeProxyVersion": self.server_version["gitVersion"],
                    "machineID": "",
                    "systemUUID": "",
                    "bootID": "",
                },
                "capacity": {"cpu": "2", "memory": "24Gi", "pods": "110"},
                "allocatable": {"cpu": "2", "memory": "24Gi", "pods": "110"},
            },
        }
        with self._store.lock:
            self._create(_BY_KIND["Node"], "", node, replace=True)

    def add_service(self, namespace: str, name: str, node_ports: list[int]) -> None:
        """A NodePort Service holding ``node_ports`` (creates the namespace if needed)."""
        with self._store.lock:
            if ("Namespace", "", namespace) not in self._store.objects:
                self._create(
                    _BY_KIND["Namespace"],
                    "",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                )
            svc = {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": name, "namespace": namespace, "labels": {"app": name}},
                "spec": {
                    "type": "NodePort" if node_ports else "ClusterIP",
                    "selector": {"app": name},
                    "ports": [
                        {"name": f"p{n}", "port": 10000 + n % 10000, "nodePort": n}
                        for n in node_ports
                    ]
                    or [{"port": 80}],
                },
            }
            self._create(_BY_KIND["Service"], namespace, svc)

    def add_pod(
        self,
        namespace: str,
        name: str,
        *,
        labels: dict[str, str],
        node_name: str | None = None,
        containers: tuple[str, ...] | list[str] = ("elasticsearch",),
        phase: str = "Running",
        files: dict[str, str] | None = None,
    ) -> None:
        """A pod as a kubelet would report it (creates the namespace if needed):
        ``status.phase`` (Running by default; then every container is ready and
        running, else none is), ``spec.nodeName``, one container per name in
        ``containers``. ``files`` is the pod's fake filesystem, shared by its
        containers: what ``kubectl exec POD -- cat PATH...`` prints. Nothing runs:
        no process, no /proc but the files given here. Adding a pod of the same
        name again replaces it (and its files)."""
        if not containers:
            raise ValueError("a pod has at least one container")
        now = _now()
        running = phase == "Running"
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": namespace, "labels": dict(labels)},
            "spec": {
                "containers": [{"name": c, "image": f"fake/{c}:latest"} for c in containers],
                "restartPolicy": "Always",
                **({"nodeName": node_name} if node_name else {}),
            },
            "status": {
                "phase": phase,
                "conditions": [
                    {"type": t, "status": "True" if running else "False", "lastTransitionTime": now}
                    for t in ("Initialized", "Ready", "ContainersReady", "PodScheduled")
                ],
                "containerStatuses": [
                    {
                        "name": c,
                        "ready": running,
                        "started": running,
                        "restartCount": 0,
                        "image": f"fake/{c}:latest",
                        "imageID": "",
                        "containerID": f"containerd://{uuid.uuid4().hex}",
                        "state": {"running": {"startedAt": now}}
                        if running
                        else {"waiting": {"reason": "ContainerCreating"}},
                    }
                    for c in containers
                ],
                **(
                    {"hostIP": "10.200.0.1", "podIP": "10.244.0.10", "startTime": now}
                    if running
                    else {}
                ),
            },
        }
        with self._store.lock:
            if ("Namespace", "", namespace) not in self._store.objects:
                self._create(
                    _BY_KIND["Namespace"],
                    "",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}},
                )
            self._create(_BY_KIND["Pod"], namespace, pod, replace=True)
            self._pod_files[(namespace, name)] = dict(files or {})

    def objects(self, kind: str | None = None, namespace: str | None = None) -> list[dict]:
        """Copies of the stored objects (seeded ones included), optionally of one
        kind and/or namespace, ordered by kind, namespace, name."""
        with self._store.lock:
            return [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(self._store.objects.items())
                if (kind is None or k == kind) and (namespace is None or ns == namespace)
            ]

    def get_object(self, kind: str, name: str, namespace: str = "") -> dict | None:
        with self._store.lock:
            obj = self._store.objects.get((kind, namespace, name))
            return copy.deepcopy(obj) if obj else None

    def _exec_log(
        self, namespace: str, pod: str, container: str, command: tuple[str, ...], protocol: str
    ) -> None:
        with self._requests_lock:
            self.execs.append((namespace, pod, container, command, protocol))

    def clear_requests(self) -> None:
        with self._requests_lock:
            self.requests.clear()

    # ---------------------------------------------------------- internals
    def _record(self, method: str, path: str) -> None:
        with self._requests_lock:
            self.requests.append((method, path))

    def _seed(self) -> None:
        for ns in ("default", "kube-system", "kube-public", "kube-node-lease"):
            self._create(
                _BY_KIND["Namespace"],
                "",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            )
        self._create(
            _BY_KIND["Service"],
            "default",
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {
                    "name": "kubernetes",
                    "namespace": "default",
                    "labels": {"component": "apiserver", "provider": "kubernetes"},
                },
                "spec": {
                    "type": "ClusterIP",
                    "ports": [{"name": "https", "port": 443, "targetPort": 6443}],
                },
            },
        )

    def _used_node_ports(self, exclude: tuple[str, str] | None) -> dict[int, str]:
        used = {}
        for (kind, ns, name), obj in self._store.objects.items():
            if kind != "Service" or (ns, name) == exclude:
                continue
            for port in obj.get("spec", {}).get("ports", []) or []:
                if port.get("nodePort"):
                    used[int(port["nodePort"])] = f"{ns}/{name}"
        return used

    def _prepare_service(self, svc: dict, previous: dict | None) -> None:
        """Defaults and node port allocation, like the real API server."""
        spec = svc.setdefault("spec", {})
        spec.setdefault("type", "ClusterIP")
        spec.setdefault("sessionAffinity", "None")
        if spec["type"] != "ExternalName":
            ip = (
                (previous or {}).get("spec", {}).get("clusterIP")
                or spec.get("clusterIP")
                or self._store.next_cluster_ip()
            )
            spec["clusterIP"] = ip
            spec["clusterIPs"] = [ip]
        meta = svc["metadata"]
        used = self._used_node_ports((meta.get("namespace", ""), meta["name"]))
        errors = []
        for i, port in enumerate(spec.get("ports", []) or []):
            port.setdefault("protocol", "TCP")
            port.setdefault("targetPort", port.get("port"))
            if spec["type"] in ("NodePort", "LoadBalancer"):
                if not port.get("nodePort"):
                    taken = set(used) | {p.get("nodePort") for p in spec["ports"]}
                    port["nodePort"] = next(
                        n
                        for n in range(NODE_PORT_RANGE[0], NODE_PORT_RANGE[1] + 1)
                        if n not in taken
                    )
                n = int(port["nodePort"])
                if not NODE_PORT_RANGE[0] <= n <= NODE_PORT_RANGE[1]:
                    errors.append(
                        f"spec.ports[{i}].nodePort: Invalid value: {n}: provided port is not in the valid range. "
                        f"The range of valid ports is {NODE_PORT_RANGE[0]}-{NODE_PORT_RANGE[1]}"
                    )
                elif n in used:
                    errors.append(
                        f"spec.ports[{i}].nodePort: Invalid value: {n}: provided port is already allocated"
                    )
            elif port.get("nodePort"):
                errors.append(
                    f"spec.ports[{i}].nodePort: Forbidden: may not be used when `type` is '{spec['type']}'"
                )
        if errors:
            raise _APIError(
                422,
                "Invalid",
                f'Service "{meta["name"]}" is invalid: ' + ", ".join(errors),
                {
                    "name": meta["name"],
                    "kind": "Service",
                    "causes": [
                        {
                            "reason": "FieldValueInvalid",
                            "message": e.split(": ", 1)[1],
                            "field": e.split(":", 1)[0],
                        }
                        for e in errors
                    ],
                },
            )

    @staticmethod
    def _deployment_status(dep: dict) -> None:
        replicas = dep.get("spec", {}).get("replicas", 1)
        now = _now()
        dep["status"] = {
            "observedGeneration": dep["metadata"].get("generation", 1),
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": replicas,
            "availableReplicas": replicas,
            "conditions": [
                {
                    "type": "Available",
                    "status": "True",
                    "reason": "MinimumReplicasAvailable",
                    "message": "Deployment has minimum availability.",
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
                {
                    "type": "Progressing",
                    "status": "True",
                    "reason": "NewReplicaSetAvailable",
                    "message": f'ReplicaSet "{dep["metadata"]["name"]}-fake" has successfully progressed.',
                    "lastUpdateTime": now,
                    "lastTransitionTime": now,
                },
            ],
        }
        if replicas == 0:
            for key in ("readyReplicas", "availableReplicas", "updatedReplicas", "replicas"):
                dep["status"].pop(key)

    def _finish(self, res: _Resource, obj: dict, previous: dict | None) -> dict:
        """Server-side fields after a create or an update."""
        meta = obj.setdefault("metadata", {})
        meta.pop("generateName", None)
        if previous is None:
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = _now()
        else:
            for key in ("uid", "creationTimestamp"):
                meta[key] = previous["metadata"][key]
        obj["apiVersion"] = res.group_version
        obj["kind"] = res.kind
        if res.kind == "Service":
            self._prepare_service(obj, previous)
        if res.kind == "Namespace":
            obj.setdefault("spec", {"finalizers": ["kubernetes"]})
            obj["status"] = {"phase": "Active"}
            meta.setdefault("labels", {})["kubernetes.io/metadata.name"] = meta["name"]
        if res.kind == "Deployment":
            if previous is None:
                meta["generation"] = 1
            else:
                meta["generation"] = previous["metadata"].get("generation", 1) + (
                    1 if obj.get("spec") != previous.get("spec") else 0
                )
            self._deployment_status(obj)
        if previous is not None and _without_rv(obj) == _without_rv(previous):
            meta["resourceVersion"] = previous["metadata"]["resourceVersion"]
        else:
            meta["resourceVersion"] = self._store.next_rv()
        return obj

    NAMESPACE_FINALIZE_SECONDS = 0.2

    def _delete_namespace(self, name: str) -> dict:
        """Like the real server: a namespace with content turns Terminating, its
        content goes (after NAMESPACE_FINALIZE_SECONDS, or as soon as it is
        empty), then the namespace itself."""
        store = self._store
        key = ("Namespace", "", name)
        ns = store.objects[key]
        if not any(k[1] == name for k in store.objects):
            return store.remove(key)
        if "deletionTimestamp" not in ns["metadata"]:
            ns = copy.deepcopy(ns)
            ns["metadata"]["deletionTimestamp"] = _now()
            ns["status"] = {"phase": "Terminating"}
            ns["metadata"]["resourceVersion"] = store.next_rv()
            store.put(key, ns)
            timer = threading.Timer(
                self.NAMESPACE_FINALIZE_SECONDS, self._finalize_namespace, args=(name,)
            )
            timer.daemon = True
            self._timers.append(timer)
            timer.start()
        return copy.deepcopy(ns)

    def _finalize_namespace(self, name: str) -> None:
        with self._store.lock:
            ns = self._store.objects.get(("Namespace", "", name))
            if ns is None or "deletionTimestamp" not in ns["metadata"]:
                return
            for key in [k for k in self._store.objects if k[1] == name]:
                self._store.remove(key)
            self._store.remove(("Namespace", "", name))

    def _finalize_namespace_if_empty(self, name: str) -> None:
        ns = self._store.objects.get(("Namespace", "", name))
        if (
            ns is not None
            and "deletionTimestamp" in ns["metadata"]
            and not any(k[1] == name for k in self._store.objects)
        ):
            self._store.remove(("Namespace", "", name))

    def _create(self, res: _Resource, namespace: str, obj: dict, replace: bool = False) -> dict:
        meta = obj.setdefault("metadata", {})
        name = meta.get("name")
        if not name and meta.get("generateName"):
            name = meta["generateName"] + uuid.uuid4().hex[:5]
            meta["name"] = name
        if not name:
            raise _APIError(
                422,
                "Invalid",
                f"{res.kind} is invalid: metadata.name: Required value: name or generateName is required",
            )
        if res.namespaced:
            if meta.get("namespace") and meta["namespace"] != namespace:
                raise _APIError(
                    400,
                    "BadRequest",
                    "the namespace of the provided object does not match the namespace sent on the request",
                )
            meta["namespace"] = namespace
            ns_obj = self._store.objects.get(("Namespace", "", namespace))
            if ns_obj is None:
                raise _APIError(
                    404,
                    "NotFound",
                    f'namespaces "{namespace}" not found',
                    {"name": namespace, "kind": "namespaces"},
                )
            if "deletionTimestamp" in ns_obj["metadata"]:
                raise _APIError(
                    403,
                    "Forbidden",
                    f'{res.plural}{"." + res.group if res.group else ""} "{name}" is forbidden: '
                    f"unable to create new content in namespace {namespace} because it is being terminated",
                    {
                        "name": name,
                        "group": res.group,
                        "kind": res.plural,
                        "causes": [
                            {
                                "reason": "NamespaceTerminating",
                                "field": "metadata.namespace",
                                "message": f"namespace {namespace} is being terminated",
                            }
                        ],
                    },
                )
        else:
            meta.pop("namespace", None)
        key = (res.kind, namespace if res.namespaced else "", name)
        if key in self._store.objects and not replace:
            raise _APIError(
                409,
                "AlreadyExists",
                f'{res.plural}{"." + res.group if res.group else ""} "{name}" already exists',
                {"name": name, "group": res.group, "kind": res.plural},
            )
        obj = self._finish(res, obj, None)
        self._store.put(key, obj)
        return obj


def _without_rv(obj: dict) -> dict:
    o = copy.deepcopy(obj)
    o.get("metadata", {}).pop("resourceVersion", None)
    if o.get("kind") == "Deployment":  # its status is recomputed (timestamps) on every write
        o.pop("status", None)
    return o


# ---------------------------------------------------------------- kubectl exec: WebSocket and the fake command
_WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455
# Preferred first. v5 adds the close signal (channel 255) a client sends when its
# stdin ends; v4 carries the exit code on the error channel (3) like v5.
_EXEC_PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
_CHUNK = 32 * 1024


def _ws_frame(opcode: int, payload: bytes) -> bytes:
    """One final, unmasked frame (a server never masks)."""
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 1 << 16:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def _ws_read_frame(rfile: BinaryIO) -> tuple[int, bytes] | None:
    """(opcode, unmasked payload) of the next client frame; None at EOF."""
    head = rfile.read(2)
    if len(head) < 2:
        return None
    opcode, masked, n = head[0] & 0x0F, head[1] & 0x80, head[1] & 0x7F
    if n == 126:
        n = int.from_bytes(rfile.read(2), "big")
    elif n == 127:
        n = int.from_bytes(rfile.read(8), "big")
    mask = rfile.read(4) if masked else b""
    payload = rfile.read(n)
    if masked:
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return opcode, payload


EXEC_CLOSE_PAUSE = 0.2  # seconds between an exec's status and the server's close frame


def _ws_await_close(rfile: BinaryIO, wfile: Any, conn: socket.socket, timeout: float) -> None:
    """After our close frame: answer pings, ignore data (stdin, v5 close signals),
    stop at the client's close frame, EOF or ``timeout``."""
    deadline = time.monotonic() + timeout
    try:
        while (left := deadline - time.monotonic()) > 0:
            conn.settimeout(
                left
            )  # the connection is closed after this: a timed-out read may lose bytes
            frame = _ws_read_frame(rfile)
            if frame is None or frame[0] == 0x8:
                return
            if frame[0] == 0x9:  # ping -> pong
                wfile.write(_ws_frame(0xA, frame[1]))
                wfile.flush()
    except TimeoutError:
        return


def _fake_command(
    command: tuple[str, ...], files: dict[str, str]
) -> tuple[list[bytes], list[bytes], int]:
    """(stdout chunks, stderr chunks, exit code) of ``command`` in a pod whose
    filesystem is ``files``. Only ``cat PATH...`` is served."""
    if (
        not command
        or command[0].rsplit("/", 1)[-1] != "cat"
        or any(a.startswith("-") and a != "-" for a in command[1:])
    ):
        message = (
            f"FakeKubeAPI: exec runs nothing; it serves only `cat PATH...` from the files given to "
            f"add_pod, not {' '.join(command)!r}\n"
        )
        return [], [message.encode()], 126
    out: list[bytes] = []
    err: list[bytes] = []
    code = 0
    for path in command[1:]:
        if path in files:
            data = files[path].encode()
            out += [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)]
        else:
            err.append(f"cat: {path}: No such file or directory\n".encode())
            code = 1
    return out, err, code


# ---------------------------------------------------------------- HTTP
class _Handler(http.server.BaseHTTPRequestHandler):
    fake: FakeKubeAPI
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = (
        True  # headers and body go out in two writes: no 40 ms delayed-ACK stalls
    )
    server_version = "FakeKubeAPI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - silence stderr
        pass

    # -- plumbing
    def _send(self, code: int, body: Any) -> None:
        if isinstance(body, bytes):
            data, content_type = body, "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(body).encode(), "application/json"
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _drain_body(self) -> bytes:
        """Read the whole request body (every method: a DELETE carries one too),
        so that nothing is left on a kept-alive connection."""
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raw = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return raw
                raw += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _read_body(self) -> Any:
        raw = self._body
        if not raw:
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise _APIError(400, "BadRequest", f"the body is not JSON: {exc}") from None

    def _dispatch(self) -> None:
        self.fake._record(self.command, self.path)
        try:
            self._body = self._drain_body()
            url = urllib.parse.urlsplit(self.path)
            query = {
                k: v[-1]
                for k, v in urllib.parse.parse_qs(url.query, keep_blank_values=True).items()
            }
            code, body = self._route(url.path.rstrip("/") or "/", query)
            if code == -1:
                return  # already answered (watch)
            self._send(code, body)
        except _APIError as err:
            self._send(err.code, err.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - a test double answers 500, like a server
            self._send(
                500, _status(500, "InternalError", f"FakeKubeAPI: {type(exc).__name__}: {exc}")
            )

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _dispatch

    # -- routing
    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path in ("/version", "/version/"):
            return 200, self.fake.server_version
        if path in ("/healthz", "/livez", "/readyz"):
            return 200, b"ok"
        if path == "/api":
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        if path == "/apis":
            return 200, _api_group_list()
        if path == "/openapi/v3":
            return 200, _openapi_v3_root()
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/") :]
            doc = _openapi_v3_doc(gv)
            if doc is None:
                raise _APIError(404, "NotFound", f"no OpenAPI v3 document for {gv}")
            return 200, doc
        m = re.match(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))(?P<rest>/.*)?$", path)
        if not m:
            if path.startswith("/apis/") and path.count("/") == 2:
                group = path.split("/")[2]
                if any(r.group == group for r in RESOURCES):
                    return 200, _api_group(group)
            raise _APIError(404, "NotFound", "the server could not find the requested resource")
        group, version = ("", m["cv"]) if m["cv"] else (m["g"], m["v"])
        if (group, version) not in _GROUP_VERSIONS:
            raise _APIError(404, "NotFound", "the server could not find the requested resource")
        rest = [p for p in (m["rest"] or "").split("/") if p]
        if not rest:
            if self.command != "GET":
                raise _APIError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            return 200, _resource_list(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace = urllib.parse.unquote(rest[1])
            rest = rest[2:]
        res = _BY_PATH.get((group, version, rest[0]))
        if res is None or (namespace and not res.namespaced):
            raise _APIError(404, "NotFound", "the server could not find the requested resource")
        name = urllib.parse.unquote(rest[1]) if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub == "exec" and res.kind == "Pod" and len(rest) == 3:
            self._exec(namespace, name)
            return -1, None
        if sub not in (None, "status"):
            raise _APIError(
                404, "NotFound", f"the server could not find the requested resource ({sub})"
            )
        return self._resource(res, namespace, name, query)

    def _resource(
        self, res: _Resource, namespace: str, name: str | None, query: dict[str, str]
    ) -> tuple[int, Any]:
        store = self.fake._store
        method = self.command
        ns_key = namespace if res.namespaced else ""
        if name is None:
            if method == "GET":
                if query.get("watch") in ("1", "true"):
                    self._watch(res, namespace, query)
                    return -1, None
                return 200, self._list(res, namespace, query)
            if method == "POST":
                if query.get("dryRun"):
                    raise _APIError(
                        400, "BadRequest", "FakeKubeAPI: server-side dry run is not implemented"
                    )
                body = self._read_body()
                if not isinstance(body, dict):
                    raise _APIError(400, "BadRequest", "the body of a create must be an object")
                if body.get("kind") and body["kind"] != res.kind:
                    raise _APIError(
                        400, "BadRequest", f"the kind {body['kind']!r} does not match {res.plural}"
                    )
                if res.namespaced and not namespace:
                    namespace = body.get("metadata", {}).get("namespace") or "default"
                with store.lock:
                    return 201, copy.deepcopy(self.fake._create(res, namespace, body))
            raise _APIError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        key = (res.kind, ns_key, name)
        with store.lock:
            current = store.objects.get(key)
            if method in ("GET", "HEAD"):
                if current is None:
                    raise _not_found(res, name)
                return 200, copy.deepcopy(current)
            if method == "DELETE":
                if current is None:
                    raise _not_found(res, name)
                if res.kind == "Namespace":
                    return 200, self.fake._delete_namespace(name)
                gone = store.remove(key)
                if res.namespaced:
                    self.fake._finalize_namespace_if_empty(namespace)
                return 200, gone
            if method == "PUT":
                body = self._read_body()
                if current is None:
                    raise _not_found(res, name)
                return 200, self._update(res, key, current, body)
            if method == "PATCH":
                if query.get("dryRun"):
                    raise _APIError(
                        400, "BadRequest", "FakeKubeAPI: server-side dry run is not implemented"
                    )
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                body = self._read_body()
                if current is None:
                    raise _not_found(res, name)
                if ctype == "application/strategic-merge-patch+json":
                    new = strategic_merge(current, body or {})
                elif ctype == "application/merge-patch+json":
                    new = json_merge_patch(current, body or {})
                else:
                    raise _APIError(
                        415,
                        "UnsupportedMediaType",
                        f"FakeKubeAPI: the patch type {ctype!r} is not implemented",
                    )
                return 200, self._update(res, key, current, new)
        raise _APIError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    # -- kubectl exec
    def _exec(self, namespace: str, name: str) -> None:
        """``POST|GET .../pods/NAME/exec?command=..&container=..&stdout=true&stderr=true``
        upgraded to a WebSocket (what kubectl 1.30+ does; it falls back to SPDY
        only when the upgrade is refused, and SPDY is not served here). Nothing
        runs: ``cat PATH...`` is answered from the files given to ``add_pod``."""
        params = urllib.parse.parse_qs(
            urllib.parse.urlsplit(self.path).query, keep_blank_values=True
        )
        command = tuple(params.get("command", []))

        def flag(key: str) -> bool:
            return (params.get(key) or ["false"])[-1].lower() in ("1", "true")

        with self.fake._store.lock:
            pod = copy.deepcopy(self.fake._store.objects.get(("Pod", namespace, name)))
            files = dict(self.fake._pod_files.get((namespace, name), {}))
        if pod is None:
            raise _not_found(_BY_KIND["Pod"], name)
        names = [c["name"] for c in pod["spec"].get("containers", [])]
        container = (params.get("container") or [""])[-1]
        if not container:
            if len(names) != 1:
                raise _APIError(
                    400,
                    "BadRequest",
                    f"a container name must be specified for pod {name}, "
                    f"choose one of: [{' '.join(names)}]",
                )
            container = names[0]
        if container not in names:
            raise _APIError(400, "BadRequest", f"container {container} is not valid for pod {name}")
        phase = pod.get("status", {}).get("phase")
        if phase != "Running":
            raise _APIError(
                400,
                "BadRequest",
                f"FakeKubeAPI: pod {name} is not running (phase {phase}): cannot exec into it",
            )
        if not command:
            raise _APIError(400, "BadRequest", "you must specify at least 1 command")
        upgrade = (self.headers.get("Upgrade") or "").lower()
        if upgrade != "websocket":
            raise _APIError(
                400,
                "BadRequest",
                f"FakeKubeAPI: exec is served over WebSocket only (v4/v5.channel.k8s.io), not "
                f"{self.headers.get('Upgrade') or 'a plain request'}; kubectl 1.30+ uses WebSockets "
                "unless KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false",
            )
        offered = [
            p.strip()
            for h in self.headers.get_all("Sec-WebSocket-Protocol") or []
            for p in h.split(",")
        ]
        protocol = next((p for p in _EXEC_PROTOCOLS if p in offered), None)
        key = self.headers.get("Sec-WebSocket-Key")
        if protocol is None or not key:
            raise _APIError(
                400,
                "BadRequest",
                "FakeKubeAPI: exec needs a WebSocket handshake offering one of "
                f"{', '.join(_EXEC_PROTOCOLS)} (offered: {', '.join(offered) or 'none'})",
            )
        self.fake._exec_log(namespace, name, container, command, protocol)
        stdout, stderr, code = _fake_command(command, files)
        accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
        self.send_response(101, "Switching Protocols")
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", protocol)
        self.end_headers()
        self.close_connection = True
        try:
            frames = []
            if flag("stdout"):
                frames += [_ws_frame(0x2, bytes([1]) + chunk) for chunk in stdout]
            if flag("stderr"):
                frames += [_ws_frame(0x2, bytes([2]) + chunk) for chunk in stderr]
            if code == 0:
                status: dict[str, Any] = {"metadata": {}, "status": "Success"}
            else:
                status = {
                    "metadata": {},
                    "status": "Failure",
                    "message": f"command terminated with non-zero exit code: error executing command "
                    f"[{' '.join(command)}], exit code {code}",
                    "reason": "NonZeroExitCode",
                    "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
                }
            frames.append(_ws_frame(0x2, bytes([3]) + json.dumps(status).encode()))
            self.wfile.write(b"".join(frames))
            self.wfile.flush()
            # A command in a real pod takes a while; kubectl (client-go) fails the exec with
            # "closed all streams" when the close arrives before it has set up its streams, which
            # an instant close made possible here on a loaded machine. kubectl waits for the
            # server's close, so it comes after a pause (or at once if the client goes first).
            select.select([self.connection], [], [], EXEC_CLOSE_PAUSE)
            self.wfile.write(_ws_frame(0x8, (1000).to_bytes(2, "big")))  # close: normal closure
            self.wfile.flush()
            _ws_await_close(self.rfile, self.wfile, self.connection, timeout=2.0)
        except OSError:
            pass

    def _update(self, res: _Resource, key: tuple[str, str, str], current: dict, new: Any) -> dict:
        if not isinstance(new, dict):
            raise _APIError(400, "BadRequest", "the object must be a JSON object")
        new.setdefault("metadata", {})
        if new["metadata"].get("name", key[2]) != key[2]:
            raise _APIError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        new["metadata"]["name"] = key[2]
        if res.namespaced:
            new["metadata"]["namespace"] = key[1]
        rv = new["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise _APIError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.plural} "{key[2]}": '
                "the object has been modified; please apply your changes to the latest version and try again",
            )
        obj = self.fake._finish(res, new, current)
        self.fake._store.put(key, obj)
        return copy.deepcopy(obj)

    def _list(self, res: _Resource, namespace: str, query: dict[str, str]) -> dict:
        store = self.fake._store
        with store.lock:
            items = [
                copy.deepcopy(o)
                for (k, ns, _), o in sorted(store.objects.items())
                if k == res.kind
                and (not namespace or ns == namespace)
                and label_selector_matches(
                    query.get("labelSelector", ""), o["metadata"].get("labels") or {}
                )
                and field_selector_matches(query.get("fieldSelector", ""), o)
            ]
            rv = str(store.rv)
        if "as=Table" in (self.headers.get("Accept") or ""):
            return _table(res.kind, items, rv)
        for item in items:  # list items carry no kind/apiVersion on a real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.group_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _watch(self, res: _Resource, namespace: str, query: dict[str, str]) -> None:
        """A watch: the changes after ``resourceVersion`` (all current objects as
        ADDED first when it is absent or "0"), as JSON lines in a chunked response,
        until ``timeoutSeconds`` (at most 300), the client hangs up or the server stops."""
        store = self.fake._store
        labels_sel, fields_sel = query.get("labelSelector", ""), query.get("fieldSelector", "")

        def wanted(kind: str, ns: str, obj: dict) -> bool:
            return (
                kind == res.kind
                and (not namespace or ns == namespace)
                and label_selector_matches(labels_sel, obj["metadata"].get("labels") or {})
                and field_selector_matches(fields_sel, obj)
            )

        with store.lock:  # selectors are checked before the 200 goes out
            since_raw = query.get("resourceVersion") or "0"
            backlog: list[tuple[str, dict]] = []
            if since_raw == "0":
                backlog = [
                    ("ADDED", copy.deepcopy(o))
                    for (k, ns, _), o in sorted(store.objects.items())
                    if wanted(k, ns, o)
                ]
                since = store.rv
            else:
                try:
                    since = int(since_raw)
                except ValueError:
                    raise _APIError(
                        400, "BadRequest", f"invalid resourceVersion {since_raw!r}"
                    ) from None
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.end_headers()
        self.wfile.flush()
        try:
            limit = min(float(query.get("timeoutSeconds") or 300), 300.0)
        except ValueError:
            limit = 300.0
        deadline = time.monotonic() + limit

        def send(kind: str, obj: dict) -> None:
            line = json.dumps({"type": kind, "object": obj}).encode() + b"\n"
            self.wfile.write(b"%x\r\n%s\r\n" % (len(line), line))
            self.wfile.flush()

        try:
            for kind, obj in backlog:
                send(kind, obj)
            while time.monotonic() < deadline and not self.fake._stopping.is_set():
                with store.changed:
                    pending = [
                        (rv, kind, o)
                        for rv, kind, k, ns, o in store.events
                        if rv > since and wanted(k, ns, o)
                    ]
                    if not pending:
                        store.changed.wait(0.05)
                        pending = [
                            (rv, kind, o)
                            for rv, kind, k, ns, o in store.events
                            if rv > since and wanted(k, ns, o)
                        ]
                    since = max([since] + [rv for rv, _, _, _, _ in store.events])
                for _, kind, obj in pending:
                    send(kind, copy.deepcopy(obj))
                readable, _, _ = select.select([self.connection], [], [], 0)
                if readable and not self.connection.recv(1, socket.MSG_PEEK):
                    break  # the client hung up
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            pass
        self.close_connection = True


# ---------------------------------------------------------------- discovery and OpenAPI documents
def _api_group(group: str) -> dict:
    versions = [
        {"groupVersion": f"{group}/{v}", "version": v} for g, v in _GROUP_VERSIONS if g == group
    ]
    return {
        "kind": "APIGroup",
        "apiVersion": "v1",
        "name": group,
        "versions": versions,
        "preferredVersion": versions[0],
    }


def _api_group_list() -> dict:
    groups = sorted({g for g, _ in _GROUP_VERSIONS if g})
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [
            {k: v for k, v in _api_group(g).items() if k not in ("kind", "apiVersion")}
            for g in groups
        ],
    }


def _resource_list(group: str, version: str) -> dict:
    resources = []
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        entry = {
            "name": r.plural,
            "singularName": r.singular,
            "namespaced": r.namespaced,
            "kind": r.kind,
            "verbs": list(r.verbs),
        }
        if r.short_names:
            entry["shortNames"] = list(r.short_names)
        if r.kind in ("Deployment", "Pod", "Service", "ConfigMap", "Secret"):
            entry["categories"] = ["all"] if r.kind not in ("ConfigMap", "Secret") else []
        resources.append(entry)
        if r.kind in ("Deployment", "Node", "Namespace", "Pod", "Service"):
            resources.append(
                {
                    "name": f"{r.plural}/status",
                    "singularName": "",
                    "namespaced": r.namespaced,
                    "kind": r.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }


def _gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _openapi_v3_root() -> dict:
    return {
        "paths": {
            _gv_path(g, v): {
                "serverRelativeURL": f"/openapi/v3/{_gv_path(g, v)}?hash=FAKE{g.upper()}{v.upper()}"
            }
            for g, v in _GROUP_VERSIONS
        }
    }


def _openapi_v3_doc(gv_path: str) -> dict | None:
    """Just enough OpenAPI v3 for kubectl to see that the server accepts
    ?fieldValidation= on PATCH (so it does not validate client-side)."""
    match = [(g, v) for g, v in _GROUP_VERSIONS if _gv_path(g, v) == gv_path]
    if not match:
        return None
    group, version = match[0]
    paths = {}
    for r in RESOURCES:
        if (r.group, r.version) != (group, version):
            continue
        prefix = f"/{gv_path}/namespaces/{{namespace}}" if r.namespaced else f"/{gv_path}"
        gvk = {"group": group, "version": version, "kind": r.kind}
        paths[f"{prefix}/{r.plural}/{{name}}"] = {
            "patch": {
                "description": f"partially update the specified {r.kind}",
                "operationId": f"patch{r.kind}",
                "parameters": [
                    {
                        "name": "fieldValidation",
                        "in": "query",
                        "description": "fieldValidation instructs the server on how to handle objects "
                        "in the request containing unknown or duplicate fields.",
                        "schema": {"type": "string", "uniqueItems": True},
                    }
                ],
                "requestBody": {
                    "content": {"application/merge-patch+json": {"schema": {"type": "object"}}}
                },
                "responses": {"200": {"description": "OK"}},
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
            },
            "parameters": [
                {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
        }
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes (FakeKubeAPI)", "version": SERVER_VERSION["gitVersion"]},
        "paths": paths,
        "components": {"schemas": {}},
    }


def _age(ts: str | None) -> str:
    if not ts:
        return "<unknown>"
    try:
        then = _dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        return "<unknown>"
    secs = max(0, int((_dt.datetime.now(_dt.UTC) - then).total_seconds()))
    return f"{secs}s" if secs < 120 else f"{secs // 60}m"


def _columns(kind: str, obj: dict) -> list[tuple[str, Any]]:
    """Columns of the server-side Table for `kubectl get` (a few kinds, roughly as the real ones)."""
    meta, spec, status = obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    age = ("Age", _age(meta.get("creationTimestamp")))
    if kind == "Node":
        ready = next((c for c in status.get("conditions", []) if c.get("type") == "Ready"), {})
        roles = sorted(
            k.split("/", 1)[1]
            for k in (meta.get("labels") or {})
            if k.startswith("node-role.kubernetes.io/")
        )
        return [
            ("Name", meta["name"]),
            ("Status", "Ready" if ready.get("status") == "True" else "NotReady"),
            ("Roles", ",".join(roles) or "<none>"),
            age,
            ("Version", status.get("nodeInfo", {}).get("kubeletVersion", "")),
        ]
    if kind == "Service":
        ports = ",".join(
            f"{p.get('port')}{':' + str(p['nodePort']) if p.get('nodePort') else ''}/{p.get('protocol', 'TCP')}"
            for p in spec.get("ports") or []
        )
        return [
            ("Name", meta["name"]),
            ("Type", spec.get("type", "ClusterIP")),
            ("Cluster-IP", spec.get("clusterIP", "<none>")),
            ("External-IP", "<none>"),
            ("Port(s)", ports or "<none>"),
            age,
        ]
    if kind == "Deployment":
        want = spec.get("replicas", 1)
        return [
            ("Name", meta["name"]),
            ("Ready", f"{status.get('readyReplicas', 0)}/{want}"),
            ("Up-to-date", status.get("updatedReplicas", 0)),
            ("Available", status.get("availableReplicas", 0)),
            age,
        ]
    if kind == "Namespace":
        return [("Name", meta["name"]), ("Status", status.get("phase", "Active")), age]
    if kind == "Pod":
        statuses = status.get("containerStatuses") or []
        return [
            ("Name", meta["name"]),
            (
                "Ready",
                f"{sum(1 for c in statuses if c.get('ready'))}/{len(spec.get('containers') or [])}",
            ),
            ("Status", status.get("phase", "Pending")),
            ("Restarts", sum(c.get("restartCount", 0) for c in statuses)),
            age,
        ]
    return [("Name", meta["name"]), age]


def _table(kind: str, items: list[dict], rv: str) -> dict:
    sample = _columns(kind, items[0]) if items else _columns(kind, {"metadata": {"name": ""}})
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {"resourceVersion": rv},
        "columnDefinitions": [
            {
                "name": name,
                "type": "integer" if isinstance(value, int) else "string",
                "format": "name" if name == "Name" else "",
                "description": name,
                "priority": 0,
            }
            for name, value in sample
        ],
        "rows": [
            {
                "cells": [value for _, value in _columns(kind, o)],
                "object": {
                    "kind": "PartialObjectMetadata",
                    "apiVersion": "meta.k8s.io/v1",
                    "metadata": o["metadata"],
                },
            }
            for o in items
        ],
    }


# ---------------------------------------------------------------- pytest fixtures and a kubectl helper
@dataclass
class KubectlResult:
    args: list[str]
    returncode: int
    stdout: str
    stderr: str
    seconds: float

    def json(self) -> Any:
        return json.loads(self.stdout)


def kubectl_binary() -> str:
    return shutil.which("kubectl") or "/usr/bin/kubectl"


def run_kubectl(
    kubeconfig: Path, *args: str, cache_dir: Path, timeout: float = 60, check: bool = True
) -> KubectlResult:
    """Run the real kubectl against the kubeconfig with its own cache directory."""
    cmd = [kubectl_binary(), f"--kubeconfig={kubeconfig}", f"--cache-dir={cache_dir}", *args]
    start = time.monotonic()
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    result = KubectlResult(cmd, out.returncode, out.stdout, out.stderr, time.monotonic() - start)
    if check and out.returncode != 0:
        raise AssertionError(
            f"kubectl {' '.join(args)} exited {out.returncode}:\n{out.stderr}{out.stdout}"
        )
    return result


@pytest.fixture
def kube_api() -> Iterator[FakeKubeAPI]:
    """A started FakeKubeAPI (a test double of the Kubernetes API), stopped after the test."""
    api = FakeKubeAPI()
    api.start()
    try:
        yield api
    finally:
        api.stop()


@pytest.fixture
def kubeconfig(kube_api: FakeKubeAPI, tmp_path: Path) -> Path:
    """A kubeconfig in tmp_path pointing kubectl at ``kube_api``. Give kubectl a
    fresh --cache-dir too (the ``kubectl`` fixture does)."""
    return kube_api.write_kubeconfig(tmp_path / "kubeconfig")


@pytest.fixture
def kubectl(kubeconfig: Path, tmp_path: Path) -> Callable[..., KubectlResult]:
    """``kubectl("get", "nodes", "-o", "json")``: the real kubectl against
    ``kube_api``, with a cache directory of this test's own."""
    cache_dir = tmp_path / "kube-cache"

    def run(*args: str, check: bool = True, timeout: float = 60) -> KubectlResult:
        return run_kubectl(kubeconfig, *args, cache_dir=cache_dir, timeout=timeout, check=check)

    return run
