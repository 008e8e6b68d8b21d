"""kubectl: node discovery by label, cluster pre-checks, `apply -k`, rollout, label, pods.

The only module that runs kubectl. Every call is an argv list; the kubeconfig and context the
user chose are passed on each call. kubectl's discovery cache goes to a private temp dir, so a
run never trusts a stale cache.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from ..engine.types import Requirement
from ..errors import NodePrepError, UsageError
from ..model import DeploySpec, DesiredState
from .checks import ClusterFacts, KubeNode
from .ingress import IngressOptions, render_ingress_yaml, render_wrapper_kustomization
from .pods import (
    ES_CONTAINER,
    ES_SELECTOR,
    EsPod,
    Owner,
    PodReading,
    parse_running_pods,
    pod_requirements,
    read_command,
    running_pods_requirement,
    split_read,
)
from .restarts import (
    Workload,
    parse_replicaset_owners,
    rollout_restart_argv,
    rollout_status_argv,
)
from .tree import Tree, TreeError, TreeObject, objects_by_key, parse_tree

BUNDLED_KUSTOMIZATION = "manifests/overlays/current_version"
TRAINS_IMAGE = "allegroai/trains-server"


def bundled_kustomization() -> Path:
    # the manifests are package data of trains_nodeprep, one level up
    return Path(__file__).resolve().parent.parent / BUNDLED_KUSTOMIZATION


def kubeconfig_available(kubeconfig: str | None) -> bool:
    """Whether kubectl would find a config: --kubeconfig, $KUBECONFIG or ~/.kube/config."""
    if kubeconfig:
        return True
    if os.environ.get("KUBECONFIG"):
        return True
    return Path(os.path.expanduser("~/.kube/config")).is_file()


@dataclass
class Kubectl:
    kubeconfig: str | None = None
    context: str | None = None
    timeout: float = 30.0
    namespace: str = DeploySpec.namespace  # trains-server's (playbook deploy.namespace)

    def __post_init__(self) -> None:
        self.binary = shutil.which("kubectl")
        # removed by close(), or at exit if an error came first
        self._cache = tempfile.TemporaryDirectory(
            prefix="trains-nodeprep-kube-", ignore_cleanup_errors=True
        )
        self.cache_dir = self._cache.name

    def close(self) -> None:
        self._cache.cleanup()

    def argv(self, *args: str) -> list[str]:
        base = [self.binary or "kubectl", "--cache-dir", self.cache_dir]
        if self.kubeconfig:
            base += ["--kubeconfig", self.kubeconfig]
        if self.context:
            base += ["--context", self.context]
        return base + list(args)

    def _require_binary(self) -> None:
        if not self.binary:
            raise NodePrepError(
                "kubectl is not installed or not on PATH; install kubectl 1.14+ or pass --no-deploy"
            )

    def run(self, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess:
        self._require_binary()
        try:
            return subprocess.run(
                self.argv(*args),
                capture_output=True,
                text=True,
                stdin=subprocess.DEVNULL,
                timeout=timeout or self.timeout,
            )
        except subprocess.TimeoutExpired as err:
            raise NodePrepError(
                f"kubectl {' '.join(args[:2])} did not finish within"
                f" {timeout or self.timeout:.0f} s; check the cluster"
            ) from err

    def gather(self, selector: str, kustomize_dir: Path, *, live: bool = False) -> ClusterFacts:
        """Everything the pre-checks need; the calls run side by side. `live`: also the tree's
        objects as they are now (plan's diff needs them; the dry run alone finds what the
        server refuses)."""
        if not self.binary:
            return ClusterFacts(
                context=self.context, kubectl_version=None, server_error="kubectl not found"
            )
        tree_dir = str(kustomize_dir)
        with ThreadPoolExecutor(max_workers=6) as pool:
            calls = [
                # `version` gives the client's version even when the server is down
                pool.submit(self.run, "version", "-o", "json"),
                pool.submit(self.run, "get", "nodes", "-l", selector, "-o", "json"),
                pool.submit(self.run, "get", "services", "--all-namespaces", "-o", "json"),
                pool.submit(self.run, "kustomize", str(kustomize_dir)),
                # the tree as the server would store it: a server-side dry run is validated
                # like the apply and stores nothing
                pool.submit(self.run, "apply", "-k", tree_dir, "--dry-run=server", "-o", "json"),
            ]
            if live:
                calls.append(
                    pool.submit(self.run, "get", "-k", tree_dir, "-o", "json", "--ignore-not-found")
                )
        version, nodes, services, built, dry_run, *now = (c.result() for c in calls)
        try:
            versions = json.loads(version.stdout)
        except ValueError:
            versions = {}
        client = (versions.get("clientVersion") or {}).get("gitVersion")
        server = (versions.get("serverVersion") or {}).get("gitVersion")
        if client is None:
            return ClusterFacts(
                context=self.context,
                kubectl_version=None,
                server_error=_last_line(version.stderr) or "kubectl gave no version",
            )
        tree, kustomize_error = None, _error_of(built)
        default_namespace = "default"
        if kustomize_error is None:
            try:
                tree = parse_tree(built.stdout, "")
                if any(o.namespace == "" for o in tree.objects):
                    # kubectl puts an object the tree gives no namespace in the context's
                    default_namespace = self.context_namespace()
                    tree = parse_tree(built.stdout, default_namespace)
            except TreeError as err:
                kustomize_error = str(err)
        listed = _services(services)
        if server is None or nodes.returncode != 0:
            error = _last_line(version.stderr or nodes.stderr) or "no answer"
            return ClusterFacts(
                self.context, client, server_error=error, kustomize_error=kustomize_error
            )
        return ClusterFacts(
            context=self.context,
            kubectl_version=client,
            server_version=server,
            labeled_nodes=parse_nodes(nodes.stdout),
            node_ports=Tree(tuple(listed.values())).node_ports() if listed is not None else {},
            services={key: obj.body for key, obj in listed.items()} if listed is not None else None,
            kustomize_error=kustomize_error,
            tree=tree,
            **_readings(now[0] if now else None, dry_run, default_namespace),
        )

    def context_namespace(self) -> str:
        """The namespace of the kubeconfig's context (kubectl's default for objects without)."""
        done = self.run("config", "view", "--minify", "-o", "jsonpath={..context.namespace}")
        return (done.stdout.strip() if done.returncode == 0 else "") or "default"

    def apply(self, kustomize_dir: Path, on_line: Callable[[str], None]) -> tuple[bool, str]:
        """`kubectl apply -k DIR`, streaming its lines; (ok, the output)."""
        self._require_binary()
        lines = []
        with subprocess.Popen(
            self.argv("apply", "-k", str(kustomize_dir)),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            text=True,
        ) as process:
            for line in process.stdout or ():  # always a pipe: stdout=PIPE
                lines.append(line.rstrip("\n"))
                on_line(line.rstrip("\n"))
            status = process.wait()
        return status == 0, "\n".join(lines)

    def wait_rollout(self, workloads: list[TreeObject], timeout: int) -> list[str]:
        """The tree's workloads that did not become available in time (empty: all did)."""
        failed = []
        for workload in workloads:
            done = self.run(
                "rollout",
                "status",
                f"{workload.kind.lower()}/{workload.name}",
                "-n",
                workload.namespace or self.namespace,
                f"--timeout={timeout}s",
                timeout=timeout + 10,
            )
            if done.returncode != 0:
                failed.append(f"{workload.name}: {_last_line(done.stderr) or 'not available'}")
        return failed

    def delete(self, obj: TreeObject, timeout: int = 120) -> str | None:
        """`kubectl delete KIND NAME`, waiting until it is gone (what it owns goes too, in the
        background); None when it is gone, else kubectl's complaint."""
        namespace = ["-n", obj.namespace] if obj.namespace else []
        kind = obj.ref.split("/", 1)[0]
        try:
            done = self.run(
                "delete",
                kind,
                obj.name,
                *namespace,
                "--ignore-not-found",
                "--wait=true",
                f"--timeout={timeout}s",
                timeout=timeout + 10,
            )
        except NodePrepError as err:
            return str(err)
        return _error_of(done)

    def label(self, node: str, selector: str) -> None:
        key, _, value = selector.partition("=")
        if not key or not value:
            raise UsageError(f"--selector {selector!r}: expected KEY=VALUE, e.g. app=trains")
        done = self.run("label", "node", node, f"{key}={value}")
        if done.returncode != 0:
            raise NodePrepError(f"kubectl label node {node} failed: {_last_line(done.stderr)}")

    def elasticsearch_pods(self) -> tuple[tuple[EsPod, ...], str | None]:
        """The Running Elasticsearch pods (app=elasticsearch in trains-server's namespace), with
        their nodes.

        Returns (pods, error).
        """
        try:
            done = self.run("get", "pods", "-n", self.namespace, "-l", ES_SELECTOR, "-o", "json")
        except NodePrepError as err:
            return (), str(err)
        if done.returncode != 0:
            return (), _error_of(done)
        try:
            return parse_running_pods(done.stdout), None
        except (ValueError, KeyError, AttributeError) as err:
            return (), f"unexpected output of kubectl get pods: {err}"

    def read_pod(self, pod: EsPod, sysctl_keys: list[str] | tuple[str, ...]) -> PodReading:
        """What the pod sees.

        One `kubectl exec POD -c elasticsearch -- cat /proc/1/limits /proc/sys/...`.
        """
        keys = tuple(sysctl_keys)
        try:
            done = self.run(
                "exec",
                "-n",
                self.namespace,
                pod.name,
                "-c",
                ES_CONTAINER,
                "--",
                *read_command(keys),
            )
        except NodePrepError as err:
            return PodReading(pod.name, pod.node, None, error=str(err))
        only_missing_sysctls = done.returncode == 1 and all(
            line.endswith(": No such file or directory")
            or line.startswith("command terminated with exit code")
            for line in done.stderr.strip().splitlines()
        )
        if done.returncode != 0 and not only_missing_sysctls:
            return PodReading(pod.name, pod.node, None, error=_exec_error(done))
        try:
            limits_text, values = split_read(done.stdout, done.stderr, keys)
        except ValueError as err:
            return PodReading(pod.name, pod.node, None, error=str(err))
        return PodReading(pod.name, pod.node, limits_text, values)

    def read_elasticsearch_pods(
        self, desired: DesiredState
    ) -> tuple[tuple[EsPod, ...], list[PodReading], str | None]:
        """The Running Elasticsearch pods and what each sees: (pods, readings, error).

        One `get pods`, then one `exec ... cat` per pod."""
        pods, error = self.elasticsearch_pods()
        keys = [setting.key for setting in desired.sysctls]
        return pods, [self.read_pod(pod, keys) for pod in pods], error

    def elasticsearch_pod_requirements(
        self, desired: DesiredState, *, required: bool = True
    ) -> list[Requirement]:
        """Is there a Running Elasticsearch pod, and did the desired limits and sysctls reach each.

        Not `required` (trains-server may not be deployed yet): no pod at all gives no
        requirement.
        """
        pods, readings, error = self.read_elasticsearch_pods(desired)
        if not pods and error is None and not required:
            return []
        reqs = [running_pods_requirement(pods, error, self.namespace)]
        for seen in readings:
            reqs += pod_requirements(
                seen.pod, seen.limits_text, seen.sysctl_values, desired, seen.error, node=seen.node
            )
        return reqs

    def replicaset_owners(self) -> tuple[dict[str, Owner | None], str | None]:
        """Each ReplicaSet of the trains namespace and its controller (a Deployment), with one
        `get replicasets`: (owners, error)."""
        try:
            done = self.run("get", "replicasets", "-n", self.namespace, "-o", "json")
        except NodePrepError as err:
            return {}, str(err)
        if done.returncode != 0:
            return {}, _error_of(done)
        try:
            return parse_replicaset_owners(done.stdout), None
        except (ValueError, KeyError, AttributeError, TypeError) as err:
            return {}, f"unexpected output of kubectl get replicasets: {err}"

    def rollout_restart(self, workload: Workload) -> str | None:
        """`kubectl rollout restart KIND/NAME -n NS` (one PATCH of the pod template's
        restartedAt annotation); None when it was made, else kubectl's complaint."""
        try:
            done = self.run(*rollout_restart_argv(workload)[1:])
        except NodePrepError as err:
            return str(err)
        return _error_of(done)

    def rollout_status(self, workload: Workload, timeout: int) -> str | None:
        """Wait until the workload's new pods are rolled out; None when they are."""
        try:
            done = self.run(*rollout_status_argv(workload, timeout)[1:], timeout=timeout + 10)
        except NodePrepError as err:
            return str(err)
        return _error_of(done)


