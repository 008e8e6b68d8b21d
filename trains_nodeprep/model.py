"""The desired state, as plain frozen data, and the arithmetic of limits.

A limit of -1 means "unlimited" and is higher than any number.
"""

from __future__ import annotations

from dataclasses import dataclass

UNLIMITED = -1
CONTAINERD_DROPIN_DIR = "/etc/systemd/system/containerd.service.d"  # drop-ins of containerd.service
# MicroK8s's containerd wrapper sources this file before it execs containerd
MICROK8S_CONTAINERD_ENV = "/var/snap/microk8s/current/args/containerd-env"


def limit_key(value: int) -> float:
    """Sort key that puts unlimited (-1) above every finite value."""
    return float("inf") if value == UNLIMITED else value


def higher_limit(a: int, b: int) -> int:
    return a if limit_key(a) >= limit_key(b) else b


def limit_at_least(actual: int, minimum: int) -> bool:
    return limit_key(actual) >= limit_key(minimum)


def format_limit(value: int) -> str:
    return "unlimited" if value == UNLIMITED else str(value)


@dataclass(frozen=True)
class Ulimit:
    """A process limit by the name docker knows (nofile, memlock, ...), soft and hard.

    The playbook states each once; docker gets it as a default ulimit, containerd as a
    systemd Limit*= directive."""

    name: str
    soft: int
    hard: int

    def __str__(self) -> str:
        return f"{self.name}={self.soft}:{self.hard}"

    def display(self) -> str:
        """For people: nofile 1024:65536, memlock unlimited."""
        if self.soft == self.hard:
            return format_limit(self.soft)
        return f"{format_limit(self.soft)}:{format_limit(self.hard)}"

    def satisfies(self, minimum: Ulimit) -> bool:
        return limit_at_least(self.soft, minimum.soft) and limit_at_least(self.hard, minimum.hard)

    def raised_to(self, minimum: Ulimit) -> Ulimit:
        """The lowest limit that keeps what is higher here and meets `minimum`."""
        return Ulimit(
            self.name, higher_limit(self.soft, minimum.soft), higher_limit(self.hard, minimum.hard)
        )


@dataclass(frozen=True)
class SysctlSetting:
    key: str  # dotted form: vm.max_map_count
    minimum: int

    @property
    def proc_path(self) -> str:
        return "/proc/sys/" + self.key.replace(".", "/")


@dataclass(frozen=True)
class Directory:
    """A directory trains-server keeps data in (hostPath). Owner and mode are enforced only when
    given: a container may chown its own data directory (mongo does) and must not be fought."""

    path: str
    owner: int | None = None
    group: int | None = None
    mode: int | None = None


@dataclass(frozen=True)
class ServerFile:
    """A trains-server config file on the node (e.g. /opt/trains/config/services.conf)."""

    path: str
    content: bytes
    mode: int
    secret: bool = False  # holds passwords: never shown in diffs or output


@dataclass(frozen=True)
class Endpoint:
    """One of trains-server's Services, as the manifests name it: where a user reaches it
    (NodePort, Ingress host) and how its health is asked."""

    name: str  # web, api, files
    service: str
    port: int
    node_port: int
    host: str  # the first DNS label of its Ingress host: app, api, files
    health: str | None = None  # a path that answers when the service is up; None: any answer
    # (release, path): the path to ask releases older than `release` instead
    health_before: tuple[tuple[int, int], str] | None = None


@dataclass(frozen=True)
class DataMove:
    """A data directory a release moved (`old` -> `new`): data left in `old` is not seen."""

    old: str
    new: str


# trains-server's Services in the bundled manifests (playbook deploy.endpoints)
DEFAULT_ENDPOINTS = (
    Endpoint("web", "webserver-service", 8080, 30080, "app"),
    Endpoint(
        "api", "apiserver-service", 8008, 30008, "api", "/debug.ping", ((0, 16), "/server.info")
    ),
    Endpoint("files", "fileserver-service", 8081, 30081, "files"),
)


@dataclass(frozen=True)
class DeploySpec:
    """Where trains-server lives in the cluster (playbook deploy)."""

    namespace: str = "trains"
    endpoints: tuple[Endpoint, ...] = DEFAULT_ENDPOINTS
    data_moves: tuple[DataMove, ...] = (
        DataMove("/opt/trains/data/elastic", "/opt/trains/data/elastic_7"),
    )

    def endpoint(self, name: str) -> Endpoint:
        return next(e for e in self.endpoints if e.name == name)

    def node_ports(self) -> dict[int, str]:
        """nodePort -> "namespace/service" as the playbook names them."""
        return {e.node_port: f"{self.namespace}/{e.service}" for e in self.endpoints}


@dataclass(frozen=True)
class DesiredState:
    ulimits: tuple[Ulimit, ...]
    sysctls: tuple[SysctlSetting, ...]
    sysctl_file: str
    source: str  # where it was loaded from, for messages
    directories: tuple[Directory, ...] = ()
    server_files: tuple[ServerFile, ...] = ()
    # playbook containerd.drop-in
    containerd_dropin: str = CONTAINERD_DROPIN_DIR + "/99-trains.conf"
    # playbook distributions.drop-in: the file name of the drop-in of k3s's and RKE2's units, in
    # /etc/systemd/system/UNIT.d/
    unit_dropin_name: str = "99-trains.conf"
    # playbook distributions.microk8s-containerd-env
    microk8s_containerd_env: str = MICROK8S_CONTAINERD_ENV
    deploy: DeploySpec = DeploySpec()

    def unit_dropin(self, unit: str) -> str:
        """The drop-in of a distribution's unit (k3s.service, rke2-server.service, ...)."""
        return f"/etc/systemd/system/{unit}.d/{self.unit_dropin_name}"


# Paths on a node (the registry of the files the tool manages is requirements.registry).
DAEMON_JSON = "/etc/docker/daemon.json"
SYSCONFIG_DOCKER = "/etc/sysconfig/docker"  # RHEL family: OPTIONS="..." for dockerd, via its unit
DEFAULT_DOCKER = "/etc/default/docker"  # Debian: DOCKER_OPTS="..." for dockerd, via its init script
APISERVER_CONF = "/opt/trains/config/apiserver.conf"  # holds fixed users' passwords
