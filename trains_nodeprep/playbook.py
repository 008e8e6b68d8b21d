"""Load and validate a playbook file into a frozen DesiredState.

Errors name the file and the key, so a typo is a one-line fix.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

from .errors import PlaybookError
from .model import (
    CONTAINERD_DROPIN_DIR,
    UNLIMITED,
    DataMove,
    DeploySpec,
    DesiredState,
    Directory,
    Endpoint,
    ServerFile,
    SysctlSetting,
    Ulimit,
    limit_at_least,
)

BUNDLED_PLAYBOOK = "trains-node.yaml"

# The rlimit names dockerd accepts in --default-ulimit and default-ulimits (each has a systemd
# Limit*= too).
DOCKER_ULIMIT_NAMES = frozenset(
    (
        "core cpu data fsize locks memlock msgqueue nice nofile nproc rss rtprio rttime "
        "sigpending stack"
    ).split()
)
SYSCTL_KEY = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_-]+)+$")
SYSCTL_DIR = PurePosixPath("/etc/sysctl.d")
SYSCTL_FILE_NAME = re.compile(r"^[A-Za-z0-9_.-]+\.conf$")
DROPIN_FILE_NAME = SYSCTL_FILE_NAME  # NAME.conf
SERVER_ROOT = PurePosixPath("/opt/trains")
SAFE_PATH = re.compile(r"^/[A-Za-z0-9_./-]+$")
SERVICES_CONF = "/opt/trains/config/services.conf"
# RFC 1123 labels: a Kubernetes namespace or Service name, a DNS label of an Ingress host
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
HTTP_PATH = re.compile(r"^/[A-Za-z0-9_./-]*$")


def bundled_playbook_path() -> Path:
    """The default playbook: inside the installed wheel, or in a source checkout."""
    package_dir = Path(__file__).resolve().parent
    for candidate in (package_dir / "playbooks", package_dir.parent / "playbooks"):
        path = candidate / BUNDLED_PLAYBOOK
        if path.is_file():
            return path
    raise PlaybookError(
        f"the bundled playbook {BUNDLED_PLAYBOOK} is missing from {package_dir}; "
        "reinstall trains-nodeprep or pass --playbook FILE"
    )


def load_playbook(path: Path | None = None) -> DesiredState:
    path = path or bundled_playbook_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise PlaybookError(
            f"cannot read playbook {path}: {err.strerror}; check the path given to --playbook"
        ) from err
    return parse_playbook(text, str(path))


def parse_playbook(text: str, source: str) -> DesiredState:
    import yaml  # deferred: only commands that read a playbook pay for it

    try:
        data = yaml.load(
            text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        )  # libyaml's: 10x faster
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" line {mark.line + 1} column {mark.column + 1}" if mark else ""
        problem = getattr(err, "problem", None) or "invalid YAML"
        raise PlaybookError(f"{source}:{where}: {problem}; fix the YAML syntax") from err
    return _State(source).build(data)


def render_services_conf(threshold_sec: int, watch_interval_sec: int) -> bytes:
    """trains-server's services.conf (HOCON): the non-responsive task watchdog."""
    return (
        "# Managed by trains-nodeprep (playbook server.watchdog).\n"
        "tasks {\n"
        "    non_responsive_tasks_watchdog {\n"
        "        # In-progress tasks not updated for this many seconds are stopped\n"
        f"        threshold_sec: {threshold_sec}\n"
        "        # Seconds the watchdog sleeps after each cycle\n"
        f"        watch_interval_sec: {watch_interval_sec}\n"
        "    }\n"
        "}\n"
    ).encode()


