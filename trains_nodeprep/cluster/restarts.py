"""Pure: which workloads to restart so that their Elasticsearch pods get the node's limits.

One containerd shim serves a whole pod, and a container's limits are fixed when it starts: after
`run` raised the node's limits (and restarted the runtime), a pod that was already running keeps
its old ones (memlock 8 MiB: `bootstrap.memory_lock` fails) until it is recreated, and
`kubectl apply -k` does not recreate it (its template did not change). Here, from the pods'
readings (pods.py) and their owners: the workloads to restart, why, and the kubectl argv to do it.
The reads and the restarts themselves are in kubectl.py and deploy.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..formats.proc_limits import parse_proc_limits
from ..model import UNLIMITED, DesiredState, Ulimit
from .pods import ES_NAMESPACE, EsPod, Owner, PodReading, controller_of

# What `kubectl rollout restart` can restart (it patches the pod template's annotations).
ROLLOUT_KINDS = ("deployment", "statefulset", "daemonset")
# The limits /proc/PID/limits gives in bytes (the others are counts or seconds).
_BYTE_LIMITS = frozenset({"memlock", "core", "data", "fsize", "rss", "stack", "as", "msgqueue"})


@dataclass(frozen=True)
class Workload:
    """What recreates a pod: `deployment`, `statefulset`, `daemonset` (restartable), or, when
    nothing can restart it, the pod itself (`pod`), a ReplicaSet without a Deployment, a Job..."""

    kind: str  # lower case, as kubectl's TYPE/NAME
    name: str
    namespace: str = ES_NAMESPACE

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.name}"

    @property
    def restartable(self) -> bool:
        return self.kind in ROLLOUT_KINDS


@dataclass
class PodRestart:
    """A workload whose running pods have limits below the playbook's, and what became of it."""

    workload: Workload
    reason: str  # "its pod runs with memlock 8 MiB < unlimited"
    pods: tuple[str, ...]
    done: bool = False  # the restart was made (and, with --wait, rolled out)
    error: str | None = None  # why it was not done, or why the new pods are still low
    after: list[str] = field(default_factory=list)  # with --wait: the new pods' limits

    @property
    def command(self) -> str:
        """The command a person would run (shown when the tool did not run it)."""
        if self.workload.restartable:
            return " ".join(rollout_restart_argv(self.workload))
        return " ".join(["kubectl", "delete", "pod", *self.pods, "-n", self.workload.namespace])

    @property
    def manual(self) -> str:
        """For a workload `kubectl rollout restart` cannot restart: what to do by hand."""
        pods = ", ".join(self.pods)
        if self.workload.kind == "pod":
            return (
                f"pod {pods} belongs to no workload: delete it and create it again by hand"
                f" ({self.command}, then apply it again)"
            )
        if self.workload.kind == "replicaset":
            return (
                f"delete pod {pods} by hand, its {self.workload.ref} makes a new one:"
                f" {self.command}"
            )
        return f"recreate pod {pods} of {self.workload.ref} by hand"


def rollout_restart_argv(workload: Workload) -> list[str]:
    return ["kubectl", "rollout", "restart", workload.ref, "-n", workload.namespace]


def rollout_status_argv(workload: Workload, timeout: int) -> list[str]:
    return [
        "kubectl",
        "rollout",
        "status",
        workload.ref,
        "-n",
        workload.namespace,
        f"--timeout={timeout}s",
    ]


def parse_replicaset_owners(text: str) -> dict[str, Owner | None]:
    """`kubectl get replicasets -o json` -> each ReplicaSet's controller (its Deployment)."""
    return {
        item["metadata"]["name"]: controller_of(item["metadata"])
        for item in json.loads(text).get("items", [])
    }


