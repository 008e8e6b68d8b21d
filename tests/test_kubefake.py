"""The real kubectl 1.32 against FakeKubeAPI, a TEST DOUBLE of the Kubernetes API
server (no real one can run here): every call goes through the kubectl binary
with --kubeconfig and a --cache-dir of the test's own (the `kubectl` fixture)."""

from __future__ import annotations

import json
import re
import shutil
import socket
import statistics
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

import trains_nodeprep
from tests.kubefake import (  # noqa: F401 - fixtures
    FakeKubeAPI,
    json_merge_patch,
    kube_api,
    kubeconfig,
    kubectl,
    label_selector_matches,
    strategic_merge,
)

OVERLAY = Path(trains_nodeprep.__file__).parent / "manifests" / "overlays" / "current_version"
DEPLOYMENTS = ["apiserver", "elasticsearch", "fileserver", "mongo", "redis", "webserver"]
SERVICES = [
    "apiserver-service",
    "elasticsearch-service",
    "fileserver-service",
    "mongo-service",
    "redis",
    "webserver-service",
]
APPLY_LINES = (
    ["namespace/trains"]
    + [f"service/{s}" for s in SERVICES]
    + [f"deployment.apps/{d}" for d in DEPLOYMENTS]
)
# kubectl starts, reads its kubeconfig and does discovery: well under a second here.
FAST = 2.0

pytestmark = pytest.mark.skipif(
    shutil.which("kubectl") is None and not Path("/usr/bin/kubectl").exists(),
    reason="the real kubectl is needed",
)


def writes(api: FakeKubeAPI) -> list[tuple[str, str]]:
    return [
        (m, p.split("?")[0]) for m, p in api.requests if m in ("POST", "PATCH", "PUT", "DELETE")
    ]


def internal_ip(node: dict) -> str | None:
    return next(
        (a["address"] for a in node["status"]["addresses"] if a["type"] == "InternalIP"), None
    )


