"""docker: the default ulimits every container docker starts gets, in the one place this node's
dockerd takes them from (daemon.json, or the --default-ulimit flags of /etc/sysconfig/docker or
/etc/default/docker), and a restart of docker when they change or the running dockerd lacks them.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

from ..engine.builder import PlanBuilder
from ..engine.facts import FileFact, NodeFacts
from ..engine.parse import Records
from ..engine.types import Plan, Requirement, Service
from ..errors import ConfigError
from ..formats import docker_config, dockerd_flags, env_file
from ..model import DAEMON_JSON, DEFAULT_DOCKER, SYSCONFIG_DOCKER, DesiredState, Ulimit
from .base import (
    Concern,
    FactsNeeds,
    ManagedFile,
    ServiceSpec,
    changed_after_start,
    limit_requirements,
    require_readable,
)
from .inherited import Inherited, inherited_limits
from .runtime import DOCKER

FILES = (DAEMON_JSON, SYSCONFIG_DOCKER, DEFAULT_DOCKER)


def facts(_desired: DesiredState) -> FactsNeeds:
    return FactsNeeds(
        shell="docker.facts.sh",
        processes={"dockerd": None},
        calls=(("docker_facts",), *(("readfile", path) for path in FILES)),
    )


def parse(records: Records) -> dict[str, Any]:
    running = records.processes("dockerd")
    return {
        "docker_installed": records.has("docker", "installed") or bool(running),
        "dockerd_pid": running[0][0] if running else None,
        "dockerd_argv": running[0][1] if running else (),
        "docker_unit": records.text("unit", "docker.service"),
        "dockerd_age": records.age("dockerd-started"),
    }


def managed_files(_desired: DesiredState) -> tuple[ManagedFile, ...]:
    return tuple(ManagedFile(path, restarts=Service.DOCKER) for path in FILES)


def _before_restart(plan: Plan, init_system: str) -> list[str]:
    lines = []
    if init_system not in ("systemd", "sysvinit"):
        lines.append(
            "fail docker 'no systemctl or service command on this node: restart docker by hand'"
        )
    return lines


def _commands(init_system: str) -> list[str]:
    return ["systemctl restart docker" if init_system == "systemd" else "service docker restart"]


def _warning(reason: str) -> str:
    return f"docker will restart ({reason}): every container on this node restarts"


def _ulimit_requirements(
    builder: PlanBuilder, current: dict[str, Ulimit], desired: tuple[Ulimit, ...], where: str
) -> None:
    limit_requirements(builder, "docker.default-ulimit", current, desired, where)


def _judge_limits(
    builder: PlanBuilder,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    inherited: Inherited,
    where: str,
) -> tuple[Ulimit, ...] | None:
    """One requirement per desired limit. A limit docker sets (`current`) is judged by its
    value; one it does not set by what its containers inherit today (never lower that). What
    to write: each minimum, raised to what containers inherit where docker sets nothing; None
    when every limit is met already (nothing to write, docker keeps running)."""
    targets = []
    all_met = True
    for want in desired:
        configured = current.get(want.name)
        have = configured or inherited.limits.get(want.name)
        at = where
        if configured is not None:
            actual = configured.display()
        elif have is not None:
            actual = f"{have.display()} (inherited from {inherited.source})"
        else:
            actual = "unset"
            why = inherited.unknown or f"{inherited.source} has no {want.name} limit read"
            at = f"{where}; what containers inherit is unknown: {why}"
        ok = have is not None and have.satisfies(want)
        all_met = all_met and ok
        builder.requirements.append(
            Requirement(
                f"docker.default-ulimit.{want.name}", f">= {want.display()}", actual, ok, at
            )
        )
        targets.append(want if configured is not None or have is None else have.raised_to(want))
    return None if all_met else tuple(targets)


def _failed_requirements(
    builder: PlanBuilder, desired: tuple[Ulimit, ...], where: str, error: str
) -> None:
    limit_requirements(builder, "docker.default-ulimit", {}, desired, where, error)


@dataclass(frozen=True)
class _FlagFile:
    """An env file whose variable dockerd gets as flags: sysconfig OPTIONS or default
    DOCKER_OPTS."""

    fact: FileFact
    variable: str
    limits: dict[str, Ulimit]


def _require_systemd_reads_it_alike(facts: NodeFacts, fact: FileFact, variable: str) -> None:
    """A flag file docker.service reads as a systemd EnvironmentFile (the only flag files on
    systemd, see _read_by_docker) must give systemd the same flags as the tool, which edits it
    as a shell would read it: else the tool would edit a line systemd ignores, and the restart
    would not bring the limits."""
    if facts.init_system != "systemd":
        return
    text = fact.text or ""
    as_shell = docker_config.options_words(text, fact.path, variable) or []
    found = [a for a in env_file.assignments(text) if a.name.split()[-1:] == [variable]]
    valid = [a for a in found if a.valid]
    as_systemd = valid[-1].value.split() if valid else []
    if as_shell == as_systemd:
        return
    ignored = [a for a in found if not a.valid]
    if ignored and (not valid or ignored[-1].line > valid[-1].line):
        problem = (
            f"line {ignored[-1].line} ({ignored[-1].name}=...) is ignored by systemd, which reads"
            f" this file for docker.service (EnvironmentFile=): dockerd does not get these flags"
        )
        fix = f"write it as {variable}=\"...\" without 'export'"
    else:
        problem = (
            f"systemd reads {variable} for docker.service (EnvironmentFile=) as"
            f" {' '.join(as_systemd) or 'nothing'!r}, not as a shell would"
            f" ({' '.join(as_shell)!r})"
        )
        fix = f'write {variable}="..." on its own, with no text after the closing quote'
    raise ConfigError(fact.path, problem, fix)


def _unit_reads(unit_text: str, path: str) -> bool:
    """Whether the unit (systemctl cat) names `path` as an EnvironmentFile=."""
    return any(
        line.strip().startswith("EnvironmentFile=")
        and line.split("=", 1)[1].strip().lstrip("-") == path
        for line in unit_text.splitlines()
    )


def _read_by_docker(facts: NodeFacts, path: str) -> bool:
    """Whether dockerd's next start reads the flag file: an init script sources its own (the
    tool cannot tell which, so both are taken as read); docker.service names it."""
    return facts.init_system != "systemd" or _unit_reads(facts.docker_unit or "", path)


def _flag_files(facts: NodeFacts) -> list[_FlagFile]:
    """The env files this node's docker really reads flags from."""
    found = []
    sysconfig = facts.file(SYSCONFIG_DOCKER)
    # RHEL's init script sources /etc/sysconfig/docker; a systemd unit only if it says so
    # (a stray copy on a Debian node is not docker's: editing it would bring no limits)
    if sysconfig.exists and _read_by_docker(facts, SYSCONFIG_DOCKER):
        require_readable(sysconfig)
        _require_systemd_reads_it_alike(facts, sysconfig, docker_config.SYSCONFIG_VARIABLE)
        found.append(
            _FlagFile(
                sysconfig,
                docker_config.SYSCONFIG_VARIABLE,
                docker_config.sysconfig_ulimits(sysconfig.text or "", SYSCONFIG_DOCKER),
            )
        )
    default = facts.file(DEFAULT_DOCKER)
    # Debian's init script sources /etc/default/docker; a systemd unit only if it says so.
    if default.exists and _read_by_docker(facts, DEFAULT_DOCKER):
        require_readable(default)
        _require_systemd_reads_it_alike(facts, default, docker_config.DEFAULT_VARIABLE)
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


