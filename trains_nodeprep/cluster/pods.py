"""Pure: what the running Elasticsearch pod actually sees, judged against the desired state.

The node may be right on paper (daemon.json, sysctl.d) while the pod still runs with what it
started with: docker sets a container's rlimits when the container starts. So `check` reads,
inside the pod, the limits of its PID 1 (/proc/1/limits) and the sysctls (/proc/sys/...), with
one `kubectl exec ... -- cat` (kubectl.py); here that text is only parsed and judged.

Units: /proc/PID/limits prints the raw rlimit values (rlim_cur, rlim_max) that setrlimit(2)
takes, and docker's default-ulimits are those same raw values (dockerd hands them to the
runtime unchanged). So "Max locked memory" is in bytes on both sides, and so are the sizes
(core, data, fsize, rss, stack, as, msgqueue); only shells convert (bash's `ulimit -l` says
KiB). No unit conversion is done here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from ..engine.types import Requirement
from ..formats.proc_limits import parse_proc_limits
from ..model import DeploySpec, DesiredState, SysctlSetting, Ulimit

ES_NAMESPACE = DeploySpec.namespace  # the playbook's deploy.namespace, unless told
ES_SELECTOR = "app=elasticsearch"
ES_CONTAINER = "elasticsearch"
PROC_LIMITS = "/proc/1/limits"  # the container's PID 1: its limits are the container's

_CAT_ERROR = re.compile(r"^cat: (?P<path>.+?): (?P<reason>.+)$")
_NO_SUCH_FILE = "No such file or directory"


@dataclass(frozen=True)
class Owner:
    """The object that controls a pod (or a ReplicaSet): metadata.ownerReferences."""

    kind: str
    name: str


@dataclass(frozen=True)
class EsPod:
    """A running Elasticsearch pod, the node it runs on, and what controls it (None: nothing)."""

    name: str
    node: str | None = None
    owner: Owner | None = None


def controller_of(metadata: dict) -> Owner | None:
    """The owner reference marked `controller` (the one that recreates the object), else the
    first one; None for an object nothing owns."""
    refs = [ref for ref in metadata.get("ownerReferences") or [] if isinstance(ref, dict)]
    chosen = next((ref for ref in refs if ref.get("controller")), refs[0] if refs else None)
    if chosen is None or not chosen.get("kind") or not chosen.get("name"):
        return None
    return Owner(str(chosen["kind"]), str(chosen["name"]))


@dataclass(frozen=True)
class PodReading:
    """What one `kubectl exec` read in a pod: the text of /proc/1/limits and each sysctl's
    raw value (None: no such file in the pod); `error` when the read itself failed."""

    pod: str
    node: str | None
    limits_text: str | None
    sysctl_values: dict[str, str | None] = field(default_factory=dict)
    error: str | None = None


def sysctl_path(key: str) -> str:
    return "/proc/sys/" + key.replace(".", "/")


def read_command(sysctl_keys: list[str] | tuple[str, ...]) -> list[str]:
    """The one command run in the pod: `cat /proc/1/limits /proc/sys/...` (only cat is needed)."""
    return ["cat", PROC_LIMITS, *(sysctl_path(key) for key in sysctl_keys)]


def split_read(
    stdout: str, stderr: str, sysctl_keys: list[str] | tuple[str, ...]
) -> tuple[str, dict[str, str | None]]:
    """Split the output of `read_command(sysctl_keys)` into the limits text and the sysctl values.

    /proc/1/limits comes first: its header line ("Limit  Soft Limit  Hard Limit  Units") and
    then only rows starting with "Max "; every /proc/sys file after it is one line. A sysctl the
    pod's kernel lacks shows as cat's "No such file or directory" on stderr and gets None.
    Raises ValueError when the output does not have that shape (or cat failed otherwise)."""
    failed = {}
    for line in (stderr or "").splitlines():
        match = _CAT_ERROR.match(line.strip())
        if match:
            failed[match["path"]] = match["reason"]
    if PROC_LIMITS in failed:
        raise ValueError(f"cat: {PROC_LIMITS}: {failed[PROC_LIMITS]}")
    for key in sysctl_keys:
        reason = failed.get(sysctl_path(key))
        if reason is not None and reason != _NO_SUCH_FILE:
            raise ValueError(f"cat: {sysctl_path(key)}: {reason}")
    lines = (stdout or "").splitlines()
    if not lines or not lines[0].startswith("Limit"):
        raise ValueError(
            f"{PROC_LIMITS} does not start with its header line:"
            f" {(lines[0] if lines else '(no output)')[:80]!r}"
        )
    end = 1
    while end < len(lines) and lines[end].startswith("Max "):
        end += 1
    limits_text = "\n".join(lines[:end]) + "\n"
    rest = lines[end:]
    present = [key for key in sysctl_keys if sysctl_path(key) not in failed]
    if len(rest) != len(present):
        raise ValueError(
            f"expected {len(present)} sysctl value line(s) after {PROC_LIMITS}, got {len(rest)}"
        )
    values: dict[str, str | None] = {key: None for key in sysctl_keys}
    values.update({key: line.strip() for key, line in zip(present, rest, strict=False)})
    return limits_text, values


def parse_running_pods(text: str) -> tuple[EsPod, ...]:
    """`kubectl get pods -o json` -> the pods in phase Running that are not being deleted."""
    pods = []
    for item in json.loads(text).get("items", []):
        meta, status = item.get("metadata", {}), item.get("status", {})
        if status.get("phase") == "Running" and not meta.get("deletionTimestamp"):
            pods.append(
                EsPod(meta["name"], (item.get("spec") or {}).get("nodeName"), controller_of(meta))
            )
    return tuple(sorted(pods, key=lambda p: p.name))


def running_pods_requirement(
    pods: tuple[EsPod, ...] | list[EsPod],
    error: str | None = None,
    namespace: str = ES_NAMESPACE,
) -> Requirement:
    """Whether there is an Elasticsearch pod to look into at all."""
    where = f"namespace {namespace}"
    expected = f"a Running pod with {ES_SELECTOR}"
    if error:
        return Requirement("pod.elasticsearch.running", expected, f"error: {error}", False, where)
    if not pods:
        return Requirement(
            "pod.elasticsearch.running",
            expected,
            "none running: deploy trains-server first, then check again",
            False,
            where,
        )
    actual = ", ".join(f"{p.name} on {p.node}" if p.node else p.name for p in pods)
    return Requirement("pod.elasticsearch.running", expected, actual, True, where)


def pod_requirements(
    pod: str,
    limits_text: str | None,
    sysctl_values: dict[str, str | None],
    desired: DesiredState,
    error: str | None = None,
    *,
    node: str | None = None,
) -> list[Requirement]:
    """One requirement per desired ulimit (pod.ulimit.NAME) and per sysctl
    (pod.sysctl.KEY), as the pod sees them. A failed read (`error`) fails them all."""
    where_pod = f"pod {pod}" + (f" on {node}" if node else "")
    limits = parse_proc_limits(limits_text) if limits_text is not None and error is None else {}
    if error is None and limits_text is not None and not limits:
        error = f"{PROC_LIMITS}: no limit rows recognised"
    if error is None and limits_text is None:
        error = f"{PROC_LIMITS} was not read"
    checks = [
        (
            f"pod.ulimit.{want.name}",
            f">= {want.display()}",
            f"{where_pod}: {PROC_LIMITS}",
            lambda want=want: _judge_ulimit(want, limits),
        )
        for want in desired.ulimits
    ]
    checks += [
        (
            f"pod.sysctl.{setting.key}",
            f">= {setting.minimum}",
            f"{where_pod}: {setting.proc_path}",
            lambda setting=setting: _judge_sysctl(setting, sysctl_values),
        )
        for setting in desired.sysctls
    ]
    return [
        Requirement(
            id_, expected, *(judge() if error is None else (f"error: {error}", False)), where
        )
        for id_, expected, where, judge in checks
    ]


def _judge_ulimit(want: Ulimit, limits: dict[str, tuple[int, int]]) -> tuple[str, bool]:
    seen = limits.get(want.name)
    if seen is None:
        return f"not shown in {PROC_LIMITS}", False
    have = Ulimit(want.name, *seen)
    return have.display(), have.satisfies(want)


def _judge_sysctl(setting: SysctlSetting, values: dict[str, str | None]) -> tuple[str, bool]:
    raw = values.get(setting.key)
    if raw is None:
        return "missing", False
    value = raw.strip()
    number = int(value) if re.fullmatch(r"-?\d+", value) else None
    return value or "(empty)", number is not None and number >= setting.minimum
