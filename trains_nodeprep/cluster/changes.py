"""Pure: what applying the tree would change in the cluster, judged before anything is written.

Three readings come in (kubectl.py makes them): the tree as rendered, the live objects of the
tree (`kubectl get -k DIR`), and the server-side dry run of the apply (`kubectl apply -k DIR
--dry-run=server -o json`: the objects as the server would store them, or its refusals).
Out come the objects whose immutable fields would change (the apply would half-apply: kubectl
goes on with the other objects), the other refusals, and a unified diff per object.
"""

from __future__ import annotations

import copy
import dataclasses
import difflib
import re
from dataclasses import dataclass

from .tree import Tree, TreeObject, image_tag

# The fields the API server refuses to change on an update, by kind (where a trains-server
# tree could change them). A StatefulSet refuses any spec change but a few; these are the
# ones a tree sets.
IMMUTABLE_FIELDS = {
    "Deployment": ("spec.selector",),
    "ReplicaSet": ("spec.selector",),
    "DaemonSet": ("spec.selector",),
    "StatefulSet": ("spec.selector", "spec.serviceName", "spec.podManagementPolicy"),
    "Service": ("spec.clusterIP",),
    "PersistentVolumeClaim": ("spec.storageClassName", "spec.accessModes", "spec.volumeName"),
    "Job": ("spec.selector", "spec.template"),
}
# Never deleted to be created again: they hold or scope the data.
NEVER_REPLACED = frozenset({"Namespace", "PersistentVolume", "PersistentVolumeClaim"})
# What the server adds or keeps for itself: not a change the tree makes.
SERVER_METADATA = (
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
)
SERVER_ANNOTATIONS = (
    "kubectl.kubernetes.io/last-applied-configuration",
    "deployment.kubernetes.io/revision",
)
_REFUSED = re.compile(
    r'^The (?P<kind>[A-Za-z]+)(?:\.[\w.]+)? "(?P<name>[^"]+)" is invalid: (?P<why>.*)$'
)
_IMMUTABLE = re.compile(
    r"(?P<field>[\w.\[\]]+): (?:Invalid value: .*?: (?:field is immutable|may not change once set)"
    r"|Forbidden: updates to \w+ spec for fields other than)"
)
_MISSING_NAMESPACE = re.compile(r'namespaces "(?P<namespace>[^"]+)" not found')

Key = tuple[str, str | None, str]  # kind, namespace (None: cluster-scoped), name


@dataclass(frozen=True)
class ImmutableChange:
    obj: TreeObject
    field: str

    @property
    def replaceable(self) -> bool:
        return self.obj.kind not in NEVER_REPLACED

    def describe(self) -> str:
        return f"{self.obj.ref}: {self.field}"


@dataclass(frozen=True)
class ObjectChange:
    obj: TreeObject
    action: str  # create, configure, replace
    diff: str  # unified diff, "" when the object does not change


@dataclass(frozen=True)
class ImageChange:
    container: str  # namespace/workload/container
    old: str
    new: str

    def describe(self) -> str:
        return f"{self.container}: {image_tag(self.old)} -> {image_tag(self.new)} ({self.new})"


def _get(obj: dict, dotted: str) -> object:
    value: object = obj
    for part in dotted.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def immutable_changes(tree: Tree, live: dict[Key, dict]) -> list[ImmutableChange]:
    """The tree's objects that exist and whose immutable fields the tree sets to a new value."""
    found = []
    for obj in tree.objects:
        current = live.get(obj.key)
        if current is None:
            continue
        for dotted in IMMUTABLE_FIELDS.get(obj.kind, ()):
            wanted, have = _get(obj.body, dotted), _get(current, dotted)
            if wanted is None or have in (None, "", []):
                continue  # the tree leaves it to the server, or nothing is set yet
            if dotted == "spec.template":  # a Job's: the server adds labels to it
                continue
            if wanted != have:
                found.append(ImmutableChange(obj, dotted))
    return found