def plan(facts: NodeFacts, state: DesiredState, builder: PlanBuilder) -> None:
    desired = state.ulimits
    if not desired or builder.runtime is None or DOCKER not in builder.runtime.targets:
        return
    if not facts.docker_installed and not facts.docker_running:
        builder.blockers.append(
            "dockerd: not installed on this node (no dockerd on PATH); "
            "install docker first, ulimits are set for docker"
        )
        _failed_requirements(builder, desired, "dockerd", "docker is not installed")
        return
    daemon_json = facts.file(DAEMON_JSON)
    try:
        require_readable(daemon_json)
        json_limits = {}
        config: dict[str, Any] = {}
        if daemon_json.content is not None:
            config = docker_config.parse_daemon_json(daemon_json.content, DAEMON_JSON)
            json_limits = docker_config.daemon_json_ulimits(config, DAEMON_JSON)
        address = config.get("containerd")
        inherited = inherited_limits(facts, address if isinstance(address, str) else None)
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
                f"docker default ulimits are set in {' and '.join(sources)}; "
                "dockerd refuses to start with flags and daemon.json both, "
                "and two flag files are ambiguous",
                f"keep them in one place: remove them from all but {sources[0]}",
            )
        if unit_limits:
            _plan_unmanaged_flags(unit_limits, desired, "docker.service ExecStart", builder)
        elif json_limits:
            _plan_daemon_json(facts, daemon_json, json_limits, desired, inherited, builder)
        elif any(f.limits for f in flag_files):
            flag_file = next(f for f in flag_files if f.limits)
            _plan_flag_file(facts, flag_file, desired, inherited, builder)
        elif flag_files and flag_files[0].fact.path == SYSCONFIG_DOCKER:
            # the RHEL way: OPTIONS in sysconfig
            _plan_flag_file(facts, flag_files[0], desired, inherited, builder)
        else:
            _plan_daemon_json(facts, daemon_json, json_limits, desired, inherited, builder)
    except ConfigError as err:
        builder.blockers.append(str(err))
        _failed_requirements(builder, desired, err.path, err.problem)
        return
    _refuse_flag_file_conflicts(facts, builder)


