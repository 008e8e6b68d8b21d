"""A STAND-IN for the API server's service proxy:
``/api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy/PATH`` (what ``kubectl get --raw``
asks).

The real API server forwards such a request to one of the Service's endpoints (a pod IP and
target port). The fake has no pods, endpoints or cluster network: what answers is what the test
gives ``FakeKubeAPI.set_service_proxy(namespace, service, port, target)``: a base URL (the
request's PATH and query appended, e.g. ``http://10.200.0.5:30008``: a stand-in server the test
started) or a callable ``(method, path_and_query) -> (status, body)`` (``body``: bytes or str,
sent as text/plain, or a dict, sent as JSON). The answer is passed on as it came (status,
Content-Type, body).

What the real one also answers, as it words it: a missing Service is 404 ``services "NAME" not
found``; a port the Service does not have (by number or name; without PORT, its only or first
port) is 503 ``no service port "PORT" found for service "NAME"``; a Service with no target set
here is 503 ``no endpoints available for service "NAME"`` (as one whose pods are not ready); a
target URL that cannot be reached within PROXY_TIMEOUT is 503 ``error trying to reach service:
dial tcp HOST:PORT: ...``. Not done: TLS (``https:`` scheme), redirects' Location rewriting,
upgrades (WebSocket), streaming (the whole answer is read first).
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import urllib.parse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .resources import BY_KIND
from .status import APIError, not_found

if TYPE_CHECKING:
    from .handler import APIHandler

# what a test gives set_service_proxy: a base URL, or (method, path?query) -> (status, body)
ProxyTarget = str | Callable[[str, str], tuple[int, Any]]
PROXY_TIMEOUT = 5.0
_PATH = re.compile(
    r"^/api/v1/namespaces/(?P<ns>[^/]+)/services/(?P<svc>[^/]+)/proxy(?P<rest>/.*)?$"
)


def is_proxy_path(path: str) -> bool:
    return _PATH.match(urllib.parse.urlsplit(path).path) is not None


def serve_proxy(handler: APIHandler) -> None:
    """Answer one proxied request (any method); the request body is passed on."""
    url = urllib.parse.urlsplit(handler.path)
    match = _PATH.match(url.path)
    if match is None:  # is_proxy_path() was checked by the caller
        raise APIError(404, "NotFound", "the server could not find the requested resource")
    namespace = urllib.parse.unquote(match["ns"])
    service, port = _service_and_port(urllib.parse.unquote(match["svc"]))
    fake = handler.fake
    with fake._store.lock:
        svc = fake._store.objects.get(("Service", namespace, service))
        if svc is None:
            raise not_found(BY_KIND["Service"], service)
        number = _port_number(svc, port)
        target = fake._service_proxies.get((namespace, service, number))
    if target is None:
        raise APIError(503, "ServiceUnavailable", f'no endpoints available for service "{service}"')
    path = (match["rest"] or "/") + (f"?{url.query}" if url.query else "")
    if callable(target):
        status, body = target(handler.command, path)
        content_type = "text/plain; charset=utf-8"
        if isinstance(body, dict):
            body, content_type = json.dumps(body).encode(), "application/json"
        elif isinstance(body, str):
            body = body.encode()
        _answer(handler, status, content_type, body)
        return
    status, content_type, body = _forward(target, handler.command, path, handler._body)
    _answer(handler, status, content_type, body)


def _service_and_port(text: str) -> tuple[str, str]:
    """ "NAME", "NAME:PORT" or "SCHEME:NAME:PORT" -> (NAME, PORT or "")."""
    parts = text.split(":")
    if len(parts) == 3:
        parts = parts[1:]
    return parts[0], parts[1] if len(parts) > 1 else ""


def _port_number(svc: dict, port: str) -> int:
    ports = svc.get("spec", {}).get("ports") or []
    for entry in ports:
        if port == "" or port == entry.get("name") or port == str(entry.get("port")):
            return int(entry["port"])
    raise APIError(
        503,
        "ServiceUnavailable",
        f'no service port "{port}" found for service "{svc["metadata"]["name"]}"',
    )


def _forward(base: str, method: str, path: str, body: bytes) -> tuple[int, str, bytes]:
    target = urllib.parse.urlsplit(base)
    host, port = target.hostname or "127.0.0.1", target.port or 80
    full = target.path.rstrip("/") + path
    connection = http.client.HTTPConnection(host, port, timeout=PROXY_TIMEOUT)
    try:
        connection.request(method, full, body=body or None, headers={"Connection": "close"})
        response = connection.getresponse()
        return (
            response.status,
            response.getheader("Content-Type") or "application/octet-stream",
            response.read(),
        )
    except (OSError, http.client.HTTPException) as err:
        reason = (
            "connect: connection refused"
            if isinstance(err, ConnectionRefusedError)
            else "i/o timeout"
            if isinstance(err, socket.timeout | TimeoutError)
            else str(err) or type(err).__name__
        )
        raise APIError(
            503,
            "ServiceUnavailable",
            f"error trying to reach service: dial tcp {host}:{port}: {reason}",
        ) from None
    finally:
        connection.close()


def _answer(handler: APIHandler, status: int, content_type: str, body: bytes) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    handler.end_headers()
    handler.wfile.write(body)
