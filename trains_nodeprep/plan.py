"""Pure: compare facts with the desired state; say what is off and what would fix it.

`make_plan(facts, desired)` reads nothing and writes nothing. The plan is empty when the
node is ready; `blockers` are problems the tool refuses to fix by itself (the node is
then left untouched).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from . import containerd_config, docker_config, runtime, sysctl
from .errors import ConfigError
from .facts import FileFact, NodeFacts
from .model import DAEMON_JSON, DEFAULT_DOCKER, SYSCONFIG_DOCKER, DesiredState, Ulimit
from .proc_limits import parse_proc_limits
from .runtime import RuntimeChoice

SYSCTL_HEADER = "# Managed by trains-nodeprep: minimums for trains-server (Elasticsearch). Higher values are kept."


@dataclass(frozen=True)
class Requirement:
    """One line of `check`: a stable id, what is expected, what the node has."""

    id: str
    expected: str
    actual: str
    ok: bool
    where: str = ""


@dataclass(frozen=True)
class FileChange:
    path: str
    old: FileFact
    new: bytes | None  # None: remove the file (restore of a file that did not exist)
    restarts_docker: bool
    secret: bool = False  # holds passwords: the content is never shown
    mode: int = 0o644  # for a new file; an existing file keeps its own
    restarts_containerd: bool = (
        False  # a drop-in of containerd.service: daemon-reload, restart containerd
    )


@dataclass(frozen=True)
class DirChange:
    path: str
    create: bool
    owner: int | None
    group: int | None
    mode: int | None


@dataclass(frozen=True)
class SysctlWrite:
    key: str
    old: int | None
    new: int


@dataclass(frozen=True)
class Plan:
    requirements: tuple[Requirement, ...]
    file_changes: tuple[FileChange, ...] = ()
    sysctl_writes: tuple[SysctlWrite, ...] = ()
    dir_changes: tuple[DirChange, ...] = ()
    restart_docker: bool = False
    restart_reason: str = ""
    blockers: tuple[str, ...] = ()
    restart_containerd: bool = False
    containerd_reason: str = ""
    runtime: RuntimeChoice | None = None  # where the limits go on this node, and why

    @property
    def empty(self) -> bool:
        return not (
            self.file_changes
            or self.sysctl_writes
            or self.dir_changes
            or self.restart_docker
            or self.restart_containerd
            or self.blockers
        )

    @property
    def restarts(self) -> tuple[str, ...]:
        """The services this plan restarts, in the order the apply restarts them."""
        return (("containerd",) if self.restart_containerd else ()) + (
            ("docker",) if self.restart_docker else ()
        )

    @property
    def ready(self) -> bool:
        return all(r.ok for r in self.requirements) and self.empty


@dataclass
class _Builder:
    requirements: list[Requirement] = field(default_factory=list)
    file_changes: list[FileChange] = field(default_factory=list)
    sysctl_writes: list[SysctlWrite] = field(default_factory=list)
    dir_changes: list[DirChange] = field(default_factory=list)
    restart_reasons: list[str] = field(default_factory=list)
    containerd_reasons: list[str] = field(default_factory=list)
    blockers: list[str] = field(default_factory=list)
    runtime: RuntimeChoice | None = None

    def change_file(
        self,
        old: FileFact,
        new: bytes | None,
        restarts_docker: bool,
        secret: bool = False,
        mode: int = 0o644,
        restarts_containerd: bool = False,
    ) -> None:
        if old.content != new:
            self.file_changes.append(
                FileChange(old.path, old, new, restarts_docker, secret, mode, restarts_containerd)
            )
            if restarts_docker:
                self.restart_reasons.append(f"{old.path} changed")
            if restarts_containerd:
                self.containerd_reasons.append(f"{old.path} changed")

    def plan(self) -> Plan:
        return Plan(
            requirements=tuple(self.requirements),
            file_changes=tuple(self.file_changes),
            sysctl_writes=tuple(self.sysctl_writes),
            dir_changes=tuple(self.dir_changes),
            restart_docker=bool(self.restart_reasons),
            restart_reason="; ".join(self.restart_reasons),
            blockers=tuple(self.blockers),
            restart_containerd=bool(self.containerd_reasons),
            containerd_reason="; ".join(self.containerd_reasons),
            runtime=self.runtime,
        )


def runtime_of(facts: NodeFacts) -> RuntimeChoice:
    named = {
        *runtime.KUBELET_FLAG_FILES,
        runtime.KUBELET_CONFIG,
        runtime.kubelet_flags(facts.kubelet_argv).get("config"),
    }
    kubelet_files = {
        path: fact.text or ""
        for path, fact in facts.files.items()
        if fact.state == "file" and path in named
    }
    return runtime.choose_runtime(
        kubelet_argv=facts.kubelet_argv,
        kubelet_files=kubelet_files,
        sockets=facts.sockets,
        docker_installed=facts.docker_installed,
        containerd_installed=facts.containerd_installed,
        docker_running=facts.docker_running,
    )


def make_plan(facts: NodeFacts, desired: DesiredState) -> Plan:
    builder = _Builder(runtime=runtime_of(facts))
    for name in facts.unreadable_names:
        builder.blockers.append(
            f"{name!r}: a tab or newline in this file's name keeps trains-nodeprep from reading it, and what it sets "
            f"(at boot, for sysctl files) decides whether the node is ready; rename it"
        )
    if desired.ulimits:
        if builder.runtime.problem:
            builder.blockers.append(builder.runtime.problem)
        if runtime.DOCKER in builder.runtime.targets:
            _plan_docker(facts, desired.ulimits, builder)
        if runtime.CONTAINERD in builder.runtime.targets:
            _plan_containerd(facts, desired, builder)
    _plan_sysctl(facts, desired, builder)
    _plan_server(facts, desired, builder)
    if builder.blockers:
        # Refuse the node as a whole: nothing is written next to a config we cannot trust.
        return Plan(
            requirements=tuple(builder.requirements),
            blockers=tuple(builder.blockers),
            runtime=builder.runtime,
        )
    return builder.plan()


def _limit_requirements(
    builder: _Builder,
    prefix: str,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    where: str,
    error: str | None = None,
    missing: str = "unset",
) -> None:
    """One requirement per desired limit, `prefix.NAME`; an `error` fails them all."""
    for want in desired:
        have = current.get(want.name)
        actual = f"error: {error}" if error else have.display() if have else missing
        ok = error is None and have is not None and have.satisfies(want)
        builder.requirements.append(
            Requirement(f"{prefix}.{want.name}", f">= {want.display()}", actual, ok, where)
        )


def _ulimit_requirements(
    builder: _Builder, current: dict[str, Ulimit], desired: tuple[Ulimit, ...], where: str
) -> None:
    _limit_requirements(builder, "docker.default-ulimit", current, desired, where)


def _failed_requirements(
    builder: _Builder, desired: tuple[Ulimit, ...], where: str, error: str
) -> None:
    _limit_requirements(builder, "docker.default-ulimit", {}, desired, where, error)


def _readable(fact: FileFact) -> None:
    if fact.state == "directory":
        raise ConfigError(fact.path, "is a directory", "move it away; it must be a file")
    if fact.state == "unreadable":
        raise ConfigError(
            fact.path,
            "exists but cannot be read as root",
            "check the file (permissions, filesystem)",
        )


@dataclass(frozen=True)
class _FlagFile:
    """An env file whose variable dockerd gets as flags: sysconfig OPTIONS or default DOCKER_OPTS."""

    fact: FileFact
    variable: str
    limits: dict[str, Ulimit]


def _flag_files(facts: NodeFacts) -> list[_FlagFile]:
    """The env files this node's docker really reads flags from."""
    found = []
    sysconfig = facts.file(SYSCONFIG_DOCKER)
    if sysconfig.exists:
        _readable(sysconfig)
        found.append(
            _FlagFile(
                sysconfig,
                docker_config.SYSCONFIG_VARIABLE,
                docker_config.sysconfig_ulimits(sysconfig.text or "", SYSCONFIG_DOCKER),
            )
        )
    default = facts.file(DEFAULT_DOCKER)
    # Debian's init script sources /etc/default/docker; a systemd unit only if it says so.
    read_by_docker = facts.init_system != "systemd" or DEFAULT_DOCKER in (facts.docker_unit or "")
    if default.exists and read_by_docker:
        _readable(default)
        found.append(
            _FlagFile(
                default,
                docker_config.DEFAULT_VARIABLE,
                docker_config.sysconfig_ulimits(
                    default.text or "", DEFAULT_DOCKER, docker_config.DEFAULT_VARIABLE
                ),
            )
        )
    return found


