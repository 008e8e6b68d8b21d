"""Reaching trains-server: the Ingress of `--domain`, the DNS records and load-balancer mapping
the summary prints, and its health in `check` and at the end of `run --wait`.

The nodes are real test-bed nodes; the cluster is tests/kubefake.FakeKubeAPI, a TEST DOUBLE of
the Kubernetes API (no real API server can run here) driven by the real kubectl binary.
trains-server's containers cannot run here either: what answers on the node's NodePorts
30008/30080/30081 are STAND-INS, small HTTP servers started inside the node's network namespace
(tests/integration/trains_standin.py), and what answers the API server's service proxy is the
fake's stand-in for it (tests/kubefake/proxy.py), set to forward to them.
"""

from __future__ import annotations

import json

import kubernetes_validate
import pytest

from .cli import json_output, trains_nodeprep
from .standins import NODE_PORTS, StandIns
from .test_deploy import TRAINS, writes

SERVICES = {
    "web": ("webserver-service", 8080),
    "api": ("apiserver-service", 8008),
    "files": ("fileserver-service", 8081),
}
HOSTS = {"web": "app", "api": "api", "files": "files"}
KUBE_VERSION = "1.32"


@pytest.fixture
def labeled_node(make_node, kube_api):
    node = make_node()
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=node.address)
    return node


def requirements(report: dict, prefix: str = "service.") -> dict[str, dict]:
    return {r["id"]: r for r in report["cluster"]["requirements"] if r["id"].startswith(prefix)}


def proxied(kube_api) -> list[str]:
    """The service proxy paths asked (kubectl adds ?timeout= of --request-timeout)."""
    return [path.split("?")[0] for _method, path in kube_api.requests if "/proxy/" in path]


def test_domain_deploys_the_ingress_and_the_summary_says_what_dns_and_a_load_balancer_need(
    bed, kube_api, kubeconfig, labeled_node
):
    options = ("--domain", "example.org", "--ingress-class", "nginx", "--tls-secret", "trains-tls")

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", *options, "-o", "json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    [ingress] = kube_api.objects("Ingress")
    assert (ingress["metadata"]["namespace"], ingress["metadata"]["name"]) == (
        "trains",
        "trains-server",
    )
    assert ingress["metadata"]["annotations"]["nginx.ingress.kubernetes.io/proxy-body-size"] == "0"
    spec = ingress["spec"]
    assert spec["ingressClassName"] == "nginx"
    assert spec["tls"] == [
        {
            "hosts": ["app.example.org", "api.example.org", "files.example.org"],
            "secretName": "trains-tls",
        }
    ]
    backends = {
        rule["host"]: (
            path["backend"]["service"]["name"],
            path["backend"]["service"]["port"]["number"],
            path["path"],
            path["pathType"],
        )
        for rule in spec["rules"]
        for path in rule["http"]["paths"]
    }
    assert backends == {
        f"{HOSTS[name]}.example.org": (service, port, "/", "Prefix")
        for name, (service, port) in SERVICES.items()
    }
    # each backend is a port of the Service the tree applied
    for service, port in SERVICES.values():
        applied = kube_api.get_object("Service", service, "trains")
        assert applied is not None and port in [p["port"] for p in applied["spec"]["ports"]]
    # what kubectl applied (the rendered object) is valid Kubernetes 1.32
    rendered = json.loads(
        ingress["metadata"]["annotations"]["kubectl.kubernetes.io/last-applied-configuration"]
    )
    assert kubernetes_validate.validate(rendered, KUBE_VERSION, strict=True) == KUBE_VERSION

    address = labeled_node.address
    access = json_output(result)["cluster"]["access"]
    assert access["domain"] == "example.org"
    assert access["dns"] == [
        {"name": f"{HOSTS[name]}.example.org", "points_to": address} for name in SERVICES
    ]
    assert access["load_balancer"] == [
        {
            "endpoint": name,
            "host": f"{HOSTS[name]}.example.org",
            "node_port": NODE_PORTS[name],
            "target": f"{address}:{NODE_PORTS[name]}",
        }
        for name in SERVICES
    ]
    assert access["ingress"]["class"] == "nginx" and access["ingress"]["tls_secret"] == "trains-tls"
    # the same for people (on stderr, as stdout carries the JSON)
    assert f"dns      app.example.org -> {address}" in result.stderr
    assert f"dns      files.example.org -> {address}" in result.stderr
    assert (
        f"lb       for a load balancer: app.example.org -> {address}:30080,"
        f" api.example.org -> {address}:30008, files.example.org -> {address}:30081"
    ) in result.stderr
    assert "applied Ingress trains/trains-server: app.example.org -> webserver-service:8080" in (
        result.stderr
    )
    assert "ingress.networking.k8s.io/trains-server created" in result.stderr

    kube_api.clear_requests()
    again = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), *options)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "ingress.networking.k8s.io/trains-server unchanged" in again.stdout
    assert writes(kube_api) == []


