"""The real kubectl 1.32 against FakeKubeAPI, a TEST DOUBLE of the Kubernetes API server (no
real one can run here): its Ingress resource (networking.k8s.io/v1, stored) and its stand-in
for the API server's service proxy (`kubectl get --raw .../services/NAME:PORT/proxy/PATH`),
as trains-nodeprep's --domain and health probes use them."""

from __future__ import annotations

import http.server
import json
import threading
from pathlib import Path

import pytest

from tests.kubefake import FakeKubeAPI, kube_api, kubeconfig, kubectl  # noqa: F401 - fixtures

INGRESS = {
    "apiVersion": "networking.k8s.io/v1",
    "kind": "Ingress",
    "metadata": {
        "name": "trains-server",
        "namespace": "trains",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-body-size": "0"},
    },
    "spec": {
        "ingressClassName": "nginx",
        "rules": [
            {
                "host": "app.example.org",
                "http": {
                    "paths": [
                        {
                            "path": "/",
                            "pathType": "Prefix",
                            "backend": {
                                "service": {"name": "webserver-service", "port": {"number": 8080}}
                            },
                        }
                    ]
                },
            }
        ],
    },
}
PROXY = "/api/v1/namespaces/trains/services/{}/proxy{}"


def test_ingresses_are_discovered_applied_stored_and_deleted(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kube_api.add_service("trains", "webserver-service", [30080])
    manifest = tmp_path / "ingress.json"
    manifest.write_text(json.dumps(INGRESS))

    resources = kubectl("api-resources", "--api-group=networking.k8s.io", "-o", "wide")
    created = kubectl("apply", "-f", str(manifest))
    again = kubectl("apply", "-f", str(manifest))
    got = kubectl("get", "ing", "-n", "trains", "trains-server", "-o", "json").json()

    assert "ingresses" in resources.stdout and "Ingress" in resources.stdout
    assert created.stdout.strip() == "ingress.networking.k8s.io/trains-server created"
    assert again.stdout.strip() == "ingress.networking.k8s.io/trains-server unchanged"
    assert got["spec"] == INGRESS["spec"] and got["status"] == {"loadBalancer": {}}
    assert got["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    assert [o["metadata"]["name"] for o in kube_api.objects("Ingress", "trains")] == [
        "trains-server"
    ]
    assert (
        "POST",
        "/apis/networking.k8s.io/v1/namespaces/trains/ingresses?fieldManager=kubectl-client-side-apply&fieldValidation=Strict",
    ) in kube_api.requests

    kubectl("delete", "ingress", "-n", "trains", "trains-server")
    assert kube_api.objects("Ingress") == []


def test_an_ingress_in_a_missing_namespace_is_refused(kubectl, tmp_path: Path) -> None:
    manifest = tmp_path / "ingress.json"
    manifest.write_text(json.dumps(INGRESS))

    refused = kubectl("apply", "-f", str(manifest), check=False)

    assert refused.returncode == 1 and 'namespaces "trains" not found' in refused.stderr


@pytest.fixture
def backend():
    """A small HTTP server of this test: 200 for /debug.ping, 404 otherwise; it records each
    request's method and path."""
    seen: list[tuple[str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            seen.append((self.command, self.path))
            ok = self.path.startswith("/debug.ping")
            body = b'{"data": {}}' if ok else b"<html>no such file</html>"
            self.send_response(200 if ok else 404)
            self.send_header("Content-Type", "application/json" if ok else "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_service_proxy_forwards_to_the_target_the_test_gives(
    kube_api: FakeKubeAPI, kubectl, backend
) -> None:
    url, seen = backend
    kube_api.add_service("trains", "apiserver-service", [30008])  # port 10008 (add_service)
    kube_api.set_service_proxy("trains", "apiserver-service", 10008, url)

    ping = kubectl("get", "--raw", PROXY.format("apiserver-service:10008", "/debug.ping?a=1"))
    by_name = kubectl("get", "--raw", PROXY.format("apiserver-service:p30008", "/debug.ping"))
    by_scheme = kubectl("get", "--raw", PROXY.format("http:apiserver-service:", "/debug.ping"))
    missing = kubectl("get", "--raw", PROXY.format("apiserver-service:10008", "/"), check=False)

    assert ping.stdout == '{"data": {}}' and by_name.stdout == by_scheme.stdout == ping.stdout
    assert seen[0] == ("GET", "/debug.ping?a=1")
    # the target's own 404, passed on: kubectl names it as the API server's
    assert missing.returncode == 1
    assert missing.stderr.strip() == (
        "Error from server (NotFound): the server could not find the requested resource"
    )
    assert ("GET", "/") in seen


def test_the_service_proxy_answers_from_a_callable(kube_api: FakeKubeAPI, kubectl) -> None:
    asked = []

    def answer(method: str, path: str) -> tuple[int, object]:
        asked.append((method, path))
        return (200, {"path": path}) if path.startswith("/ok") else (500, "boom")

    kube_api.add_service("trains", "fileserver-service", [30081])
    kube_api.set_service_proxy("trains", "fileserver-service", 10081, answer)

    ok = kubectl("get", "--raw", PROXY.format("fileserver-service:10081", "/ok/x"))
    failed = kubectl("get", "--raw", PROXY.format("fileserver-service:10081", "/"), check=False)

    assert ok.json() == {"path": "/ok/x"} and asked[0] == ("GET", "/ok/x")
    assert failed.returncode == 1 and "Error from server (InternalError)" in failed.stderr
    assert '("boom")' in failed.stderr


def test_the_service_proxy_says_what_the_real_one_says_when_nothing_answers(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kube_api.add_service("trains", "apiserver-service", [30008])

    def get(service: str) -> str:
        done = kubectl("get", "--raw", PROXY.format(service, "/debug.ping"), check=False)
        assert done.returncode == 1
        return done.stderr.strip()

    no_target = get("apiserver-service:10008")
    no_service = get("nosuch:8008")
    no_port = get("apiserver-service:9")
    kube_api.set_service_proxy("trains", "apiserver-service", 10008, "http://127.0.0.1:1")
    refused = get("apiserver-service:10008")
    kube_api.set_service_proxy("trains", "apiserver-service", 10008, None)
    cleared = get("apiserver-service:10008")

    assert (
        no_target
        == cleared
        == (
            "Error from server (ServiceUnavailable): no endpoints available for service"
            ' "apiserver-service"'
        )
    )
    assert no_service == 'Error from server (NotFound): services "nosuch" not found'
    assert no_port == (
        'Error from server (ServiceUnavailable): no service port "9" found for service'
        ' "apiserver-service"'
    )
    assert refused == (
        "Error from server (ServiceUnavailable): error trying to reach service: dial tcp"
        " 127.0.0.1:1: connect: connection refused"
    )
    proxied = [p.split("?")[0] for m, p in kube_api.requests if "/proxy/" in p]
    assert (
        proxied[0] == "/api/v1/namespaces/trains/services/apiserver-service:10008/proxy/debug.ping"
    )
