"""trains-server's health: which path each endpoint is asked, what an answer means, what
kubectl's service-proxy output means, and the requirement's words; the node probe against
small HTTP servers of this test process, and the retry of `run --wait`."""

from __future__ import annotations

import http.server
import json
import socket
import subprocess
import threading

import pytest

from trains_nodeprep.cluster.checks import KubeNode, parse_version
from trains_nodeprep.cluster.health import (
    VIA_PROXY,
    Answer,
    answers,
    await_service_health,
    health_path,
    judge,
    make_probes,
    make_target,
    parse_proxy_answer,
    probe_node,
    service_health,
    service_ports,
    trains_server_tag,
)
from trains_nodeprep.cluster.tree import parse_tree
from trains_nodeprep.model import DeploySpec, Endpoint

SPEC = DeploySpec()
API, WEB, FILES = (SPEC.endpoint(name) for name in ("api", "web", "files"))
NODE = KubeNode("worker-1", "10.0.0.5")


def service(name: str, port: int, node_port: int | None, port_name: str = "http") -> dict:
    entry = {"name": port_name, "port": port, "targetPort": port}
    if node_port is not None:
        entry["nodePort"] = node_port
    return {"metadata": {"name": name, "namespace": "trains"}, "spec": {"ports": [entry]}}


SERVICES = {
    "apiserver-service": service("apiserver-service", 8008, 30008),
    "webserver-service": service("webserver-service", 8080, 30080),
    "fileserver-service": service("fileserver-service", 8081, 30081),
}


def deployment(image: str, name: str = "apiserver") -> str:
    return (
        f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: trains}}\n"
        f"spec:\n  template:\n    spec:\n      containers:\n      - {{name: {name},"
        f" image: {image!r}}}\n"
    )


@pytest.mark.parametrize(
    ("tag", "release"),
    [
        ("0.15.1", (0, 15)),
        ("0.16", (0, 16)),
        ("v1.2.0-93", (1, 2)),
        ("latest", None),
        ("", None),
        (None, None),
    ],
)
def test_parse_release(tag, release):
    assert parse_version(tag) == release


@pytest.mark.parametrize(
    ("yaml_text", "tag"),
    [
        (deployment("allegroai/trains-server:0.15.1"), "0.15.1"),
        (deployment("registry.local:5000/allegroai/trains-server:0.14.2"), "0.14.2"),
        (deployment("allegroai/clearml-server:1.1.1"), "1.1.1"),
        (deployment("allegroai/trains-server"), "latest"),
        (deployment("mongo:3.6.5", "mongo"), None),
        (
            deployment("allegroai/trains-server:0.16.1", "webserver")
            + "---\n"
            + deployment("allegroai/trains-server:0.15.0"),
            "0.15.0",  # the API server's
        ),
    ],
)
def test_the_trains_server_tag_of_the_tree(yaml_text, tag):
    assert trains_server_tag(parse_tree(yaml_text)) == tag


@pytest.mark.parametrize(
    ("endpoint", "tag", "path", "why"),
    [
        (API, "0.16.1", "/debug.ping", ""),
        (API, "1.0.0", "/debug.ping", ""),
        (API, "latest", "/debug.ping", ""),
        (API, None, "/debug.ping", ""),
        (API, "0.15.1", "/server.info", "the tree's image tag 0.15.1 is before 0.16"),
        (WEB, "0.15.1", "/", ""),
        (FILES, "0.16.1", "/", ""),
    ],
)
def test_the_path_asked(endpoint, tag, path, why):
    assert health_path(endpoint, tag) == (path, why)


@pytest.mark.parametrize(
    ("endpoint", "answer", "up"),
    [
        (API, Answer(200), True),
        (API, Answer(204), True),
        (API, Answer(404), False),
        (API, Answer(500), False),
        (API, Answer(0, "Teapot"), False),
        (API, Answer(None, "connection refused", connected=False), False),
        (FILES, Answer(404), True),  # any HTTP answer is up
        (FILES, Answer(500), True),
        (FILES, Answer(0, "Teapot"), True),
        (FILES, Answer(None, "connected, but no answer within 2 s"), False),
        (WEB, Answer(200), True),
    ],
)
def test_what_an_answer_means(endpoint, answer, up):
    assert answers(endpoint, answer) is up


