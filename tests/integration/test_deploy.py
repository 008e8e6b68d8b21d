"""Deploying trains-server: cluster pre-checks, discovery by label, apply -k after the node
converged.

The nodes are real test-bed nodes; the cluster is tests/kubefake.FakeKubeAPI, a TEST DOUBLE of
the Kubernetes API (no real API server can run here) driven by the real kubectl binary.
"""

from __future__ import annotations

import json

import pytest

from .cli import json_output, trains_nodeprep
from .limits import WRITTEN_NOFILE
from .standins import StandIns
from .test_safety import snapshot

TRAINS = {"app": "trains"}


@pytest.fixture
def labeled_node(make_node, kube_api):
    node = make_node()
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=node.address)
    kube_api.add_node("worker-2", internal_ip="10.200.0.254")
    return node


def writes(kube_api) -> list[tuple[str, str]]:
    """The requests that change the cluster (a server-side dry run stores nothing)."""
    return [
        (method, path)
        for method, path in kube_api.requests
        if method in ("POST", "PUT", "PATCH", "DELETE") and "dryRun=All" not in path
    ]


def test_run_finds_the_labeled_node_prepares_it_then_deploys(
    bed, kube_api, kubeconfig, labeled_node
):
    StandIns(labeled_node).start()  # trains-server's servers: --wait prints the URLs that answer
    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--wait", "30", "-o", "json"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)
    [node] = report["nodes"]
    assert node["host"] == labeled_node.address and node["status"] == "changed"
    cluster = report["cluster"]
    assert cluster["ready"] and cluster["deployed"] and cluster["rollout_failures"] == []
    assert cluster["urls"] == {
        "api": f"http://{labeled_node.address}:30008",
        "web": f"http://{labeled_node.address}:30080",
        "files": f"http://{labeled_node.address}:30081",
    }
    deployments = {d["metadata"]["name"] for d in kube_api.objects("Deployment")}
    assert deployments == {
        "apiserver",
        "webserver",
        "fileserver",
        "elasticsearch",
        "mongo",
        "redis",
    }
    assert all(
        d["spec"]["template"]["spec"]["nodeSelector"] == TRAINS
        for d in kube_api.objects("Deployment")
    )
    assert "created" in result.stderr  # kubectl's own lines are streamed to the user
    # the node really is ready: independent look
    assert labeled_node.max_map_count() == 262144
    assert labeled_node.run_container()["RLIMIT_NOFILE"] == WRITTEN_NOFILE


def test_second_run_changes_nothing_on_the_node_and_in_the_cluster(
    bed, kube_api, kubeconfig, labeled_node
):
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
    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "--image-version", "0.17.0"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    api = next(d for d in kube_api.objects("Deployment") if d["metadata"]["name"] == "apiserver")
    assert (
        api["spec"]["template"]["spec"]["containers"][0]["image"]
        == "allegroai/trains-server:0.17.0"
    )


def test_check_reports_the_cluster_requirements_too(
    bed, kube_api, kubeconfig, labeled_node, tmp_path
):
    junit = tmp_path / "check.xml"
    result = trains_nodeprep(
        bed, "check", "--kubeconfig", str(kubeconfig), "--junit-xml", str(junit)
    )

    assert result.returncode == 1  # the node is not ready yet; the cluster is
    assert (
        "ok     cluster.labeled-node" in result.stdout
        and "ok     cluster.node-ports" in result.stdout
    )
    assert 'classname="trains-nodeprep.cluster" name="cluster.reachable"' in junit.read_text()


REFUSALS = {
    "no labeled node": ("label one: kubectl label node NODE app=trains", lambda api, node: None),
    "two labeled nodes": (
        "unlabel the others",
        lambda api, node: (
            api.add_node("a", labels=TRAINS, internal_ip=node.address),
            api.add_node("b", labels=TRAINS, internal_ip="10.200.0.253"),
        ),
    ),
    "the node is not the labeled one": (
        "is not a labeled node",
        lambda api, node: api.add_node("a", labels=TRAINS, internal_ip="10.200.0.253"),
    ),
    "a node port is taken": (
        "30080 is held by Service monitoring/grafana, not the tree's trains/webserver-service",
        lambda api, node: (
            api.add_node("a", labels=TRAINS, internal_ip=node.address),
            api.add_service("monitoring", "grafana", [30080]),
        ),
    ),
}


