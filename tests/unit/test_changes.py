"""cluster.changes: immutable fields, the dry run's refusals and the per-object diff, from plain
data (what kubectl's reads return)."""

from __future__ import annotations

import copy

from trains_nodeprep.cluster.changes import (
    comparable,
    image_changes,
    immutable_changes,
    merge_immutable,
    object_changes,
    projected,
    server_refusals,
)
from trains_nodeprep.cluster.tree import Tree, TreeObject


def obj(kind: str, name: str, spec: dict, namespace: str | None = "trains", api="apps/v1"):
    body = {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": name, **({"namespace": namespace} if namespace else {})},
        "spec": spec,
    }
    return TreeObject(api, kind, namespace, name, body)


def live_of(o: TreeObject, **spec_changes) -> dict:
    """The object as the server keeps it: its fields, server metadata, status, defaults."""
    body = copy.deepcopy(o.body)
    body["metadata"].update(uid="u-1", resourceVersion="7", creationTimestamp="t")
    body["metadata"]["annotations"] = {"kubectl.kubernetes.io/last-applied-configuration": "{}"}
    body["status"] = {"replicas": 1}
    body["spec"].update(spec_changes)
    body["spec"].setdefault("revisionHistoryLimit", 10)  # a server default
    return body


def template(image: str) -> dict:
    return {"spec": {"containers": [{"name": "apiserver", "image": image}]}}


MONGO = obj("Deployment", "mongo", {"selector": {"matchLabels": {"app": "mongodb"}}})
REDIS = obj("Service", "redis", {"clusterIP": "10.96.0.9", "ports": [{"port": 6379}]}, api="v1")
CLAIM = obj(
    "PersistentVolumeClaim", "data", {"storageClassName": "fast"}, api="v1"
)  # fmt: skip
NAMESPACE = obj("Namespace", "trains", {}, namespace=None, api="v1")


def test_changed_immutable_fields_are_found_from_the_live_objects():
    tree = Tree((NAMESPACE, MONGO, REDIS, CLAIM))
    live = {
        MONGO.key: live_of(MONGO, selector={"matchLabels": {"app": "mongo"}}),
        REDIS.key: live_of(REDIS, clusterIP="10.96.0.5"),
        CLAIM.key: live_of(CLAIM, storageClassName="slow"),
    }
    found = immutable_changes(tree, live)
    assert [(c.obj.name, c.field, c.replaceable) for c in found] == [
        ("mongo", "spec.selector", True),
        ("redis", "spec.clusterIP", True),
        ("data", "spec.storageClassName", False),
    ]
    assert found[0].describe() == "deployment.apps/mongo -n trains: spec.selector"


def test_unchanged_absent_or_server_chosen_fields_are_no_change():
    no_ip = obj("Service", "redis", {"ports": [{"port": 6379}]}, api="v1")
    tree = Tree((MONGO, no_ip))
    live = {MONGO.key: live_of(MONGO), no_ip.key: live_of(no_ip, clusterIP="10.96.0.5")}
    assert immutable_changes(tree, live) == []
    assert immutable_changes(tree, {}) == []  # nothing deployed yet


def test_the_dry_runs_refusals_are_split_into_immutable_fields_and_the_rest():
    tree = Tree((NAMESPACE, MONGO, REDIS))
    errors = [
        'The Deployment "mongo" is invalid: spec.selector: Invalid value: v1.LabelSelector{...}:'
        " field is immutable",
        'The Service "redis" is invalid: spec.clusterIPs[0]: Invalid value: []string{"10.96.0.9"}:'
        " may not change once set",
        'Error from server (NotFound): error when creating "x": namespaces "trains" not found',
        'Error from server (NotFound): error when creating "x": namespaces "other" not found',
        'The Service "redis" is invalid: spec.ports[0].nodePort: Invalid value: 30080: provided'
        " port is already allocated",
        "",
    ]
    immutable, other = server_refusals(errors, tree)
    assert [(c.obj.name, c.field) for c in immutable] == [
        ("mongo", "spec.selector"),
        ("redis", "spec.clusterIP"),
    ]
    assert other == [errors[3], errors[4]]  # a namespace the tree does not create is an error


def test_merged_findings_name_each_object_and_field_once():
    live = {MONGO.key: live_of(MONGO, selector={"matchLabels": {"app": "mongo"}})}
    tree = Tree((MONGO,))
    from_server, _ = server_refusals(
        ['The Deployment "mongo" is invalid: spec.selector: Invalid value: x: field is immutable'],
        tree,
    )
    assert len(merge_immutable(immutable_changes(tree, live), from_server)) == 1


def test_server_fields_are_not_changes_and_projection_keeps_what_the_tree_sets():
    live = live_of(MONGO)
    assert "status" not in comparable(live) and "uid" not in comparable(live)["metadata"]
    assert "annotations" not in comparable(live)["metadata"]
    assert projected(comparable(live), MONGO.body) == MONGO.body  # the default is left out


def test_object_changes_diff_the_live_object_against_the_dry_runs_answer():
    api = obj("Deployment", "apiserver", {"template": template("trains-server:0.16.1")})
    new = obj("Deployment", "apiserver", {"template": template("trains-server:0.17.0")})
    tree = Tree((NAMESPACE, new, MONGO))
    live = {api.key: live_of(api), NAMESPACE.key: live_of(NAMESPACE), MONGO.key: live_of(MONGO)}
    server = {key: copy.deepcopy(body) for key, body in live.items()}
    server[new.key] = live_of(new)
    changes = object_changes(tree, live, server, [])
    assert [(c.obj.name, c.action) for c in changes] == [("apiserver", "configure")]
    lines = changes[0].diff.splitlines()
    assert lines[:2] == [
        "--- live deployment.apps/apiserver -n trains",
        "+++ tree deployment.apps/apiserver -n trains",
    ]
    assert "-      - image: trains-server:0.16.1" in lines
    assert "+      - image: trains-server:0.17.0" in lines
    # without the dry run's answer (it refused): the tree's own fields against the live ones
    fallback = object_changes(tree, live, None, [])
    assert [(c.obj.name, c.action) for c in fallback] == [("apiserver", "configure")]
    assert "revisionHistoryLimit" not in fallback[0].diff


def test_new_and_replaced_objects():
    tree = Tree((NAMESPACE, MONGO))
    live = {MONGO.key: live_of(MONGO, selector={"matchLabels": {"app": "mongo"}})}
    replaced = immutable_changes(tree, live)
    changes = object_changes(tree, live, None, replaced)
    assert [(c.obj.name, c.action) for c in changes] == [("trains", "create"), ("mongo", "replace")]
    assert changes[0].diff.splitlines()[0] == "--- /dev/null"


def test_image_changes_name_the_container_and_both_tags():
    api = obj("Deployment", "apiserver", {"template": template("allegroai/trains-server:0.16.1")})
    new = obj("Deployment", "apiserver", {"template": template("allegroai/trains-server:0.17.0")})
    (change,) = image_changes(Tree((new,)), {api.key: live_of(api)})
    assert change.describe() == (
        "trains/apiserver/apiserver: 0.16.1 -> 0.17.0 (allegroai/trains-server:0.17.0)"
    )
    assert image_changes(Tree((api,)), {api.key: live_of(api)}) == []
