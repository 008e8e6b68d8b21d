"""Cluster pre-checks as a table: cluster facts in, requirements out."""

from __future__ import annotations

from trains_nodeprep.cluster.checks import ClusterFacts, KubeNode, cluster_requirements

NODE = KubeNode("worker-1", "10.0.0.5", "worker-1")


def requirements(facts: ClusterFacts, targets=None, allow_many=False) -> dict:
    reqs = cluster_requirements(
        facts,
        selector="app=trains",
        targets=targets,
        allow_many=allow_many,
        kustomize_dir="overlay",
    )
    return {r.id: r for r in reqs}


def healthy(**changes) -> ClusterFacts:
    base = dict(
        context="prod",
        kubectl_version="v1.32.4",
        server_version="v1.29.1",
        labeled_nodes=(NODE,),
        node_ports={},
    )
    return ClusterFacts(**{**base, **changes})


def test_a_healthy_cluster_passes_every_check():
    reqs = requirements(healthy(), targets=[{"10.0.0.5"}])

    assert all(r.ok for r in reqs.values())
    assert set(reqs) == {
        "kubectl.version",
        "cluster.reachable",
        "cluster.labeled-node",
        "cluster.target-is-labeled",
        "cluster.node-ports",
        "kustomize.builds",
    }


def test_old_or_missing_kubectl_fails():
    assert not requirements(healthy(kubectl_version="v1.13.0"))["kubectl.version"].ok
    assert not requirements(healthy(kubectl_version=None))["kubectl.version"].ok


def test_unreachable_cluster_stops_the_checks_there():
    reqs = requirements(healthy(server_version=None, server_error="connection refused"))

    assert (
        not reqs["cluster.reachable"].ok
        and "connection refused" in reqs["cluster.reachable"].actual
    )
    assert "cluster.labeled-node" not in reqs


def test_no_labeled_node_says_how_to_label_one():
    req = requirements(healthy(labeled_nodes=()))["cluster.labeled-node"]

    assert not req.ok and "kubectl label node NODE app=trains" in req.actual


def test_two_labeled_nodes_are_refused_unless_allowed():
    two = healthy(labeled_nodes=(NODE, KubeNode("worker-2", "10.0.0.6")))

    assert not requirements(two)["cluster.labeled-node"].ok
    assert requirements(two, allow_many=True)["cluster.labeled-node"].ok


def test_a_target_that_is_not_the_labeled_node_fails():
    req = requirements(healthy(), targets=[{"10.0.0.9", "other"}])["cluster.target-is-labeled"]

    assert not req.ok


def test_node_ports_used_by_another_service_fail_but_ours_pass():
    assert requirements(healthy(node_ports={30008: "trains/apiserver-service"}))[
        "cluster.node-ports"
    ].ok
    req = requirements(healthy(node_ports={30080: "default/grafana", 31000: "x/y"}))[
        "cluster.node-ports"
    ]
    assert not req.ok
    assert req.actual == (
        "30080 is held by Service default/grafana, not the tree's trains/webserver-service"
        " (delete that Service, or give the tree other nodePorts)"
    )


CLEARML_TREE = """\
apiVersion: v1
kind: Namespace
metadata: {name: clearml}
---
apiVersion: v1
kind: Service
metadata: {name: clearml-apiserver, namespace: clearml}
spec:
  type: NodePort
  ports: [{port: 8008, nodePort: 30008}]
---
apiVersion: v1
kind: Service
metadata: {name: clearml-webserver, namespace: clearml}
spec:
  type: NodePort
  ports: [{port: 80, nodePort: 30080}]
"""


def test_node_ports_are_judged_against_the_tree_being_applied():
    from trains_nodeprep.cluster.tree import parse_tree

    tree = parse_tree(CLEARML_TREE)
    trains_deployed = {30008: "trains/apiserver-service", 30080: "trains/webserver-service"}
    req = requirements(healthy(node_ports=trains_deployed, tree=tree))["cluster.node-ports"]
    assert not req.ok
    assert req.actual.startswith(
        "30008 is held by Service trains/apiserver-service,"
        " not the tree's clearml/clearml-apiserver;"
        " 30080 is held by Service trains/webserver-service,"
        " not the tree's clearml/clearml-webserver"
    )
    assert req.expected == "free: 30008, 30080"
    again = {30008: "clearml/clearml-apiserver", 30081: "trains/fileserver-service"}
    assert requirements(healthy(node_ports=again, tree=tree))["cluster.node-ports"].ok


def test_a_broken_kustomization_fails():
    req = requirements(healthy(kustomize_error="accumulating resources: missing"))[
        "kustomize.builds"
    ]

    assert not req.ok and "missing" in req.actual
