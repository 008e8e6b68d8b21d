"""Updating trains-server: the cluster diff in `plan`, the server-side dry run before any write,
immutable fields refused (or replaced with --replace), NodePorts judged against the tree being
applied, and the Elasticsearch data-move guard.

The nodes are real test-bed nodes (real sshd, sudo, files); the cluster is
tests/kubefake.FakeKubeAPI, a TEST DOUBLE of the Kubernetes API (no real API server can run
here), driven by the real kubectl binary. What was written to the cluster is read from the
double's request log, where a server-side dry run (dryRun=All) stores nothing.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from trains_nodeprep.cluster.kubectl import bundled_kustomization

from .cli import json_output, trains_nodeprep
from .test_safety import snapshot

TRAINS = {"app": "trains"}
MANIFESTS = bundled_kustomization().parent.parent


@pytest.fixture
def labeled_node(make_node, kube_api):
    node = make_node()
    kube_api.add_node("worker-1", labels=TRAINS, internal_ip=node.address)
    return node


@pytest.fixture
def deployed(bed, kube_api, kubeconfig, labeled_node):
    """trains-server deployed from the bundled tree, the request log cleared after."""
    first = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    kube_api.clear_requests()
    return labeled_node


def writes(kube_api) -> list[tuple[str, str]]:
    """The requests that changed the cluster (a server-side dry run stores nothing)."""
    return [
        (method, path.split("?")[0])
        for method, path in kube_api.requests
        if method in ("POST", "PUT", "PATCH", "DELETE") and "dryRun=All" not in path
    ]


def tree_copy(tmp_path: Path, **replacements: tuple[str, str]) -> Path:
    """The bundled tree, copied, with text replaced in its files (stem -> (old, new)); the path
    of its overlay."""
    tree = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, tree)
    for stem, (old, new) in replacements.items():
        (path,) = tree.glob(f"*/{stem}.yaml")
        text = path.read_text()
        assert old in text, (stem, old)
        path.write_text(text.replace(old, new))
    return tree / "overlays" / "current_version"


def uids(kube_api, kind: str, namespace: str = "trains") -> dict[str, str]:
    return {o["metadata"]["name"]: o["metadata"]["uid"] for o in kube_api.objects(kind, namespace)}


def requirement(report: dict, rid: str) -> dict:
    (found,) = [r for r in report["cluster"]["requirements"] if r["id"] == rid]
    return found


def test_a_changed_selector_is_refused_with_nothing_written_then_replace_recreates_it(
    bed, kube_api, kubeconfig, deployed, tmp_path
):
    """As trains-server-k8s did in 0.10.1: the Deployments' selectors changed. kubectl would
    refuse those and apply the rest (a half-applied update); the tool refuses the whole run."""
    node = deployed
    node.sh("echo keep > /opt/trains/data/mongo/db/collection-0.wt")
    tree = tree_copy(tmp_path, mongo=("app: mongo\n", "app: mongodb\n"))
    namespace_uid = uids(kube_api, "Namespace", "")["trains"]
    deployments = uids(kube_api, "Deployment")
    node_before = snapshot(node)

    check = trains_nodeprep(
        bed, "check", "--host", node.address, "--kubeconfig", str(kubeconfig), "--kustomize",
        str(tree), "-o", "json",
    )  # fmt: skip
    refused = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree), "--yes",
        "-o", "json",
    )  # fmt: skip

    for result in (check, refused):
        assert result.returncode == 1, result.stdout + result.stderr
        immutable = requirement(json_output(result), "cluster.immutable-fields")
        assert not immutable["ok"]
        assert immutable["actual"] == (
            "would change deployment.apps/mongo -n trains: spec.selector: pass --replace to"
            " delete and create it again (the data on the node stays)"
        )
    assert json_output(refused)["nodes"] == []  # refused before any node was touched
    assert writes(kube_api) == []
    assert snapshot(node) == node_before

    replaced = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree), "--replace",
        "--yes", "-o", "json",
    )  # fmt: skip

    assert replaced.returncode == 0, replaced.stdout + replaced.stderr
    report = json_output(replaced)
    assert report["cluster"]["replaced"] == ["deployment.apps/mongo -n trains"]
    deletes = [path for method, path in writes(kube_api) if method == "DELETE"]
    assert deletes == ["/apis/apps/v1/namespaces/trains/deployments/mongo"]
    after = uids(kube_api, "Deployment")
    assert after.keys() == deployments.keys()
    assert after["mongo"] != deployments["mongo"]  # created again
    assert {k: v for k, v in after.items() if k != "mongo"} == {
        k: v for k, v in deployments.items() if k != "mongo"
    }
    mongo = kube_api.get_object("Deployment", "mongo", "trains")
    assert mongo["spec"]["selector"] == {"matchLabels": {"app": "mongodb"}}
    assert uids(kube_api, "Namespace", "")["trains"] == namespace_uid
    assert node.read("/opt/trains/data/mongo/db/collection-0.wt") == b"keep\n"
    assert "deployment.apps/mongo -n trains deleted (--replace: spec.selector changes)" in (
        replaced.stderr
    )

    again = trains_nodeprep(bed, "plan", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree))
    assert again.returncode == 0, again.stdout + again.stderr
    assert "nothing to change" in again.stdout


def test_plan_shows_the_image_change_and_writes_nothing(bed, kube_api, kubeconfig, deployed):
    result = trains_nodeprep(
        bed, "plan", "--kubeconfig", str(kubeconfig), "--image-version", "0.17.0"
    )

    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert (
        "image  trains/apiserver/apiserver: 0.16.1 -> 0.17.0 (allegroai/trains-server:0.17.0)"
        in out
    )
    assert "configure  deployment.apps/apiserver -n trains" in out
    assert "-        image: allegroai/trains-server:0.16.1" in out
    assert "+        image: allegroai/trains-server:0.17.0" in out
    assert "3 to configure" in out  # apiserver, fileserver, webserver share the image
    # the user's tree and option, not the temporary wrapper kustomization over it
    assert "current_version --image-version 0.17.0: 3 to configure, 10 unchanged" in out
    assert writes(kube_api) == []
    assert any("dryRun=All" in path for _, path in kube_api.requests)

    report = json_output(
        trains_nodeprep(
            bed, "plan", "--kubeconfig", str(kubeconfig), "--image-version", "0.17.0", "-o", "json"
        )
    )
    diff = {d["object"]: d for d in report["cluster"]["diff"]}
    assert set(diff) == {
        f"deployment.apps/{name} -n trains" for name in ("apiserver", "fileserver", "webserver")
    }
    assert (
        "+        image: allegroai/trains-server:0.17.0"
        in diff["deployment.apps/apiserver -n trains"]["diff"].splitlines()
    )
    assert writes(kube_api) == []


def test_plan_of_a_first_deploy_names_every_object_to_create(
    bed, kube_api, kubeconfig, labeled_node
):
    result = trains_nodeprep(bed, "plan", "--kubeconfig", str(kubeconfig), "-o", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)
    assert requirement(report, "cluster.dry-run")["ok"]  # a namespace the tree makes is no error
    actions = {d["object"]: d["action"] for d in report["cluster"]["diff"]}
    assert len(actions) == 13 and set(actions.values()) == {"create"}
    assert actions["namespace/trains"] == "create"
    assert writes(kube_api) == []


def test_a_renamed_namespace_whose_node_ports_are_held_is_refused_before_any_write(
    bed, kube_api, kubeconfig, deployed, tmp_path
):
    """trains-server deployed in namespace trains, then the renamed project's first tree
    (namespace clearml, the same NodePorts): refused naming each port and its holder."""
    tree = tree_copy(
        tmp_path,
        kustomization=("namespace: trains", "namespace: clearml"),
        namespace=("name: trains", "name: clearml"),
    )

    result = trains_nodeprep(
        bed, "run", "--kubeconfig", str(kubeconfig), "--kustomize", str(tree), "--yes",
        "-o", "json",
    )  # fmt: skip

    assert result.returncode == 1, result.stdout + result.stderr
    ports = requirement(json_output(result), "cluster.node-ports")
    assert not ports["ok"]
    for port, service in (
        (30008, "apiserver-service"),
        (30080, "webserver-service"),
        (30081, "fileserver-service"),
    ):
        assert (
            f"{port} is held by Service trains/{service}, not the tree's clearml/{service}"
            in ports["actual"]
        )
    assert writes(kube_api) == []
    assert kube_api.get_object("Namespace", "clearml") is None


def test_elasticsearch_data_left_in_the_old_directory_refuses_the_node(
    bed, kube_api, kubeconfig, labeled_node
):
    """The 0.16 move from /opt/trains/data/elastic to elastic_7, with the data left behind."""
    node = labeled_node
    node.sh(
        "mkdir -p /opt/trains/data/elastic/nodes/0 && echo x > /opt/trains/data/elastic/nodes/0/a"
    )
    before = snapshot(node)

    result = trains_nodeprep(bed, "run", "--kubeconfig", str(kubeconfig), "--yes", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)
    [outcome] = report["nodes"]
    assert outcome["status"] == "refused"
    assert (
        "/opt/trains/data/elastic holds trains-server data, but this release keeps it in"
        " /opt/trains/data/elastic_7, which is empty" in outcome["error"]
    )
    assert snapshot(node) == before
    assert node.sh("ls -A /opt/trains/data").stdout.split() == ["elastic"]  # nothing made
    assert writes(kube_api) == []  # not deployed