class _State:
    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, problem: str) -> PlaybookError:
        return PlaybookError(f"{self.source}: key '{key}': {problem}")

    def mapping(self, value: Any, key: str, allowed: set[str]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"must be a mapping, got {type(value).__name__}")
        unknown = sorted(str(k) for k in value if k not in allowed)
        if unknown:
            raise self.fail(
                key, f"unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
            )
        return value

    def integer(self, value: Any, key: str, minimum: int) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {value!r}")
        if value < minimum:
            raise self.fail(key, f"must be at least {minimum}, got {value}")
        return value

    def build(self, data: Any) -> DesiredState:
        if data is None:
            raise self.fail(
                "(top)", "the playbook is empty; start from the bundled playbooks/trains-node.yaml"
            )
        top = self.mapping(
            data,
            "(top)",
            {
                "version",
                "limits",
                "docker",
                "containerd",
                "distributions",
                "sysctl",
                "server",
                "deploy",
            },
        )
        if type(top.get("version")) is not int or top["version"] != 1:  # not True, not 1.0
            raise self.fail("version", f"must be 1, got {top.get('version')!r}")
        docker = self.mapping(top.get("docker", {}), "docker", {"default-ulimits"})
        containerd = self.mapping(top.get("containerd", {}), "containerd", {"drop-in"})
        distributions = self.mapping(
            top.get("distributions", {}), "distributions", {"drop-in", "microk8s-containerd-env"}
        )
        if "limits" in top and "default-ulimits" in docker:
            raise self.fail(
                "docker.default-ulimits",
                "the limits are stated twice; keep only the top-level 'limits' "
                "(it applies to docker and containerd)",
            )
        limits_key = "limits" if "limits" in top else "docker.default-ulimits"
        sysctl = self.mapping(top.get("sysctl", {}), "sysctl", {"file", "settings"})
        server = self.mapping(top.get("server", {}), "server", {"directories", "watchdog"})
        return DesiredState(
            ulimits=self.ulimits(
                top["limits"] if "limits" in top else docker.get("default-ulimits", {}), limits_key
            ),
            sysctls=self.sysctls(sysctl.get("settings", {})),
            sysctl_file=self.sysctl_file(sysctl.get("file", "/etc/sysctl.d/99-trains.conf")),
            source=self.source,
            directories=self.directories(server.get("directories", {})),
            server_files=self.watchdog(server["watchdog"]) if "watchdog" in server else (),
            containerd_dropin=self.containerd_dropin(
                containerd.get("drop-in", DesiredState.containerd_dropin)
            ),
            unit_dropin_name=self.unit_dropin_name(
                distributions.get("drop-in", DesiredState.unit_dropin_name)
            ),
            microk8s_containerd_env=self.microk8s_containerd_env(
                distributions.get("microk8s-containerd-env", DesiredState.microk8s_containerd_env)
            ),
            deploy=self.deploy(top["deploy"]) if "deploy" in top else DeploySpec(),
        )

    def deploy(self, value: Any) -> DeploySpec:
        spec = self.mapping(value, "deploy", {"namespace", "endpoints", "data-moves"})
        namespace = spec.get("namespace", DeploySpec.namespace)
        if not isinstance(namespace, str) or not DNS_LABEL.match(namespace):
            raise self.fail(
                "deploy.namespace", f"must be a Kubernetes namespace name, got {namespace!r}"
            )
        endpoints = (
            self.endpoints(spec["endpoints"]) if "endpoints" in spec else DeploySpec.endpoints
        )
        moves = self.data_moves(spec["data-moves"]) if "data-moves" in spec else None
        return DeploySpec(namespace, endpoints, DeploySpec.data_moves if moves is None else moves)

    def endpoints(self, value: Any) -> tuple[Endpoint, ...]:
        names = {"web", "api", "files"}
        entries = self.mapping(value, "deploy.endpoints", names)
        if set(entries) != names:
            missing = ", ".join(sorted(names - set(entries)))
            raise self.fail("deploy.endpoints", f"needs web, api and files; missing {missing}")
        result = []
        for name, spec in entries.items():
            key = f"deploy.endpoints.{name}"
            spec = self.mapping(
                spec, key, {"service", "port", "node-port", "host", "health", "health-before"}
            )
            for required in ("service", "port", "node-port", "host"):
                if required not in spec:
                    raise self.fail(f"{key}.{required}", "is missing")
            for label in ("service", "host"):
                if not isinstance(spec[label], str) or not DNS_LABEL.match(spec[label]):
                    raise self.fail(
                        f"{key}.{label}", f"must be a DNS label like {name}, got {spec[label]!r}"
                    )
            port = self.integer(spec["port"], f"{key}.port", 1)
            node_port = self.integer(spec["node-port"], f"{key}.node-port", 30000)
            if node_port > 32767 or port > 65535:
                raise self.fail(
                    f"{key}.node-port" if node_port > 32767 else f"{key}.port",
                    "out of range (port 1-65535, node-port 30000-32767)",
                )
            health = self.http_path(spec.get("health"), f"{key}.health")
            before = None
            if "health-before" in spec:
                old = self.mapping(
                    spec["health-before"], f"{key}.health-before", {"version", "path"}
                )
                version = re.fullmatch(r"(\d+)\.(\d+)", str(old.get("version", "")))
                if not version:
                    raise self.fail(f"{key}.health-before.version", 'must be a release like "0.16"')
                path = self.http_path(old.get("path"), f"{key}.health-before.path")
                if path is None:
                    raise self.fail(f"{key}.health-before.path", "is missing")
                before = ((int(version[1]), int(version[2])), path)
            result.append(
                Endpoint(name, spec["service"], port, node_port, spec["host"], health, before)
            )
        return tuple(sorted(result, key=lambda e: ("web", "api", "files").index(e.name)))

    def http_path(self, value: Any, key: str) -> str | None:
        if value is None:
            return None
        if not isinstance(value, str) or not HTTP_PATH.match(value):
            raise self.fail(key, f"must be an HTTP path like /debug.ping, got {value!r}")
        return value

    def data_moves(self, value: Any) -> tuple[DataMove, ...]:
        if not isinstance(value, list):
            raise self.fail("deploy.data-moves", "must be a list of {old: DIR, new: DIR}")
        result = []
        for index, move in enumerate(value):
            key = f"deploy.data-moves[{index}]"
            move = self.mapping(move, key, {"old", "new"})
            paths = []
            for end in ("old", "new"):
                path = move.get(end)
                if (
                    not isinstance(path, str)
                    or not SAFE_PATH.match(path)
                    or ".." in path.split("/")
                    or not PurePosixPath(path).is_relative_to(SERVER_ROOT)
                ):
                    raise self.fail(f"{key}.{end}", f"must be an absolute path under {SERVER_ROOT}")
                paths.append(path)
            result.append(DataMove(*paths))
        return tuple(result)

    def unit_dropin_name(self, value: Any) -> str:
        if not isinstance(value, str) or not DROPIN_FILE_NAME.match(value):
            raise self.fail(
                "distributions.drop-in",
                f"must be a file name NAME.conf (it goes in /etc/systemd/system/UNIT.d/), "
                f"got {value!r}",
            )
        return value

    def microk8s_containerd_env(self, value: Any) -> str:
        if (
            not isinstance(value, str)
            or not SAFE_PATH.match(value)
            or ".." in value.split("/")
            or not PurePosixPath(value).is_relative_to("/var/snap/microk8s")
        ):
            raise self.fail(
                "distributions.microk8s-containerd-env",
                f"must be an absolute path under /var/snap/microk8s, got {value!r}",
            )
        return value

    def containerd_dropin(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("containerd.drop-in", "must be a path")
        path = PurePosixPath(value)
        if path.parent != PurePosixPath(CONTAINERD_DROPIN_DIR) or not DROPIN_FILE_NAME.match(
            path.name
        ):
            raise self.fail(
                "containerd.drop-in",
                f"must be a NAME.conf file directly in {CONTAINERD_DROPIN_DIR}, got {value!r}",
            )
        return str(path)

    def directories(self, value: Any) -> tuple[Directory, ...]:
        entries = self.mapping(
            value, "server.directories", set(value) if isinstance(value, dict) else set()
        )
        result = []
        for path, spec in entries.items():
            key = f"server.directories.{path}"
            if (
                not isinstance(path, str)
                or not SAFE_PATH.match(path)
                or ".." in path.split("/")
                or not PurePosixPath(path).is_relative_to(SERVER_ROOT)
            ):
                raise self.fail(
                    key, f"must be an absolute path under {SERVER_ROOT} (letters, digits, _ . - /)"
                )
            spec = self.mapping(spec or {}, key, {"owner", "group", "mode"})
            mode = spec.get("mode")
            if mode is not None:
                if not isinstance(mode, str) or not re.fullmatch(r"0?[0-7]{3}", mode):
                    raise self.fail(
                        f"{key}.mode", f'must be an octal string like "0755", got {mode!r}'
                    )
                mode = int(mode, 8)
            owner = self.integer(spec["owner"], f"{key}.owner", 0) if "owner" in spec else None
            group = self.integer(spec["group"], f"{key}.group", 0) if "group" in spec else owner
            result.append(Directory(path, owner, group, mode))
        return tuple(result)

    def watchdog(self, value: Any) -> tuple[ServerFile, ...]:
        spec = self.mapping(value, "server.watchdog", {"threshold_sec", "watch_interval_sec"})
        threshold = self.integer(
            spec.get("threshold_sec", 7200), "server.watchdog.threshold_sec", 1
        )
        interval = self.integer(
            spec.get("watch_interval_sec", 900), "server.watchdog.watch_interval_sec", 1
        )
        return (ServerFile(SERVICES_CONF, render_services_conf(threshold, interval), 0o644),)

    def ulimits(self, value: Any, base: str) -> tuple[Ulimit, ...]:
        entries = self.mapping(value, base, set(DOCKER_ULIMIT_NAMES))
        result = []
        for name, limits in entries.items():
            key = f"{base}.{name}"
            limits = self.mapping(limits, key, {"soft", "hard"})
            if set(limits) != {"soft", "hard"}:
                raise self.fail(key, "needs both soft and hard")
            soft = self.integer(limits["soft"], f"{key}.soft", UNLIMITED)
            hard = self.integer(limits["hard"], f"{key}.hard", UNLIMITED)
            if not limit_at_least(hard, soft):
                raise self.fail(key, f"soft {soft} is above hard {hard}; docker refuses that")
            if name == "nofile" and UNLIMITED in (soft, hard):
                # setrlimit refuses more open files than fs.nr_open: a container would not start
                raise self.fail(
                    key, "cannot be unlimited (-1): the kernel caps it; give a number like 1048576"
                )
            result.append(Ulimit(name, soft, hard))
        return tuple(result)

    def sysctls(self, value: Any) -> tuple[SysctlSetting, ...]:
        if not isinstance(value, dict):
            raise self.fail("sysctl.settings", "must be a mapping of key: minimum value")
        result = []
        for key, minimum in value.items():
            if not isinstance(key, str) or not SYSCTL_KEY.match(key):
                raise self.fail(
                    f"sysctl.settings.{key}", "is not a sysctl key like vm.max_map_count"
                )
            result.append(SysctlSetting(key, self.integer(minimum, f"sysctl.settings.{key}", 0)))
        return tuple(result)

    def sysctl_file(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.fail("sysctl.file", "must be a path")
        path = PurePosixPath(value)
        if path.parent != SYSCTL_DIR or not SYSCTL_FILE_NAME.match(path.name):
            raise self.fail(
                "sysctl.file", f"must be a NAME.conf file directly in {SYSCTL_DIR}, got {value!r}"
            )
        return str(path)