def test_get_nodes_by_label_returns_only_the_labeled_ones_with_their_internal_ip(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kube_api.add_node("node-a", labels={"app": "trains"}, internal_ip="10.200.0.2")
    kube_api.add_node("node-b", internal_ip="10.200.0.3")
    kube_api.add_node(
        "node-c", labels={"app": "other"}, internal_ip="10.200.0.4", hostname="c.example"
    )

    r = kubectl("get", "nodes", "-l", "app=trains", "-o", "json")
    nodes = r.json()["items"]
    assert [n["metadata"]["name"] for n in nodes] == ["node-a"]
    assert internal_ip(nodes[0]) == "10.200.0.2"
    assert nodes[0]["kind"] == "Node"
    assert ("GET", "/api/v1/nodes?labelSelector=app%3Dtrains&limit=500") in kube_api.requests
    assert r.seconds < FAST

    every = kubectl("get", "nodes", "-o", "json").json()["items"]
    assert {n["metadata"]["name"]: internal_ip(n) for n in every} == {
        "node-a": "10.200.0.2",
        "node-b": "10.200.0.3",
        "node-c": "10.200.0.4",
    }
    assert len(kubectl("get", "nodes", "-l", "app", "-o", "json").json()["items"]) == 2
    assert kubectl("get", "nodes", "-l", "app=nothing", "-o", "json").json()["items"] == []

    one = kubectl("get", "node", "node-c", "-o", "json").json()
    assert one["metadata"]["labels"]["kubernetes.io/hostname"] == "c.example"
    assert internal_ip(one) == "10.200.0.4"

    missing = kubectl("get", "node", "nope", "-o", "json", check=False)
    assert missing.returncode == 1
    assert 'nodes "nope" not found' in missing.stderr


def test_label_a_node(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_node("node-a", internal_ip="10.200.0.2")
    kube_api.add_node("node-b", internal_ip="10.200.0.3")
    kube_api.clear_requests()

    r = kubectl("label", "node", "node-b", "app=trains")
    assert r.stdout.strip() == "node/node-b labeled"
    assert writes(kube_api) == [("PATCH", "/api/v1/nodes/node-b")]
    assert kube_api.get_object("Node", "node-b")["metadata"]["labels"]["app"] == "trains"
    assert "app" not in kube_api.get_object("Node", "node-a")["metadata"]["labels"]
    labeled = kubectl("get", "nodes", "-l", "app=trains", "-o", "json").json()["items"]
    assert [n["metadata"]["name"] for n in labeled] == ["node-b"]

    # kubectl itself refuses to change a label without --overwrite; with it, the fake patches.
    refused = kubectl("label", "node", "node-b", "app=other", check=False)
    assert refused.returncode != 0 and "--overwrite is false" in refused.stderr
    kubectl("label", "node", "node-b", "app=other", "--overwrite")
    assert kube_api.get_object("Node", "node-b")["metadata"]["labels"]["app"] == "other"
    kubectl("label", "node", "node-b", "app-")
    assert "app" not in kube_api.get_object("Node", "node-b")["metadata"]["labels"]


def test_version(kube_api: FakeKubeAPI, kubectl) -> None:
    r = kubectl("version", "-o", "json").json()
    assert r["serverVersion"]["major"] == "1" and r["serverVersion"]["minor"] == "32"
    assert r["clientVersion"]["major"] == "1"
    assert ("GET", "/version?timeout=32s") in kube_api.requests


def test_apply_k_creates_every_object_and_a_second_apply_changes_nothing(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    first = kubectl("apply", "-k", str(OVERLAY))
    assert first.stdout.splitlines() == [f"{line} created" for line in APPLY_LINES]
    assert (
        first.stderr == ""
    )  # no warnings: validation deferred to the server, patches from built-in types
    assert first.seconds < FAST
    posts = [p for m, p in writes(kube_api) if m == "POST"]
    assert posts == (
        ["/api/v1/namespaces"]
        + ["/api/v1/namespaces/trains/services"] * 6
        + ["/apis/apps/v1/namespaces/trains/deployments"] * 6
    )
    assert [o["metadata"]["name"] for o in kube_api.objects("Deployment", "trains")] == DEPLOYMENTS
    assert [o["metadata"]["name"] for o in kube_api.objects("Service", "trains")] == SERVICES
    assert kube_api.get_object("Namespace", "trains")["status"]["phase"] == "Active"
    stored_kinds = {o["kind"] for o in kube_api.objects(namespace="trains")}
    assert stored_kinds == {"Service", "Deployment"}
    for dep in kube_api.objects("Deployment"):
        assert "kubectl.kubernetes.io/last-applied-configuration" in dep["metadata"]["annotations"]
        assert dep["spec"]["template"]["spec"]["nodeSelector"] == {"app": "trains"}
    api_dep = kube_api.get_object("Deployment", "apiserver", "trains")
    assert (
        api_dep["spec"]["template"]["spec"]["containers"][0]["image"]
        == "allegroai/trains-server:0.16.1"
    )

    kube_api.clear_requests()
    second = kubectl("apply", "-k", str(OVERLAY))
    assert second.stdout.splitlines() == [f"{line} unchanged" for line in APPLY_LINES]
    assert writes(kube_api) == []
    assert second.stderr == ""
    assert second.seconds < FAST
    assert len(kube_api.objects(namespace="trains")) == 12


def test_apply_k_of_a_changed_tree_patches_and_keeps_the_objects_whole(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    # Another version, one env var fewer, another node port: a copy of the tree.
    tree = tmp_path / "manifests"
    shutil.copytree(OVERLAY.parent.parent, tree)
    overlay = tree / "overlays" / "current_version" / "kustomization.yaml"
    overlay.write_text(overlay.read_text().replace('newTag: "0.16.1"', 'newTag: "0.16.0"'))
    api_yaml = tree / "base" / "apiserver.yaml"
    text = api_yaml.read_text()
    text = re.sub(r"\n *- name: TRAINS_REDIS_SERVICE_PORT\n *value: \"6379\"", "", text)
    api_yaml.write_text(text.replace("nodePort: 30008", "nodePort: 30018"))

    kube_api.clear_requests()
    r = kubectl("apply", "-k", str(tree / "overlays" / "current_version"))
    status = dict(line.rsplit(" ", 1) for line in r.stdout.splitlines())
    assert {k for k, v in status.items() if v == "configured"} == {
        "service/apiserver-service",
        "deployment.apps/apiserver",
        "deployment.apps/fileserver",
        "deployment.apps/webserver",
    }
    assert {m for m, _ in writes(kube_api)} == {"PATCH"}

    dep = kube_api.get_object("Deployment", "apiserver", "trains")
    (container,) = dep["spec"]["template"]["spec"]["containers"]
    assert container["image"] == "allegroai/trains-server:0.16.0"
    assert container["args"] == ["apiserver"]
    assert [e["name"] for e in container["env"]] == [
        "TRAINS_ELASTIC_SERVICE_HOST",
        "TRAINS_ELASTIC_SERVICE_PORT",
        "TRAINS_MONGODB_SERVICE_HOST",
        "TRAINS_MONGODB_SERVICE_PORT",
        "TRAINS_REDIS_SERVICE_HOST",
    ]
    assert [v["name"] for v in dep["spec"]["template"]["spec"]["volumes"]] == ["logs", "config"]
    assert dep["metadata"]["generation"] == 2 and dep["status"]["observedGeneration"] == 2
    svc = kube_api.get_object("Service", "apiserver-service", "trains")
    assert [(p["port"], p["nodePort"]) for p in svc["spec"]["ports"]] == [(8008, 30018)]

    again = kubectl("apply", "-k", str(tree / "overlays" / "current_version"))
    assert all(line.endswith(" unchanged") for line in again.stdout.splitlines())


def test_rollout_status_succeeds_for_every_deployment(kube_api: FakeKubeAPI, kubectl) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    for name in DEPLOYMENTS:
        r = kubectl("rollout", "status", f"deployment/{name}", "-n", "trains", "--timeout=10s")
        assert r.stdout.strip() == f'deployment "{name}" successfully rolled out'
        assert r.seconds < FAST
    missing = kubectl(
        "rollout", "status", "deployment/nope", "-n", "trains", "--timeout=2s", check=False
    )
    assert missing.returncode != 0 and "not found" in missing.stderr


def test_delete_k_removes_the_objects(kube_api: FakeKubeAPI, kubectl) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    r = kubectl(
        "delete", "-k", str(OVERLAY)
    )  # DELETE requests carry a body: it must not poison the connection
    assert r.stderr == ""
    assert len(r.stdout.splitlines()) == 13
    assert (
        kube_api.objects(namespace="trains") == []
        and kube_api.get_object("Namespace", "trains") is None
    )
    assert [o["metadata"]["name"] for o in kube_api.objects("Service")] == ["kubernetes"]


def test_deleting_the_namespace_takes_its_content(kube_api: FakeKubeAPI, kubectl) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    r = kubectl(
        "delete", "namespace", "trains"
    )  # Terminating, then gone: kubectl waits on a watch for that
    assert r.stdout.strip() == 'namespace "trains" deleted'
    assert r.seconds < FAST
    assert (
        kube_api.objects(namespace="trains") == []
        and kube_api.get_object("Namespace", "trains") is None
    )


def test_a_terminating_namespace_refuses_new_content(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.NAMESPACE_FINALIZE_SECONDS = 30
    kubectl("apply", "-k", str(OVERLAY))
    kubectl("delete", "namespace", "trains", "--wait=false")
    assert kube_api.get_object("Namespace", "trains")["status"]["phase"] == "Terminating"
    kubectl("delete", "deployment", "redis", "-n", "trains")
    r = kubectl("apply", "-k", str(OVERLAY), check=False)
    assert r.returncode == 1
    assert "because it is being terminated" in r.stderr


def test_a_watch_streams_changes(kube_api: FakeKubeAPI) -> None:
    rv = kube_api.objects("Namespace")[-1]["metadata"]["resourceVersion"]
    url = (
        f"{kube_api.url}/api/v1/nodes?watch=true&resourceVersion={rv}"
        "&labelSelector=app%3Dtrains&timeoutSeconds=5"
    )
    with urllib.request.urlopen(url, timeout=5) as resp:
        kube_api.add_node("other")
        kube_api.add_node("trains-node", labels={"app": "trains"})
        event = json.loads(resp.readline())
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == "trains-node"


def test_get_services_shows_the_node_ports_in_use(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_service("monitoring", "grafana", [30080])
    kube_api.add_service("ingress", "nginx", [30443, 31080])
    r = kubectl("get", "services", "-A", "-o", "json").json()
    used = {
        p["nodePort"]: f"{s['metadata']['namespace']}/{s['metadata']['name']}"
        for s in r["items"]
        for p in s["spec"].get("ports", [])
        if p.get("nodePort")
    }
    assert used == {30080: "monitoring/grafana", 30443: "ingress/nginx", 31080: "ingress/nginx"}
    # Like a fresh cluster: the default/kubernetes Service, no node port.
    assert "default/kubernetes" in {
        f"{s['metadata']['namespace']}/{s['metadata']['name']}" for s in r["items"]
    }


def test_apply_k_with_a_node_port_already_taken_fails_like_a_real_server(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kube_api.add_service("other", "taken", [30080])
    r = kubectl("apply", "-k", str(OVERLAY), check=False)
    assert r.returncode == 1
    assert (
        'The Service "webserver-service" is invalid: spec.ports[0].nodePort: Invalid value: 30080: '
        "provided port is already allocated"
    ) in r.stderr
    assert "service/webserver-service" not in r.stdout
    assert "deployment.apps/webserver created" in r.stdout  # kubectl goes on with the other objects
    assert kube_api.get_object("Service", "webserver-service", "trains") is None


def test_creating_in_a_missing_namespace_is_refused(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    manifest = tmp_path / "svc.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Service",
                "metadata": {"name": "x", "namespace": "nope"},
                "spec": {"ports": [{"port": 80}]},
            }
        )
    )
    r = kubectl("apply", "-f", str(manifest), check=False)
    assert r.returncode == 1 and 'namespaces "nope" not found' in r.stderr


def test_every_call_is_fast(kube_api: FakeKubeAPI, kubectl, capsys) -> None:
    kube_api.add_node("node-a", internal_ip="10.200.0.2")
    calls = [
        ("version", "-o", "json"),
        ("get", "nodes", "-l", "app=trains", "-o", "json"),
        ("label", "node", "node-a", "app=trains"),
        ("get", "node", "node-a", "-o", "json"),
        ("get", "services", "-A", "-o", "json"),
        ("apply", "-k", str(OVERLAY)),
        ("apply", "-k", str(OVERLAY)),
        *[
            ("rollout", "status", f"deployment/{d}", "-n", "trains", "--timeout=10s")
            for d in DEPLOYMENTS
        ],
    ]
    timings = []
    for args in calls:
        r = kubectl(*args)
        timings.append(
            (
                " ".join(
                    a if "/" not in a or a.startswith("deployment") else Path(a).name for a in args
                ),
                r.seconds,
            )
        )
    with capsys.disabled():
        print("\nkubectl against FakeKubeAPI (seconds):")
        for name, seconds in timings:
            print(f"  {seconds:5.2f}  kubectl {name}")
        print(
            f"  median {statistics.median(s for _, s in timings):.2f},"
            f" max {max(s for _, s in timings):.2f}"
        )
    assert max(s for _, s in timings) < FAST


@pytest.mark.parametrize(
    ("server_version", "extra"),
    [
        ("v1.29.1", []),
        ("v1.33.1", []),
        (
            "v1.28.3",
            ["--validate=false"],
        ),  # kubectl 1.28 validates with OpenAPI v2 (protobuf): not served
    ],
)
def test_the_kubectl_of_other_server_versions(
    server_version: str, extra: list[str], tmp_path: Path
) -> None:
    """The dispatcher kubectl runs its kubectl.1.MINOR nearest to the server's version."""
    from tests.kubefake import run_kubectl

    with FakeKubeAPI(server_version=server_version) as api:
        api.add_node("n1", internal_ip="10.0.0.1")
        config = api.write_kubeconfig(tmp_path / "kubeconfig")

        def k(*args: str):
            return run_kubectl(config, *args, cache_dir=tmp_path / "cache")

        minor = server_version.split(".")[1]
        assert k("version", "-o", "json").json()["clientVersion"]["minor"].rstrip("+") == minor
        assert k("apply", "-k", str(OVERLAY), *extra).stdout.count(" created") == 13
        assert k("apply", "-k", str(OVERLAY), *extra).stdout.count(" unchanged") == 13
        k("rollout", "status", "deployment/elasticsearch", "-n", "trains", "--timeout=10s")
        k("label", "node", "n1", "app=trains")
        assert len(k("get", "nodes", "-l", "app=trains", "-o", "json").json()["items"]) == 1


def test_requests_objects_and_clear_requests(kube_api: FakeKubeAPI) -> None:
    kube_api.add_node("n1", labels={"app": "trains"})
    with urllib.request.urlopen(kube_api.url + "/api/v1/nodes?labelSelector=app%3Dtrains") as resp:
        assert resp.status == 200
    assert kube_api.requests == [("GET", "/api/v1/nodes?labelSelector=app%3Dtrains")]
    kube_api.clear_requests()
    assert kube_api.requests == []
    assert [o["metadata"]["name"] for o in kube_api.objects("Namespace")] == [
        "default",
        "kube-node-lease",
        "kube-public",
        "kube-system",
    ]
    assert [o["metadata"]["name"] for o in kube_api.objects("Node")] == ["n1"]


def test_stop_returns_promptly_with_a_watch_open() -> None:
    api = FakeKubeAPI()
    api.start()
    port = int(api.url.rsplit(":", 1)[1])
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"GET /apis/apps/v1/deployments?watch=true&timeoutSeconds=300 HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    assert sock.recv(100).startswith(b"HTTP/1.1 200")
    started = time.monotonic()
    api.stop()
    assert time.monotonic() - started < 2
    sock.close()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=1).close()


def test_kubeconfig_points_at_the_server(kube_api: FakeKubeAPI, kubeconfig: Path) -> None:
    config = yaml.safe_load(kubeconfig.read_text())
    assert config["clusters"][0]["cluster"]["server"] == kube_api.url
    assert kube_api.url.startswith("http://127.0.0.1:")
    assert config["current-context"] == "fake"


@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=trains", {"app": "trains"}, True),
        ("app==trains", {"app": "trains"}, True),
        ("app=trains", {"app": "other"}, False),
        ("app!=trains", {}, True),
        ("app", {"app": ""}, True),
        ("!app", {"app": "x"}, False),
        ("app=trains,tier!=db", {"app": "trains", "tier": "web"}, True),
        ("", {}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict, expected: bool) -> None:
    assert label_selector_matches(selector, labels) is expected


def test_strategic_merge_and_merge_patch() -> None:
    current = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "image": "x:1",
                    "env": [{"name": "E", "value": "1"}, {"name": "F", "value": "2"}],
                },
                {"name": "b", "image": "y:1"},
            ],
            "keep": 1,
        }
    }
    patch = {
        "spec": {
            "$setElementOrder/containers": [{"name": "b"}, {"name": "a"}],
            "containers": [
                {"name": "a", "image": "x:2", "env": [{"$patch": "delete", "name": "E"}]}
            ],
            "keep": None,
        }
    }
    assert strategic_merge(current, patch) == {
        "spec": {
            "containers": [
                {"name": "b", "image": "y:1"},
                {"name": "a", "image": "x:2", "env": [{"name": "F", "value": "2"}]},
            ]
        }
    }
    assert json_merge_patch(
        {"metadata": {"labels": {"a": "1", "b": "2"}}},
        {"metadata": {"labels": {"a": None, "c": "3"}}},
    ) == {"metadata": {"labels": {"b": "2", "c": "3"}}}