def with_image_version(kustomize_dir: Path, version: str | None, workdir: str) -> Path:
    """A kustomization that pins the trains-server image tag over `kustomize_dir`.

    `kustomize_dir` itself is left untouched.
    """
    if not version:
        return kustomize_dir
    import re

    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}", version):
        raise UsageError(f"--image-version {version!r} is not a valid image tag")
    return _wrapper(
        kustomize_dir,
        Path(workdir) / "image-version",
        tail=f"images:\n- name: {TRAINS_IMAGE}\n  newTag: {json.dumps(version)}\n",
    )


def with_ingress(
    kustomize_dir: Path, spec: DeploySpec, options: IngressOptions | None, workdir: str
) -> Path:
    """A kustomization of `kustomize_dir` (itself maybe a with_image_version wrapper) plus the
    Ingress of --domain (cluster/ingress.py renders it); `options` None: `kustomize_dir` as it
    is. `kustomize_dir` itself is left untouched."""
    if options is None:
        return kustomize_dir
    return _wrapper(
        kustomize_dir,
        Path(workdir) / "ingress",
        files={"ingress.yaml": render_ingress_yaml(spec, options)},
    )


def _wrapper(
    kustomize_dir: Path, wrapper: Path, *, files: dict[str, str] | None = None, tail: str = ""
) -> Path:
    """Write the kustomization `wrapper` over `kustomize_dir`, with `files` beside it as more
    resources and `tail` as more of its YAML."""
    wrapper.mkdir(parents=True, exist_ok=True)
    for name, text in (files or {}).items():
        (wrapper / name).write_text(text)
    relative = os.path.relpath(kustomize_dir.resolve(), wrapper)  # kustomize refuses absolute paths
    (wrapper / "kustomization.yaml").write_text(
        render_wrapper_kustomization(relative, tuple(files or ()), tail)
    )
    return wrapper


