"""Does trains-server answer? `check`'s `service.api`, `service.web` and `service.files`, and
the probes at the end of `run --wait`.

Each endpoint of the playbook (deploy.endpoints) is asked on the labeled node's NodePort: the
API server `GET /debug.ping` (`/server.info` for releases before 0.16, judged from the tree's
trains-server image tag), which must answer 2xx; the web and file servers `GET /`, where any
HTTP answer, whatever its status, means up. A short timeout, all endpoints at once (threads).
When the node's port cannot be connected to (a timeout, refused, no route: e.g. the node is on
a private network this machine does not reach), the same path is asked through the API
server's service proxy (`kubectl get --raw /api/v1/namespaces/NS/services/NAME:PORT/proxy/
PATH`), and the requirement says so.

The judgement (`judge`, `parse_proxy_answer`, `health_path`, ...) is pure; `probe_node`,
`probe_proxy`, `service_health` and `await_service_health` do the I/O.
"""

from __future__ import annotations

import http.client
import re
import socket
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..engine.types import Requirement
from ..errors import NodePrepError
from ..model import DeploySpec, Endpoint
from .changes import Key
from .checks import KubeNode, parse_version
from .tree import Tree, TreeError, image_tag, objects_by_key

if TYPE_CHECKING:
    from .kubectl import Kubectl

HEALTH_TIMEOUT = 2.0  # seconds, to connect and again to answer
VIA_PROXY = "via the API server's service proxy"
TRAINS_SERVER_IMAGES = ("trains-server", "clearml-server")  # the repository's last path part

# "Error from server (REASON): ..." of kubectl: the HTTP status the service answered with
_REASON_STATUS = {
    "BadRequest": 400,
    "Unauthorized": 401,
    "Forbidden": 403,
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "NotAcceptable": 406,
    "Conflict": 409,
    "Gone": 410,
    "RequestEntityTooLarge": 413,
    "UnsupportedMediaType": 415,
    "Invalid": 422,
    "TooManyRequests": 429,
    "InternalError": 500,
    "Timeout": 504,
}


@dataclass(frozen=True)
class Answer:
    """What one way of asking got: an HTTP status, or why there was none."""

    status: int | None = None  # the HTTP status; 0: a non-2xx status kubectl did not name
    error: str | None = None
    connected: bool = True  # False: the port could not be connected to (try the proxy)


@dataclass(frozen=True)
class Target:
    """One endpoint to ask, and the two ways to ask it."""

    endpoint: Endpoint
    host: str  # the labeled node's address
    node_port: int
    path: str  # /debug.ping, /server.info or /
    proxy_path: str  # /api/v1/namespaces/NS/services/NAME:PORT/proxy/PATH
    release_note: str = ""  # why an older release's path is asked

    @property
    def id(self) -> str:
        return f"service.{self.endpoint.name}"

    @property
    def url(self) -> str:
        """http://NODE:NODEPORT/PATH"""
        return url_of(self.host, self.node_port, self.path)


def trains_server_tag(tree: Tree | None) -> str | None:
    """The tag of the tree's trains-server image (the API server's, if they differ)."""
    if tree is None:
        return None
    found = {}
    for where, image in tree.images().items():
        repository = re.sub(r"[:@].*$", "", image.rsplit("/", 1)[-1])
        if repository in TRAINS_SERVER_IMAGES:
            found[where] = image_tag(image)
    if not found:
        return None
    api = [tag for where, tag in sorted(found.items()) if where.split("/")[1] == "apiserver"]
    return api[0] if api else sorted(found.items())[0][1]


def health_path(endpoint: Endpoint, tag: str | None) -> tuple[str, str]:
    """The path to ask, and why when it is an older release's."""
    release = parse_version(tag)  # of an image tag: "0.15.1" -> (0, 15); "latest" -> None
    if endpoint.health_before is not None and release is not None:
        before, path = endpoint.health_before
        if release < before:
            return path, f"the tree's image tag {tag} is before {before[0]}.{before[1]}"
    return endpoint.health or "/", ""


def url_of(host: str, port: int, path: str) -> str:
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{port}{path}"


def service_ports(service: dict, endpoint: Endpoint) -> tuple[int, int]:
    """(the Service's port, its nodePort) for the endpoint: the port entry holding the
    endpoint's nodePort, else the one with its port, else the only one; the playbook's numbers
    where the Service has none."""
    ports = [p for p in (service.get("spec") or {}).get("ports") or [] if isinstance(p, dict)]
    entry = (
        next((p for p in ports if p.get("nodePort") == endpoint.node_port), None)
        or next((p for p in ports if p.get("port") == endpoint.port), None)
        or (ports[0] if len(ports) == 1 else {})
    )
    return int(entry.get("port") or endpoint.port), int(entry.get("nodePort") or endpoint.node_port)