def _refuse_flag_file_conflicts(facts: NodeFacts, builder: PlanBuilder) -> None:
    """dockerd refuses to start when a directive is both a flag and in daemon.json: judge the
    files as they will be after this plan (a conflict already there fails `check` too)."""
    planned = {c.path: c.new for c in builder.file_changes if c.path in FILES}
    after = {path: planned[path] if path in planned else facts.file(path).content for path in FILES}
    text = {
        path: c.decode("utf-8", errors="replace") if c is not None else None
        for path, c in after.items()
    }
    # no daemon.json: dockerd starts with its flags alone, as with an empty object
    config_text = after[DAEMON_JSON]
    if config_text is None:
        config_text = b"{}\n"
    try:
        config = docker_config.parse_daemon_json(config_text, DAEMON_JSON)
    except ConfigError:
        return  # reported where daemon.json is read
    start = dockerd_flags.next_start(facts.init_system, facts.docker_unit, text)
    found = [  # default-ulimits in both places is judged above, with its own message
        (key, flag)
        for key, flag in dockerd_flags.conflicts(start.flags, config)
        if key != docker_config.DAEMON_JSON_KEY
    ]
    if not found:
        if planned:
            builder.preflight.append(
                ("validate_docker", base64.b64encode(config_text).decode(), *start.flags)
            )
        return
    keys = ", ".join(key for key, _flag in found)
    flags = ", ".join(flag for _key, flag in found)
    changed = " (after this change)" if DAEMON_JSON in planned else ""
    builder.blockers.append(
        f"{DAEMON_JSON}{changed} sets {keys}, which docker also gets as a flag ({flags}) from "
        f'{" and ".join(start.sources)}: dockerd refuses to start with both ("the following '
        'directives are specified both as a flag and in the configuration file"), so the next '
        f"restart of docker would fail; keep {keys} in one of the two places"
    )


