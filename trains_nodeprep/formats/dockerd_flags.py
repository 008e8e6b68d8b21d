"""Pure: the flags dockerd gets at its next start, and the directives they set that
daemon.json sets too: dockerd refuses to start with those ("the following directives are
specified both as a flag and in the configuration file"), so a restart would fail.

The flags come from where the node's docker is started: on systemd, docker.service's effective
ExecStart with its Environment= and EnvironmentFile= variables expanded as systemd does (`$VAR`
alone is split at whitespace into words, `${VAR}` stays one word); without systemd, the init
script's variable (DOCKER_OPTS of /etc/default/docker, OPTIONS of /etc/sysconfig/docker).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass

from .docker_config import options_words, unit_exec_start
from .env_file import environment

# dockerd's flags whose daemon.json key is another name (moby's NamedOption), and the short
# flags; any other flag --NAME is the key NAME
NAMED = {
    "add-runtime": "runtimes",
    "allow-nondistributable-artifacts": "allow-nondistributable-artifacts",
    "authorization-plugin": "authorization-plugins",
    "cluster-store-opt": "cluster-store-opts",
    "default-address-pool": "default-address-pools",
    "default-ulimit": "default-ulimits",
    "dns": "dns",
    "dns-opt": "dns-opts",
    "dns-search": "dns-search",
    "exec-opt": "exec-opts",
    "feature": "features",
    "host": "hosts",
    "insecure-registry": "insecure-registries",
    "label": "labels",
    "log-opt": "log-opts",
    "node-generic-resource": "node-generic-resources",
    "registry-mirror": "registry-mirrors",
    "storage-opt": "storage-opts",
}
SHORT = {"H": "hosts", "D": "debug", "l": "log-level", "G": "group", "p": "pidfile", "b": "bridge"}
# merged by dockerd rather than refused
SKIP = {"runtimes", "config-file", "validate"}
_VARIABLE = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)\}|(?P<bare>[A-Za-z_][A-Za-z0-9_]*))"
)


@dataclass(frozen=True)
class NextStart:
    flags: tuple[str, ...]  # without dockerd itself
    sources: tuple[str, ...]  # for people: docker.service ExecStart, /etc/default/docker, ...


def _unit_environment(unit_text: str, files: Mapping[str, str | None]) -> tuple[dict, list]:
    """Environment= then EnvironmentFile= (whose settings override), and the files used."""
    env: dict[str, str] = {}
    from_files: dict[str, str] = {}
    used = []
    for raw in unit_text.splitlines():
        line = raw.strip()
        if line.startswith("Environment="):
            try:
                words = shlex.split(line[len("Environment=") :])
            except ValueError:
                continue
            for word in words:
                name, equals, value = word.partition("=")
                if equals:
                    env[name] = value
        elif line.startswith("EnvironmentFile="):
            path = line[len("EnvironmentFile=") :].strip().lstrip("-")
            text = files.get(path)
            if text is not None:
                used.append(path)
                from_files.update(environment(text))  # as systemd reads it
    env.update(from_files)
    return env, used


def _expand(argv: tuple[str, ...], env: Mapping[str, str]) -> list[str]:
    words: list[str] = []
    for word in argv:
        whole = _VARIABLE.fullmatch(word)
        if whole and whole["bare"]:
            words += env.get(whole["bare"], "").split()
            continue
        words.append(_VARIABLE.sub(lambda m: env.get(m["braced"] or m["bare"], ""), word))
    return words


def next_start(
    init_system: str, unit_text: str | None, files: Mapping[str, str | None]
) -> NextStart:
    """`files`: path -> text (None: absent) of the env files docker may read, as they will be."""
    if init_system == "systemd" and unit_text:
        argv = unit_exec_start(unit_text)
        if not argv:
            return NextStart((), ())
        env, used = _unit_environment(unit_text, files)
        referenced = used if _VARIABLE.search(" ".join(argv)) else []  # files whose values count
        return NextStart(tuple(_expand(argv, env)[1:]), ("docker.service ExecStart", *referenced))
    flags: list[str] = []
    sources = []
    for path, variable in (
        ("/etc/sysconfig/docker", "OPTIONS"),
        ("/etc/default/docker", "DOCKER_OPTS"),
    ):
        text = files.get(path)
        words = options_words(text, path, variable) if text is not None else None
        if words:
            flags += words
            sources.append(f"{path} {variable}")
    return NextStart(tuple(flags), tuple(sources))


def flag_directives(flags: tuple[str, ...]) -> dict[str, str]:
    """daemon.json key -> the flag that sets it (as written)."""
    found: dict[str, str] = {}
    for arg in flags:
        if arg.startswith("--"):
            name = arg[2:].partition("=")[0]
            key = NAMED.get(name, name)
        elif arg.startswith("-") and len(arg) >= 2 and arg[1] in SHORT:
            key = SHORT[arg[1]]
        else:
            continue  # a flag's value
        if key not in SKIP:
            found.setdefault(key, arg.partition("=")[0])
    return found


def conflicts(flags: tuple[str, ...], config: Mapping[str, object]) -> list[tuple[str, str]]:
    """(daemon.json key, flag) of each directive set both ways."""
    directives = flag_directives(flags)
    return [(key, directives[key]) for key in config if key in directives]
