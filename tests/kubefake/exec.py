"""kubectl exec over WebSocket (v5/v4.channel.k8s.io, RFC 6455 framing). Nothing runs: only
`cat PATH...` is answered, from the files add_pod gave the pod."""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import select
import socket
import time
import urllib.parse
from typing import TYPE_CHECKING, Any, BinaryIO

from .resources import BY_KIND
from .status import APIError, not_found

if TYPE_CHECKING:
    from .handler import APIHandler

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


def serve_exec(handler: APIHandler, namespace: str, name: str) -> None:
    """``POST|GET .../pods/NAME/exec?command=..&container=..&stdout=true&stderr=true``
    upgraded to a WebSocket (what kubectl 1.30+ does; it falls back to SPDY
    only when the upgrade is refused, and SPDY is not served here). Nothing
    runs: ``cat PATH...`` is answered from the files given to ``add_pod``."""
    params = urllib.parse.parse_qs(
        urllib.parse.urlsplit(handler.path).query, keep_blank_values=True
    )
    command = tuple(params.get("command", []))

    def flag(key: str) -> bool:
        return (params.get(key) or ["false"])[-1].lower() in ("1", "true")

    with handler.fake._store.lock:
        pod = copy.deepcopy(handler.fake._store.objects.get(("Pod", namespace, name)))
        files = dict(handler.fake._pod_files.get((namespace, name), {}))
    if pod is None:
        raise not_found(BY_KIND["Pod"], name)
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    container = (params.get("container") or [""])[-1]
    if not container:
        if len(names) != 1:
            raise APIError(
                400,
                "BadRequest",
                f"a container name must be specified for pod {name}, "
                f"choose one of: [{' '.join(names)}]",
            )
        container = names[0]
    if container not in names:
        raise APIError(400, "BadRequest", f"container {container} is not valid for pod {name}")
    phase = pod.get("status", {}).get("phase")
    if phase != "Running":
        raise APIError(
            400,
            "BadRequest",
            f"FakeKubeAPI: pod {name} is not running (phase {phase}): cannot exec into it",
        )
    if not command:
        raise APIError(400, "BadRequest", "you must specify at least 1 command")
    upgrade = (handler.headers.get("Upgrade") or "").lower()
    if upgrade != "websocket":
        raise APIError(
            400,
            "BadRequest",
            f"FakeKubeAPI: exec is served over WebSocket only (v4/v5.channel.k8s.io), not "
            f"{handler.headers.get('Upgrade') or 'a plain request'}; kubectl 1.30+ uses WebSockets "
            "unless KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false",
        )
    offered = [
        p.strip()
        for h in handler.headers.get_all("Sec-WebSocket-Protocol") or []
        for p in h.split(",")
    ]
    protocol = next((p for p in _EXEC_PROTOCOLS if p in offered), None)
    key = handler.headers.get("Sec-WebSocket-Key")
    if protocol is None or not key:
        raise APIError(
            400,
            "BadRequest",
            "FakeKubeAPI: exec needs a WebSocket handshake offering one of "
            f"{', '.join(_EXEC_PROTOCOLS)} (offered: {', '.join(offered) or 'none'})",
        )
    handler.fake._exec_log(namespace, name, container, command, protocol)
    stdout, stderr, code = _fake_command(command, files)
    accept = base64.b64encode(hashlib.sha1((key + _WS_GUID).encode()).digest()).decode()
    handler.send_response(101, "Switching Protocols")
    handler.send_header("Upgrade", "websocket")
    handler.send_header("Connection", "Upgrade")
    handler.send_header("Sec-WebSocket-Accept", accept)
    handler.send_header("Sec-WebSocket-Protocol", protocol)
    handler.end_headers()
    handler.close_connection = True
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
        handler.wfile.write(b"".join(frames))
        handler.wfile.flush()
        # A command in a real pod takes a while; kubectl (client-go) fails the exec with
        # "closed all streams" when the close arrives before it has set up its streams, which
        # an instant close made possible here on a loaded machine. kubectl waits for the
        # server's close, so it comes after a pause (or at once if the client goes first).
        select.select([handler.connection], [], [], EXEC_CLOSE_PAUSE)
        handler.wfile.write(_ws_frame(0x8, (1000).to_bytes(2, "big")))  # close: normal closure
        handler.wfile.flush()
        _ws_await_close(handler.rfile, handler.wfile, handler.connection, timeout=2.0)
    except OSError:
        pass
