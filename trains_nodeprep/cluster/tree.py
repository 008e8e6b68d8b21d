"""Pure: the objects a kustomize tree renders to (`kubectl kustomize DIR`), as plain data.

What the pre-checks judge is the tree being applied, not fixed names: its namespaces, the
NodePorts its Services claim, its workloads and the hostPath directories they mount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

# Kinds that live outside any namespace (the ones a trains-server tree can hold).
CLUSTER_SCOPED = frozenset(
    {
        "Namespace",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "IngressClass",
        "CustomResourceDefinition",
        "PriorityClass",
    }
)
WORKLOAD_KINDS = ("Deployment", "StatefulSet", "DaemonSet")


@dataclass(frozen=True)
class TreeObject:
    api_version: str
    kind: str
    namespace: str | None  # None: cluster-scoped
    name: str
    body: dict = field(compare=False, hash=False, repr=False)

    @property
    def key(self) -> tuple[str, str | None, str]:
        return (self.kind, self.namespace, self.name)

    @property
    def ref(self) -> str:
        """How kubectl names it: deployment.apps/mongo -n trains."""
        group = self.api_version.split("/")[0] if "/" in self.api_version else ""
        kind = self.kind.lower() + (f".{group}" if group else "")
        return f"{kind}/{self.name}" + (f" -n {self.namespace}" if self.namespace else "")

    @property
    def spec(self) -> dict:
        spec = self.body.get("spec")
        return spec if isinstance(spec, dict) else {}

    def pod_spec(self) -> dict:
        template = self.spec.get("template")
        pod = template.get("spec") if isinstance(template, dict) else None
        return pod if isinstance(pod, dict) else {}


@dataclass(frozen=True)
class Tree:
    objects: tuple[TreeObject, ...] = ()

    def find(self, kind: str, namespace: str | None, name: str) -> TreeObject | None:
        return next((o for o in self.objects if o.key == (kind, namespace, name)), None)

    def of_kind(self, *kinds: str) -> list[TreeObject]:
        return [o for o in self.objects if o.kind in kinds]

    def namespaces(self) -> set[str]:
        """The namespaces the tree creates."""
        return {o.name for o in self.of_kind("Namespace")}

    def workloads(self) -> list[TreeObject]:
        return self.of_kind(*WORKLOAD_KINDS)

    def node_ports(self) -> dict[int, str]:
        """nodePort -> "namespace/service" for each port the tree's Services claim."""
        ports = {}
        for service in self.of_kind("Service"):
            for port in service.spec.get("ports") or []:
                if isinstance(port, dict) and isinstance(port.get("nodePort"), int):
                    ports[port["nodePort"]] = f"{service.namespace}/{service.name}"
        return ports

    def images(self) -> dict[str, str]:
        """ "namespace/workload/container" -> image, for every container of every workload."""
        found = {}
        for workload in self.workloads():
            pod = workload.pod_spec()
            for container in (pod.get("containers") or []) + (pod.get("initContainers") or []):
                if isinstance(container, dict) and container.get("image"):
                    name = f"{workload.namespace}/{workload.name}/{container.get('name')}"
                    found[name] = str(container["image"])
        return found

    def host_paths(self) -> dict[str, str]:
        """hostPath directory -> "namespace/workload" that mounts it."""
        found = {}
        for workload in self.workloads():
            for volume in workload.pod_spec().get("volumes") or []:
                host = volume.get("hostPath") if isinstance(volume, dict) else None
                if isinstance(host, dict) and isinstance(host.get("path"), str):
                    found[host["path"].rstrip("/") or "/"] = f"{workload.namespace}/{workload.name}"
        return found


class TreeError(ValueError):
    """The rendered tree is not a list of Kubernetes objects."""


def parse_tree(text: str, default_namespace: str = "default") -> Tree:
    """The objects of `kubectl kustomize` output (YAML documents)."""
    import yaml  # deferred: only the cluster side needs it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    objects = []
    try:
        documents = list(yaml.load_all(text, Loader=loader))
    except yaml.YAMLError as err:
        raise TreeError(f"the rendered tree is not YAML: {err}") from err
    for document in documents:
        if document is None:
            continue
        for item in _items(document):
            objects.append(_object(item, default_namespace))
    return Tree(tuple(objects))


def objects_by_key(text: str, default_namespace: str = "default") -> dict:
    """kubectl's JSON or YAML (an object or a List) -> (kind, namespace, name) -> object."""
    return {obj.key: obj.body for obj in parse_tree(text, default_namespace).objects}


def _items(document: Any) -> list[dict]:
    if not isinstance(document, dict):
        raise TreeError(f"a rendered document is not an object: {str(document)[:60]!r}")
    kind = str(document.get("kind", ""))
    if kind.endswith("List"):
        # the API server's own lists (ServiceList, ...) leave kind and apiVersion off their items
        item_kind = kind[: -len("List")] or None
        return [
            {"kind": item_kind, "apiVersion": document.get("apiVersion"), **item}
            for item in document.get("items") or []
            if isinstance(item, dict)
        ]
    return [document]


def _object(item: dict, default_namespace: str) -> TreeObject:
    metadata = item.get("metadata")
    kind, api_version = item.get("kind"), item.get("apiVersion")
    if not isinstance(metadata, dict) or not isinstance(kind, str) or not api_version:
        raise TreeError("a rendered object has no apiVersion, kind or metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise TreeError(f"a rendered {kind} has no metadata.name")
    namespace = None
    if kind not in CLUSTER_SCOPED:
        namespace = str(metadata.get("namespace") or default_namespace)
    return TreeObject(str(api_version), kind, namespace, name, item)


def image_tag(image: str) -> str:
    """The tag of an image reference ("latest" when it has none)."""
    image = image.split("@", 1)[0]
    match = re.search(r":([A-Za-z0-9_][A-Za-z0-9_.-]*)$", image)
    return match[1] if match and "/" not in match[1] else "latest"