# ---------------------------------------------------------------- pods and kubectl exec
ES = {"app": "elasticsearch"}
MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"
ES_FILES = {
    "/proc/1/limits": "Limit                     Soft Limit           Hard Limit           "
    "Units     \n"
    "Max open files            1024                 65536                files     \n",
    MAX_MAP_COUNT: "262144\n",
}


def test_get_pods_lists_the_added_pods_by_label(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_pod(
        "trains", "elasticsearch-5d8f-abcde", labels=ES, node_name="worker-1", files=ES_FILES
    )
    kube_api.add_pod("trains", "mongo-1", labels={"app": "mongo"}, containers=("mongo",))
    kube_api.add_pod("trains", "elasticsearch-old", labels=ES, phase="Pending")

    pods = kubectl("get", "pods", "-n", "trains", "-l", "app=elasticsearch", "-o", "json").json()[
        "items"
    ]
    assert [p["metadata"]["name"] for p in pods] == [
        "elasticsearch-5d8f-abcde",
        "elasticsearch-old",
    ]
    running = pods[0]
    assert running["spec"]["nodeName"] == "worker-1"
    assert running["status"]["phase"] == "Running"
    assert [(c["name"], c["ready"]) for c in running["status"]["containerStatuses"]] == [
        ("elasticsearch", True)
    ]
    assert pods[1]["status"]["phase"] == "Pending" and "nodeName" not in pods[1]["spec"]


def test_exec_cat_prints_the_pods_files(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files=ES_FILES)

    r = kubectl(
        "exec",
        "-n",
        "trains",
        "es-1",
        "-c",
        "elasticsearch",
        "--",
        "cat",
        "/proc/1/limits",
        MAX_MAP_COUNT,
    )
    assert r.stdout == ES_FILES["/proc/1/limits"] + "262144\n"
    assert r.stderr == ""
    assert r.seconds < FAST
    # kubectl 1.32: GET the pod, then a WebSocket upgrade offering v5.channel.k8s.io (no SPDY
    # fallback needed).
    assert kube_api.execs == [
        (
            "trains",
            "es-1",
            "elasticsearch",
            ("cat", "/proc/1/limits", MAX_MAP_COUNT),
            "v5.channel.k8s.io",
        )
    ]
    exec_requests = [(m, p) for m, p in kube_api.requests if "/exec" in p]
    assert exec_requests == [
        (
            "GET",
            "/api/v1/namespaces/trains/pods/es-1/exec?command=cat&command=%2Fproc%2F1%2Flimits"
            "&command=%2Fproc%2Fsys%2Fvm%2Fmax_map_count&container=elasticsearch&stderr=true&stdout=true",
        )
    ]


def test_exec_of_a_big_file_arrives_whole(kube_api: FakeKubeAPI, kubectl) -> None:
    big = "".join(f"line {n}\n" for n in range(30000))  # ~270 kB: several frames
    kube_api.add_pod("trains", "es-1", labels=ES, files={"/big": big})
    assert kubectl("exec", "-n", "trains", "es-1", "--", "cat", "/big").stdout == big


def test_exec_cat_of_a_missing_file_exits_1_like_cat(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files=ES_FILES)

    r = kubectl("exec", "-n", "trains", "es-1", "--", "cat", "/nope", MAX_MAP_COUNT, check=False)
    assert r.returncode == 1
    assert r.stdout == "262144\n"
    assert r.stderr.splitlines() == [
        "cat: /nope: No such file or directory",
        "command terminated with exit code 1",
    ]


def test_exec_of_anything_but_cat_exits_126(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files=ES_FILES)

    for command in (["ls", "/"], ["sh", "-c", "cat /proc/1/limits"], ["cat", "-A", MAX_MAP_COUNT]):
        r = kubectl("exec", "-n", "trains", "es-1", "--", *command, check=False)
        assert r.returncode == 126, command
        assert r.stdout == ""
        assert (
            "FakeKubeAPI: exec runs nothing" in r.stderr
            and "command terminated with exit code 126" in r.stderr
        )


def test_exec_into_a_wrong_pod_or_container(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files=ES_FILES)
    kube_api.add_pod("trains", "es-pending", labels=ES, phase="Pending", files=ES_FILES)

    missing = kubectl("exec", "-n", "trains", "nope", "--", "cat", MAX_MAP_COUNT, check=False)
    assert missing.returncode == 1
    assert missing.stderr.strip() == 'Error from server (NotFound): pods "nope" not found'
    other_ns = kubectl("exec", "-n", "default", "es-1", "--", "cat", MAX_MAP_COUNT, check=False)
    assert other_ns.returncode == 1 and 'pods "es-1" not found' in other_ns.stderr
    container = kubectl(
        "exec", "-n", "trains", "es-1", "-c", "mongo", "--", "cat", MAX_MAP_COUNT, check=False
    )
    assert container.returncode == 1
    assert (
        container.stderr.strip()
        == "Error from server (BadRequest): container mongo is not valid for pod es-1"
    )
    pending = kubectl("exec", "-n", "trains", "es-pending", "--", "cat", MAX_MAP_COUNT, check=False)
    assert pending.returncode == 1 and "is not running (phase Pending)" in pending.stderr
    assert kube_api.execs == []


def test_exec_over_spdy_is_refused_clearly(kube_api: FakeKubeAPI, kubectl, monkeypatch) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files=ES_FILES)
    monkeypatch.setenv("KUBECTL_REMOTE_COMMAND_WEBSOCKETS", "false")

    r = kubectl("exec", "-n", "trains", "es-1", "--", "cat", MAX_MAP_COUNT, check=False)
    assert r.returncode == 1
    assert "exec is served over WebSocket only" in r.stderr and "SPDY/3.1" in r.stderr
    assert kube_api.execs == []