@pytest.mark.parametrize("case", list(REFUSALS), ids=list(REFUSALS))
def test_failed_pre_checks_refuse_before_anything_is_written(
    bed, make_node, kube_api, kubeconfig, case
):
    message, arrange = REFUSALS[case]
    node = make_node(docker=False)
    arrange(kube_api, node)
    before = snapshot(node)

    result = trains_nodeprep(
        bed, "run", "--host", node.address, "--kubeconfig", str(kubeconfig), "--yes", "-o", "json"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)
    assert report["nodes"] == [] and report["cluster"]["ready"] is False
    assert message in json.dumps(report["cluster"]["requirements"])
    assert snapshot(node) == before and node.max_map_count() == 65530
    assert writes(kube_api) == []


def test_a_broken_kustomization_is_refused_before_anything_is_written(
    bed, make_node, kube_api, kubeconfig, tmp_path
):
    node = make_node(docker=False)
    kube_api.add_node("a", labels=TRAINS, internal_ip=node.address)
    broken = tmp_path / "overlay"
    broken.mkdir()
    (broken / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    before = snapshot(node)

    result = trains_nodeprep(
        bed,
        "run",
        "--host",
        node.address,
        "--kubeconfig",
        str(kubeconfig),
        "--kustomize",
        str(broken),
        "--yes",
    )

    assert result.returncode == 1
    assert "drift  kustomize.builds" in result.stdout and "missing.yaml" in result.stdout
    assert snapshot(node) == before


def test_nothing_is_left_in_the_temporary_directory(
    bed, kube_api, kubeconfig, labeled_node, tmp_path
):
    """The kustomization is copied to a temporary directory for the cluster pre-checks: gone at
    exit, also after a refusal (the CLI leaves without the interpreter's teardown, not without its
    exit handlers)."""
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {"TMPDIR": str(temp)}

    checked = trains_nodeprep(
        bed, "check", "--host", labeled_node.address, "--kubeconfig", str(kubeconfig), env=env
    )
    refused = trains_nodeprep(
        bed,
        "run",
        "--host",
        labeled_node.address,
        "--kubeconfig",
        str(kubeconfig),
        "--kustomize",
        str(tmp_path / "no-such-overlay"),
        "--yes",
        env=env,
    )

    assert "cluster" in checked.stdout and refused.returncode != 0, checked.stdout + refused.stdout
    assert list(temp.iterdir()) == []


def test_an_unreachable_cluster_is_refused_before_anything_is_written(
    bed, make_node, tmp_path, kube_api
):
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
    labels = {
        n["metadata"]["name"]: n["metadata"].get("labels", {}).get("app")
        for n in kube_api.objects("Node")
    }
    assert labels == {"worker-1": "trains", "worker-2": None}


def test_a_tree_the_server_refuses_is_found_by_the_dry_run_before_any_node_is_touched(
    bed, kube_api, kubeconfig, labeled_node, tmp_path
):
    tree = tmp_path / "tree"
    tree.mkdir()
    (tree / "kustomization.yaml").write_text("resources:\n- cm.yaml\n")
    (tree / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\n"
        "metadata: {name: settings, namespace: no-such-namespace}\ndata: {a: b}\n"
    )
    before = snapshot(labeled_node)

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree), "--yes", "-o", "json"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)
    assert report["nodes"] == [] and report["cluster"]["deployed"] is False
    (dry_run,) = [r for r in report["cluster"]["requirements"] if r["id"] == "cluster.dry-run"]
    assert not dry_run["ok"]
    assert 'namespaces "no-such-namespace" not found' in dry_run["actual"]
    assert any("dryRun=All" in path for _, path in kube_api.requests)  # it was asked
    assert writes(kube_api) == []
    assert snapshot(labeled_node) == before


