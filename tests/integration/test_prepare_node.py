"""`run`, `check` and `plan` through the real CLI against real sshd + dockerd nodes (tests/testbed).

Each result is asserted independently of the tool: testinfra over its own SSH connection,
the node's files, its kernel knob, and the rlimits dockerd really asks runc for.
"""

from __future__ import annotations

import json

import pytest

from tests.testbed import Debian13Node, TiniNode

from .cli import json_output, trains_nodeprep
from .limits import INHERITED_NOFILE_ENOUGH, WRITTEN_NOFILE, WRITTEN_NOFILE_FLAG

# docker sets no nofile on these nodes: what its containers inherit counts (never lower)
NOFILE = WRITTEN_NOFILE
UNLIMITED = (-1, -1)
RHEL_SYSCONFIG = (
    "# /etc/sysconfig/docker\n"
    "# Modify these options if you want to change the way the docker daemon runs\n"
    'OPTIONS="--log-level=warn --iptables=true"\n'
    "DOCKER_CERT_PATH=/etc/docker\n"
)


# Debian 12 with sysvinit and Docker 20.10; Debian 13 with systemd 257 and Docker 26
KINDS = pytest.mark.parametrize("kind", [TiniNode, Debian13Node], ids=["debian12", "debian13"])


def backups(node) -> list[str]:
    listing = node.exec(
        "sh",
        "-c",
        "ls -1 /etc/docker /etc/sysconfig /etc/sysctl.d 2>/dev/null | grep '\\.bak$' || true",
    )
    return listing.stdout.split()


def assert_node_ready(node, user: str = "root") -> None:
    host = node.host()
    assert host.file("/etc/sysctl.d/99-trains.conf").contains("^vm.max_map_count=262144$")
    assert node.max_map_count() == 262144
    limits = node.run_container()
    assert limits["RLIMIT_NOFILE"] == NOFILE
    assert limits["RLIMIT_MEMLOCK"] == UNLIMITED


@KINDS
def test_run_creates_daemon_json_on_a_node_without_one(bed, make_node, kind):
    node = make_node(kind=kind)
    assert node.read("/etc/docker/daemon.json") is None

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert "changed" in result.stdout
    config = json.loads(node.host().file("/etc/docker/daemon.json").content_string)
    assert config["default-ulimits"]["nofile"] == {
        "Name": "nofile",
        "Soft": WRITTEN_NOFILE[0],
        "Hard": WRITTEN_NOFILE[1],
    }
    assert config["default-ulimits"]["memlock"] == {"Name": "memlock", "Soft": -1, "Hard": -1}
    assert_node_ready(node)


@KINDS
def test_run_keeps_the_other_keys_of_daemon_json(bed, make_node, kind):
    original = {
        "log-level": "warn",
        "log-opts": {"max-size": "10m", "max-file": "3"},
        "live-restore": False,
    }
    node = make_node(
        kind=kind, files={"/etc/docker/daemon.json": json.dumps(original, indent=4) + "\n"}
    )

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    config = json.loads(node.read("/etc/docker/daemon.json"))
    assert {k: config[k] for k in original} == original
    assert set(config) == set(original) | {"default-ulimits"}
    assert_node_ready(node)
    [backup] = [b for b in backups(node) if b.startswith("daemon.json.")]
    assert json.loads(node.read(f"/etc/docker/{backup}")) == original


def test_rhel_node_gets_flags_in_sysconfig_options_and_no_daemon_json(bed, make_node):
    node = make_node(rhel=True, files={"/etc/sysconfig/docker": RHEL_SYSCONFIG})

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    text = node.read("/etc/sysconfig/docker").decode()
    flags = f" --default-ulimit {WRITTEN_NOFILE_FLAG} --default-ulimit memlock=-1:-1"
    assert f'OPTIONS="--log-level=warn --iptables=true{flags}"\n' in text
    assert text.replace(flags, "") == RHEL_SYSCONFIG
    assert node.read("/etc/docker/daemon.json") is None
    cmdline = node.exec("sh", "-c", 'tr "\\000" " " < /proc/$(pidof dockerd)/cmdline').stdout
    assert f"--default-ulimit {WRITTEN_NOFILE_FLAG}" in cmdline
    assert_node_ready(node)


