"""The facts script's output parser: records, file states, truncation, noise."""

from __future__ import annotations

import base64
import os
import time

import pytest

from trains_nodeprep.engine.facts import DirFact
from trains_nodeprep.engine.parse import FactsParseError, parse_facts
from trains_nodeprep.remote.protocol import ARCHIVE_MARKER, NOW_ENTRY, TAR_ARGV

EMPTY_ARCHIVE = bytes(1024)  # tar's end-of-archive: two zero blocks


def script_output(records: list[str], archive: bytes = EMPTY_ARCHIVE) -> bytes:
    """What the script prints: its records, then the marker and the raw archive."""
    return ("\n".join(records) + "\n").encode() + ARCHIVE_MARKER + archive


def real_archive(names: list[str]) -> bytes:
    """The script's own tar command over these paths."""
    import subprocess

    return subprocess.run([*TAR_ARGV, *names], capture_output=True, check=False).stdout


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def record(kind: str, name: str, state: str, data: str = "") -> str:
    return f"{kind}\t{name}\t{state}\t{b64(data)}"


def test_parses_files_in_their_three_states_and_the_rest():
    output = script_output(
        [
            "Welcome to node1 (motd noise)",
            record("id", "user", "ok", "deploy"),
            record("init", "system", "ok", "systemd"),
            record("proc", "dockerd", "812", "/usr/sbin/dockerd\n-H\nfd://\n"),
            record("file", "/etc/docker/daemon.json", "file", ""),
            record("file", "/etc/sysconfig/docker", "absent"),
            record("file", "/etc/sysctl.d/99-trains.conf", "unreadable"),
            record(
                "file", "/usr/lib/sysctl.d/50-default.conf", "file", "kernel.pid_max = 4194304\n"
            ),
            record("sysctl", "vm.max_map_count", "ok", "65530"),
            record("end", "end", "ok"),
        ]
    )

    facts = parse_facts(output)

    assert facts.user == "deploy" and facts.init_system == "systemd"
    assert facts.dockerd_pid == 812 and facts.dockerd_argv == ("/usr/sbin/dockerd", "-H", "fd://")
    assert facts.file("/etc/docker/daemon.json").content == b""  # empty is not absent
    assert facts.file("/etc/sysconfig/docker").state == "absent"
    assert facts.file("/etc/sysctl.d/99-trains.conf").state == "unreadable"
    assert facts.file("/nowhere").state == "absent"
    assert facts.sysctl_runtime == {"vm.max_map_count": 65530}
    assert set(facts.sysctl_files) == {
        "/etc/sysctl.d/99-trains.conf",
        "/usr/lib/sysctl.d/50-default.conf",
    }


def test_no_dockerd_means_docker_not_running():
    facts = parse_facts(
        script_output([record("id", "user", "ok", "root"), record("end", "end", "ok")])
    )

    assert not facts.docker_running and facts.dockerd_argv == ()


def test_output_cut_short_is_an_error():
    with pytest.raises(FactsParseError, match="ended early"):
        parse_facts(record("id", "user", "ok", "root").encode())
    with pytest.raises(
        FactsParseError, match="ended early"
    ):  # the shell part stopped before its end record
        parse_facts(script_output([record("id", "user", "ok", "root")]))


def test_an_archive_cut_short_is_an_error(tmp_path):
    (tmp_path / "sysctl.conf").write_bytes(b"x" * 600)
    archive = real_archive([str(tmp_path / "sysctl.conf")])
    member_end = (
        3 * 512 + 1024
    )  # pax header and its data, the file's header, 600 bytes in two blocks
    assert archive[member_end : member_end + 1024] == bytes(1024) and archive[
        member_end - 512 : member_end
    ] != bytes(512)
    for cut in (member_end, member_end - 512):  # after a whole member, and inside one
        with pytest.raises(FactsParseError, match="archive is damaged"):
            parse_facts(script_output([record("end", "end", "ok")], archive[:cut]))


def test_missing_sysctl_key_is_none():
    facts = parse_facts(
        script_output([record("sysctl", "vm.nope", "absent"), record("end", "end", "ok")])
    )

    assert facts.sysctl_runtime == {"vm.nope": None}


