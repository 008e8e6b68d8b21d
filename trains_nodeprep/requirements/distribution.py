"""Which Kubernetes distribution runs on the node: kubeadm-style (a kubelet of its own, or none),
k3s server or agent, RKE2 server or agent, or MicroK8s. Each keeps its pods' containerd in its
own place, so the limits must go there, not to docker's or the system containerd's.

The evidence is what the one facts command can see without starting a process: the running
processes by name (k3s's main process calls itself k3s-server or k3s-agent, RKE2's rke2,
MicroK8s's kubelet runs inside kubelite), the distribution's unit files, data directories and
args files, and its config file (`docker: true`, `container-runtime-endpoint`). When the evidence
disagrees, the node is refused rather than guessed at.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..engine.facts import NodeFacts
from ..engine.types import Service
from ..formats.systemd_limits import parse_show
from ..model import DesiredState
from .base import Concern, FactsNeeds, no_files

if TYPE_CHECKING:
    from ..engine.builder import PlanBuilder
    from ..engine.parse import Records

K3S, RKE2, MICROK8S = "k3s", "rke2", "microk8s"
PROCESSES = {"k3s-server": K3S, "k3s-agent": K3S, "rke2": RKE2, "kubelite": MICROK8S}
# where each distribution's unit (by role) is installed: k3s's install.sh, RKE2's tarball, RPM
# and prefix installs
UNITS = {
    (K3S, "server"): ("/etc/systemd/system/k3s.service",),
    (K3S, "agent"): ("/etc/systemd/system/k3s-agent.service",),
    (RKE2, "server"): tuple(
        f"{d}/rke2-server.service"
        for d in ("/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system")
    ),
    (RKE2, "agent"): tuple(
        f"{d}/rke2-agent.service"
        for d in ("/etc/systemd/system", "/usr/local/lib/systemd/system", "/usr/lib/systemd/system")
    ),
}
DATA = {
    K3S: ("/var/lib/rancher/k3s",),
    RKE2: ("/var/lib/rancher/rke2",),
    MICROK8S: ("/var/snap/microk8s/current/args/kubelet", "/var/snap/microk8s/common/run"),
}
CONFIG = {K3S: "/etc/rancher/k3s/config.yaml", RKE2: "/etc/rancher/rke2/config.yaml"}
EVIDENCE_PATHS = tuple(
    dict.fromkeys(p for paths in (*UNITS.values(), *DATA.values()) for p in paths)
)


@dataclass(frozen=True)
class Distribution:
    name: str  # k3s | rke2 | microk8s
    role: str | None  # server | agent (k3s, RKE2); None for MicroK8s
    running: bool
    evidence: str  # for people: what this was read from
    docker: bool = False  # k3s `docker: true` / `--docker`: its pods run in docker
    endpoint: str | None = None  # `container-runtime-endpoint`: an external runtime's socket
    problem: str | None = None  # the evidence disagrees or cannot be read

    @property
    def label(self) -> str:
        return f"{self.name} {self.role}" if self.role else self.name

    @property
    def unit(self) -> str | None:
        """The systemd unit whose limits its embedded containerd inherits (k3s, RKE2)."""
        if self.name == K3S:
            return "k3s.service" if self.role == "server" else "k3s-agent.service"
        if self.name == RKE2:
            return f"rke2-{self.role}.service"
        return None

    @property
    def service(self) -> Service:
        """What a change to its containerd's limits restarts."""
        if self.unit is None:
            return Service.MICROK8S
        return Service(self.unit.removesuffix(".service"))


def facts(_desired: DesiredState) -> FactsNeeds:
    return FactsNeeds(
        shell="distribution.facts.sh",
        processes=dict.fromkeys(PROCESSES),
        calls=(
            ("present", *EVIDENCE_PATHS),
            *(("readfile_if_present", path) for path in CONFIG.values()),
        ),
    )


def parse(records: Records) -> dict[str, Any]:
    shows = {unit: data.decode(errors="replace") for unit, _s, data in records.of_kind("unit-show")}
    return {
        "distribution_processes": {
            name: tuple(found) for name in PROCESSES if (found := records.processes(name))
        },
        "paths_present": tuple(name for name, _s, _d in records.of_kind("path")),
        "unit_shows": {unit: parse_show(text) for unit, text in shows.items()},
        "unit_ages": {
            unit: age for unit in shows if (age := records.age(f"{unit}-started")) is not None
        },
    }