def _plan_flag_file(
    facts: NodeFacts,
    flag_file: _FlagFile,
    desired: tuple[Ulimit, ...],
    inherited: Inherited,
    builder: PlanBuilder,
) -> None:
    path = flag_file.fact.path
    where = f"{path} {flag_file.variable}"
    targets = _judge_limits(builder, flag_file.limits, desired, inherited, where)
    if targets is None:
        new = flag_file.fact.content or b""
    else:
        new = docker_config.merge_sysconfig(
            flag_file.fact.text or "", targets, path, flag_file.variable
        ).encode("utf-8")
        builder.change_file(flag_file.fact, new)
    set_here = tuple(want for want in desired if want.name in flag_file.limits)
    if not facts.docker_running or flag_file.fact.content != new or not set_here:
        return
    # The file is right; is the running dockerd? (a restart may have been skipped)
    missing = docker_config.missing_ulimits(
        docker_config.cmdline_ulimits(facts.dockerd_argv, "the running dockerd's command line"),
        set_here,
    )
    _running_config(
        builder,
        facts,
        f"dockerd started with the flags in {path}",
        "without " + ", ".join(limit.display() for limit in missing) if missing else None,
        f"dockerd runs without the --default-ulimit flags that {path} sets",
    )


def _running_config(
    builder: PlanBuilder, facts: NodeFacts, expected: str, stale: str | None, restart_reason: str
) -> None:
    """The config file is right; `stale` says why the running dockerd still does not use it
    (None: it does)."""
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
        builder.restart(Service.DOCKER, restart_reason)


def _plan_unmanaged_flags(
    limits: dict[str, Ulimit], desired: tuple[Ulimit, ...], where: str, builder: PlanBuilder
) -> None:
    """Flags from a place this tool does not edit (a unit's ExecStart): fine if high enough,
    else refuse."""
    _ulimit_requirements(builder, limits, desired, where)
    if docker_config.missing_ulimits(limits, desired):
        # built apart: an f-string's {expression} cannot be split over lines before Python 3.12
        flags = " ".join("--default-ulimit " + docker_config.render_ulimit_flag(u) for u in desired)
        raise ConfigError(
            where,
            "sets --default-ulimit flags that are too low, in a place this tool does not edit",
            f"raise them there (e.g. {flags}), or remove them so that {DAEMON_JSON} can hold them",
        )


def _plan_daemon_json(
    facts: NodeFacts,
    daemon_json: FileFact,
    current: dict[str, Ulimit],
    desired: tuple[Ulimit, ...],
    inherited: Inherited,
    builder: PlanBuilder,
) -> None:
    running_flags = docker_config.cmdline_ulimits(
        facts.dockerd_argv, "the running dockerd's command line"
    )
    if running_flags and not current:
        # dockerd got flags from somewhere not read above: daemon.json must not repeat them.
        _plan_unmanaged_flags(running_flags, desired, "the running dockerd's command line", builder)
        return
    targets = _judge_limits(builder, current, desired, inherited, DAEMON_JSON)
    if targets is None:
        new = daemon_json.content
    else:
        new = docker_config.merge_daemon_json(daemon_json.content, targets, DAEMON_JSON)
        builder.change_file(daemon_json, new)
    file_age = facts.file_ages.get(DAEMON_JSON)
    if (
        not facts.docker_running
        or daemon_json.content != new
        or file_age is None
        or facts.dockerd_age is None
        or not any(want.name in current for want in desired)  # it sets none of them
    ):
        return
    # The file is right; did the running dockerd read it? (docker reads daemon.json only at start)
    stale = changed_after_start(file_age, facts.dockerd_age)
    _running_config(
        builder,
        facts,
        f"dockerd started after {DAEMON_JSON} last changed",
        f"no: {DAEMON_JSON} changed after dockerd started" if stale else None,
        f"{DAEMON_JSON} changed after dockerd started, so docker does not use it yet",
    )


CONCERN = Concern(
    name="docker",
    facts=facts,
    parse=parse,
    plan=plan,
    managed_files=managed_files,
    apply_shell="docker.validate.sh",
    services=(
        ServiceSpec(
            Service.DOCKER,
            ("docker.apply.sh",),
            _before_restart,
            _commands,
            _warning,
            running=lambda facts: facts.docker_running,
        ),
    ),
)
