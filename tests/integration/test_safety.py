"""Never lose a config, never leave docker down: rollback, interruption, concurrency, read-only
files, restore, and secrets that stay secret. All on real test-bed nodes through the real CLI."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time

import pytest

from tests.testbed import Debian13Node, SystemdNode, TiniNode

from .cli import EXECUTABLE, json_output, trains_nodeprep
from .limits import WRITTEN_NOFILE

WATCHED = "/etc/docker /etc/sysconfig /etc/default/docker /etc/sysctl.d"


def snapshot(node) -> str:
    """Every file (and symlink) under the config dirs with its hash: any write shows here."""
    script = (
        f"find {WATCHED} -xdev \\( -type f -o -type l \\) 2>/dev/null | sort"
        """ | while read -r f; do printf '%s ' "$f"; sha256sum < "$f"; done"""
    )
    return node.sh(script).stdout


KUBELET_ON_DOCKER = (
    'KUBELET_EXTRA_ARGS="--container-runtime-endpoint=unix:///run/cri-dockerd.sock"\n'
)


def test_docker_that_fails_to_start_with_the_new_config_is_rolled_back(bed, make_node):
    """Flags hard-coded in the init script (a place the tool does not parse) + daemon.json
    ulimits = dockerd refuses to start. Docker was stopped, so the flags were not visible; the
    kubelet uses docker (cri-dockerd), so the tool starts it, which finds the conflict."""
    node = make_node(files={"/etc/default/kubelet": KUBELET_ON_DOCKER})
    init = node.read("/etc/init.d/docker").decode()
    node.write(
        "/etc/init.d/docker",
        init.replace(
            "\t\t\t$DOCKER_OPTS \\\n", "\t\t\t$DOCKER_OPTS --default-ulimit nofile=2048:4096 \\\n"
        ),
        mode=0o755,
    )
    node.exec("service", "docker", "stop")
    assert node.docker_pid() is None
    before = snapshot(node)

    result = trains_nodeprep(
        bed, "run", "--host", node.name, "--yes", "--restart-timeout", "8", "-o", "json"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["status"] == "failed"
    assert "docker did not answer within 8 s" in report["error"]
    assert "every file this run changed was restored" in report["error"]
    assert report["applied"]["rolled_back"] is True
    assert snapshot(node) == before  # byte-identical, and no backup or marker left behind
    assert node.read("/etc/docker/daemon.json") is None
    assert node.docker_pid() is not None  # started again with the old config
    assert node.exec("docker", "info", "--format", "{{.ServerVersion}}").returncode == 0


def test_a_change_the_node_does_not_keep_fails_verification(bed, make_node):
    """The node is read again after the apply (at the end of the same command): a sysctl that says
    it set the value but did not is caught there, not reported as changed."""
    node = make_node(docker=False)
    # First on the scripts' PATH, in this node's own mount namespace only (its /run is its own
    # tmpfs)
    node.sh(
        "mkdir -p /run/fake-sbin && printf '#!/bin/sh\\necho \"$*\"\\n' > /run/fake-sbin/sysctl && "
        "chmod 755 /run/fake-sbin/sysctl && mount --bind /run/fake-sbin /usr/local/sbin"
    )

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "--no-deploy", "-o", "json")

    report = json_output(result)["nodes"][0]
    assert result.returncode == 1 and report["status"] == "failed", result.stdout
    assert (
        "verification after apply failed" in report["error"]
        and "vm.max_map_count" in report["error"]
    ), report["error"]
    assert report["remote_commands"] == 2  # the verification came back with the apply
    assert node.max_map_count() == 65530


def test_a_failure_after_writing_a_file_whose_name_has_a_space_restores_it(bed, make_node):
    """A later sysctl file that lowers the value is rewritten too; when `sysctl -w` then fails,
    both written files come back byte for byte, whatever their names hold."""
    node = make_node(docker=False)
    # read after 99-trains.conf: its value would win at boot
    lower = "/etc/sysctl.d/zz site tuning.conf"
    node.write(lower, b"# the site's own\nvm.max_map_count = 65530\n")
    node.sh(
        "mkdir -p /run/fake-sbin"
        " && printf '#!/bin/sh\\necho refused >&2; exit 1\\n' > /run/fake-sbin/sysctl && "
        "chmod 755 /run/fake-sbin/sysctl && mount --bind /run/fake-sbin /usr/local/sbin"
    )
    before = snapshot(node)

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "--no-deploy", "-o", "json")

    report = json_output(result)["nodes"][0]
    assert result.returncode == 1 and report["status"] == "failed", result.stdout + result.stderr
    assert report["applied"]["rolled_back"] is True, report
    assert lower in {change["path"] for change in report["changes"]}, report[
        "changes"
    ]  # it was rewritten, then restored
    assert snapshot(node) == before  # byte-identical, no backup left beside either file


def test_running_dockerd_with_flags_from_an_unparsed_place_is_refused_untouched(bed, make_node):
    node = make_node()
    init = node.read("/etc/init.d/docker").decode()
    node.write(
        "/etc/init.d/docker",
        init.replace(
            "\t\t\t$DOCKER_OPTS \\\n", "\t\t\t$DOCKER_OPTS --default-ulimit nofile=2048:4096 \\\n"
        ),
        mode=0o755,
    )
    node.docker_restart()
    pid, before = node.docker_pid(), snapshot(node)

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert result.returncode == 1
    report = json_output(result)["nodes"][0]
    assert report["status"] == "refused"
    assert "too low, in a place this tool does not edit" in report["error"]
    assert snapshot(node) == before and node.docker_pid() == pid


def test_read_only_etc_docker_fails_cleanly_and_leaves_everything_as_it_was(bed, make_node):
    node = make_node(files={"/etc/docker/daemon.json": '{"log-level": "warn"}\n'})
    node.sh("mount --bind /etc/docker /etc/docker && mount -o remount,ro,bind /etc/docker")
    pid, before, knob = node.docker_pid(), snapshot(node), node.max_map_count()

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert result.returncode == 1
    report = json_output(result)["nodes"][0]
    assert report["status"] == "failed"
    assert "/etc/docker/daemon.json" in report["error"] and "read-only" in report["error"]
    assert snapshot(node) == before
    assert node.docker_pid() == pid and node.max_map_count() == knob


def test_two_concurrent_runs_never_interleave_and_restart_docker_once(bed, make_node):
    node = make_node()
    pid = node.docker_pid()
    results = [None, None]

    def run(index: int) -> None:
        results[index] = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert all(r.returncode == 0 for r in results), [r.stdout + r.stderr for r in results]
    statuses = sorted(json_output(r)["nodes"][0]["status"] for r in results)
    assert statuses == ["changed", "unchanged"]
    assert node.docker_pid() != pid
    daemon_json_backups = node.sh("ls /etc/docker | grep -c '\\.bak$' || true").stdout.strip()
    assert daemon_json_backups == "1"  # one change, one backup (the 'did not exist' marker)
    assert node.run_container()["RLIMIT_NOFILE"] == WRITTEN_NOFILE


def test_a_client_killed_during_apply_leaves_the_node_consistent_and_a_rerun_converges(
    bed, make_node
):
    node = make_node(files={"/etc/docker/daemon.json": '{"log-level": "warn"}\n'})
    environment = {**os.environ, "HOME": str(bed.home), "TERM": "dumb"}
    client = subprocess.Popen(
        [str(EXECUTABLE), "run", "--host", node.name, "--yes"],
        env=environment,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    for line in client.stdout:
        if "docker will restart" in line:  # printed just before the apply command is sent
            break
    time.sleep(0.3)
    client.send_signal(signal.SIGKILL)
    client.wait()

    # The remote apply ignores the hang-up: it finishes (or rolls back) on its own.
    deadline = time.time() + 30
    while (
        node.sh("pgrep -f 'base64 -d|flock -w' || true").stdout.strip() and time.time() < deadline
    ):
        time.sleep(0.2)
    json.loads(node.read("/etc/docker/daemon.json"))  # whole, valid JSON at every instant
    assert (
        node.sh("ls -a /etc/docker /etc/sysctl.d | grep -c '\\.tnp\\.' || true").stdout.strip()
        == "0"
    )

    rerun = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert json_output(rerun)["nodes"][0]["status"] in ("changed", "unchanged")
    assert trains_nodeprep(bed, "check", "--host", node.name).returncode == 0
    assert json.loads(node.read("/etc/docker/daemon.json"))["log-level"] == "warn"


def test_restore_puts_back_what_the_last_run_replaced(bed, make_node):
    original = b'{\n  "log-level": "warn"\n}\n'
    node = make_node(files={"/etc/docker/daemon.json": original})
    assert trains_nodeprep(bed, "run", "--host", node.name, "--yes").returncode == 0
    changed_pid = node.docker_pid()

    result = trains_nodeprep(bed, "restore", "--host", node.name, "--yes", "-o", "json")

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["status"] == "changed"
    assert {c["path"]: c["action"] for c in report["changes"]} == {
        "/etc/docker/daemon.json": "modify",
        "/etc/sysctl.d/99-trains.conf": "remove",
    }
    assert node.read("/etc/docker/daemon.json") == original
    assert node.read("/etc/sysctl.d/99-trains.conf") is None
    assert node.docker_pid() != changed_pid
    assert node.run_container() == {}  # docker runs without default ulimits again
    assert trains_nodeprep(bed, "check", "--host", node.name).returncode == 1


def test_backups_are_bounded_by_keep_backups(bed, make_node):
    node = make_node(docker=False)
    for value in (300000, 400000, 500000):
        node.write("/etc/sysctl.d/99-trains.conf", "vm.max_map_count=100\n")
        node.exec("sysctl", "-w", f"vm.max_map_count={value}")
        assert (
            trains_nodeprep(
                bed, "run", "--host", node.name, "--yes", "--keep-backups", "2"
            ).returncode
            == 0
        )

    kept = node.sh("ls /etc/sysctl.d | grep '^99-trains.conf\\..*\\.bak$'").stdout.split()
    assert len(kept) == 2
    assert node.read(f"/etc/sysctl.d/{kept[-1]}") == b"vm.max_map_count=100\n"


def test_the_sudo_password_never_appears_in_argv_output_or_logs(bed, make_node):
    node = make_node()
    password = bed.sudo_password
    seen: list[str] = []
    done = threading.Event()

    def watch_process_lists() -> None:
        while not done.is_set():
            seen.append(
                subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
            )
            seen.append(node.exec("ps", "-eo", "args", check=False).stdout)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch_process_lists)
    watcher.start()
    try:
        result = trains_nodeprep(
            bed,
            "run",
            "--host",
            f"secured@{node.name}",
            "--yes",
            "-o",
            "json",
            "--debug",
            env={"TRAINS_NODEPREP_SUDO_PASSWORD": password},
        )
    finally:
        done.set()
        watcher.join()

    assert result.returncode == 0, result.stdout + result.stderr
    assert len(seen) > 4 and any(
        "sudo" in listing for listing in seen
    )  # the watcher really saw the run
    assert not any(password in listing for listing in seen)
    assert password not in result.stdout + result.stderr
    logs = node.sh("cat /var/log/*.log /var/log/*/* 2>/dev/null || true").stdout
    assert password not in logs


@pytest.mark.parametrize(
    "kind", [TiniNode, SystemdNode, Debian13Node], ids=["sysvinit", "systemd", "debian13"]
)
def test_a_directive_both_a_flag_and_in_daemon_json_is_refused_before_any_write(
    bed, make_node, kind
):
    """The test bed's docker gets `--default-runtime tnp` from DOCKER_OPTS in
    /etc/default/docker (the init script, or docker.service's EnvironmentFile). A daemon.json
    that also names default-runtime, written after dockerd started, is a restart that cannot
    succeed: refused by check and run, nothing written, docker keeps its PID; and dockerd
    itself refuses to start with it (shown at the end, by hand)."""
    node = make_node(kind=kind)
    config = json.dumps({"debug": False, "default-runtime": "runc"}) + "\n"
    node.write("/etc/docker/daemon.json", config)
    pid, before = node.docker_pid(), snapshot(node)

    checked = trains_nodeprep(bed, "check", "--host", node.name, "-o", "json")
    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert checked.returncode == 1
    (blocker,) = json_output(checked)["nodes"][0]["blockers"]
    assert "sets default-runtime, which docker also gets as a flag (--default-runtime)" in blocker
    assert "/etc/default/docker" in blocker and "keep default-runtime in one of" in blocker
    assert ran.returncode == 1
    assert json_output(ran)["nodes"][0]["status"] == "refused"
    assert snapshot(node) == before and node.docker_pid() == pid
    restart = (
        ("systemctl", "restart", "docker")
        if issubclass(kind, SystemdNode)
        else ("service", "docker", "restart")
    )
    node.exec(*restart, check=False)
    time.sleep(1)
    log = (
        node.journal("docker", 50)
        if issubclass(kind, SystemdNode)
        else (node.log_dir / "docker.log").read_text(errors="replace")
    )
    assert "specified both as a flag and in the configuration file" in log


def test_on_docker_26_a_config_dockerd_rejects_is_found_before_anything_is_written(bed, make_node):
    """A daemon.json key dockerd does not know, written after dockerd started: Docker 20.10
    only finds out at the restart (and the run rolls back); Docker 26's `dockerd --validate`
    of the merged file, with the flags of the next start, stops the run before any write."""
    node = make_node(kind=Debian13Node)
    node.write("/etc/docker/daemon.json", json.dumps({"debugg": True}) + "\n")
    pid, before = node.docker_pid(), snapshot(node)

    ran = trains_nodeprep(bed, "run", "--host", node.name, "--yes", "-o", "json")

    assert ran.returncode == 1, ran.stdout + ran.stderr
    report = json_output(ran)["nodes"][0]
    assert report["status"] == "failed"
    assert "dockerd --validate rejected the new daemon.json" in report["error"]
    assert "debugg" in report["error"] and "nothing was written" in report["error"]
    assert not report["applied"]["backups"]
    assert snapshot(node) == before and node.docker_pid() == pid


def test_on_debian_13_a_docker_that_will_not_start_with_the_new_config_is_rolled_back(
    bed, make_node
):
    """dockerd --validate accepts the new daemon.json, but a site check in docker.service
    (ExecStartPre) refuses to start docker once daemon.json sets default-ulimits: the restart
    fails, every file is put back, and docker runs again with the old config (real systemd 257,
    Docker 26)."""
    guard = (
        "[Service]\nExecStartPre=/bin/sh -c 'if grep -qs default-ulimits /etc/docker/daemon.json;"
        " then echo refusing default-ulimits >&2; exit 1; fi'\n"
    )
    node = make_node(
        kind=Debian13Node, files={"/etc/systemd/system/docker.service.d/50-guard.conf": guard}
    )
    pid, before = node.docker_pid(), snapshot(node)

    result = trains_nodeprep(
        bed, "run", "--host", node.name, "--yes", "--restart-timeout", "10", "-o", "json"
    )

    assert result.returncode == 1, result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["status"] == "failed" and report["applied"]["rolled_back"] is True
    assert "docker did not answer within 10 s" in report["error"]
    assert "refusing default-ulimits" in report["error"]
    assert snapshot(node) == before  # byte-identical, no backup left
    assert node.docker_pid() not in (None, pid)  # restarted with the old config
    assert node.exec("docker", "info", "--format", "{{.ServerVersion}}").returncode == 0
