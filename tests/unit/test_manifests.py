"""The bundled kustomize tree (trains_nodeprep/manifests): rendered by the real
`kubectl kustomize` (offline, no API server) and checked object by object, then
validated against the Kubernetes schemas bundled in kubernetes-validate."""

from __future__ import annotations

import copy
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

import trains_nodeprep

MANIFESTS = Path(trains_nodeprep.__file__).parent / "manifests"
OVERLAY = MANIFESTS / "overlays" / "current_version"
KUBE_VERSION = "1.32"  # the kubectl here is 1.32; kubernetes-validate bundles its schemas
PINNED_TAG = "0.16.1"

CLUSTER_SCOPED = {
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "StorageClass",
}


def _kubectl() -> str:
    path = shutil.which("kubectl") or "/usr/bin/kubectl"
    assert Path(path).exists(), "kubectl (with kustomize) is needed to render the manifests"
    return path


@pytest.fixture(scope="module")
def rendered() -> list[dict]:
    out = subprocess.run(
        [_kubectl(), "kustomize", str(OVERLAY)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def by_kind(objs: list[dict], kind: str) -> dict[str, dict]:
    return {o["metadata"]["name"]: o for o in objs if o["kind"] == kind}


def container(deployment: dict) -> dict:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return containers[0]


def env(deployment: dict) -> dict[str, str]:
    return {e["name"]: e["value"] for e in container(deployment).get("env", [])}


def host_paths(deployment: dict) -> dict[str, str]:
    """mountPath in the container -> hostPath on the node."""
    pod = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v["hostPath"]["path"] for v in pod.get("volumes", []) if "hostPath" in v}
    return {
        m["mountPath"]: volumes[m["name"]] for m in container(deployment).get("volumeMounts", [])
    }


def test_overlay_uses_resources_not_deprecated_bases() -> None:
    for kustomization in MANIFESTS.rglob("kustomization.yaml"):
        doc = yaml.safe_load(kustomization.read_text())
        assert "bases" not in doc, kustomization
        assert doc.get("resources"), kustomization
    overlay = yaml.safe_load((OVERLAY / "kustomization.yaml").read_text())
    assert overlay["resources"] == ["../../base"]


def test_the_expected_objects(rendered: list[dict]) -> None:
    kinds = sorted((o["kind"], o["metadata"]["name"]) for o in rendered)
    assert kinds == sorted(
        [("Namespace", "trains")]
        + [
            ("Deployment", n)
            for n in ("apiserver", "webserver", "fileserver", "elasticsearch", "mongo", "redis")
        ]
        + [
            ("Service", n)
            for n in (
                "apiserver-service",
                "webserver-service",
                "fileserver-service",
                "elasticsearch-service",
                "mongo-service",
                "redis",
            )
        ]
    )


def test_every_namespaced_object_is_in_namespace_trains(rendered: list[dict]) -> None:
    for obj in rendered:
        if obj["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in obj["metadata"], obj["metadata"]
        else:
            assert obj["metadata"].get("namespace") == "trains", (obj["kind"], obj["metadata"])


def test_node_ports_exactly(rendered: list[dict]) -> None:
    services = by_kind(rendered, "Service")
    node_ports = {
        (name, p["port"], p.get("targetPort"), p["nodePort"])
        for name, svc in services.items()
        for p in svc["spec"]["ports"]
        if "nodePort" in p
    }
    assert node_ports == {
        ("apiserver-service", 8008, 8008, 30008),
        ("webserver-service", 8080, 80, 30080),
        ("fileserver-service", 8081, 8081, 30081),
    }
    for name in ("apiserver-service", "webserver-service", "fileserver-service"):
        assert services[name]["spec"]["type"] == "NodePort"
    cluster_ip = {
        name: [p["port"] for p in s["spec"]["ports"]]
        for name, s in services.items()
        if s["spec"]["type"] == "ClusterIP"
    }
    assert cluster_ip == {
        "elasticsearch-service": [9200],
        "mongo-service": [27017],
        "redis": [6379],
    }


def test_every_service_selects_a_deployment(rendered: list[dict]) -> None:
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"]
        for d in by_kind(rendered, "Deployment").values()
    ]
    for name, svc in by_kind(rendered, "Service").items():
        selector = svc["spec"]["selector"]
        matching = [labels for labels in pod_labels if selector.items() <= labels.items()]
        assert len(matching) == 1, (name, selector)


def test_every_pod_runs_on_the_trains_node(rendered: list[dict]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert deployments
    for name, dep in deployments.items():
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"app": "trains"}, name
        assert (
            dep["spec"]["selector"]["matchLabels"].items()
            <= dep["spec"]["template"]["metadata"]["labels"].items()
        )


def test_elasticsearch(rendered: list[dict]) -> None:
    es = by_kind(rendered, "Deployment")["elasticsearch"]
    assert container(es)["image"] == "docker.elastic.co/elasticsearch/elasticsearch:7.6.2"
    e = env(es)
    assert e["discovery.type"] == "single-node"
    assert e["bootstrap.memory_lock"] == "true"
    assert e["cluster.name"] == "trains"
    assert e["ES_JAVA_OPTS"] == "-Xms2g -Xmx2g"
    assert host_paths(es) == {"/usr/share/elasticsearch/data": "/opt/trains/data/elastic_7"}
    assert es["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == 1000
    # No privileged init container: vm.max_map_count and ulimits are the node's business.
    assert "initContainers" not in es["spec"]["template"]["spec"]
    assert es["spec"]["strategy"]["type"] == "Recreate"


def test_mongo_and_redis(rendered: list[dict]) -> None:
    deployments = by_kind(rendered, "Deployment")
    assert container(deployments["mongo"])["image"] == "mongo:3.6.5"
    assert host_paths(deployments["mongo"]) == {
        "/data/db": "/opt/trains/data/mongo/db",
        "/data/configdb": "/opt/trains/data/mongo/configdb",
    }
    assert container(deployments["redis"])["image"] == "redis:5.0"
    assert host_paths(deployments["redis"]) == {"/data": "/opt/trains/data/redis"}


def test_trains_server_deployments(rendered: list[dict]) -> None:
    deployments = by_kind(rendered, "Deployment")
    ports = {"apiserver": 8008, "webserver": 80, "fileserver": 8081}
    for name, port in ports.items():
        c = container(deployments[name])
        assert c["image"] == f"allegroai/trains-server:{PINNED_TAG}", name
        assert c["args"] == [name]
        assert [p["containerPort"] for p in c["ports"]] == [port]
    api_env = env(deployments["apiserver"])
    assert api_env["TRAINS_ELASTIC_SERVICE_HOST"] == "elasticsearch-service"
    assert api_env["TRAINS_MONGODB_SERVICE_HOST"] == "mongo-service"
    assert api_env["TRAINS_REDIS_SERVICE_HOST"] == "redis"
    assert host_paths(deployments["apiserver"]) == {
        "/var/log/trains": "/opt/trains/logs",
        "/opt/trains/config": "/opt/trains/config",
    }
    assert host_paths(deployments["fileserver"]) == {
        "/var/log/trains": "/opt/trains/logs",
        "/mnt/fileserver": "/opt/trains/data/fileserver",
    }


def test_only_the_overlay_pins_the_trains_server_tag(rendered: list[dict]) -> None:
    images = {
        c["image"]
        for d in by_kind(rendered, "Deployment").values()
        for c in d["spec"]["template"]["spec"]["containers"]
    }
    assert {i for i in images if i.startswith("allegroai/")} == {
        f"allegroai/trains-server:{PINNED_TAG}"
    }
    for path in (MANIFESTS / "base").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            for c in (
                (doc or {})
                .get("spec", {})
                .get("template", {})
                .get("spec", {})
                .get("containers", [])
            ):
                if c["image"].startswith("allegroai/trains-server"):
                    assert c["image"] == "allegroai/trains-server", (path, c["image"])


def test_every_object_validates_against_the_kubernetes_schema(rendered: list[dict]) -> None:
    assert KUBE_VERSION in {
        kubernetes_validate.utils.major_minor(v) for v in kubernetes_validate.utils.all_versions()
    }
    for obj in rendered:
        # Raises ValidationError (bad or unknown field: strict) or SchemaNotFoundError.
        validated = kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
        assert validated == KUBE_VERSION


def test_the_strict_schema_check_catches_a_misspelt_field(rendered: list[dict]) -> None:
    dep = copy.deepcopy(by_kind(rendered, "Deployment")["elasticsearch"])
    dep["spec"]["template"]["spec"]["nodeSelecter"] = dep["spec"]["template"]["spec"].pop(
        "nodeSelector"
    )
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(dep, KUBE_VERSION, strict=True)