def make_target(
    endpoint: Endpoint, namespace: str, node: str, service: dict, tag: str | None
) -> Target:
    path, why = health_path(endpoint, tag)
    port, node_port = service_ports(service, endpoint)
    return Target(
        endpoint,
        node,
        node_port,
        path,
        f"/api/v1/namespaces/{namespace}/services/{endpoint.service}:{port}/proxy{path}",
        why,
    )


def answers(endpoint: Endpoint, answer: Answer) -> bool:
    """Up: any HTTP answer when the endpoint has no health path; else a 2xx."""
    if answer.status is None:
        return False
    return endpoint.health is None or 200 <= answer.status < 300


def expected_of(target: Target) -> str:
    if target.endpoint.health is None:
        return f"any HTTP answer to GET {target.path} within {HEALTH_TIMEOUT:g} s"
    why = f" ({target.release_note})" if target.release_note else ""
    return f"GET {target.path}{why} answers 2xx within {HEALTH_TIMEOUT:g} s"


def _said(answer: Answer) -> str:
    if answer.status is None:
        return answer.error or "no answer"
    return f"HTTP {answer.status}" if answer.status else f"an HTTP error ({answer.error})"


def judge(target: Target, direct: Answer, proxied: Answer | None = None) -> Requirement:
    """The requirement from what the node's port said and, when it could not be connected to,
    what the service proxy said."""
    if proxied is None:
        ok = answers(target.endpoint, direct)
        actual = f"{_said(direct)} from {target.url}"
        if not ok and direct.status is None:
            actual = f"no answer from {target.url}: {_said(direct)}"
    else:
        ok = answers(target.endpoint, proxied)
        actual = (
            f"{_said(proxied)} {VIA_PROXY} ({target.proxy_path}); {target.url}: {_said(direct)}"
            if ok
            else f"no answer from {target.url}: {_said(direct)}; {VIA_PROXY}"
            f" ({target.proxy_path}): {_said(proxied)}"
        )
    return Requirement(target.id, expected_of(target), actual, ok, target.url)


def missing_requirement(endpoint: Endpoint, namespace: str) -> Requirement:
    return Requirement(
        f"service.{endpoint.name}",
        f"Service {namespace}/{endpoint.service} answers",
        f"no Service {namespace}/{endpoint.service}, though others of trains-server are there"
        " (deploy again: trains-nodeprep run)",
        False,
        f"Service {namespace}/{endpoint.service}",
    )


def parse_proxy_answer(returncode: int, stdout: str, stderr: str) -> Answer:
    """What `kubectl get --raw .../proxy/PATH` says. Exit 0: the service answered 2xx (kubectl
    prints only the body). Otherwise kubectl's `Error from server (REASON): MESSAGE`: a
    ServiceUnavailable is the API server's own (no endpoints, the pod not reached), as is a
    missing Service; another reason is the service's answer, passed on."""
    if returncode == 0:
        return Answer(200)
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    last = lines[-1][:300] if lines else f"kubectl exited {returncode}"
    match = re.match(r"Error from server \((\w+)\): (.*)", last)
    if match is None:
        return Answer(None, last)  # kubectl did not reach the API server, or timed out
    reason, message = match[1], match[2]
    if reason == "ServiceUnavailable" or (
        reason == "NotFound" and re.match(r'services "[^"]*" not found', message)
    ):
        return Answer(None, message)
    code = re.search(r"status code (\d{3})", message)
    return Answer(int(code[1]) if code else _REASON_STATUS.get(reason, 0), reason)


def _os_error(err: OSError) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.gaierror):
        return f"the name does not resolve ({err.strerror})"
    return (err.strerror or str(err) or type(err).__name__).lower()


def probe_node(host: str, port: int, path: str, timeout: float = HEALTH_TIMEOUT) -> Answer:
    """GET http://HOST:PORT/PATH; `connected` False when the port could not be connected to."""
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
    except TimeoutError:
        return Answer(None, f"no connection within {timeout:g} s", connected=False)
    except OSError as err:
        return Answer(None, _os_error(err), connected=False)
    connection = http.client.HTTPConnection(host, port, timeout=timeout)
    connection.sock = sock
    try:
        connection.request(
            "GET", path, headers={"User-Agent": "trains-nodeprep", "Connection": "close"}
        )
        response = connection.getresponse()
        response.read(4096)
        return Answer(response.status)
    except TimeoutError:
        return Answer(None, f"connected, but no answer within {timeout:g} s")
    except (OSError, http.client.HTTPException) as err:
        return Answer(None, f"connected, but no HTTP answer ({err or type(err).__name__})")
    finally:
        connection.close()