@KINDS
def test_passwordless_sudo_user_prepares_the_node(bed, make_node, kind):
    node = make_node(kind=kind)

    result = trains_nodeprep(bed, "run", "--host", f"deploy@{node.name}", "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert node.host().file("/etc/docker/daemon.json").user == "root"
    assert_node_ready(node)


@KINDS
def test_password_sudo_user_with_password_from_environment(bed, make_node, kind):
    node = make_node(kind=kind)

    result = trains_nodeprep(
        bed,
        "run",
        "--host",
        f"secured@{node.name}",
        "--yes",
        "-o",
        "json",
        env={"TRAINS_NODEPREP_SUDO_PASSWORD": bed.sudo_password},
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert bed.sudo_password not in result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["status"] == "changed"
    assert report["remote_commands"] == 2  # facts, then apply and verify: one connection
    assert_node_ready(node)


def test_password_sudo_user_without_password_is_a_clear_error(bed, make_node):
    node = make_node(docker=False)

    result = trains_nodeprep(bed, "check", "--host", f"secured@{node.name}")

    assert result.returncode == 3
    assert "sudo asks secured for a password" in result.stdout
    assert "TRAINS_NODEPREP_SUDO_PASSWORD" in result.stdout


@KINDS
def test_second_run_changes_nothing_and_does_not_restart_docker(bed, make_node, kind):
    node = make_node(kind=kind)
    first = trains_nodeprep(bed, "run", "--host", node.name, "--yes")
    assert first.returncode == 0, first.stdout + first.stderr
    pid, saved = node.docker_pid(), backups(node)
    files = {p: node.read(p) for p in ("/etc/docker/daemon.json", "/etc/sysctl.d/99-trains.conf")}

    second = trains_nodeprep(bed, "run", "--host", node.name, "-o", "json")

    assert second.returncode == 0, second.stdout + second.stderr
    report = json_output(second)["nodes"][0]
    assert report["status"] == "unchanged"
    assert report["changes"] == [] and report["restart_docker"] is False
    assert report["remote_commands"] == 1
    assert node.docker_pid() == pid
    assert backups(node) == saved
    assert {p: node.read(p) for p in files} == files


def test_a_higher_max_map_count_is_kept_and_persisted(bed, make_node):
    node = make_node(docker=False, max_map_count=1048576)

    result = trains_nodeprep(bed, "run", "--host", node.name, "--yes")

    assert result.returncode == 0, result.stdout + result.stderr
    assert node.max_map_count() == 1048576
    assert node.host().file("/etc/sysctl.d/99-trains.conf").contains("^vm.max_map_count=1048576$")


@KINDS
def test_check_fails_before_run_and_passes_after(bed, make_node, tmp_path, kind):
    node = make_node(kind=kind)
    junit = tmp_path / "check.xml"

    before = trains_nodeprep(
        bed, "check", "--host", node.name, "-o", "json", "--junit-xml", str(junit)
    )

    assert before.returncode == 1
    report = json_output(before)
    assert report["ok"] is False
    failing = {r["id"] for r in report["nodes"][0]["requirements"] if not r["ok"]}
    assert {i for i in failing if not i.startswith("server.directory:")} == {
        "docker.default-ulimit.memlock",
        "sysctl.vm.max_map_count",
        "sysctl.vm.max_map_count.persisted",
    } | (set() if INHERITED_NOFILE_ENOUGH else {"docker.default-ulimit.nofile"})
    assert "server.directory:/opt/trains/data/elastic_7" in failing
    assert junit.read_text().count("<failure") == len(failing)

    assert trains_nodeprep(bed, "run", "--host", node.name, "--yes").returncode == 0
    after = trains_nodeprep(bed, "check", "--host", node.name, "--junit-xml", str(junit))

    assert after.returncode == 0, after.stdout
    assert "1 of 1 node(s) ready" in after.stdout
    assert "<failure" not in junit.read_text()


@KINDS
def test_plan_shows_diffs_and_changes_nothing(bed, make_node, kind):
    node = make_node(kind=kind, files={"/etc/docker/daemon.json": '{"log-level": "warn"}\n'})
    pid = node.docker_pid()

    result = trains_nodeprep(bed, "plan", "--host", node.name)

    assert result.returncode == 0, result.stdout + result.stderr
    assert "+++ /etc/docker/daemon.json" in result.stdout
    assert "+vm.max_map_count=262144" in result.stdout
    assert "sysctl -w vm.max_map_count=262144" in result.stdout
    assert node.read("/etc/docker/daemon.json") == b'{"log-level": "warn"}\n'
    assert node.read("/etc/sysctl.d/99-trains.conf") is None
    assert node.max_map_count() == 65530
    assert node.docker_pid() == pid
    assert backups(node) == []


def test_plan_show_scripts_prints_exactly_what_run_would_send(bed, make_node):
    """The printed apply script, run on the node by hand, makes it ready: it is the real one."""
    node = make_node()

    result = trains_nodeprep(bed, "plan", "--host", node.name, "--show-scripts")

    assert result.returncode == 0, result.stdout + result.stderr
    facts_title = "# the facts script, read-only, the same for every node ("
    apply_title = f"# the apply script for {node.name} ("
    assert facts_title in result.stdout and apply_title in result.stdout
    header, _, apply_script = result.stdout.partition(apply_title)[2].partition("\n")
    assert len(apply_script.encode()) == int(header.split(" bytes)")[0])
    assert node.read("/etc/docker/daemon.json") is None  # plan changed nothing

    done = node.exec("/bin/sh", "-c", apply_script, check=False)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "step\trestart\tdocker\tok" in done.stdout
    assert_node_ready(node)


def test_unknown_host_key_is_refused_by_default(bed, make_node):
    node = make_node(docker=False, known_host=False)

    result = trains_nodeprep(bed, "check", "--host", node.address)

    assert result.returncode == 3
    assert "unknown host key" in result.stdout
    assert node.address not in (bed.home / ".ssh" / "known_hosts").read_text()


def test_accept_new_host_keys_records_the_key(bed, make_node):
    node = make_node(docker=False, known_host=False)

    result = trains_nodeprep(bed, "check", "--host", node.address, "--accept-new-host-keys")

    assert result.returncode == 1, (
        result.stdout + result.stderr
    )  # reached: drift, not a connection error
    assert node.address in (bed.home / ".ssh" / "known_hosts").read_text()
    again = trains_nodeprep(bed, "check", "--host", node.address)
    assert again.returncode == 1, again.stdout


def test_unreachable_node_is_exit_code_3(bed):
    result = trains_nodeprep(bed, "check", "--host", "root@10.200.0.250", "--connect-timeout", "2")

    assert result.returncode == 3
    assert "10.200.0.250" in result.stdout


def test_run_without_tty_and_without_yes_refuses_to_restart_docker(bed, make_node):
    node = make_node()
    pid = node.docker_pid()

    result = trains_nodeprep(bed, "run", "--host", node.name)

    assert result.returncode == 1
    assert "--yes" in result.stdout
    assert node.read("/etc/docker/daemon.json") is None
    assert node.docker_pid() == pid