def proc_limits(nofile: str, memlock: str) -> str:
    return (
        "Limit                     Soft Limit           Hard Limit           Units     \n"
        "Max cpu time              unlimited            unlimited            seconds   \n"
        f"Max open files            {nofile.split(':')[0]:<21}"
        f"{nofile.split(':')[1]:<21}files     \n"
        f"Max locked memory         {memlock.split(':')[0]:<21}"
        f"{memlock.split(':')[1]:<21}bytes     \n"
    )


def test_check_reads_the_limits_the_running_elasticsearch_pod_really_got(
    bed, kube_api, kubeconfig, labeled_node
):
    """The node is ready on paper, but the pod started before: its limits are too low, and check
    says so."""
    prepared = trains_nodeprep(bed, "run", "--host", labeled_node.address, "--yes", "--no-deploy")
    assert prepared.returncode == 0, prepared.stderr
    kube_api.add_pod(
        "trains",
        "elasticsearch-7d9f",
        labels={"app": "elasticsearch"},
        node_name="worker-1",
        files={
            "/proc/1/limits": proc_limits("1024:4096", "65536:65536"),
            "/proc/sys/vm/max_map_count": "262144\n",
        },
    )

    stale = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert stale.returncode == 1
    report = json_output(stale)
    assert all(r["ok"] for r in report["nodes"][0]["requirements"])  # the node itself is ready
    pod = {r["id"]: r for r in report["cluster"]["requirements"] if r["id"].startswith("pod.")}
    assert pod["pod.elasticsearch.running"]["ok"]
    assert pod["pod.ulimit.nofile"] == {
        "id": "pod.ulimit.nofile",
        "expected": ">= 1024:65536",
        "actual": "1024:4096",
        "ok": False,
        "where": "pod elasticsearch-7d9f on worker-1: /proc/1/limits",
    }
    assert not pod["pod.ulimit.memlock"]["ok"] and pod["pod.sysctl.vm.max_map_count"]["ok"]

    # the pod recreated after the run: everything reached it
    kube_api.add_pod(
        "trains",
        "elasticsearch-7d9f",
        labels={"app": "elasticsearch"},
        node_name="worker-1",
        files={
            "/proc/1/limits": proc_limits("1024:65536", "unlimited:unlimited"),
            "/proc/sys/vm/max_map_count": "262144\n",
        },
    )
    fresh = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig))
    assert fresh.returncode == 0, fresh.stdout
    assert "ok     pod.ulimit.nofile" in fresh.stdout


def test_before_the_first_deploy_no_pod_is_a_note_unless_pods_is_asked_for(
    bed, kube_api, kubeconfig, labeled_node
):
    assert (
        trains_nodeprep(
            bed, "run", "--host", labeled_node.address, "--yes", "--no-deploy"
        ).returncode
        == 0
    )

    auto = trains_nodeprep(bed, "check", "--kubeconfig", str(kubeconfig))
    required = trains_nodeprep(
        bed, "check", "--kubeconfig", str(kubeconfig), "--pods", "-o", "json"
    )
    skipped = trains_nodeprep(
        bed, "check", "--kubeconfig", str(kubeconfig), "--no-pods", "-o", "json"
    )

    assert auto.returncode == 0 and "no Elasticsearch pod runs yet" in auto.stdout
    assert required.returncode == 1
    running = next(
        r
        for r in json_output(required)["cluster"]["requirements"]
        if r["id"] == "pod.elasticsearch.running"
    )
    assert not running["ok"] and "deploy trains-server first" in running["actual"]
    assert skipped.returncode == 0 and not any(
        r["id"].startswith("pod.") for r in json_output(skipped)["cluster"]["requirements"]
    )
    assert not any(path.endswith("/exec") for _method, path in kube_api.requests)  # no pod, no exec