def _ws_exec(api: FakeKubeAPI, query: str, protocol: str) -> bytes:
    """A raw WebSocket exec handshake; everything the server sends until it closes."""
    sock = socket.create_connection(("127.0.0.1", int(api.url.rsplit(":", 1)[1])), timeout=5)
    sock.sendall(
        (
            f"GET /api/v1/namespaces/trains/pods/es-1/exec?{query} HTTP/1.1\r\nHost: x\r\n"
            "Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Protocol: {protocol}\r\n\r\n"
        ).encode()
    )
    data = b""

    def complete() -> bool:
        if b"\x88\x02\x03\xe8" in data:  # our close frame
            return True
        head, sep, body = data.partition(b"\r\n\r\n")
        length = re.search(rb"Content-Length: (\d+)", head)
        return bool(sep and length and len(body) >= int(length[1]))

    while not complete():
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    sock.sendall(b"\x88\x82abcd" + bytes(b ^ m for b, m in zip(b"\x03\xe8", b"ab")))  # masked close
    sock.close()
    return data


def test_websocket_exec_frames_v4_and_the_rfc_6455_accept_key(kube_api: FakeKubeAPI) -> None:
    kube_api.add_pod("trains", "es-1", labels=ES, files={"/a": "hello\n"})

    data = _ws_exec(
        kube_api,
        "command=cat&command=%2Fa&command=%2Fb&stdout=true&stderr=true",
        "v4.channel.k8s.io, channel.k8s.io",
    )
    head, _, frames = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=" in head  # the RFC 6455 example
    assert b"Sec-WebSocket-Protocol: v4.channel.k8s.io" in head
    assert frames.startswith(
        b"\x82\x07\x01hello\n"
    )  # final binary frame, unmasked, channel 1 (stdout)
    assert b"\x02cat: /b: No such file or directory\n" in frames
    status = json.loads(frames[frames.index(b"\x03{") + 1 : frames.index(b"\x88\x02")])
    assert status["status"] == "Failure" and status["reason"] == "NonZeroExitCode"
    assert status["details"]["causes"] == [{"reason": "ExitCode", "message": "1"}]

    refused = _ws_exec(kube_api, "command=cat&command=%2Fa&stdout=true", "channel.k8s.io")
    assert refused.startswith(b"HTTP/1.1 400") and b"v5.channel.k8s.io" in refused


