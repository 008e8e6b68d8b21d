"""--domain: the options' validation, the Ingress rendered from the playbook's deploy section,
the wrapper tree (rendered by the real `kubectl kustomize`, offline, and validated against the
Kubernetes schemas), and what the summary says about reaching trains-server."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from trains_nodeprep.cluster.ingress import (
    BODY_SIZE_ANNOTATION,
    IngressOptions,
    backends_requirement,
    ingress_options,
    make_access,
    render_ingress,
    render_ingress_yaml,
    validate_domain,
)
from trains_nodeprep.cluster.kubectl import bundled_kustomization, with_image_version, with_ingress
from trains_nodeprep.cluster.tree import parse_tree
from trains_nodeprep.errors import UsageError
from trains_nodeprep.model import DeploySpec, Endpoint
from trains_nodeprep.report import _access_json, access_lines

KUBE_VERSION = "1.32"
SPEC = DeploySpec()
FULL = IngressOptions("example.org", "nginx", "trains-tls")


@pytest.mark.parametrize(
    "domain", ["example.org", "trains.lan", "a-b.c1.example.com", "localhost", "x" * 63 + ".org"]
)
def test_a_dns_name_is_a_domain(domain):
    assert validate_domain(domain) == domain


@pytest.mark.parametrize(
    ("domain", "fix"),
    [
        ("Example.org", "write it in lowercase (--domain example.org)"),
        ("example.org.", "drop the trailing dot (--domain example.org)"),
        ("*.example.org", "give the domain without '*.'"),
        ("https://example.org", "give the name only, without scheme, port or path"),
        ("example.org:443", "give the name only"),
        ("exa_mple.org", "use labels of lowercase letters, digits and '-'"),
        ("-example.org", "use labels of lowercase letters"),
        ("example..org", "use labels of lowercase letters"),
        ("", "use labels of lowercase letters"),
        ("x" * 64 + ".org", "at most 63 each"),
        (".".join(["abcdefghi"] * 25), "use a name of at most 247 characters"),
    ],
)
def test_a_domain_that_is_no_dns_name_is_one_line_naming_the_option_and_the_fix(domain, fix):
    with pytest.raises(UsageError) as caught:
        validate_domain(domain)
    message = str(caught.value)
    assert message.startswith(f"--domain {domain!r} is not a DNS name: ") and fix in message
    assert "\n" not in message


def test_ingress_class_and_tls_secret_need_the_domain_and_kubernetes_names():
    assert ingress_options(None, None, None) is None
    assert ingress_options("example.org", None, None) == IngressOptions("example.org")
    for option, args in (
        ("--ingress-class", (None, "nginx", None)),
        ("--tls-secret", (None, None, "tls")),
    ):
        with pytest.raises(UsageError, match=f"^{option} configures the Ingress that --domain"):
            ingress_options(*args)
    with pytest.raises(UsageError, match=r"^--ingress-class 'Nginx_1' is not a Kubernetes name"):
        ingress_options("example.org", "Nginx_1", None)
    with pytest.raises(UsageError, match=r"^--tls-secret 'my secret' is not a Kubernetes name"):
        ingress_options("example.org", None, "my secret")


def test_the_ingress_routes_each_host_to_its_service_port_in_the_playbooks_namespace():
    ingress = render_ingress(SPEC, FULL)

    assert ingress["apiVersion"] == "networking.k8s.io/v1" and ingress["kind"] == "Ingress"
    assert ingress["metadata"]["name"] == "trains-server"
    assert ingress["metadata"]["namespace"] == "trains"
    assert ingress["metadata"]["annotations"] == {BODY_SIZE_ANNOTATION: "0"}
    assert ingress["spec"]["ingressClassName"] == "nginx"
    assert ingress["spec"]["tls"] == [
        {
            "hosts": ["app.example.org", "api.example.org", "files.example.org"],
            "secretName": "trains-tls",
        }
    ]
    assert [
        (rule["host"], path["path"], path["pathType"], path["backend"]["service"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ] == [
        ("app.example.org", "/", "Prefix", {"name": "webserver-service", "port": {"number": 8080}}),
        ("api.example.org", "/", "Prefix", {"name": "apiserver-service", "port": {"number": 8008}}),
        (
            "files.example.org",
            "/",
            "Prefix",
            {"name": "fileserver-service", "port": {"number": 8081}},
        ),
    ]


def test_without_class_and_secret_the_ingress_has_neither():
    spec = render_ingress(SPEC, IngressOptions("example.org"))["spec"]
    assert "ingressClassName" not in spec and "tls" not in spec


def test_another_layout_of_the_playbook_gives_its_namespace_services_and_hosts():
    spec = DeploySpec(
        "clearml",
        (
            Endpoint("web", "clearml-webserver", 80, 30080, "app"),
            Endpoint("api", "clearml-apiserver", 8008, 30008, "api", "/debug.ping"),
            Endpoint("files", "clearml-fileserver", 8081, 30081, "files"),
        ),
    )
    ingress = render_ingress(spec, IngressOptions("ml.example.com"))

    assert ingress["metadata"]["namespace"] == "clearml"
    assert [
        (r["host"], r["http"]["paths"][0]["backend"]["service"]["name"])
        for r in ingress["spec"]["rules"]
    ] == [
        ("app.ml.example.com", "clearml-webserver"),
        ("api.ml.example.com", "clearml-apiserver"),
        ("files.ml.example.com", "clearml-fileserver"),
    ]


def test_the_ingress_file_is_the_object_with_the_reason_for_the_annotation():
    text = render_ingress_yaml(SPEC, FULL)
    assert yaml.safe_load(text) == render_ingress(SPEC, FULL)
    assert "413" in text and BODY_SIZE_ANNOTATION in text.split("{")[0]  # in the comment


def _kustomize(directory: Path) -> list[dict]:
    kubectl = shutil.which("kubectl") or "/usr/bin/kubectl"
    out = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def test_the_wrapper_tree_adds_the_ingress_to_the_pinned_tree_and_validates(tmp_path):
    pinned = with_image_version(bundled_kustomization(), "0.17.0", str(tmp_path))
    wrapper = with_ingress(pinned, SPEC, FULL, str(tmp_path))

    objects = _kustomize(wrapper)

    assert wrapper != pinned and (wrapper / "ingress.yaml").is_file()
    bundled = _kustomize(bundled_kustomization())
    assert len(objects) == len(bundled) + 1
    [ingress] = [o for o in objects if o["kind"] == "Ingress"]
    assert ingress == render_ingress(SPEC, FULL)
    images = {
        c["image"]
        for o in objects
        if o["kind"] == "Deployment"
        for c in o["spec"]["template"]["spec"]["containers"]
    }
    assert "allegroai/trains-server:0.17.0" in images  # both wrappers apply
    for obj in objects:
        assert kubernetes_validate.validate(obj, KUBE_VERSION, strict=True) == KUBE_VERSION
    tree = parse_tree(yaml.safe_dump_all(objects))
    assert backends_requirement(tree, SPEC).ok
    assert list(bundled_kustomization().iterdir()) == [
        bundled_kustomization() / "kustomization.yaml"
    ]


def test_without_domain_the_tree_is_the_one_given(tmp_path):
    assert with_ingress(bundled_kustomization(), SPEC, None, str(tmp_path)) == (
        bundled_kustomization()
    )
    assert list(tmp_path.iterdir()) == []


def test_the_strict_schema_check_catches_a_wrong_backend_field():
    ingress = render_ingress(SPEC, FULL)
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]
    backend["serviceName"] = backend.pop("service")["name"]  # extensions/v1beta1's shape
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ingress, KUBE_VERSION, strict=True)


TREE = """\
apiVersion: v1
kind: Service
metadata: {name: webserver-service, namespace: trains}
spec:
  ports: [{port: 80, targetPort: 80, nodePort: 30080}]