def _plan_docker(facts: NodeFacts, desired: tuple[Ulimit, ...], builder: _Builder) -> None:
    if not facts.docker_installed and not facts.docker_running:
        builder.blockers.append(
            "dockerd: not installed on this node (no dockerd on PATH); install docker first, ulimits are set for docker"
        )
        _failed_requirements(builder, desired, "dockerd", "docker is not installed")
        return
    daemon_json = facts.file(DAEMON_JSON)
    try:
        _readable(daemon_json)
        json_limits = {}
        if daemon_json.content is not None:
            json_limits = docker_config.daemon_json_ulimits(
                docker_config.parse_daemon_json(daemon_json.content, DAEMON_JSON), DAEMON_JSON
            )
        flag_files = _flag_files(facts)
        unit_limits = docker_config.cmdline_ulimits(
            docker_config.unit_exec_start(facts.docker_unit or ""), "docker.service ExecStart"
        )
        # Docker takes ulimits from one source: flags, or daemon.json. Both stops dockerd.
        sources = (
            [f.fact.path for f in flag_files if f.limits]
            + (["docker.service ExecStart"] if unit_limits else [])
            + ([DAEMON_JSON] if json_limits else [])
        )
        if len(sources) > 1:
            raise ConfigError(
                sources[-1],
                f"docker default ulimits are set in {' and '.join(sources)}; dockerd refuses to start with flags and daemon.json both, and two flag files are ambiguous",
                f"keep them in one place: remove them from all but {sources[0]}",
            )
        if unit_limits:
            _plan_unmanaged_flags(unit_limits, desired, "docker.service ExecStart", builder)
        elif json_limits:
            _plan_daemon_json(facts, daemon_json, json_limits, desired, builder)
        elif any(f.limits for f in flag_files):
            _plan_flag_file(facts, next(f for f in flag_files if f.limits), desired, builder)
        elif flag_files and flag_files[0].fact.path == SYSCONFIG_DOCKER:
            _plan_flag_file(
                facts, flag_files[0], desired, builder
            )  # the RHEL way: OPTIONS in sysconfig
        else:
            _plan_daemon_json(facts, daemon_json, json_limits, desired, builder)
    except ConfigError as err:
        builder.blockers.append(str(err))
        _failed_requirements(builder, desired, err.path, err.problem)


