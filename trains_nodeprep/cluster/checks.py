"""Pure: what the cluster must look like before trains-server is deployed, as requirements.

The data comes from kubectl (kubectl.py); here it is only judged. The trains-server data lives
on the one node labeled app=trains (hostPath), so that node is the one to prepare.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..engine.types import Requirement
from ..model import DeploySpec
from .changes import ImmutableChange, Key, immutable_changes, merge_immutable, server_refusals
from .tree import Tree

MIN_KUBECTL = (1, 14)  # `apply -k`


@dataclass(frozen=True)
class KubeNode:
    name: str
    internal_ip: str | None = None
    hostname: str | None = None

    @property
    def address(self) -> str:
        return self.internal_ip or self.hostname or self.name

    @property
    def names(self) -> set[str]:
        return {n for n in (self.name, self.internal_ip, self.hostname) if n}


@dataclass(frozen=True)
class ClusterFacts:
    context: str | None
    kubectl_version: str | None  # "v1.32.4"; None when kubectl is missing
    server_version: str | None = None
    server_error: str | None = None
    labeled_nodes: tuple[KubeNode, ...] = ()
    node_ports: dict[int, str] = field(default_factory=dict)  # nodePort -> namespace/name
    kustomize_error: str | None = None
    tree: Tree | None = None  # what `kubectl kustomize` rendered; None when it failed
    # the tree's objects as they are in the cluster (absent ones missing); None: not read
    live: dict[Key, dict] | None = None
    live_error: str | None = None
    # the server-side dry run of the apply: the objects as stored, or the server's refusals
    dry_run_objects: dict[Key, dict] | None = None
    dry_run_errors: tuple[str, ...] = ()
    # every Service of the cluster, by (kind, namespace, name); None: not read
    services: dict[Key, dict] | None = None


def parse_version(text: str | None) -> tuple[int, int] | None:
    match = re.match(r"v?(\d+)\.(\d+)", text or "")
    return (int(match[1]), int(match[2])) if match else None


def cluster_requirements(
    facts: ClusterFacts,
    *,
    selector: str,
    targets: list[set[str]] | None,
    allow_many: bool,
    kustomize_dir: str,
    deploy: DeploySpec | None = None,
    replace: bool = False,
) -> list[Requirement]:
    """Each pre-check as a requirement.

    `targets`: for each node being prepared, the names it goes by.
    """
    reqs = []
    version = parse_version(facts.kubectl_version)
    reqs.append(
        Requirement(
            "kubectl.version",
            f">= {MIN_KUBECTL[0]}.{MIN_KUBECTL[1]} (for apply -k)",
            facts.kubectl_version or "kubectl not found on PATH",
            version is not None and version >= MIN_KUBECTL,
            "kubectl",
        )
    )
    reachable = facts.server_version is not None
    reqs.append(
        Requirement(
            "cluster.reachable",
            "API server answers",
            facts.server_version or f"error: {facts.server_error}",
            reachable,
            f"context {facts.context}" if facts.context else "current context",
        )
    )
    if not reachable:
        return reqs
    labeled = facts.labeled_nodes
    count_ok = len(labeled) == 1 or (allow_many and len(labeled) > 1)
    if not labeled:
        actual = f"no node; label one: kubectl label node NODE {selector}"
    else:
        actual = ", ".join(n.name for n in labeled)
        if len(labeled) > 1 and not allow_many:
            actual += (
                " (the data lives on one node: unlabel the others, or pass --allow-many-labeled)"
            )
    reqs.append(
        Requirement(
            "cluster.labeled-node", f"exactly one node with {selector}", actual, count_ok, selector
        )
    )
    if targets is not None and labeled:
        known = set().union(*(n.names for n in labeled))
        for names in targets:
            label = sorted(names)[0]
            reqs.append(
                Requirement(
                    "cluster.target-is-labeled",
                    f"node carries {selector}",
                    "yes" if names & known else f"{label} is not a labeled node",
                    bool(names & known),
                    label,
                )
            )
    reqs.append(node_ports_requirement(facts, deploy or DeploySpec()))
    if facts.tree is not None:
        reqs += dry_run_requirements(facts, facts.tree, replace=replace)
    reqs.append(
        Requirement(
            "kustomize.builds",
            "kubectl kustomize succeeds",
            f"error: {facts.kustomize_error}" if facts.kustomize_error else "yes",
            facts.kustomize_error is None,
            kustomize_dir,
        )
    )
    return reqs


def node_ports_requirement(facts: ClusterFacts, deploy: DeploySpec) -> Requirement:
    """The NodePorts the tree's Services claim are free: no Service holds one, or the one
    holding it is the Service the tree applies (same namespace and name)."""
    wanted = facts.tree.node_ports() if facts.tree is not None else deploy.node_ports()
    taken = {
        port: holder
        for port, owner in wanted.items()
        if (holder := facts.node_ports.get(port)) is not None and holder != owner
    }
    return Requirement(
        "cluster.node-ports",
        "free: " + ", ".join(map(str, sorted(wanted))) if wanted else "no NodePort claimed",
        "; ".join(
            f"{port} is held by Service {taken[port]}, not the tree's {wanted[port]}"
            for port in sorted(taken)
        )
        + " (delete that Service, or give the tree other nodePorts)"
        if taken
        else "free",
        not taken,
        "Services",
    )


def dry_run_findings(facts: ClusterFacts, tree: Tree) -> tuple[list[ImmutableChange], list[str]]:
    """(the objects whose immutable fields would change, the server's other refusals)."""
    from_server, refusals = server_refusals(list(facts.dry_run_errors), tree)
    return merge_immutable(immutable_changes(tree, facts.live or {}), from_server), refusals


def dry_run_requirements(facts: ClusterFacts, tree: Tree, *, replace: bool) -> list[Requirement]:
    """The server accepts the whole tree (server-side dry run), and no object's immutable field
    would change: kubectl would refuse that object and apply the others, a half-applied update."""
    changes, refusals = dry_run_findings(facts, tree)
    reqs = [
        Requirement(
            "cluster.dry-run",
            "the API server accepts the tree (server-side dry run)",
            "; ".join(refusals) if refusals else "yes",
            not refusals,
            "kubectl apply --dry-run=server",
        )
    ]
    kept = [c for c in changes if not c.replaceable]
    if not changes:
        actual, ok = "none would change", True
    elif kept:
        actual = (
            "would change "
            + ", ".join(c.describe() for c in kept)
            + ": it holds or scopes data, so trains-nodeprep never deletes it;"
            " put the old value back in the tree"
        )
        ok = False
    elif replace:
        actual = "replacing (--replace) " + ", ".join(c.describe() for c in changes)
        ok = True
    else:
        actual = (
            "would change "
            + ", ".join(c.describe() for c in changes)
            + ": pass --replace to delete and create "
            + ("it" if len(changes) == 1 else "them")
            + " again (the data on the node stays)"
        )
        ok = False
    reqs.append(
        Requirement("cluster.immutable-fields", "no immutable field changes", actual, ok, "tree")
    )
    return reqs
