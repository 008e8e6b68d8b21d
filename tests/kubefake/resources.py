"""The resources the fake serves (what discovery lists and the routes accept), and the
version it reports."""

from __future__ import annotations

from dataclasses import dataclass

SERVER_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.4-fake",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2025-01-01T00:00:00Z",
    "goVersion": "go1.23.8",
    "compiler": "gc",
    "platform": "linux/amd64",
}


@dataclass(frozen=True)
class Resource:
    group: str  # "" for the core group
    version: str
    plural: str
    singular: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    verbs: tuple[str, ...] = (
        "create",
        "delete",
        "deletecollection",
        "get",
        "list",
        "patch",
        "update",
        "watch",
    )

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


RESOURCES: tuple[Resource, ...] = (
    Resource(
        "",
        "v1",
        "namespaces",
        "namespace",
        "Namespace",
        False,
        ("ns",),
        ("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    Resource("", "v1", "nodes", "node", "Node", False, ("no",)),
    Resource(
        "",
        "v1",
        "services",
        "service",
        "Service",
        True,
        ("svc",),
        ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"),
    ),
    Resource("", "v1", "pods", "pod", "Pod", True, ("po",)),
    # stored only: test_deploy applies one into a missing namespace
    Resource("", "v1", "configmaps", "configmap", "ConfigMap", True, ("cm",)),
    Resource("apps", "v1", "deployments", "deployment", "Deployment", True, ("deploy",)),
    # made by the fake's stand-in for the Deployment controller (api.py), or by a test
    Resource("apps", "v1", "replicasets", "replicaset", "ReplicaSet", True, ("rs",)),
    # stored only (no controller gives it an address): trains-nodeprep --domain applies one
    Resource("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", True, ("ing",)),
)
BY_PATH = {(r.group, r.version, r.plural): r for r in RESOURCES}
BY_KIND = {r.kind: r for r in RESOURCES}
GROUP_VERSIONS = sorted({(r.group, r.version) for r in RESOURCES})