def test_service_ports_follow_the_live_service():
    assert service_ports(SERVICES["apiserver-service"], API) == (8008, 30008)
    moved = service("webserver-service", 8080, 31080)  # another nodePort, the same port
    assert service_ports(moved, WEB) == (8080, 31080)
    renamed = service("webserver-service", 80, 30080)  # the nodePort held by port 80
    assert service_ports(renamed, WEB) == (80, 30080)
    assert service_ports({"spec": {}}, FILES) == (8081, 30081)  # the playbook's numbers


def target(endpoint=API, tag=None, node="10.0.0.5"):
    return make_target(endpoint, "trains", node, SERVICES[endpoint.service], tag)


def test_the_target_urls():
    api = target()
    assert api.url == "http://10.0.0.5:30008/debug.ping"
    assert (
        api.proxy_path
        == "/api/v1/namespaces/trains/services/apiserver-service:8008/proxy/debug.ping"
    )
    assert target(FILES).proxy_path == (
        "/api/v1/namespaces/trains/services/fileserver-service:8081/proxy/"
    )
    assert target(node="fd00::5").url == "http://[fd00::5]:30008/debug.ping"
    old = target(tag="0.15.1")
    assert old.url.endswith(":30008/server.info")
    assert judge(old, Answer(200)).expected == (
        "GET /server.info (the tree's image tag 0.15.1 is before 0.16) answers 2xx within 2 s"
    )


def test_judged_on_the_nodes_port():
    ok = judge(target(), Answer(200))
    assert (ok.id, ok.ok, ok.actual, ok.where) == (
        "service.api",
        True,
        "HTTP 200 from http://10.0.0.5:30008/debug.ping",
        "http://10.0.0.5:30008/debug.ping",
    )
    assert ok.expected == "GET /debug.ping answers 2xx within 2 s"
    bad = judge(target(), Answer(502))
    assert not bad.ok and bad.actual == "HTTP 502 from http://10.0.0.5:30008/debug.ping"
    silent = judge(target(), Answer(None, "connected, but no answer within 2 s"))
    assert not silent.ok and silent.actual == (
        "no answer from http://10.0.0.5:30008/debug.ping: connected, but no answer within 2 s"
    )
    files = judge(target(FILES), Answer(404))
    assert files.ok and files.expected == "any HTTP answer to GET / within 2 s"


def test_judged_through_the_service_proxy_says_so():
    refused = Answer(None, "connection refused", connected=False)
    ok = judge(target(), refused, Answer(200))
    assert ok.ok and ok.actual == (
        f"HTTP 200 {VIA_PROXY} (/api/v1/namespaces/trains/services/apiserver-service:8008/proxy"
        "/debug.ping); http://10.0.0.5:30008/debug.ping: connection refused"
    )
    down = judge(target(), refused, Answer(None, 'no endpoints available for service "x"'))
    assert not down.ok and down.actual == (
        "no answer from http://10.0.0.5:30008/debug.ping: connection refused;"
        f" {VIA_PROXY} (/api/v1/namespaces/trains/services/apiserver-service:8008/proxy"
        '/debug.ping): no endpoints available for service "x"'
    )
    assert down.where == "http://10.0.0.5:30008/debug.ping"
    files = judge(target(FILES), refused, Answer(404, "NotFound"))
    assert files.ok and files.actual.startswith(f"HTTP 404 {VIA_PROXY}")