def test_runtime_records_kubelet_containerd_sockets_and_unit(tmp_path):
    dropin = tmp_path / "99-trains.conf"
    dropin.write_text("[Service]\n")
    os.utime(dropin, (time.time() - 30, time.time() - 30))
    output = script_output(
        [
            record("id", "user", "ok", "root"),
            record("containerd", "installed", "ok", "yes"),
            record(
                "proc",
                "kubelet",
                "700",
                "/usr/bin/kubelet\n--config=/var/lib/kubelet/config.yaml\n",
            ),
            record("proc", "containerd", "311", "/usr/bin/containerd\n"),
            record("limits", "311", "ok", "Limit  Soft Limit  Hard Limit  Units\n"),
            record(
                "proc",
                "containerd",
                "900",
                "containerd\n--config\n/var/run/docker/containerd/containerd.toml\n",
            ),
            record("socket", "/run/containerd/containerd.sock", "ok"),
            record(
                "unit-show",
                "containerd.service",
                "ok",
                "LoadState=loaded\nLimitNOFILE=infinity\nDropInPaths=/a.conf /b.conf\n",
            ),
            "clock\tcontainerd.service-started\tok\t=1000 60.5",
            record("end", "end", "ok"),
        ],
        real_archive([str(dropin), NOW_ENTRY]),
    )

    facts = parse_facts(output)

    assert facts.kubelet_argv == ("/usr/bin/kubelet", "--config=/var/lib/kubelet/config.yaml")
    assert facts.containerd_installed and not facts.docker_installed
    assert facts.containerd_processes == (
        (311, ("/usr/bin/containerd",)),
        (900, ("containerd", "--config", "/var/run/docker/containerd/containerd.toml")),
    )
    assert facts.process_limits == {311: "Limit  Soft Limit  Hard Limit  Units\n"}
    assert facts.sockets == ("/run/containerd/containerd.sock",)
    assert facts.containerd_unit == {
        "LoadState": "loaded",
        "LimitNOFILE": "infinity",
        "DropInPaths": "/a.conf /b.conf",
    }
    assert facts.containerd_age == pytest.approx(50.5)  # uptime 60.5 s, started at tick 1000 (10 s)
    # the file's age on the node's clock: /proc/self's entry is timed when tar looks it up
    assert facts.file_ages == {str(dropin): pytest.approx(30.0, abs=1.0)}


def test_without_the_clock_entry_no_file_has_an_age(tmp_path):
    (tmp_path / "daemon.json").write_text("{}")
    facts = parse_facts(
        script_output([record("end", "end", "ok")], real_archive([str(tmp_path / "daemon.json")]))
    )

    assert facts.file_ages == {}


def test_file_contents_come_in_one_tar_made_by_the_real_tar(tmp_path):
    """The script's own tar command over real files: a symlink is read through, a file named twice
    (GNU tar stores the second as a hard link) has its content both times, bytes survive as they
    are, and a directory is one entry with its owner and mode."""
    real = tmp_path / "sysctl.conf"
    real.write_bytes(b"\xef\xbb\xbfvm.max_map_count = 1\r\n\x00tail")
    link = tmp_path / "99-sysctl.conf"
    link.symlink_to(real)
    empty = tmp_path / "empty.json"
    empty.write_bytes(b"")
    logs = tmp_path / "logs"
    logs.mkdir(mode=0o750)
    (logs / "inside.log").write_text("not sent: a directory is one entry")
    archive = real_archive(
        [
            str(real),
            str(link),
            str(empty),
            str(tmp_path / "gone"),
            str(logs),
            str(tmp_path / "no-such-dir"),
        ]
    )
    output = script_output(
        [
            record("want", str(real), "ok"),
            record("want", str(link), "ok"),
            record("want", str(empty), "ok"),
            record("want", str(tmp_path / "gone"), "ok"),  # vanished before tar read it
            "proc\tdockerd\t812\t=/usr/sbin/dockerd\x1f-H\x1ffd://\x1f",
            record("end", "end", "ok"),
        ],
        archive,
    )

    facts = parse_facts(output)

    assert facts.file(str(real)).content == real.read_bytes()
    assert facts.file(str(link)).content == real.read_bytes()
    assert facts.file(str(empty)).content == b"" and facts.file(str(empty)).state == "file"
    assert facts.file(str(tmp_path / "gone")).state == "unreadable"
    assert facts.directories[str(logs)] == DirFact(str(logs), "ok", os.getuid(), os.getgid(), 0o750)
    assert facts.directories[str(real)].state == "notdir"
    assert str(tmp_path / "no-such-dir") not in facts.directories
    assert str(logs / "inside.log") not in facts.files
    assert facts.dockerd_argv == ("/usr/sbin/dockerd", "-H", "fd://")


def test_a_damaged_archive_is_a_parse_error():
    output = script_output(
        [record("want", "/etc/docker/daemon.json", "ok"), record("end", "end", "ok")],
        b"not a tar at all" * 64 + bytes(1024),
    )
    with pytest.raises(FactsParseError, match="archive"):
        parse_facts(output)


def test_a_file_name_with_a_tab_or_newline_is_reported_not_split():
    output = script_output(
        [
            record("oddname", "-", "ok", "/etc/sysctl.d/zz\nlow.conf"),
            record("oddname", "-", "ok", "/etc/sysctl.d/a\tb.conf"),
            record("sysctl", "vm.max_map_count", "ok", "65530"),
            record("end", "end", "ok"),
        ]
    )

    facts = parse_facts(output)

    assert facts.unreadable_names == ("/etc/sysctl.d/zz\nlow.conf", "/etc/sysctl.d/a\tb.conf")
    assert "/etc/sysctl.d/zz" not in facts.files and "low.conf" not in facts.files
