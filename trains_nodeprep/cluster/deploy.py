"""The cluster side of a command.

Pre-checks before any node is touched, `apply -k` after every node converged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.types import Requirement
from ..model import DesiredState
from .checks import TRAINS_NODE_PORTS, ClusterFacts, KubeNode, cluster_requirements
from .kubectl import Kubectl


@dataclass
class ClusterOutcome:
    context: str | None
    kustomize_dir: str
    facts: ClusterFacts | None = None
    requirements: list[Requirement] = field(default_factory=list)
    deployed: bool = False
    apply_output: str = ""
    error: str | None = None
    rollout_failures: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.requirements)

    @property
    def ok(self) -> bool:
        return self.ready and self.error is None and not self.rollout_failures


def precheck(
    kubectl: Kubectl,
    *,
    selector: str,
    kustomize_dir: Path,
    targets: list[set[str]] | None,
    allow_many: bool,
) -> ClusterOutcome:
    outcome = ClusterOutcome(kubectl.context, str(kustomize_dir))
    outcome.facts = kubectl.gather(selector, kustomize_dir)
    outcome.requirements = cluster_requirements(
        outcome.facts,
        selector=selector,
        targets=targets,
        allow_many=allow_many,
        kustomize_dir=str(kustomize_dir),
    )
    return outcome


def pod_check(
    kubectl: Kubectl, outcome: ClusterOutcome, desired: DesiredState, *, required: bool
) -> None:
    """Read, inside each running Elasticsearch pod, the limits and sysctls it really got."""
    found = kubectl.elasticsearch_pod_requirements(desired, required=required)
    if not found:
        outcome.notes.append(
            "no Elasticsearch pod runs yet: its limits are read once trains-server is deployed"
            " (--pods makes that a failure)"
        )
    outcome.requirements += found


def deploy(
    kubectl: Kubectl, outcome: ClusterOutcome, *, wait: int | None, on_line: Callable[[str], None]
) -> None:
    ok, output = kubectl.apply(Path(outcome.kustomize_dir), on_line)
    outcome.apply_output = output
    if not ok:
        outcome.error = (
            "kubectl apply -k failed: " + (output.strip().splitlines() or ["no output"])[-1]
        )
        return
    outcome.deployed = True
    if wait:
        outcome.rollout_failures = kubectl.wait_rollout(wait)
    node = outcome.facts.labeled_nodes[0] if outcome.facts and outcome.facts.labeled_nodes else None
    if node is not None:
        outcome.urls = server_urls(node)


def server_urls(node: KubeNode) -> dict[str, str]:
    names = {"apiserver-service": "api", "webserver-service": "web", "fileserver-service": "files"}
    return {
        names[service]: f"http://{node.address}:{port}"
        for port, service in TRAINS_NODE_PORTS.items()
    }