def test_a_deployment_pod_is_owned_by_a_replicaset_of_that_deployment(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    name = kube_api.add_deployment_pod("trains", "elasticsearch", node_name="w1", files=ES_FILES)

    [pod] = kubectl("get", "pods", "-n", "trains", "-l", "app=elasticsearch", "-o", "json").json()[
        "items"
    ]
    [rs] = kubectl("get", "replicasets", "-n", "trains", "-o", "json").json()["items"]
    dep = kube_api.get_object("Deployment", "elasticsearch", "trains")
    template_hash = pod["metadata"]["labels"]["pod-template-hash"]
    assert pod["metadata"]["name"] == name and name.startswith(f"elasticsearch-{template_hash}-")
    assert rs["metadata"]["name"] == f"elasticsearch-{template_hash}"
    assert [
        (o["kind"], o["name"], o["uid"], o["controller"]) for o in rs["metadata"]["ownerReferences"]
    ] == [("Deployment", "elasticsearch", dep["metadata"]["uid"], True)]
    assert [(o["kind"], o["name"], o["uid"]) for o in pod["metadata"]["ownerReferences"]] == [
        ("ReplicaSet", rs["metadata"]["name"], rs["metadata"]["uid"])
    ]
    assert pod["spec"]["nodeName"] == "w1" and pod["status"]["phase"] == "Running"
    assert kubectl("exec", "-n", "trains", name, "--", "cat", MAX_MAP_COUNT).stdout == "262144\n"


def test_rollout_restart_replaces_the_pods_with_new_ones_as_the_controller_would(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    old = kube_api.add_deployment_pod("trains", "elasticsearch", node_name="w1", files=ES_FILES)
    kube_api.add_deployment_pod("trains", "mongo")
    kube_api.set_new_pod_files({MAX_MAP_COUNT: "300000\n"})
    kube_api.clear_requests()

    r = kubectl("rollout", "restart", "deployment/elasticsearch", "-n", "trains")

    assert r.stdout.strip() == "deployment.apps/elasticsearch restarted"
    # what the real kubectl sends: one strategic-merge PATCH of the template's annotation
    assert writes(kube_api) == [
        ("PATCH", "/apis/apps/v1/namespaces/trains/deployments/elasticsearch")
    ]
    assert any("fieldManager=kubectl-rollout" in p for m, p in kube_api.requests if m == "PATCH")
    dep = kube_api.get_object("Deployment", "elasticsearch", "trains")
    assert "kubectl.kubernetes.io/restartedAt" in dep["spec"]["template"]["metadata"]["annotations"]
    pods = kubectl("get", "pods", "-n", "trains", "-l", "app=elasticsearch", "-o", "json").json()[
        "items"
    ]
    [new] = pods
    assert new["metadata"]["name"] != old and new["spec"]["nodeName"] == "w1"
    assert new["metadata"]["labels"]["app"] == "elasticsearch"
    replicasets = {
        rs["metadata"]["name"]: rs
        for rs in kube_api.objects("ReplicaSet", "trains")
        if rs["metadata"]["name"].startswith("elasticsearch-")
    }
    owner = new["metadata"]["ownerReferences"][0]["name"]
    assert len(replicasets) == 2 and owner in replicasets and not old.startswith(owner)
    assert replicasets[owner]["metadata"]["ownerReferences"][0]["uid"] == dep["metadata"]["uid"]
    assert {rs["spec"]["replicas"] for n, rs in replicasets.items() if n != owner} == {0}
    name = new["metadata"]["name"]
    assert kubectl("exec", "-n", "trains", name, "--", "cat", MAX_MAP_COUNT).stdout == "300000\n"
    gone = kubectl("exec", "-n", "trains", old, "--", "cat", MAX_MAP_COUNT, check=False)
    assert gone.returncode == 1 and "NotFound" in gone.stderr
    # the other Deployment's pod is untouched; the rollout is reported done
    assert (
        len(kubectl("get", "pods", "-n", "trains", "-l", "app=mongo", "-o", "json").json()["items"])
        == 1
    )
    status = kubectl(
        "rollout", "status", "deployment/elasticsearch", "-n", "trains", "--timeout=10s"
    )
    assert "successfully rolled out" in status.stdout


def test_a_template_change_without_pods_makes_none_and_an_unchanged_apply_replaces_none(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    kubectl("rollout", "restart", "deployment/redis", "-n", "trains")
    assert kube_api.objects("Pod", "trains") == []

    name = kube_api.add_deployment_pod("trains", "elasticsearch", files=ES_FILES)
    again = kubectl("apply", "-k", str(OVERLAY))

    assert "deployment.apps/elasticsearch unchanged" in again.stdout
    assert [p["metadata"]["name"] for p in kube_api.objects("Pod", "trains")] == [name]


def changed_tree(tmp_path: Path, **replacements: tuple[str, str]) -> Path:
    """A copy of the bundled tree with text replaced in base files (file stem -> (old, new))."""
    tree = tmp_path / "manifests"
    shutil.copytree(OVERLAY.parent.parent, tree)
    for stem, (old, new) in replacements.items():
        path = tree / "base" / f"{stem}.yaml"
        text = path.read_text()
        assert old in text, (stem, old)
        path.write_text(text.replace(old, new))
    return tree / "overlays" / "current_version"


def test_a_server_side_dry_run_answers_like_a_write_and_stores_nothing(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    before = kube_api.objects()
    tree = changed_tree(tmp_path, apiserver=("nodePort: 30008", "nodePort: 30018"))
    kube_api.clear_requests()

    r = kubectl("apply", "-k", str(tree), "--dry-run=server", "-o", "json")

    assert writes(kube_api) == [("PATCH", "/api/v1/namespaces/trains/services/apiserver-service")]
    assert all("dryRun=All" in p for m, p in kube_api.requests if m != "GET")
    answered = {i["metadata"]["name"]: i for i in r.json()["items"] if i["kind"] == "Service"}
    ports = answered["apiserver-service"]["spec"]["ports"]
    assert [p["nodePort"] for p in ports] == [30018]
    assert kube_api.objects() == before  # nothing stored, no resourceVersion moved


def test_a_dry_run_create_is_validated_too(kube_api: FakeKubeAPI, kubectl) -> None:
    kube_api.add_service("other", "taken", [30080])
    kube_api.add_service("trains", "unrelated", [])  # the namespace exists: only the port fails
    r = kubectl("apply", "-k", str(OVERLAY), "--dry-run=server", check=False)
    assert r.returncode == 1
    assert "spec.ports[0].nodePort: Invalid value: 30080: provided port is already allocated" in (
        r.stderr
    )
    assert [o["metadata"]["name"] for o in kube_api.objects("Deployment")] == []
    assert kube_api.get_object("Service", "webserver-service", "trains") is None


def test_a_changed_selector_is_refused_as_immutable_and_nothing_changes(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    before = kube_api.get_object("Deployment", "mongo", "trains")
    tree = changed_tree(tmp_path, mongo=("app: mongo\n", "app: mongodb\n"))

    for dry_run in (["--dry-run=server"], []):
        r = kubectl("apply", "-k", str(tree), *dry_run, check=False)
        assert r.returncode == 1
        assert (
            'The Deployment "mongo" is invalid: spec.selector: Invalid value: '
            'v1.LabelSelector{MatchLabels:map[string]string{"app":"mongodb"},'
            " MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"
        ) in r.stderr
        assert kube_api.get_object("Deployment", "mongo", "trains") == before


def test_a_changed_cluster_ip_may_not_change_once_set(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    ip = kube_api.get_object("Service", "redis", "trains")["spec"]["clusterIP"]
    tree = changed_tree(
        tmp_path, redis=("  type: ClusterIP\n", "  type: ClusterIP\n  clusterIP: 10.96.9.9\n")
    )
    r = kubectl("apply", "-k", str(tree), "--dry-run=server", check=False)
    assert r.returncode == 1
    assert (
        'The Service "redis" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.9.9"}:'
        " may not change once set"
    ) in r.stderr
    assert kube_api.get_object("Service", "redis", "trains")["spec"]["clusterIP"] == ip


def test_deleting_a_deployment_takes_its_replicasets_and_pods(
    kube_api: FakeKubeAPI, kubectl
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    pod = kube_api.add_deployment_pod("trains", "mongo", node_name="n1")
    (replicaset,) = kube_api.objects("ReplicaSet", "trains")

    kubectl("delete", "deployment", "mongo", "-n", "trains", "--dry-run=server")
    assert kube_api.get_object("Pod", pod, "trains") is not None

    kubectl("delete", "deployment", "mongo", "-n", "trains")
    assert kube_api.get_object("Deployment", "mongo", "trains") is None
    assert kube_api.get_object("ReplicaSet", replicaset["metadata"]["name"], "trains") is None
    assert kube_api.get_object("Pod", pod, "trains") is None
    assert kube_api.get_object("Deployment", "redis", "trains") is not None


def test_kubectl_diff_shows_a_server_side_diff_and_stores_nothing(
    kube_api: FakeKubeAPI, kubectl, tmp_path: Path
) -> None:
    kubectl("apply", "-k", str(OVERLAY))
    before = kube_api.objects()
    tree = changed_tree(tmp_path, apiserver=("nodePort: 30008", "nodePort: 30018"))
    kube_api.clear_requests()

    r = kubectl("diff", "-k", str(tree), check=False)

    assert r.returncode == 1, r.stderr  # 1: there are differences
    assert "-    nodePort: 30008" in r.stdout and "+    nodePort: 30018" in r.stdout
    assert writes(kube_api) == [("PATCH", "/api/v1/namespaces/trains/services/apiserver-service")]
    assert all("dryRun=All" in p for m, p in kube_api.requests if m != "GET")
    assert kube_api.objects() == before
    same = kubectl("diff", "-k", str(OVERLAY), check=False)
    assert same.returncode == 0 and same.stdout == ""