def test_plan_with_domain_names_the_ingress_and_writes_nothing(
    bed, kube_api, kubeconfig, labeled_node
):
    result = trains_nodeprep(bed, "plan", "--kubeconfig", str(kubeconfig), "--domain", "trains.lan")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "would apply Ingress trains/trains-server: app.trains.lan -> webserver-service:8080" in (
        result.stdout
    )
    assert f"dns      api.trains.lan -> {labeled_node.address}" in result.stdout
    assert "ok     ingress.backends" in result.stdout
    assert writes(kube_api) == [] and kube_api.objects("Ingress") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--domain", "Example.org"),
            "--domain 'Example.org' is not a DNS name: write it in lowercase"
            " (--domain example.org)",
        ),
        (
            ("--domain", "https://example.org"),
            "--domain 'https://example.org' is not a DNS name: give the name only",
        ),
        (
            ("--tls-secret", "trains-tls"),
            "--tls-secret configures the Ingress that --domain adds: give --domain too",
        ),
        (
            ("--domain", "example.org", "--no-deploy"),
            "--domain adds an Ingress to trains-server's deploy: give a --kubeconfig",
        ),
    ],
    ids=["uppercase", "a URL", "tls without domain", "without the cluster"],
)
def test_bad_access_options_are_one_line_usage_errors(bed, kube_api, kubeconfig, args, message):
    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--host", "n1", *args)

    assert result.returncode == 2, result.stdout + result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert kube_api.requests == []


def test_check_asks_trains_server_on_the_node_ports_and_names_the_api_url_when_it_is_down(
    bed, kube_api, kubeconfig, labeled_node
):
    deployed = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes")
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    standins = StandIns(labeled_node).start()
    address = labeled_node.address

    up = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert up.returncode == 0, up.stdout + up.stderr
    found = requirements(json_output(up))
    assert found == {
        "service.api": {
            "id": "service.api",
            "expected": "GET /debug.ping answers 2xx within 2 s",
            "actual": f"HTTP 200 from http://{address}:30008/debug.ping",
            "ok": True,
            "where": f"http://{address}:30008/debug.ping",
        },
        "service.web": {
            "id": "service.web",
            "expected": "any HTTP answer to GET / within 2 s",
            "actual": f"HTTP 200 from http://{address}:30080/",
            "ok": True,
            "where": f"http://{address}:30080/",
        },
        "service.files": {  # the stand-in answers 404: any answer means up
            "id": "service.files",
            "expected": "any HTTP answer to GET / within 2 s",
            "actual": f"HTTP 404 from http://{address}:30081/",
            "ok": True,
            "where": f"http://{address}:30081/",
        },
    }
    assert proxied(kube_api) == []  # the node's ports answered: no proxy asked

    standins.stop("api")
    down = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig))
    reported = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert down.returncode == 1 and reported.returncode == 1, down.stdout + down.stderr
    assert "drift  service.api" in down.stdout
    assert f"(http://{address}:30008/debug.ping)" in down.stdout
    assert "ok     service.web" in down.stdout and "ok     service.files" in down.stdout
    api = requirements(json_output(reported))["service.api"]
    assert not api["ok"] and api["where"] == f"http://{address}:30008/debug.ping"
    assert api["actual"] == (
        f"no answer from http://{address}:30008/debug.ping: connection refused;"
        " via the API server's service proxy"
        " (/api/v1/namespaces/trains/services/apiserver-service:8008/proxy/debug.ping):"
        ' no endpoints available for service "apiserver-service"'
    )