def workload_of(
    pod: EsPod, replicaset_owners: Mapping[str, Owner | None], namespace: str = ES_NAMESPACE
) -> Workload:
    """pod -> ReplicaSet -> Deployment, or a StatefulSet / DaemonSet directly, or the pod."""
    owner = pod.owner
    if owner is None:
        return Workload("pod", pod.name, namespace)
    if owner.kind == "ReplicaSet":
        parent = replicaset_owners.get(owner.name)
        if parent is not None and parent.kind == "Deployment":
            return Workload("deployment", parent.name, namespace)
        return Workload("replicaset", owner.name, namespace)
    return Workload(owner.kind.lower(), owner.name, namespace)


def needs_replicasets(
    readings: Iterable[PodReading], pods: Sequence[EsPod], desired: DesiredState
) -> bool:
    """Whether a pod with low limits belongs to a ReplicaSet (then its owner must be read)."""
    by_name = {pod.name: pod for pod in pods}
    return any(
        low_limits(reading, desired)
        and (owner := by_name[reading.pod].owner) is not None
        and owner.kind == "ReplicaSet"
        for reading in readings
        if reading.pod in by_name
    )


def low_limits(reading: PodReading, desired: DesiredState) -> list[str]:
    """The playbook's limits this pod has below the minimum: ["memlock 8 MiB < unlimited"].

    A read that failed, or a limit the pod's /proc/1/limits does not show, is no reason to
    restart (check --pods reports those)."""
    if reading.error is not None or reading.limits_text is None:
        return []
    seen = parse_proc_limits(reading.limits_text)
    low = []
    for want in desired.ulimits:
        if want.name not in seen:
            continue
        have = Ulimit(want.name, *seen[want.name])
        if not have.satisfies(want):
            low.append(f"{want.name} {human_limit(have)} < {human_limit(want)}")
    return low


def limits_seen(reading: PodReading, desired: DesiredState) -> str:
    """The playbook's limits as this pod has them: "nofile 1024:65536, memlock unlimited"."""
    if reading.error is not None or reading.limits_text is None:
        return f"not read: {reading.error or 'no output'}"
    seen = parse_proc_limits(reading.limits_text)
    return ", ".join(
        f"{want.name} {human_limit(Ulimit(want.name, *seen[want.name]))}"
        if want.name in seen
        else f"{want.name} not shown"
        for want in desired.ulimits
    )


def plan_restarts(
    pods: Sequence[EsPod],
    readings: Iterable[PodReading],
    desired: DesiredState,
    replicaset_owners: Mapping[str, Owner | None],
) -> list[PodRestart]:
    """One PodRestart per workload with a running pod below the playbook's limits, in the order
    of its first such pod."""
    by_name = {pod.name: pod for pod in pods}
    grouped: dict[Workload, list[tuple[str, list[str]]]] = {}
    for reading in readings:
        low = low_limits(reading, desired)
        if low and reading.pod in by_name:
            workload = workload_of(
                by_name[reading.pod], replicaset_owners, desired.deploy.namespace
            )
            grouped.setdefault(workload, []).append((reading.pod, low))
    restarts = []
    for workload, found in grouped.items():
        parts = list(dict.fromkeys(part for _, low in found for part in low))
        subject = "its pod runs" if len(found) == 1 else f"its {len(found)} pods run"
        restarts.append(
            PodRestart(workload, f"{subject} with {', '.join(parts)}", tuple(p for p, _ in found))
        )
    return restarts


def human_limit(limit: Ulimit) -> str:
    """Ulimit.display, with sizes in bytes in KiB/MiB/GiB: "memlock 8 MiB", "nofile 1024:65536"."""
    if limit.name not in _BYTE_LIMITS:
        return limit.display()
    soft, hard = _human_bytes(limit.soft), _human_bytes(limit.hard)
    return soft if limit.soft == limit.hard else f"{soft}:{hard}"


def _human_bytes(value: int) -> str:
    if value == UNLIMITED:
        return "unlimited"
    for unit, size in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if value >= size and value % size == 0:
            return f"{value // size} {unit}"
    return f"{value} bytes"