@pytest.mark.parametrize(
    ("returncode", "stderr", "answer"),
    [
        (0, "", Answer(200)),
        (
            1,
            "Error from server (NotFound): the server could not find the requested resource\n",
            Answer(404, "NotFound"),
        ),
        (
            1,
            'Error from server (InternalError): an error on the server ("boom") has prevented'
            " the request from succeeding\n",
            Answer(500, "InternalError"),
        ),
        (
            1,
            "Error from server (Teapot): the server responded with the status code 418 but did"
            " not return more information\n",
            Answer(418, "Teapot"),
        ),
        (1, "Error from server (Weird): something\n", Answer(0, "Weird")),
        (
            1,
            'Error from server (ServiceUnavailable): no endpoints available for service "a"\n',
            Answer(None, 'no endpoints available for service "a"'),
        ),
        (
            1,
            "Error from server (ServiceUnavailable): error trying to reach service: dial tcp"
            " 10.0.0.5:8008: connect: connection refused\n",
            Answer(
                None,
                "error trying to reach service: dial tcp 10.0.0.5:8008: connect:"
                " connection refused",
            ),
        ),
        (
            1,
            'Error from server (NotFound): services "apiserver-service" not found\n',
            Answer(None, 'services "apiserver-service" not found'),
        ),
        (
            1,
            "The connection to the server 127.0.0.1:6443 was refused - did you specify the right"
            " host or port?\n",
            Answer(
                None,
                "The connection to the server 127.0.0.1:6443 was refused - did you specify the"
                " right host or port?",
            ),
        ),
        (1, "", Answer(None, "kubectl exited 1")),
    ],
)
def test_what_kubectl_says_of_the_service_proxy(returncode, stderr, answer):
    assert parse_proxy_answer(returncode, "", stderr) == answer


def test_not_deployed_is_a_note_and_no_requirement():
    probes = make_probes(SPEC, NODE, {"kubernetes": service("kubernetes", 443, None)}, None)
    assert probes.targets == () and probes.missing == ()
    assert probes.note == (
        "trains-server is not deployed (no Service webserver-service, apiserver-service,"
        " fileserver-service in namespace trains): service.* are checked once it is"
    )


def test_a_missing_service_of_a_deployed_server_fails():
    services = {k: v for k, v in SERVICES.items() if k != "fileserver-service"}
    probes = make_probes(SPEC, NODE, services, None)
    assert [t.id for t in probes.targets] == ["service.web", "service.api"]
    [missing] = probes.missing
    assert missing.id == "service.files" and not missing.ok
    assert "no Service trains/fileserver-service" in missing.actual


def test_without_a_labeled_node_nothing_is_asked():
    probes = make_probes(SPEC, None, SERVICES, None)
    assert probes.targets == () and "no labeled node" in (probes.note or "")


# ---- I/O: small HTTP servers of this process


class Server:
    """An HTTP server on 127.0.0.1 answering `status` to every GET; `listening` False: the port
    is bound but nothing listens yet (connections are refused) until start()."""

    def __init__(self, status: int, *, listening: bool = True) -> None:
        code = status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), Handler, bind_and_activate=False
        )
        self.httpd.server_bind()
        self.port = self.httpd.server_address[1]
        self.serving = False
        if listening:
            self.start()

    def start(self) -> None:
        self.httpd.server_activate()
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        self.serving = True

    def close(self) -> None:
        if self.serving:
            self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def servers():
    made: list[Server] = []

    def make(status: int, *, listening: bool = True) -> Server:
        made.append(Server(status, listening=listening))
        return made[-1]

    yield make
    for server in made:
        server.close()


def test_probe_node_gets_the_status_or_says_why_not(servers):
    assert probe_node("127.0.0.1", servers(200).port, "/debug.ping") == Answer(200)
    assert probe_node("127.0.0.1", servers(404).port, "/") == Answer(404)
    closed = servers(200, listening=False)
    assert probe_node("127.0.0.1", closed.port, "/") == Answer(
        None, "connection refused", connected=False
    )
    with socket.socket() as silent:  # accepts (the kernel's backlog) but never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        answer = probe_node("127.0.0.1", silent.getsockname()[1], "/", timeout=0.3)
    assert answer == Answer(None, "connected, but no answer within 0.3 s")  # no proxy then