def choose_distribution(facts: NodeFacts) -> Distribution | None:
    """The distribution on this node, or None for a kubeadm-style node (or no Kubernetes)."""
    running = {PROCESSES[name]: name for name in facts.distribution_processes}
    installed = {
        name
        for (name, _role), paths in UNITS.items()
        if any(p in facts.paths_present for p in paths)
    } | {name for name, paths in DATA.items() if any(p in facts.paths_present for p in paths)}
    if len(running) > 1:
        names = " and ".join(sorted(running))
        return Distribution(
            sorted(running)[0],
            None,
            True,
            f"{names} both running",
            problem=f"{names} both run on this node: trains-nodeprep cannot tell which one runs "
            "the pods; stop the one that does not",
        )
    if running:
        name, process = next(iter(running.items()))
        evidence = f"{process} running"
        if facts.kubelet_argv and not _own_kubelet(facts.kubelet_argv):
            return Distribution(
                name,
                None,
                True,
                evidence + ", and a kubelet of its own",
                problem=f"{process} and a separate kubelet both run on this node: trains-nodeprep "
                "cannot tell which one runs the pods; stop the one that does not",
            )
    elif len(installed) == 1:
        name, evidence = next(iter(installed)), "installed, not running"
    elif installed:
        names = " and ".join(sorted(installed))
        return Distribution(
            sorted(installed)[0],
            None,
            False,
            f"{names} installed",
            problem=f"{names} are both installed and neither runs: trains-nodeprep cannot tell "
            "which one will run the pods; start the one in use, or uninstall the other",
        )
    else:
        return None
    role = _role(name, facts)
    unit_files = [p for p in UNITS.get((name, role or ""), ()) if p in facts.paths_present]
    evidence += "".join(f", {p}" for p in unit_files[:1])
    settings, problem = _config(name, facts)
    processes = [process for found in facts.distribution_processes.values() for process in found]
    argv = processes[0][1] if processes else ()  # the main process: its flags count too
    return Distribution(
        name,
        role,
        bool(running),
        evidence,
        docker=settings.get("docker") is True or "--docker" in argv,
        endpoint=_endpoint(settings, argv),
        problem=problem,
    )


# RKE2 runs the kubelet as a child process, from its data directory, on its containerd's socket
OWN_SOCKETS = ("/run/k3s/containerd/containerd.sock", "/var/snap/microk8s/common/run/")


def _own_kubelet(argv: tuple[str, ...]) -> bool:
    """A kubelet process that is the distribution's own (RKE2's), not a kubeadm one beside it."""
    line = " ".join(argv)
    return "/var/lib/rancher/" in argv[0] or any(socket in line for socket in OWN_SOCKETS)


def _role(name: str, facts: NodeFacts) -> str | None:
    if name == MICROK8S:
        return None
    if name == K3S:
        if "k3s-server" in facts.distribution_processes:
            return "server"
        if "k3s-agent" in facts.distribution_processes:
            return "agent"
    for process in facts.distribution_processes.get("rke2", ()):
        for arg in process[1][1:2]:
            if arg in ("server", "agent"):
                return arg
    roles = [
        r for (n, r), paths in UNITS.items() if n == name and set(paths) & set(facts.paths_present)
    ]
    return roles[0] if len(roles) == 1 else "server"


def _config(name: str, facts: NodeFacts) -> tuple[dict[str, Any], str | None]:
    path = CONFIG.get(name)
    fact = facts.file(path) if path else None
    if fact is None or fact.state == "absent":
        return {}, None
    if fact.content is None:
        return {}, f"{path}: cannot be read as root; check the file"
    import yaml

    try:
        settings = yaml.safe_load(fact.content) or {}
    except yaml.YAMLError as err:
        return (
            {},
            f"{path}: not valid YAML ({err.__class__.__name__}); "
            f"{name} cannot start with it either",
        )
    if not isinstance(settings, dict):
        return {}, f"{path}: not a mapping of settings; fix the file"
    return settings, None


def _endpoint(settings: dict[str, Any], argv: tuple[str, ...]) -> str | None:
    value = settings.get("container-runtime-endpoint")
    if isinstance(value, str) and value:
        return value
    for index, arg in enumerate(argv):
        if arg.startswith("--container-runtime-endpoint="):
            return arg.partition("=")[2]
        if arg == "--container-runtime-endpoint" and index + 1 < len(argv):
            return argv[index + 1]
    return None


def no_plan(_facts: NodeFacts, _desired: DesiredState, _builder: PlanBuilder) -> None:
    """The runtime module reads the distribution (choose_distribution) when it plans."""


CONCERN = Concern(
    name="distribution", facts=facts, parse=parse, plan=no_plan, managed_files=no_files
)