def server_refusals(errors: list[str], tree: Tree) -> tuple[list[ImmutableChange], list[str]]:
    """The dry run's complaints: (immutable fields it named, every other refusal).

    An object in a namespace the tree itself creates cannot be dry-run before that namespace
    exists ("namespaces X not found"): that is not a refusal."""
    immutable, other = [], []
    creates = tree.namespaces()
    for line in errors:
        line = line.strip()
        if not line:
            continue
        missing = _MISSING_NAMESPACE.search(line)
        if missing and missing["namespace"] in creates:
            continue
        refused = _REFUSED.match(line)
        field = _IMMUTABLE.search(refused["why"]) if refused else None
        if refused and field:
            matches = [
                o for o in tree.objects if o.kind == refused["kind"] and o.name == refused["name"]
            ]
            if matches:
                normalized = re.sub(r"^spec\.clusterIPs\[0\]$", "spec.clusterIP", field["field"])
                immutable.append(ImmutableChange(matches[0], normalized))
                continue
        other.append(line[:400])
    return immutable, other


def merge_immutable(*found: list[ImmutableChange]) -> list[ImmutableChange]:
    """One entry per object and field, in the tree's order."""
    seen: dict[tuple[Key, str], ImmutableChange] = {}
    for change in (c for group in found for c in group):
        seen.setdefault((change.obj.key, change.field), change)
    return list(seen.values())


def comparable(obj: dict) -> dict:
    """An object without what the server keeps for itself (status, uid, versions, ...)."""
    clean = copy.deepcopy(obj)
    clean.pop("status", None)
    metadata = clean.get("metadata")
    if isinstance(metadata, dict):
        for key in SERVER_METADATA:
            metadata.pop(key, None)
        annotations = metadata.get("annotations")
        if isinstance(annotations, dict):
            for key in SERVER_ANNOTATIONS:
                annotations.pop(key, None)
            if not annotations:
                metadata.pop("annotations")
    return clean


def projected(live: object, wanted: object) -> object:
    """`live` limited to the keys `wanted` has (mappings, recursively; lists item by item):
    comparing the rendered tree with a live object then shows what the tree sets, not what
    the server defaulted."""
    if isinstance(live, dict) and isinstance(wanted, dict):
        return {k: projected(live[k], wanted[k]) for k in wanted if k in live}
    if isinstance(live, list) and isinstance(wanted, list) and len(live) == len(wanted):
        return [projected(a, b) for a, b in zip(live, wanted, strict=True)]
    return live


def object_changes(
    tree: Tree,
    live: dict[Key, dict],
    server: dict[Key, dict] | None,
    immutable: list[ImmutableChange],
) -> list[ObjectChange]:
    """What the apply would do to each object of the tree, with its diff.

    `server`: the dry run's answer (None when it refused: then each object as rendered is
    compared with the live object's same fields)."""
    replaced = {c.obj.key for c in immutable}
    changes = []
    for obj in tree.objects:
        current = live.get(obj.key)
        if server is not None and obj.key in server:
            new = comparable(server[obj.key])
            old = comparable(current) if current is not None else None
        else:
            new = comparable(obj.body)
            old = comparable(projected(current, obj.body)) if current is not None else None  # type: ignore[arg-type]
        if obj.key in replaced:
            action = "replace"
        elif old is None:
            action = "create"
        else:
            action = "configure"
        text = unified(obj, old, new)
        if action == "configure" and not text:
            continue
        changes.append(ObjectChange(obj, action, text))
    return changes


def unified(obj: TreeObject, old: dict | None, new: dict) -> str:
    import yaml  # deferred: only the cluster side needs it

    def lines(value: dict | None) -> list[str]:
        if value is None:
            return []
        return yaml.safe_dump(value, sort_keys=True, default_flow_style=False).splitlines()

    name = obj.ref
    diff = difflib.unified_diff(
        lines(old),
        lines(new),
        fromfile=f"live {name}" if old is not None else "/dev/null",
        tofile=f"tree {name}",
        lineterm="",
        n=3,
    )
    return "\n".join(diff)


def image_changes(tree: Tree, live: dict[Key, dict]) -> list[ImageChange]:
    """The containers whose image the apply would change (e.g. --image-version)."""
    found = []
    for workload in tree.workloads():
        current = live.get(workload.key)
        if current is None:
            continue
        before = Tree((dataclasses.replace(workload, body=current),)).images()
        after = Tree((workload,)).images()
        for container, image in after.items():
            if container in before and before[container] != image:
                found.append(ImageChange(container, before[container], image))
    return found