def _plan_flag_file(
    facts: NodeFacts, flag_file: _FlagFile, desired: tuple[Ulimit, ...], builder: _Builder
) -> None:
    path = flag_file.fact.path
    _ulimit_requirements(builder, flag_file.limits, desired, f"{path} {flag_file.variable}")
    new = docker_config.merge_sysconfig(
        flag_file.fact.text or "", desired, path, flag_file.variable
    ).encode("utf-8")
    builder.change_file(flag_file.fact, new, restarts_docker=True)
    if not facts.docker_running or flag_file.fact.content != new:
        return
    # The file is right; is the running dockerd? (a restart may have been skipped)
    missing = docker_config.missing_ulimits(
        docker_config.cmdline_ulimits(facts.dockerd_argv, "the running dockerd's command line"),
        desired,
    )
    _running_config(
        builder,
        facts,
        f"dockerd started with the flags in {path}",
        "without " + ", ".join(limit.display() for limit in missing) if missing else None,
        f"dockerd runs without the --default-ulimit flags that {path} sets",
    )


def _running_config(
    builder: _Builder, facts: NodeFacts, expected: str, stale: str | None, restart_reason: str
) -> None:
    """The config file is right; `stale` says why the running dockerd still does not use it (None: it does)."""
    builder.requirements.append(
        Requirement(
            "docker.running-config",
            expected,
            stale or "yes",
            stale is None,
            f"dockerd pid {facts.dockerd_pid}",
        )
    )
    if stale is not None:
        builder.restart_reasons.append(restart_reason)


