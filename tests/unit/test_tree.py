"""cluster.tree: the objects `kubectl kustomize` renders, read as plain data."""

from __future__ import annotations

import subprocess

import pytest

from trains_nodeprep.cluster.kubectl import bundled_kustomization
from trains_nodeprep.cluster.tree import Tree, TreeError, image_tag, parse_tree


@pytest.fixture(scope="module")
def bundled() -> Tree:
    built = subprocess.run(
        ["kubectl", "kustomize", str(bundled_kustomization())],
        capture_output=True,
        text=True,
        check=True,
    )
    return parse_tree(built.stdout)


def test_the_bundled_tree(bundled: Tree):
    assert bundled.namespaces() == {"trains"}
    assert sorted(w.name for w in bundled.workloads()) == [
        "apiserver",
        "elasticsearch",
        "fileserver",
        "mongo",
        "redis",
        "webserver",
    ]
    assert bundled.node_ports() == {
        30008: "trains/apiserver-service",
        30080: "trains/webserver-service",
        30081: "trains/fileserver-service",
    }
    assert bundled.host_paths()["/opt/trains/data/elastic_7"] == "trains/elasticsearch"
    assert bundled.images()["trains/apiserver/apiserver"].startswith("allegroai/trains-server:")
    mongo = bundled.find("Deployment", "trains", "mongo")
    assert mongo is not None and mongo.ref == "deployment.apps/mongo -n trains"


def test_objects_without_namespace_go_to_the_default_one_and_lists_are_unpacked():
    tree = parse_tree(
        "apiVersion: v1\nkind: List\nitems:\n"
        "- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n"
        "- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n"
        "---\n",
        "team",
    )
    assert [o.key for o in tree.objects] == [("ConfigMap", "team", "a"), ("Namespace", None, "b")]


@pytest.mark.parametrize(
    "text",
    ["- a\n- b\n", "kind: Service\nmetadata: {name: x}\n", "a: [\n", "kind: X\nmetadata: {}\n"],
)
def test_what_is_not_a_list_of_objects_is_an_error(text):
    with pytest.raises(TreeError):
        parse_tree(text)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("allegroai/trains-server:0.16.1", "0.16.1"),
        ("registry:5000/trains", "latest"),
        ("registry:5000/trains:1.2@sha256:abc", "1.2"),
        ("redis", "latest"),
    ],
)
def test_image_tag(image, tag):
    assert image_tag(image) == tag