def test_a_node_port_this_machine_cannot_reach_is_asked_through_the_service_proxy(
    bed, make_node, kube_api, kubeconfig
):
    """The node's InternalIP is on a network this machine does not reach (an address of the
    bed's subnet that no node has); the API server reaches the Services."""
    node = make_node()
    used = {n.address for n in bed.nodes.values()}
    private = next(f"10.200.0.{o}" for o in range(250, 1, -1) if f"10.200.0.{o}" not in used)
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=private, hostname=node.address)
    deployed = trains_nodeprep(
        bed, "run", "--host", node.address, "--kubeconfig", str(kubeconfig), "--yes"
    )
    assert deployed.returncode == 0, deployed.stdout + deployed.stderr
    StandIns(node).start()
    for name, (service, port) in SERVICES.items():
        kube_api.set_service_proxy(
            "trains", service, port, f"http://{node.address}:{NODE_PORTS[name]}"
        )
    kube_api.clear_requests()

    result = trains_nodeprep(
        bed, "check", "--host", node.address, "--kubeconfig", str(kubeconfig), "-o", "json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    found = requirements(json_output(result))
    assert sorted(found) == ["service.api", "service.files", "service.web"]
    api = found["service.api"]
    assert api["ok"] and api["where"] == f"http://{private}:30008/debug.ping"
    assert api["actual"].startswith(
        "HTTP 200 via the API server's service proxy"
        " (/api/v1/namespaces/trains/services/apiserver-service:8008/proxy/debug.ping);"
        f" http://{private}:30008/debug.ping: "
    ), api["actual"]
    assert found["service.files"]["actual"].startswith(
        "HTTP 404 via the API server's service proxy"
    )  # the stand-in's 404, passed on by the proxy: up
    assert sorted(proxied(kube_api)) == [
        "/api/v1/namespaces/trains/services/apiserver-service:8008/proxy/debug.ping",
        "/api/v1/namespaces/trains/services/fileserver-service:8081/proxy/",
        "/api/v1/namespaces/trains/services/webserver-service:8080/proxy/",
    ]


def test_run_wait_prints_only_the_urls_that_answer_and_the_load_balancer_mapping(
    bed, kube_api, kubeconfig, labeled_node
):
    StandIns(labeled_node).start("api", "web")  # no file server
    address = labeled_node.address

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--wait", "4", "-o", "json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    cluster = json_output(result)["cluster"]
    assert cluster["urls"] == {
        "api": f"http://{address}:30008",
        "web": f"http://{address}:30080",
    }
    health = {r["id"]: r["ok"] for r in cluster["health"]}
    assert health == {"service.api": True, "service.web": True, "service.files": False}
    assert f"files  http://{address}:30081" not in result.stderr
    assert f"api    http://{address}:30008" in result.stderr
    assert "note   service.files does not answer (no URL shown)" in result.stderr
    # no --domain: no Ingress, but what a load balancer in front of the node needs
    assert kube_api.objects("Ingress") == [] and cluster["access"]["dns"] == []
    assert (
        f"lb       for a load balancer: web -> {address}:30080, api -> {address}:30008,"
        f" files -> {address}:30081 (the NodePorts)"
    ) in result.stderr