def _plan_unmanaged_flags(
    limits: dict[str, Ulimit], desired: tuple[Ulimit, ...], where: str, builder: _Builder
) -> None:
    """Flags from a place this tool does not edit (a unit's ExecStart): fine if high enough, else refuse."""
    _ulimit_requirements(builder, limits, desired, where)
    if docker_config.missing_ulimits(limits, desired):
        raise ConfigError(
            where,
            "sets --default-ulimit flags that are too low, in a place this tool does not edit",
            f"raise them there (e.g. {' '.join('--default-ulimit ' + docker_config.render_ulimit_flag(u) for u in desired)}), or remove them so that {DAEMON_JSON} can hold them",
        )


def _plan_daemon_json(
    facts: NodeFacts,
    daemon_json: FileFact,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    builder: _Builder,
) -> None:
    running_flags = docker_config.cmdline_ulimits(
        facts.dockerd_argv, "the running dockerd's command line"
    )
    if running_flags and not current:
        # dockerd got flags from somewhere not read above: daemon.json must not repeat them.
        _plan_unmanaged_flags(running_flags, desired, "the running dockerd's command line", builder)
        return
    _ulimit_requirements(builder, current, desired, DAEMON_JSON)
    new = docker_config.merge_daemon_json(daemon_json.content, desired, DAEMON_JSON)
    builder.change_file(daemon_json, new, restarts_docker=True)
    file_age = facts.file_ages.get(DAEMON_JSON)
    if (
        not facts.docker_running
        or daemon_json.content != new
        or file_age is None
        or facts.dockerd_age is None
    ):
        return
    # The file is right; did the running dockerd read it? (docker reads daemon.json only at start)
    stale = (
        file_age < facts.dockerd_age - 0.05
    )  # changed after dockerd started (ages measured at one instant)
    _running_config(
        builder,
        facts,
        f"dockerd started after {DAEMON_JSON} last changed",
        f"no: {DAEMON_JSON} changed after dockerd started" if stale else None,
        f"{DAEMON_JSON} changed after dockerd started, so docker does not use it yet",
    )


def _plan_sysctl(facts: NodeFacts, desired: DesiredState, builder: _Builder) -> None:
    target = facts.file(desired.sysctl_file)
    try:
        _readable(target)
    except ConfigError as err:
        builder.blockers.append(str(err))
        return
    file_texts = {path: facts.file(path).text or "" for path in facts.sysctl_files}
    current_boot = sysctl.boot_values(file_texts)
    new_settings: dict[str, int] = {}
    for setting in desired.sysctls:
        runtime = facts.sysctl_runtime.get(setting.key)
        builder.requirements.append(
            Requirement(
                id=f"sysctl.{setting.key}",
                expected=f">= {setting.minimum}",
                actual="missing" if runtime is None else str(runtime),
                ok=runtime is not None and runtime >= setting.minimum,
                where=setting.proc_path,
            )
        )
        if runtime is None:
            builder.blockers.append(
                f"{setting.proc_path}: the kernel has no sysctl {setting.key}; remove it from the playbook"
            )
            continue
        if runtime < setting.minimum:
            builder.sysctl_writes.append(SysctlWrite(setting.key, runtime, setting.minimum))
        boot = current_boot.get(setting.key)
        boot_value = sysctl.parse_int(boot.value) if boot else None
        builder.requirements.append(
            Requirement(
                id=f"sysctl.{setting.key}.persisted",
                expected=f">= {setting.minimum} at boot",
                actual=f"{boot.value}" if boot else "unset",
                ok=boot_value is not None and boot_value >= setting.minimum,
                where=boot.path if boot else desired.sysctl_file,
            )
        )
        if boot_value is None or boot_value < setting.minimum:
            # Persist the effective value: never write a number below what the kernel has now.
            new_settings[setting.key] = max(setting.minimum, runtime)
    if not new_settings:
        new_text = target.text
    else:
        new_text = sysctl.render_sysctl_file(target.text, new_settings, SYSCTL_HEADER)
        builder.change_file(target, new_text.encode("utf-8"), restarts_docker=False)
    _check_boot_precedence(facts, desired, file_texts, new_text or "", builder)


