"""How the CLI reaches nodes: ~/.ssh/config with ProxyJump, --local on the node itself, the restart prompt."""

from __future__ import annotations

import os
import shutil

from .cli import EXECUTABLE, json_output, trains_nodeprep


def test_proxyjump_alias_from_ssh_config_reaches_the_node(bed, make_node, tmp_path):
    jump, target = make_node(docker=False), make_node(docker=False)
    # The target drops SSH from the client (the host's bridge address): only the jump host gets in.
    target.exec("iptables", "-I", "INPUT", "-s", "10.200.0.1", "-p", "tcp", "--dport", "22", "-j", "DROP")
    home = tmp_path / "home"
    shutil.copytree(bed.home, home)
    config = home / ".ssh" / "config"
    config.write_text(
        config.read_text()
        + f"\nHost behind-the-jump\n  HostName {target.address}\n  User root\n  ProxyJump {jump.name}\n"
        + f"  IdentityFile {home}/.ssh/id_ed25519\n  UserKnownHostsFile {bed.home}/.ssh/known_hosts\n"
    )

    direct = trains_nodeprep(bed, "check", "--host", target.name, "--connect-timeout", "2", home=home)
    result = trains_nodeprep(bed, "check", "--host", "behind-the-jump", "-o", "json", home=home)

    assert direct.returncode == 3, direct.stdout
    assert result.returncode == 1, result.stderr  # reached and read: not ready yet
    node = json_output(result)["nodes"][0]
    assert node["host"] == "behind-the-jump" and node["status"] == "drift"


def test_local_run_on_the_node_itself_needs_no_ssh(bed, make_node):
    node = make_node()

    result = node.exec(str(EXECUTABLE), "run", "--local", "--yes", "-o", "json", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["host"] == "localhost" and report["status"] == "changed"
    assert node.max_map_count() == 262144
    assert node.run_container()["RLIMIT_NOFILE"] == (1024, 65536)
    again = node.exec(str(EXECUTABLE), "check", "--local", check=False)
    assert again.returncode == 0, again.stdout


def test_in_a_terminal_run_asks_before_restarting_docker(bed, make_node):
    node = make_node()
    pid = node.docker_pid()
    leader, follower = os.openpty()
    try:
        os.write(leader, b"n\n")
        declined = trains_nodeprep(bed, "run", "--host", node.name, stdin=follower)
        os.write(leader, b"y\n")
        accepted = trains_nodeprep(bed, "run", "--host", node.name, stdin=follower)
    finally:
        os.close(leader)
        os.close(follower)

    assert "every container on this node restarts" in declined.stdout
    assert "Restart docker on" in declined.stdout
    assert declined.returncode == 1 and "not confirmed" in declined.stdout
    assert accepted.returncode == 0, accepted.stdout + accepted.stderr
    assert node.docker_pid() != pid
    assert node.run_container()["RLIMIT_MEMLOCK"] == (-1, -1)
