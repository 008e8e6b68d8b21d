"""Pure: which container runtime the kubelet hands pods to, and so where the limits must go.

Since Kubernetes 1.24 (no dockershim) a kubelet that talks to containerd ignores
daemon.json: pods get containerd's own service limits. The evidence, strongest first:
the running kubelet's argv, the flag files kubeadm and distro packages write, the kubelet
config file, and the CRI sockets present. Without a kubelet, the daemons installed decide.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.facts import NodeFacts
from ..model import DesiredState
from .base import Concern, FactsNeeds, no_files
from .distribution import Distribution, choose_distribution

if TYPE_CHECKING:
    from ..engine.builder import PlanBuilder
    from ..engine.parse import Records

DOCKER = "docker"
CONTAINERD = "containerd"
CRIO = "cri-o"
UNDETERMINED = "undetermined"

KUBELET_CONFIG = "/var/lib/kubelet/config.yaml"  # kubeadm's default --config
# Files whose variables kubelet.service expands into flags (kubeadm, Debian/Ubuntu, RHEL).
KUBELET_FLAG_FILES = (
    "/var/lib/kubelet/kubeadm-flags.env",
    "/etc/default/kubelet",
    "/etc/sysconfig/kubelet",
)
CRI_SOCKETS = {
    "/run/containerd/containerd.sock": CONTAINERD,
    "/run/cri-dockerd.sock": DOCKER,
    "/var/run/cri-dockerd.sock": DOCKER,
    "/var/run/dockershim.sock": DOCKER,
    "/run/crio/crio.sock": CRIO,
}
_CONFIG_ENDPOINT = re.compile(r"^containerRuntimeEndpoint:\s*[\"']?([^\"'\s#]+)", re.MULTILINE)


@dataclass(frozen=True)
class RuntimeChoice:
    # the kubelet's runtime (docker | containerd | cri-o | unknown | undetermined);
    # None: no kubelet found
    kubelet: str | None
    evidence: str  # for people: what this was read from
    targets: tuple[str, ...]  # where the limits go: docker and/or containerd
    problem: str | None = None  # a runtime this tool cannot prepare
    # kubeadm (a kubelet of its own) | none (no kubelet) | k3s-server | k3s-agent |
    # rke2-server | rke2-agent | microk8s (requirements/distribution.py)
    distribution: str = "kubeadm"

    def describe(self) -> str:
        if self.distribution not in ("kubeadm", "none"):
            where = f"; limits go to {' and '.join(self.targets)}" if self.targets else ""
            return f"{self.distribution} ({self.evidence}){where}"
        if self.kubelet is None:
            return f"{' and '.join(self.targets) or 'none'} ({self.evidence})"
        return f"kubelet uses {self.kubelet} ({self.evidence})"


def runtime_of_endpoint(endpoint: str) -> str:
    if "containerd" in endpoint:
        return CONTAINERD
    if "cri-dockerd" in endpoint or "dockershim" in endpoint:
        return DOCKER
    if "crio" in endpoint or "cri-o" in endpoint:
        return CRIO
    return "unknown"


def kubelet_flags(argv: tuple[str, ...] | list[str]) -> dict[str, str]:
    """--name=value and --name value flags of a kubelet command line."""
    flags: dict[str, str] = {}
    args = list(argv)
    for index, arg in enumerate(args):
        if not arg.startswith("--"):
            continue
        name, equals, value = arg[2:].partition("=")
        if not equals:
            following = args[index + 1] if index + 1 < len(args) else ""
            value = following if following and not following.startswith("-") else "true"
        flags[name] = value
    return flags


def flag_file_argv(text: str) -> list[str]:
    """The flags in an env file of kubelet.service (KUBELET_KUBEADM_ARGS="...",
    KUBELET_EXTRA_ARGS=...)."""
    argv: list[str] = []
    for line in text.splitlines():
        name, equals, value = line.strip().partition("=")
        if not equals or name.startswith("#") or not name.startswith("KUBELET"):
            continue
        try:
            words = shlex.split(value)  # the env file's quoting ...
        except ValueError:
            continue  # an unbalanced quote: the kubelet would not start with it either
        argv += " ".join(words).split()  # ... then the unit's $VAR, split at whitespace
    return argv


def config_endpoint(text: str) -> str | None:
    match = _CONFIG_ENDPOINT.search(text)
    return match[1] if match else None


def choose_runtime(
    *,
    kubelet_argv: tuple[str, ...],
    kubelet_files: dict[str, str],
    sockets: tuple[str, ...],
    docker_installed: bool,
    containerd_installed: bool,
    docker_running: bool = False,
) -> RuntimeChoice:
    """`kubelet_files`: path -> text of the flag files and config files that exist."""
    kubelet, evidence = _kubelet_runtime(kubelet_argv, kubelet_files, sockets)
    if kubelet is None:
        if docker_installed:
            evidence = "no kubelet on this node; dockerd is installed"
            return RuntimeChoice(None, evidence, (DOCKER,), distribution="none")
        if containerd_installed:
            evidence = "no kubelet on this node; containerd is installed, dockerd is not"
            return RuntimeChoice(None, evidence, (CONTAINERD,), distribution="none")
        evidence = "no kubelet, dockerd or containerd on this node"
        return RuntimeChoice(None, evidence, (DOCKER,), distribution="none")
    if kubelet == CONTAINERD:
        # a running docker's own containers (docker run, compose) still take daemon.json:
        # both, each in its place
        return RuntimeChoice(
            kubelet, evidence, (DOCKER, CONTAINERD) if docker_running else (CONTAINERD,)
        )
    if kubelet == DOCKER:
        return RuntimeChoice(kubelet, evidence, (DOCKER,))
    if kubelet == UNDETERMINED:
        # cannot tell which one the pods use: prepare every runtime that is here
        both = tuple(
            name
            for name, here in ((DOCKER, docker_installed), (CONTAINERD, containerd_installed))
            if here
        )
        return RuntimeChoice(kubelet, evidence, both or (DOCKER,))
    return RuntimeChoice(kubelet, evidence, (), _unsupported(kubelet, evidence))


def _kubelet_runtime(
    argv: tuple[str, ...], files: dict[str, str], sockets: tuple[str, ...]
) -> tuple[str | None, str]:
    found_kubelet = bool(argv) or bool(files)
    flag_sources: list[tuple[str, dict[str, str]]] = []
    if argv:
        flag_sources.append(("the running kubelet", kubelet_flags(argv)))
    else:  # kubelet not running: what its unit would pass it
        flag_sources += [
            (path, kubelet_flags(flag_file_argv(files[path])))
            for path in KUBELET_FLAG_FILES
            if path in files
        ]
    for where, flags in flag_sources:
        if flags.get("container-runtime-endpoint"):
            endpoint = flags["container-runtime-endpoint"]
            return runtime_of_endpoint(
                endpoint
            ), f"{where}: --container-runtime-endpoint={endpoint}"
    config_paths = [flags["config"] for _, flags in flag_sources if flags.get("config")]
    config_paths.append(KUBELET_CONFIG)
    for path in config_paths:
        configured = config_endpoint(files.get(path, ""))
        if configured:
            return runtime_of_endpoint(configured), f"{path}: containerRuntimeEndpoint {configured}"
    for where, flags in flag_sources:
        if flags.get("container-runtime") == "docker":
            return DOCKER, f"{where}: --container-runtime=docker (dockershim)"
    if not found_kubelet:
        return None, ""
    present = [path for path in CRI_SOCKETS if path in sockets]
    kinds = {CRI_SOCKETS[path] for path in present}
    if len(kinds) == 1:
        return kinds.pop(), f"kubelet names no runtime; the only CRI socket is {present[0]}"
    return UNDETERMINED, "kubelet names no runtime and " + (
        f"CRI sockets {', '.join(present)} all exist" if present else "no CRI socket exists"
    )


def facts(_desired: DesiredState) -> FactsNeeds:
    return FactsNeeds(
        shell="runtime.facts.sh",
        processes={"kubelet": "kubelet_process"},
        calls=(
            ("kubelet_files", KUBELET_CONFIG, *KUBELET_FLAG_FILES),
            ("cri_sockets", *CRI_SOCKETS),
        ),
    )


def parse(records: Records) -> dict[str, Any]:
    kubelets = records.processes("kubelet")
    return {
        "kubelet_argv": kubelets[0][1] if kubelets else (),
        "sockets": tuple(name for name, _s, _d in records.of_kind("socket")),
    }


def runtime_of(facts: NodeFacts) -> RuntimeChoice:
    named = {*KUBELET_FLAG_FILES, KUBELET_CONFIG, kubelet_flags(facts.kubelet_argv).get("config")}
    kubelet_files = {
        path: fact.text or ""
        for path, fact in facts.files.items()
        if fact.state == "file" and path in named
    }
    return choose_runtime(
        kubelet_argv=facts.kubelet_argv,
        kubelet_files=kubelet_files,
        sockets=facts.sockets,
        docker_installed=facts.docker_installed,
        containerd_installed=facts.containerd_installed,
        docker_running=facts.docker_running,
    )


def plan(facts: NodeFacts, desired: DesiredState, builder: PlanBuilder) -> None:
    """Where the limits go (the modules of those runtimes plan them); a runtime this tool cannot
    prepare refuses the node."""
    found = choose_distribution(facts)
    builder.runtime = runtime_of(facts) if found is None else _distribution_runtime(found)
    if desired.ulimits and builder.runtime.problem:
        builder.blockers.append(builder.runtime.problem)


def _distribution_runtime(found: Distribution) -> RuntimeChoice:
    """A distribution's pods: docker's (k3s --docker), an external runtime's, or its own
    embedded containerd's, whose limits its module writes (k3s, rke2, microk8s)."""
    name = found.label.replace(" ", "-")
    if found.problem:
        return RuntimeChoice(None, found.evidence, (), found.problem, name)
    if found.docker:
        return RuntimeChoice(DOCKER, found.evidence + ", docker: true", (DOCKER,), None, name)
    if found.endpoint:
        runtime = runtime_of_endpoint(found.endpoint)
        evidence = f"{found.evidence}, container-runtime-endpoint {found.endpoint}"
        if runtime in (DOCKER, CONTAINERD):
            return RuntimeChoice(runtime, evidence, (runtime,), None, name)
        return RuntimeChoice(runtime, evidence, (), _unsupported(runtime, evidence), name)
    return RuntimeChoice(CONTAINERD, found.evidence, (found.service,), None, name)


def _unsupported(runtime: str, evidence: str) -> str:
    return (
        f"the kubelet uses {runtime} ({evidence}); "
        "trains-nodeprep sets limits for docker and containerd only: "
        "set nofile and memlock in that runtime's service limits by hand"
    )


CONCERN = Concern(name="runtime", facts=facts, parse=parse, plan=plan, managed_files=no_files)
