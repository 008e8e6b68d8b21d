"""Deploying trains-server: cluster pre-checks, discovery by label, apply -k after the node converged.

The nodes are real test-bed nodes; the cluster is tests/kubefake.FakeKubeAPI, a TEST DOUBLE of
the Kubernetes API (no real API server can run here) driven by the real kubectl binary.
"""

from __future__ import annotations

import json

import pytest

from .cli import json_output, trains_nodeprep
from .test_safety import snapshot

TRAINS = {"app": "trains"}


@pytest.fixture
def labeled_node(make_node, kube_api):
    node = make_node()
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=node.address)
    kube_api.add_node("worker-2", internal_ip="10.200.0.254")
    return node


def writes(kube_api) -> list[tuple[str, str]]:
    return [(method, path) for method, path in kube_api.requests if method in ("POST", "PUT", "PATCH", "DELETE")]


def test_run_finds_the_labeled_node_prepares_it_then_deploys(bed, kube_api, kubeconfig, labeled_node):
    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--wait", "30", "-o", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)
    [node] = report["nodes"]
    assert node["host"] == labeled_node.address and node["status"] == "changed"
    cluster = report["cluster"]
    assert cluster["ready"] and cluster["deployed"] and cluster["rollout_failures"] == []
    assert cluster["urls"] == {
        "api": f"http://{labeled_node.address}:30008", "web": f"http://{labeled_node.address}:30080",
        "files": f"http://{labeled_node.address}:30081",
    }
    deployments = {d["metadata"]["name"] for d in kube_api.objects("Deployment")}
    assert deployments == {"apiserver", "webserver", "fileserver", "elasticsearch", "mongo", "redis"}
    assert all(d["spec"]["template"]["spec"]["nodeSelector"] == TRAINS for d in kube_api.objects("Deployment"))
    assert "created" in result.stderr  # kubectl's own lines are streamed to the user
    # the node really is ready: independent look
    assert labeled_node.max_map_count() == 262144
    assert labeled_node.run_container()["RLIMIT_NOFILE"] == (1024, 65536)


def test_second_run_changes_nothing_on_the_node_and_in_the_cluster(bed, kube_api, kubeconfig, labeled_node):
    first = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    pid = labeled_node.docker_pid()
    kube_api.clear_requests()

    second = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert second.returncode == 0, second.stdout + second.stderr
    assert json_output(second)["nodes"][0]["status"] == "unchanged"
    assert labeled_node.docker_pid() == pid
    assert writes(kube_api) == []  # kubectl created and patched nothing
    assert "unchanged" in second.stderr and "created" not in second.stderr


def test_image_version_pins_the_trains_server_tag(bed, kube_api, kubeconfig, labeled_node):
    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--image-version", "0.17.0")

    assert result.returncode == 0, result.stdout + result.stderr
    api = next(d for d in kube_api.objects("Deployment") if d["metadata"]["name"] == "apiserver")
    assert api["spec"]["template"]["spec"]["containers"][0]["image"] == "allegroai/trains-server:0.17.0"


def test_check_reports_the_cluster_requirements_too(bed, kube_api, kubeconfig, labeled_node, tmp_path):
    junit = tmp_path / "check.xml"
    result = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig), "--junit-xml", str(junit))

    assert result.returncode == 1  # the node is not ready yet; the cluster is
    assert "ok     cluster.labeled-node" in result.stdout and "ok     cluster.node-ports" in result.stdout
    assert 'classname="trains-nodeprep.cluster" name="cluster.reachable"' in junit.read_text()


REFUSALS = {
    "no labeled node": ("label one: kubectl label node NODE app=trains", lambda api, node: None),
    "two labeled nodes": ("unlabel the others", lambda api, node: (
        api.add_node("a", labels=TRAINS, internal_ip=node.address), api.add_node("b", labels=TRAINS, internal_ip="10.200.0.253"))),
    "the node is not the labeled one": ("is not a labeled node", lambda api, node: api.add_node("a", labels=TRAINS, internal_ip="10.200.0.253")),
    "a node port is taken": ("30080 used by monitoring/grafana", lambda api, node: (
        api.add_node("a", labels=TRAINS, internal_ip=node.address), api.add_service("monitoring", "grafana", [30080]))),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_failed_pre_checks_refuse_before_anything_is_written(bed, make_node, kube_api, kubeconfig, case):
    message, arrange = REFUSALS[case]
    node = make_node(docker=False)
    arrange(kube_api, node)
    before = snapshot(node)

    result = trains_nodeprep(bed, "run", "--host", node.address, "--kubeconfig", str(kubeconfig), "--yes", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)
    assert report["nodes"] == [] and report["cluster"]["ready"] is False
    assert message in json.dumps(report["cluster"]["requirements"])
    assert snapshot(node) == before and node.max_map_count() == 65530
    assert writes(kube_api) == []


def test_a_broken_kustomization_is_refused_before_anything_is_written(bed, make_node, kube_api, kubeconfig, tmp_path):
    node = make_node(docker=False)
    kube_api.add_node("a", labels=TRAINS, internal_ip=node.address)
    broken = tmp_path / "overlay"
    broken.mkdir()
    (broken / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    before = snapshot(node)

    result = trains_nodeprep(bed, "run", "--host", node.address, "--kubeconfig", str(kubeconfig), "--kustomize", str(broken), "--yes")

    assert result.returncode == 1
    assert "drift  kustomize.builds" in result.stdout and "missing.yaml" in result.stdout
    assert snapshot(node) == before


def test_an_unreachable_cluster_is_refused_before_anything_is_written(bed, make_node, tmp_path, kube_api):
    node = make_node(docker=False)
    kube_api.stop()
    dead = kube_api.write_kubeconfig(tmp_path / "dead-kubeconfig")
    before = snapshot(node)

    result = trains_nodeprep(bed, "run", "--host", node.address, "--kubeconfig", str(dead), "--yes")

    assert result.returncode == 1
    assert "drift  cluster.reachable" in result.stdout
    assert snapshot(node) == before


def test_label_refuses_a_second_node_and_labels_the_first(bed, kube_api, kubeconfig):
    kube_api.add_node("worker-1")
    kube_api.add_node("worker-2")

    first = trains_nodeprep(bed, "label", "worker-1", "--kubeconfig", str(kubeconfig))
    second = trains_nodeprep(bed, "label", "worker-2", "--kubeconfig", str(kubeconfig))

    assert first.returncode == 0, first.stderr
    assert second.returncode == 1 and "worker-1 already carries app=trains" in second.stderr
    labels = {n["metadata"]["name"]: n["metadata"].get("labels", {}).get("app") for n in kube_api.objects("Node")}
    assert labels == {"worker-1": "trains", "worker-2": None}


def test_a_failing_apply_shows_kubectls_error_and_exits_non_zero(bed, kube_api, kubeconfig, labeled_node, tmp_path):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    (tree / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: no-such-namespace}\ndata: {a: b}\n")

    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree), "--yes", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)
    assert report["nodes"][0]["status"] == "changed"  # the node was prepared first
    assert report["cluster"]["deployed"] is False
    assert report["cluster"]["error"].startswith("kubectl apply -k failed:") and "no-such-namespace" in report["cluster"]["error"]
    assert "no-such-namespace" in result.stderr  # kubectl's own words, streamed