---
apiVersion: v1
kind: Service
metadata: {name: apiserver-service, namespace: trains}
spec:
  ports: [{port: 8008, nodePort: 30008}]
"""


def test_a_backend_the_tree_does_not_have_is_named_with_the_ports_it_has():
    req = backends_requirement(parse_tree(TREE), SPEC)

    assert not req.ok and req.id == "ingress.backends"
    assert req.actual == (
        "trains/webserver-service has no port 8080 (its ports: 80);"
        " no Service trains/fileserver-service (fix deploy.endpoints in the playbook)"
    )


def test_access_with_a_domain_names_the_dns_records_and_the_load_balancer_mapping():
    access = make_access(SPEC, "10.0.0.5", FULL)

    assert access_lines(access) == [
        "ingress  applied Ingress trains/trains-server: app.example.org ->"
        " webserver-service:8080, api.example.org -> apiserver-service:8008, files.example.org"
        " -> fileserver-service:8081 (class nginx, TLS secret trains-tls)",
        "dns      app.example.org -> 10.0.0.5",
        "dns      api.example.org -> 10.0.0.5",
        "dns      files.example.org -> 10.0.0.5",
        "         (DNS records: to where the ingress controller listens, this node or the load"
        " balancer in front of it)",
        "lb       for a load balancer: app.example.org -> 10.0.0.5:30080, api.example.org ->"
        " 10.0.0.5:30008, files.example.org -> 10.0.0.5:30081 (the NodePorts)",
    ]
    data = _access_json(access)
    assert data["domain"] == "example.org"
    assert data["ingress"]["rules"][2] == {
        "host": "files.example.org",
        "service": "fileserver-service",
        "port": 8081,
    }
    assert data["dns"][1] == {"name": "api.example.org", "points_to": "10.0.0.5"}
    assert data["load_balancer"][0] == {
        "endpoint": "web",
        "host": "app.example.org",
        "node_port": 30080,
        "target": "10.0.0.5:30080",
    }


def test_access_without_a_domain_is_the_load_balancer_mapping_alone():
    access = make_access(SPEC, None, None)

    assert access_lines(access, planned=True) == [
        "lb       for a load balancer: web -> NODE:30080, api -> NODE:30008, files -> NODE:30081"
        " (the NodePorts)"
    ]
    assert _access_json(access) == {
        "domain": None,
        "ingress": None,
        "dns": [],
        "load_balancer": [
            {"endpoint": e.name, "host": None, "node_port": e.node_port, "target": t}
            for e, t in zip(SPEC.endpoints, ["NODE:30080", "NODE:30008", "NODE:30081"], strict=True)
        ],
    }


def test_the_playbooks_endpoints_are_the_bundled_services_ports():
    """deploy.endpoints' port is the Service's port (an Ingress backend must name it)."""
    from trains_nodeprep.playbook import load_playbook

    deploy = load_playbook(None).deploy
    assert deploy == dataclasses.replace(SPEC)
    tree = parse_tree(yaml.safe_dump_all(_kustomize(bundled_kustomization())))
    for endpoint in deploy.endpoints:
        service = tree.find("Service", deploy.namespace, endpoint.service)
        assert service is not None, endpoint
        assert {"port": endpoint.port, "nodePort": endpoint.node_port}.items() <= next(
            p for p in service.spec["ports"] if p["nodePort"] == endpoint.node_port
        ).items(), endpoint
