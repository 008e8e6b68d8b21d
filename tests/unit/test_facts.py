"""The facts script's output parser: records, file states, truncation, noise."""

from __future__ import annotations

import base64

import pytest

from trains_nodeprep.facts import FactsParseError, parse_facts


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def record(kind: str, name: str, state: str, data: str = "") -> str:
    return f"{kind}\t{name}\t{state}\t{b64(data)}"


def test_parses_files_in_their_three_states_and_the_rest():
    output = "\n".join([
        "Welcome to node1 (motd noise)",
        record("id", "user", "ok", "deploy"),
        record("init", "system", "ok", "systemd"),
        record("proc", "dockerd", "812", "/usr/sbin/dockerd\n-H\nfd://\n"),
        record("file", "/etc/docker/daemon.json", "file", ""),
        record("file", "/etc/sysconfig/docker", "absent"),
        record("file", "/etc/sysctl.d/99-trains.conf", "unreadable"),
        record("file", "/usr/lib/sysctl.d/50-default.conf", "file", "kernel.pid_max = 4194304\n"),
        record("sysctl", "vm.max_map_count", "ok", "65530"),
        record("end", "end", "ok"),
    ])

    facts = parse_facts(output)

    assert facts.user == "deploy" and facts.init_system == "systemd"
    assert facts.dockerd_pid == 812 and facts.dockerd_argv == ("/usr/sbin/dockerd", "-H", "fd://")
    assert facts.file("/etc/docker/daemon.json").content == b""  # empty is not absent
    assert facts.file("/etc/sysconfig/docker").state == "absent"
    assert facts.file("/etc/sysctl.d/99-trains.conf").state == "unreadable"
    assert facts.file("/nowhere").state == "absent"
    assert facts.sysctl_runtime == {"vm.max_map_count": 65530}
    assert set(facts.sysctl_files) == {"/etc/sysctl.d/99-trains.conf", "/usr/lib/sysctl.d/50-default.conf"}


def test_no_dockerd_means_docker_not_running():
    facts = parse_facts("\n".join([record("id", "user", "ok", "root"), record("end", "end", "ok")]))

    assert not facts.docker_running and facts.dockerd_argv == ()


def test_output_cut_short_is_an_error():
    with pytest.raises(FactsParseError, match="ended early"):
        parse_facts(record("id", "user", "ok", "root"))


def test_missing_sysctl_key_is_none():
    facts = parse_facts("\n".join([record("sysctl", "vm.nope", "absent"), record("end", "end", "ok")]))

    assert facts.sysctl_runtime == {"vm.nope": None}