def parse_nodes(text: str) -> tuple[KubeNode, ...]:
    nodes = []
    for item in json.loads(text).get("items", []):
        addresses = {
            a.get("type"): a.get("address") for a in item.get("status", {}).get("addresses", [])
        }
        nodes.append(
            KubeNode(
                item["metadata"]["name"], addresses.get("InternalIP"), addresses.get("Hostname")
            )
        )
    return tuple(sorted(nodes, key=lambda n: n.name))


def _services(done: subprocess.CompletedProcess) -> dict | None:
    """`get services --all-namespaces`: (kind, namespace, name) -> TreeObject; None: not read."""
    if done.returncode != 0:
        return None
    try:
        return {obj.key: obj for obj in parse_tree(done.stdout).objects}
    except TreeError:
        return None


def _readings(
    live: subprocess.CompletedProcess | None, dry_run: subprocess.CompletedProcess, namespace: str
) -> dict:
    """ClusterFacts' live objects and dry run, from `get -k` and `apply -k --dry-run=server`."""
    facts: dict = {}
    if live is not None and live.returncode == 0:
        try:
            facts["live"] = objects_by_key(live.stdout, namespace)
        except TreeError as err:
            facts["live_error"] = str(err)
    elif live is not None:
        facts["live_error"] = _last_line(live.stderr) or f"exit status {live.returncode}"
    if dry_run.returncode == 0:
        try:
            facts["dry_run_objects"] = objects_by_key(dry_run.stdout, namespace)
        except TreeError as err:
            facts["dry_run_errors"] = (f"unexpected output of the dry run: {err}",)
    else:
        lines = [line for line in dry_run.stderr.splitlines() if line.strip()]
        facts["dry_run_errors"] = tuple(lines) or (f"exit status {dry_run.returncode}",)
    return facts


def _error_of(done: subprocess.CompletedProcess) -> str | None:
    return (
        None
        if done.returncode == 0
        else (_last_line(done.stderr) or f"exit status {done.returncode}")
    )


def _exec_error(done: subprocess.CompletedProcess) -> str:
    """The command's own last complaint.

    Rather than kubectl's "command terminated with exit code N".
    """
    lines = [
        line
        for line in (done.stderr or "").strip().splitlines()
        if line.strip()
        and not line.startswith(("command terminated with exit code", "Defaulted container"))
    ]
    return lines[-1][:400] if lines else _error_of(done) or f"exit status {done.returncode}"


def _last_line(text: str) -> str:
    lines = [line for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:400] if lines else ""