class FakeKubectl:
    """What health.py asks kubectl: `get services -n NS -o json` and `get --raw PATH`."""

    def __init__(self, services: dict, proxy_stderr: str) -> None:
        self.services = services
        self.proxy_stderr = proxy_stderr
        self.calls: list[tuple[str, ...]] = []

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        self.calls.append(args)
        if args[:2] == ("get", "services"):
            items = list(self.services.values())
            listed = {"apiVersion": "v1", "kind": "ServiceList", "items": items}  # as the API lists
            return subprocess.CompletedProcess(args, 0, json.dumps(listed), "")
        return subprocess.CompletedProcess(args, 1, "", self.proxy_stderr)


def local_spec(ports: dict[str, int]) -> DeploySpec:
    """The playbook's endpoints on local ports (as their nodePorts)."""
    return DeploySpec(
        "trains",
        tuple(
            Endpoint(e.name, e.service, e.port, ports[e.name], e.host, e.health, e.health_before)
            for e in SPEC.endpoints
        ),
    )


def test_service_health_asks_every_endpoint_and_the_proxy_only_for_a_refused_port(servers):
    web, api, files = servers(200), servers(200), servers(200, listening=False)
    spec = local_spec({"web": web.port, "api": api.port, "files": files.port})
    services = {e.service: service(e.service, e.port, e.node_port) for e in spec.endpoints}
    kubectl = FakeKubectl(services, "Error from server (ServiceUnavailable): no endpoints\n")

    found, notes = service_health(kubectl, spec, KubeNode("n", "127.0.0.1"), None)

    assert notes == []
    assert [(r.id, r.ok) for r in found] == [
        ("service.web", True),
        ("service.api", True),
        ("service.files", False),
    ]
    assert found[2].actual.endswith(
        f"{VIA_PROXY} (/api/v1/namespaces/trains/services/"
        "fileserver-service:8081/proxy/): no endpoints"
    )
    raw = [c for c in kubectl.calls if c[:2] == ("get", "--raw")]
    assert [c[2] for c in raw] == [
        "/api/v1/namespaces/trains/services/fileserver-service:8081/proxy/"
    ]


def test_run_wait_asks_again_what_did_not_answer_until_it_does(servers):
    web, api, files = servers(200), servers(200, listening=False), servers(404)
    spec = local_spec({"web": web.port, "api": api.port, "files": files.port})
    services = {e.service: service(e.service, e.port, e.node_port) for e in spec.endpoints}
    kubectl = FakeKubectl(services, "Error from server (ServiceUnavailable): no endpoints\n")
    now = [0.0]
    slept = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        now[0] += seconds
        if len(slept) == 2:
            api.start()  # the API server comes up during the wait

    found, _ = await_service_health(
        kubectl, spec, KubeNode("n", "127.0.0.1"), None, 30.0, clock=lambda: now[0], sleep=sleep
    )

    assert [(r.id, r.ok) for r in found] == [
        ("service.web", True),
        ("service.api", True),
        ("service.files", True),
    ]
    assert slept == [2.0, 2.0]  # asked three times, then nothing left to ask
    raw = [c[2] for c in kubectl.calls if c[:2] == ("get", "--raw")]
    assert len(raw) == 2 and all("apiserver-service:8008/proxy/debug.ping" in p for p in raw)


def test_run_wait_stops_asking_at_the_deadline(servers):
    spec = local_spec({n: servers(200, listening=False).port for n in ("web", "api", "files")})
    services = {e.service: service(e.service, e.port, e.node_port) for e in spec.endpoints}
    kubectl = FakeKubectl(services, "Error from server (ServiceUnavailable): no endpoints\n")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    found, _ = await_service_health(
        kubectl, spec, KubeNode("n", "127.0.0.1"), None, 5.0, clock=lambda: now[0], sleep=sleep
    )

    assert [r.ok for r in found] == [False, False, False] and now[0] == 4.0