def _plan_server(facts: NodeFacts, desired: DesiredState, builder: _Builder) -> None:
    """trains-server's hostPath directories and config files."""
    for want in desired.directories:
        have = facts.directories.get(want.path)
        expected = (
            "directory"
            + (f" owned {want.owner}:{want.group}" if want.owner is not None else "")
            + (f" mode {want.mode:o}" if want.mode is not None else "")
        )
        if have is None or have.state == "absent":
            actual, ok = "missing", False
        elif have.state == "notdir":
            builder.blockers.append(
                f"{want.path}: exists but is not a directory; move it away so trains-server can keep its data there"
            )
            actual, ok = "not a directory", False
        else:
            wrong_owner = want.owner is not None and (have.owner, have.group) != (
                want.owner,
                want.group,
            )
            wrong_mode = want.mode is not None and have.mode != want.mode
            actual = f"directory owned {have.owner}:{have.group} mode {have.mode:o}"
            ok = not (wrong_owner or wrong_mode)
        builder.requirements.append(
            Requirement(f"server.directory:{want.path}", expected, actual, ok, want.path)
        )
        if not ok and (have is None or have.state != "notdir"):
            builder.dir_changes.append(
                DirChange(
                    want.path,
                    have is None or have.state == "absent",
                    want.owner,
                    want.group,
                    want.mode,
                )
            )
    for want in desired.server_files:
        have = facts.file(want.path)
        try:
            _readable(have)
        except ConfigError as err:
            builder.blockers.append(str(err))
            continue
        ok = have.content == want.content
        actual = "as configured" if ok else ("missing" if not have.exists else "differs")
        builder.requirements.append(
            Requirement(f"server.file:{want.path}", "as configured", actual, ok, want.path)
        )
        builder.change_file(
            have, want.content, restarts_docker=False, secret=want.secret, mode=want.mode
        )


def _check_boot_precedence(
    facts: NodeFacts,
    desired: DesiredState,
    file_texts: dict[str, str],
    new_text: str,
    builder: _Builder,
) -> None:
    """A file applied after ours that sets a lower value would silently win at every boot.

    Under /etc (the admin's files) its line is raised in place, visible in `plan`; a file
    shipped by a package or made at runtime is not edited: the node is refused with the fix.
    """
    planned = dict(file_texts)
    planned[desired.sysctl_file] = new_text
    raised: dict[str, dict[str, int]] = {}
    for setting in desired.sysctls:
        winner = sysctl.boot_values(planned).get(setting.key)
        if winner is None or winner.path == desired.sysctl_file:
            continue
        value = sysctl.parse_int(winner.value)
        if value is not None and value >= setting.minimum:
            continue
        if winner.path.startswith("/etc/") and facts.file(winner.path).state == "file":
            raised.setdefault(winner.path, {})[setting.key] = max(
                setting.minimum, facts.sysctl_runtime.get(setting.key) or 0
            )
            planned[winner.path] = sysctl.render_sysctl_file(
                planned[winner.path], raised[winner.path], ""
            )
        else:
            builder.blockers.append(
                f"{winner.path}: sets {setting.key}={winner.value}, applied at boot after {desired.sysctl_file}, so the lower value wins; "
                f"override it with a file of the same name in /etc/sysctl.d that sets at least {setting.minimum}"
            )
    for path in raised:
        builder.change_file(facts.file(path), planned[path].encode("utf-8"), restarts_docker=False)


def _containerd_requirements(
    builder: _Builder,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    where: str,
    error: str | None = None,
) -> None:
    _limit_requirements(
        builder, "containerd.limit", current, desired, where, error, missing="unknown"
    )


def _standalone_containerd(facts: NodeFacts) -> int | None:
    """The containerd the kubelet talks to, not one that dockerd started for itself."""
    for pid, argv in facts.containerd_processes:
        if not any("/docker/containerd" in arg for arg in argv):
            return pid
    return None


