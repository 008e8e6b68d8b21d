"""The HTTP side: one handler per request, routing to discovery, OpenAPI, the object store
(get, list, watch, create, patch, delete) and exec."""

from __future__ import annotations

import copy
import http.server
import json
import re
import select
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

from .discovery import api_group, api_group_list, openapi_v3_doc, openapi_v3_root, resource_list
from .exec import serve_exec
from .merge import json_merge_patch, strategic_merge
from .proxy import serve_proxy
from .resources import BY_PATH, GROUP_VERSIONS, RESOURCES, Resource
from .selectors import field_selector_matches, label_selector_matches
from .status import APIError, not_found, status_body

if TYPE_CHECKING:
    from .api import FakeKubeAPI


class APIHandler(http.server.BaseHTTPRequestHandler):
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
            raise APIError(400, "BadRequest", f"the body is not JSON: {exc}") from None

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
        except APIError as err:
            self._send(err.code, err.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception as exc:  # noqa: BLE001 - a test double answers 500, like a server
            self._send(
                500, status_body(500, "InternalError", f"FakeKubeAPI: {type(exc).__name__}: {exc}")
            )

    do_GET = do_POST = do_PATCH = do_DELETE = _dispatch

    # -- routing
    def _route(self, path: str, query: dict[str, str]) -> tuple[int, Any]:
        if path in ("/version", "/version/"):
            return 200, self.fake.server_version
        if path == "/api":
            return 200, {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [
                    {"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}
                ],
            }
        if path == "/apis":
            return 200, api_group_list()
        if path == "/openapi/v3":
            return 200, openapi_v3_root()
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/") :]
            doc = openapi_v3_doc(gv)
            if doc is None:
                raise APIError(404, "NotFound", f"no OpenAPI v3 document for {gv}")
            return 200, doc
        m = re.match(r"^/(?:api/(?P<cv>v1)|apis/(?P<g>[^/]+)/(?P<v>[^/]+))(?P<rest>/.*)?$", path)
        if not m:
            if path.startswith("/apis/") and path.count("/") == 2:
                group = path.split("/")[2]
                if any(r.group == group for r in RESOURCES):
                    return 200, api_group(group)
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        group, version = ("", m["cv"]) if m["cv"] else (m["g"], m["v"])
        if (group, version) not in GROUP_VERSIONS:
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        rest = [p for p in (m["rest"] or "").split("/") if p]
        if not rest:
            if self.command != "GET":
                raise APIError(
                    405,
                    "MethodNotAllowed",
                    "the server does not allow this method on the requested resource",
                )
            return 200, resource_list(group, version)
        namespace = ""
        if rest[0] == "namespaces" and len(rest) >= 3:
            namespace = urllib.parse.unquote(rest[1])
            rest = rest[2:]
        res = BY_PATH.get((group, version, rest[0]))
        if res is None or (namespace and not res.namespaced):
            raise APIError(404, "NotFound", "the server could not find the requested resource")
        name = urllib.parse.unquote(rest[1]) if len(rest) > 1 else None
        sub = rest[2] if len(rest) > 2 else None
        if sub == "exec" and res.kind == "Pod" and len(rest) == 3:
            serve_exec(self, namespace, name)
            return -1, None
        if sub == "proxy" and res.kind == "Service" and len(rest) >= 3:
            serve_proxy(self)  # a stand-in for the API server's service proxy (proxy.py)
            return -1, None
        if sub is not None:
            raise APIError(
                404, "NotFound", f"the server could not find the requested resource ({sub})"
            )
        return self._resource(res, namespace, name, query)

    def _resource(
        self, res: Resource, namespace: str, name: str | None, query: dict[str, str]
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
                dry_run = _dry_run(query)
                body = self._read_body()
                if not isinstance(body, dict):
                    raise APIError(400, "BadRequest", "the body of a create must be an object")
                if body.get("kind") and body["kind"] != res.kind:
                    raise APIError(
                        400, "BadRequest", f"the kind {body['kind']!r} does not match {res.plural}"
                    )
                if res.namespaced and not namespace:
                    namespace = body.get("metadata", {}).get("namespace") or "default"
                with store.lock:
                    created = self.fake._create(res, namespace, body, dry_run=dry_run)
                    return 201, copy.deepcopy(created)
            raise APIError(
                405,
                "MethodNotAllowed",
                "the server does not allow this method on the requested resource",
            )
        key = (res.kind, ns_key, name)
        with store.lock:
            current = store.objects.get(key)
            if method == "GET":
                if current is None:
                    raise not_found(res, name)
                return 200, copy.deepcopy(current)
            if method == "DELETE":
                if current is None:
                    raise not_found(res, name)
                options = self._read_body() or {}  # DeleteOptions: kubectl sends dryRun here
                if _dry_run(query) or options.get("dryRun") == ["All"]:
                    return 200, copy.deepcopy(current)
                if res.kind == "Namespace":
                    return 200, self.fake._delete_namespace(name)
                gone = store.remove(key)
                self.fake._collect_garbage(current)
                if res.namespaced:
                    self.fake._finalize_namespace_if_empty(namespace)
                return 200, gone
            if method == "PATCH":
                ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip()
                body = self._read_body()
                if current is None:
                    raise not_found(res, name)
                if ctype == "application/strategic-merge-patch+json":
                    new = strategic_merge(current, body or {})
                elif ctype == "application/merge-patch+json":
                    new = json_merge_patch(current, body or {})
                else:
                    raise APIError(
                        415,
                        "UnsupportedMediaType",
                        f"FakeKubeAPI: the patch type {ctype!r} is not implemented",
                    )
                return 200, self._update(res, key, current, new, dry_run=_dry_run(query))
        raise APIError(
            405,
            "MethodNotAllowed",
            "the server does not allow this method on the requested resource",
        )

    def _update(
        self,
        res: Resource,
        key: tuple[str, str, str],
        current: dict,
        new: Any,
        *,
        dry_run: bool = False,
    ) -> dict:
        if not isinstance(new, dict):
            raise APIError(400, "BadRequest", "the object must be a JSON object")
        new.setdefault("metadata", {})
        if new["metadata"].get("name", key[2]) != key[2]:
            raise APIError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        new["metadata"]["name"] = key[2]
        if res.namespaced:
            new["metadata"]["namespace"] = key[1]
        rv = new["metadata"].get("resourceVersion")
        if rv and rv != current["metadata"]["resourceVersion"]:
            raise APIError(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {res.plural} "{key[2]}": '
                "the object has been modified; please apply your changes to the latest version "
                "and try again",
            )
        self.fake._refuse_immutable_changes(res, current, new)
        obj = self.fake._finish(res, new, current)
        if dry_run:
            return copy.deepcopy(obj)
        self.fake._store.put(key, obj)
        if res.kind == "Deployment":
            self.fake._roll_out_if_template_changed(current, obj)
        return copy.deepcopy(obj)

    def _list(self, res: Resource, namespace: str, query: dict[str, str]) -> dict:
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
        for item in items:  # list items carry no kind/apiVersion on a real server
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{res.kind}List",
            "apiVersion": res.group_version,
            "metadata": {"resourceVersion": rv},
            "items": items,
        }

    def _watch(self, res: Resource, namespace: str, query: dict[str, str]) -> None:
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
                    raise APIError(
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


def _dry_run(query: dict[str, str]) -> bool:
    """``?dryRun=All``: validated and answered like a real write, stored nowhere."""
    value = query.get("dryRun")
    if value is None:
        return False
    if value != "All":
        raise APIError(
            400, "BadRequest", f"Invalid dry run value: dryRun={value!r}; the only value is All"
        )
    return True
