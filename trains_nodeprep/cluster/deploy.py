"""The cluster side of a command.

Pre-checks before any node is touched, `apply -k` after every node converged.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ..engine.types import Requirement
from ..model import DeploySpec, DesiredState
from .changes import ImageChange, ImmutableChange, ObjectChange, image_changes, object_changes
from .checks import ClusterFacts, KubeNode, cluster_requirements, dry_run_findings
from .ingress import Access
from .kubectl import Kubectl
from .restarts import (
    PodRestart,
    limits_seen,
    low_limits,
    needs_replicasets,
    plan_restarts,
    workload_of,
)


@dataclass
class ClusterOutcome:
    context: str | None
    kustomize_dir: str
    tree_label: str = ""  # the user's tree and options, for people (kustomize_dir may be a wrapper)
    facts: ClusterFacts | None = None
    requirements: list[Requirement] = field(default_factory=list)
    deployed: bool = False
    apply_output: str = ""
    error: str | None = None
    rollout_failures: list[str] = field(default_factory=list)
    urls: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    pod_restarts: list[PodRestart] = field(default_factory=list)
    # run --wait: trains-server's answers after the rollout (cluster/health.py); informative
    health: list[Requirement] = field(default_factory=list)
    access: Access | None = None  # how users reach it (cluster/ingress.py)
    # what the apply would change (plan shows it): each object's diff, the image tags
    changes: list[ObjectChange] = field(default_factory=list)
    images: list[ImageChange] = field(default_factory=list)
    # the objects whose immutable fields change: deleted and created again with --replace
    replacements: list[ImmutableChange] = field(default_factory=list)
    replace: bool = False  # --replace: the user agreed to delete and create them again
    replaced: list[str] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.requirements)

    @property
    def ok(self) -> bool:
        """Ready, deployed if asked, and every pod restart it needs made (a planned one, in a
        dry run, has no error)."""
        return (
            self.ready
            and self.error is None
            and not self.rollout_failures
            and not any(r.error for r in self.pod_restarts)
        )


def precheck(
    kubectl: Kubectl,
    *,
    selector: str,
    kustomize_dir: Path,
    targets: list[set[str]] | None,
    allow_many: bool,
    spec: DeploySpec,
    replace: bool = False,
    live: bool = False,
) -> ClusterOutcome:
    outcome = ClusterOutcome(kubectl.context, str(kustomize_dir), replace=replace)
    outcome.facts = kubectl.gather(selector, kustomize_dir, live=live)
    outcome.requirements = cluster_requirements(
        outcome.facts,
        selector=selector,
        targets=targets,
        allow_many=allow_many,
        kustomize_dir=str(kustomize_dir),
        deploy=spec,
        replace=replace,
    )
    facts, tree = outcome.facts, outcome.facts.tree
    if tree is not None and facts.server_version is not None:
        outcome.replacements, _ = dry_run_findings(facts, tree)
        if facts.live is not None:  # read for plan's diff
            outcome.changes = object_changes(
                tree, facts.live, facts.dry_run_objects, outcome.replacements
            )
            outcome.images = image_changes(tree, facts.live)
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
    kubectl: Kubectl,
    outcome: ClusterOutcome,
    spec: DeploySpec,
    *,
    wait: int | None,
    on_line: Callable[[str], None],
) -> None:
    """`kubectl apply -k`; first, with --replace, the objects whose immutable fields change are
    deleted (the pre-checks let only replaceable ones through: never a Namespace, a
    PersistentVolume or its claim), so that the apply creates them again."""
    for change in outcome.replacements if outcome.replace else ():
        if not change.replaceable:  # the pre-checks refuse these; never delete one
            continue
        error = kubectl.delete(change.obj)
        if error:
            outcome.error = f"--replace: kubectl delete {change.obj.ref} failed: {error}"
            return
        outcome.replaced.append(change.obj.ref)
        on_line(f"{change.obj.ref} deleted (--replace: {change.field} changes)")
    ok, output = kubectl.apply(Path(outcome.kustomize_dir), on_line)
    outcome.apply_output = output
    if not ok:
        outcome.error = (
            "kubectl apply -k failed: " + (output.strip().splitlines() or ["no output"])[-1]
        )
        return
    outcome.deployed = True
    tree = outcome.facts.tree if outcome.facts else None
    if wait and tree is not None:
        outcome.rollout_failures = kubectl.wait_rollout(tree.workloads(), wait)
    node = outcome.facts.labeled_nodes[0] if outcome.facts and outcome.facts.labeled_nodes else None
    if node is not None:
        outcome.urls = server_urls(node, spec)


def server_urls(node: KubeNode, spec: DeploySpec) -> dict[str, str]:
    """Each endpoint's NodePort URL on the labeled node."""
    return {e.name: f"http://{node.address}:{e.node_port}" for e in spec.endpoints}


def stale_pod_restarts(
    kubectl: Kubectl, desired: DesiredState
) -> tuple[list[PodRestart], list[str]]:
    """The workloads whose running Elasticsearch pods have limits below the playbook's (they
    started before the node was prepared), and notes on what could not be read.

    kubectl calls: one `get pods`, one `exec ... cat` per pod, and one `get replicasets` only
    when a pod with low limits belongs to a ReplicaSet (to find its Deployment)."""
    pods, readings, error = kubectl.read_elasticsearch_pods(desired)
    notes = []
    if error:
        notes.append(f"the Elasticsearch pods could not be listed ({error}): no restart offered")
    notes += [
        f"pod {r.pod}: its limits could not be read ({r.error}): no restart offered"
        for r in readings
        if r.error
    ]
    owners: dict = {}
    if needs_replicasets(readings, pods, desired):
        owners, owners_error = kubectl.replicaset_owners()
        if owners_error:
            notes.append(f"the ReplicaSets could not be read ({owners_error})")
    return plan_restarts(pods, readings, desired, owners), notes


def restart_workload(
    kubectl: Kubectl, restart: PodRestart, desired: DesiredState, *, wait: int | None
) -> None:
    """`kubectl rollout restart`; with `wait`, `rollout status`, then the new pods' limits read
    again (one `get pods`, one exec per pod, one `get replicasets`): still low means the node
    does not give pods the limits, and a restart cannot help."""
    error = kubectl.rollout_restart(restart.workload)
    if error:
        restart.error = f"kubectl rollout restart failed: {error}"
        return
    restart.done = True
    if not wait:
        return
    error = kubectl.rollout_status(restart.workload, wait)
    if error:
        restart.error = f"the restart did not roll out within {wait} s: {error}"
        return
    pods, readings, list_error = kubectl.read_elasticsearch_pods(desired)
    owners, owners_error = kubectl.replicaset_owners()
    if list_error or owners_error:
        restart.after.append(f"not read again: {list_error or owners_error}")
        return
    by_name = {pod.name: pod for pod in pods}
    mine = [
        reading
        for reading in readings
        if reading.pod in by_name
        and workload_of(by_name[reading.pod], owners, desired.deploy.namespace) == restart.workload
    ]
    restart.after = [f"pod {r.pod}: {limits_seen(r, desired)}" for r in mine]
    still_low = [(r.pod, low) for r in mine if (low := low_limits(r, desired))]
    if still_low:
        pod, low = still_low[0]
        restart.error = (
            f"its new pod {pod} still runs with {', '.join(low)}: the node does not give pods"
            " these limits, so the node is the problem, not the pod (trains-nodeprep check"
            " on that node)"
        )