def probe_proxy(kubectl: Kubectl, proxy_path: str, timeout: float = HEALTH_TIMEOUT) -> Answer:
    """The same GET through the API server's service proxy."""
    try:
        done = kubectl.run(
            "get", "--raw", proxy_path, f"--request-timeout={timeout:g}s", timeout=timeout + 10
        )
    except NodePrepError as err:
        return Answer(None, str(err))
    return parse_proxy_answer(done.returncode, done.stdout, done.stderr)


def probe(kubectl: Kubectl, target: Target, timeout: float = HEALTH_TIMEOUT) -> Requirement:
    """The node's port; the service proxy only when the port could not be connected to."""
    direct = probe_node(target.host, target.node_port, target.path, timeout)
    if direct.connected:
        return judge(target, direct)
    return judge(target, direct, probe_proxy(kubectl, target.proxy_path, timeout))


@dataclass(frozen=True)
class Probes:
    """What to ask, from the Services in the cluster; or why nothing is asked."""

    targets: tuple[Target, ...] = ()
    missing: tuple[Requirement, ...] = ()
    note: str | None = None


def make_probes(
    spec: DeploySpec, node: KubeNode | None, services: dict[str, dict], tree: Tree | None
) -> Probes:
    """Pure: the targets when trains-server is deployed (any of its Services exists)."""
    present = [e for e in spec.endpoints if e.service in services]
    if not present:
        names = ", ".join(e.service for e in spec.endpoints)
        return Probes(
            note=f"trains-server is not deployed (no Service {names} in namespace"
            f" {spec.namespace}): service.* are checked once it is"
        )
    if node is None:
        return Probes(note="no labeled node: trains-server's health is not asked")
    tag = trains_server_tag(tree)
    targets = tuple(
        make_target(e, spec.namespace, node.address, services[e.service], tag) for e in present
    )
    missing = tuple(
        missing_requirement(e, spec.namespace) for e in spec.endpoints if e not in present
    )
    return Probes(targets, missing)


def gather_probes(
    kubectl: Kubectl, spec: DeploySpec, node: KubeNode | None, tree: Tree | None
) -> Probes:
    """One `kubectl get services -n NS`, then make_probes."""
    try:
        done = kubectl.run("get", "services", "-n", spec.namespace, "-o", "json")
    except NodePrepError as err:
        return Probes(note=f"trains-server's Services could not be listed ({err}): no service.*")
    if done.returncode != 0:
        error = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
        return Probes(note=f"trains-server's Services could not be listed ({error}): no service.*")
    try:
        services = objects_by_key(done.stdout)
    except TreeError as err:
        return Probes(note=f"unexpected output of kubectl get services ({err}): no service.*")
    return make_probes(spec, node, in_namespace(services, spec.namespace), tree)


def in_namespace(services: dict[Key, dict], namespace: str) -> dict[str, dict]:
    """name -> Service, of one namespace."""
    return {name: s for (_, ns, name), s in services.items() if ns == namespace}


def run_probes(kubectl: Kubectl, targets: tuple[Target, ...]) -> list[Requirement]:
    """Every target at once, in order."""
    if not targets:
        return []
    with ThreadPoolExecutor(max_workers=len(targets), thread_name_prefix="health") as pool:
        return list(pool.map(lambda target: probe(kubectl, target), targets))


def service_health(
    kubectl: Kubectl,
    spec: DeploySpec,
    node: KubeNode | None,
    tree: Tree | None,
    services: dict[Key, dict] | None = None,
) -> tuple[list[Requirement], list[str]]:
    """check: the service.* requirements, and notes (e.g. not deployed: none). `services`: the
    cluster's Services as the pre-checks read them (else one `kubectl get services`)."""
    if services is None:
        probes = gather_probes(kubectl, spec, node, tree)
    else:
        probes = make_probes(spec, node, in_namespace(services, spec.namespace), tree)
    if probes.note is not None:
        return [], [probes.note]
    return run_probes(kubectl, probes.targets) + list(probes.missing), []


def await_service_health(
    kubectl: Kubectl,
    spec: DeploySpec,
    node: KubeNode | None,
    tree: Tree | None,
    deadline: float,
    *,
    interval: float = 2.0,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[list[Requirement], list[str]]:
    """run --wait: the same probes, the ones that do not answer asked again every `interval`
    seconds until `deadline` (a `clock` time); at least once."""
    probes = gather_probes(kubectl, spec, node, tree)
    if probes.note is not None:
        return [], [probes.note]
    targets = probes.targets
    results = dict(zip(targets, run_probes(kubectl, targets), strict=True))
    while clock() + interval < deadline:
        pending = tuple(t for t in targets if not results[t].ok)
        if not pending:
            break
        sleep(interval)
        results.update(zip(pending, run_probes(kubectl, pending), strict=True))
    return [results[t] for t in targets] + list(probes.missing), []