def _plan_containerd(facts: NodeFacts, desired: DesiredState, builder: _Builder) -> None:
    """containerd's containers inherit its own limits: raise them in a drop-in of containerd.service."""
    wanted = desired.ulimits
    if facts.init_system != "systemd":
        _plan_containerd_without_systemd(facts, wanted, builder)
        return
    unit = facts.containerd_unit or {}
    if unit.get("LoadState") != "loaded":
        problem = f"{containerd_config.UNIT} is {unit.get('LoadState') or 'unknown'} to systemd"
        _containerd_requirements(builder, {}, wanted, containerd_config.UNIT, problem)
        builder.blockers.append(
            f"{containerd_config.UNIT}: {problem}, but the kubelet uses containerd; install containerd as a systemd service "
            f"(or set its limits where it is started: {containerd_config.shell_ulimit_hint(wanted)})"
        )
        return
    dropin = facts.file(desired.containerd_dropin)
    try:
        _readable(dropin)
    except ConfigError as err:
        builder.blockers.append(str(err))
        _containerd_requirements(builder, {}, wanted, err.path, err.problem)
        return
    effective = containerd_config.effective_limits(unit, wanted)
    _containerd_requirements(
        builder, effective, wanted, f"{containerd_config.UNIT} (systemctl show)"
    )
    ours = containerd_config.parse_dropin(dropin.text or "")
    drop_ins = unit.get("DropInPaths", "").split()
    need_reload = unit.get("NeedDaemonReload") == "yes"
    if desired.containerd_dropin in drop_ins and not need_reload:
        # Ours is loaded: where systemd's value differs from ours, a drop-in applied later decides.
        overridden = [w for w in wanted if w.name in ours and effective.get(w.name) != ours[w.name]]
        if _too_low(effective, tuple(overridden)):
            later = drop_ins[drop_ins.index(desired.containerd_dropin) + 1 :]
            builder.blockers.append(
                f"{desired.containerd_dropin}: its limits are overridden by a drop-in applied after it ({', '.join(later) or 'unknown'}); "
                "raise the limits there or remove them, so that this drop-in decides"
            )
            return
        effective = {name: limit for name, limit in effective.items() if name not in ours}
    new = containerd_config.render_dropin(containerd_config.dropin_limits(wanted, effective, ours))
    builder.change_file(dropin, new, restarts_docker=False, restarts_containerd=True)
    if dropin.content != new:
        return
    if unit.get("ActiveState") != "active" or unit.get("MainPID", "0") == "0":
        return
    file_age = facts.file_ages.get(desired.containerd_dropin)
    stale: str | None
    if need_reload:
        stale = "no: systemd has not reloaded its units since they changed"
    elif desired.containerd_dropin not in drop_ins:
        stale = f"no: systemd has not loaded {desired.containerd_dropin}"
    elif (
        file_age is not None
        and facts.containerd_age is not None
        and file_age < facts.containerd_age - 0.05
    ):
        stale = f"no: {desired.containerd_dropin} changed after containerd started"
    else:
        stale = None
    builder.requirements.append(
        Requirement(
            "containerd.running-config",
            f"containerd started after {desired.containerd_dropin} last changed",
            stale or "yes",
            stale is None,
            f"{containerd_config.UNIT} pid {unit.get('MainPID')}",
        )
    )
    if stale is not None:
        builder.containerd_reasons.append(
            f"containerd runs without the limits of {desired.containerd_dropin} ({stale[4:]})"
        )


def _too_low(effective: dict[str, Ulimit], wanted: tuple[Ulimit, ...]) -> bool:
    return any(
        want.name not in effective or not effective[want.name].satisfies(want) for want in wanted
    )


def _plan_containerd_without_systemd(
    facts: NodeFacts, wanted: tuple[Ulimit, ...], builder: _Builder
) -> None:
    """No systemd: the init script that starts containerd sets its limits; this tool only reads them."""
    pid = _standalone_containerd(facts)
    hint = containerd_config.shell_ulimit_hint(wanted)
    if pid is None or pid not in facts.process_limits:
        _containerd_requirements(builder, {}, wanted, "containerd", "containerd is not running")
        builder.blockers.append(
            f"containerd: not running, and this node has no systemd to hold its limits; start it from an init script that first runs: {hint}"
        )
        return
    seen = {
        name: Ulimit(name, soft, hard)
        for name, (soft, hard) in parse_proc_limits(facts.process_limits[pid]).items()
    }
    _containerd_requirements(builder, seen, wanted, f"/proc/{pid}/limits (containerd)")
    if _too_low(seen, wanted):
        builder.blockers.append(
            f"containerd (pid {pid}): runs with limits too low for Elasticsearch, and this node has no systemd, so its init system "
            f"sets them; in the script that starts containerd run first: {hint}; then restart containerd"
        )
