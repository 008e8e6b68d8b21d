"""How the CLI reaches nodes: ~/.ssh/config with ProxyJump and ProxyCommand, --local on the node
itself, the restart prompt."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path

from .cli import EXECUTABLE, json_output, trains_nodeprep
from .limits import WRITTEN_NOFILE


def home_with_alias(bed, tmp_path, alias: str, target, route: str) -> Path:
    """A copy of the bed's client home whose ~/.ssh/config has `alias` for `target`, reached by
    `route`."""
    home = tmp_path / "home"
    shutil.copytree(bed.home, home)
    config = home / ".ssh" / "config"
    route = route.replace("{config}", str(config))
    config.write_text(
        config.read_text()
        + f"\nHost {alias}\n  HostName {target.address}\n  User root\n  {route}\n"
        + f"  IdentityFile {home}/.ssh/id_ed25519\n"
        f"  UserKnownHostsFile {bed.home}/.ssh/known_hosts\n"
    )
    return home


def drop_ssh_from(node, *sources: str) -> None:
    for source in sources:
        node.exec(
            "iptables", "-I", "INPUT", "-s", source, "-p", "tcp", "--dport", "22", "-j", "DROP"
        )


CLIENT = "10.200.0.1"  # the host's bridge address: where the CLI's connections come from


def test_proxyjump_alias_from_ssh_config_reaches_the_node(bed, make_node, tmp_path):
    jump, target = make_node(docker=False), make_node(docker=False)
    drop_ssh_from(target, CLIENT)  # only the jump host gets in
    home = home_with_alias(bed, tmp_path, "behind-the-jump", target, f"ProxyJump {jump.name}")

    direct = trains_nodeprep(
        bed, "check", "--host", target.name, "--connect-timeout", "2", home=home
    )
    result = trains_nodeprep(bed, "check", "--host", "behind-the-jump", "-o", "json", home=home)

    assert direct.returncode == 3, direct.stdout
    assert result.returncode == 1, result.stderr  # reached and read: not ready yet
    node = json_output(result)["nodes"][0]
    assert node["host"] == "behind-the-jump" and node["status"] == "drift"


def test_proxyjump_with_two_hops_goes_through_them_in_order(bed, make_node, tmp_path):
    """ssh's order: the client reaches the first hop, which reaches the second, which reaches the
    node."""
    first, second, target = (
        make_node(docker=False),
        make_node(docker=False),
        make_node(docker=False),
    )
    drop_ssh_from(second, CLIENT)
    drop_ssh_from(target, CLIENT, first.address)
    home = home_with_alias(
        bed, tmp_path, "two-hops-away", target, f"ProxyJump {first.name},ssh://root@{second.name}"
    )

    result = trains_nodeprep(bed, "check", "--host", "two-hops-away", "-o", "json", home=home)

    assert result.returncode == 1, result.stdout + result.stderr  # reached and read: not ready yet
    assert json_output(result)["nodes"][0]["status"] == "drift"


def test_proxycommand_alias_from_ssh_config_reaches_the_node(bed, make_node, tmp_path):
    jump, target = make_node(docker=False), make_node(docker=False)
    drop_ssh_from(target, CLIENT)
    home = home_with_alias(
        bed,
        tmp_path,
        "through-a-command",
        target,
        f"ProxyCommand ssh -F {{config}} -W %h:%p {jump.name}",
    )
    config = home / ".ssh" / "config"

    result = trains_nodeprep(bed, "check", "--host", "through-a-command", "-o", "json", home=home)
    config.write_text(config.read_text().replace(f"-W %h:%p {jump.name}", "-W %h:%p no-such-alias"))
    failed = trains_nodeprep(
        bed, "check", "--host", "through-a-command", "--connect-timeout", "3", home=home
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert json_output(result)["nodes"][0]["status"] == "drift"
    assert (
        failed.returncode == 3
        and "through the ProxyCommand of ~/.ssh/config failed" in failed.stdout
    ), failed.stdout


def test_an_sshd_without_aes_gcm_is_reached_with_the_next_cipher(bed, make_node):
    """AES-GCM comes first in what the client offers, not alone: an sshd limited to AES-CTR still
    works."""
    node = make_node(docker=False)
    node.sh("echo 'Ciphers aes128-ctr' >> /etc/ssh/sshd_config && kill -HUP $(pgrep -o -x sshd)")
    time.sleep(0.5)  # sshd re-executes itself with the new config

    result = trains_nodeprep(bed, "check", "--host", node.name, "--no-cluster", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr  # reached and read: not ready yet
    assert json_output(result)["nodes"][0]["status"] == "drift"
    gcm_only = subprocess.run(
        [
            "ssh",
            "-F",
            str(bed.home / ".ssh" / "config"),
            "-o",
            "BatchMode=yes",
            "-o",
            "Ciphers=aes128-gcm@openssh.com",
            node.name,
            "true",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (
        gcm_only.returncode != 0 and "no matching cipher" in gcm_only.stderr
    )  # the sshd really refuses AES-GCM


def sshd_with(node, *lines: str) -> None:
    """Adds sshd_config lines on the node and waits for sshd to take them."""
    node.sh(
        f"printf '%s\\n' {' '.join(shlex.quote(line) for line in lines)} >> /etc/ssh/sshd_config"
        " && kill -HUP $(pgrep -o -x sshd)"
    )
    time.sleep(0.5)  # sshd re-executes itself with the new config


def key_exchanges(node) -> list[str]:
    """What the node's sshd agreed on, connection by connection (needs LogLevel DEBUG1)."""
    return re.findall(r"kex: algorithm: (\S+)", node.sh("cat /var/log/sshd.log").stdout)


def test_key_exchange_is_p256_unless_ssh_config_sets_kexalgorithms(bed, make_node, tmp_path):
    """ECDH P-256 costs the node's sshd less CPU than curve25519; KexAlgorithms in ~/.ssh/config
    still decides."""
    node = make_node(docker=False)
    sshd_with(node, "LogLevel DEBUG1")
    home = home_with_alias(
        bed, tmp_path, "curve25519-only", node, "KexAlgorithms curve25519-sha256"
    )

    default = trains_nodeprep(bed, "check", "--host", node.name, "--no-cluster", "-o", "json")
    after_default = key_exchanges(node)
    configured = trains_nodeprep(
        bed, "check", "--host", "curve25519-only", "--no-cluster", "-o", "json", home=home
    )

    assert default.returncode == 1 and configured.returncode == 1, (
        default.stdout + configured.stdout
    )  # read: not ready yet
    assert after_default[-1:] == ["ecdh-sha2-nistp256"]
    assert key_exchanges(node)[len(after_default) :] == ["curve25519-sha256@libssh.org"]


def test_an_sshd_without_p256_is_reached_with_curve25519(bed, make_node):
    node = make_node(docker=False)
    sshd_with(
        node, "LogLevel DEBUG1", "KexAlgorithms curve25519-sha256,curve25519-sha256@libssh.org"
    )

    result = trains_nodeprep(bed, "check", "--host", node.name, "--no-cluster", "-o", "json")

    assert result.returncode == 1, result.stdout + result.stderr  # reached and read: not ready yet
    assert key_exchanges(node) == ["curve25519-sha256@libssh.org"]


def test_kexalgorithms_with_nothing_usable_fails_that_node_naming_the_line(
    bed, make_node, tmp_path
):
    node, other = make_node(docker=False), make_node(docker=False)
    home = home_with_alias(
        bed, tmp_path, "post-quantum-only", node, "KexAlgorithms sntrup761x25519-sha512"
    )

    result = trains_nodeprep(
        bed,
        "check",
        "--host",
        "post-quantum-only",
        "--host",
        other.name,
        "--no-cluster",
        "-o",
        "json",
        home=home,
    )

    assert result.returncode == 3, result.stdout + result.stderr
    by_host = {entry["host"]: entry for entry in json_output(result)["nodes"]}
    assert by_host[other.name]["status"] == "drift"
    error = by_host["post-quantum-only"]["error"]
    assert (
        "KexAlgorithms 'sntrup761x25519-sha512'" in error
        and "~/.ssh/config" in error
        and "fix that line" in error
    ), error
    assert "\n" not in error


def test_an_sshd_that_hangs_up_before_its_banner_gives_one_line_and_no_traceback(bed, make_node):
    """TCP wrappers make sshd accept and close at once; paramiko's transport thread logs that with
    a traceback, which must not reach the terminal."""
    node = make_node(docker=False)
    node.sh("echo 'sshd: ALL' >> /etc/hosts.deny")

    result = trains_nodeprep(bed, "check", "--host", node.name, "--no-cluster")

    assert result.returncode == 3, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and "paramiko" not in result.stderr, result.stderr
    assert (
        f"SSH connection to {node.address}:22 failed" in result.stdout
        and "check the address, port and sshd" in result.stdout
    )


def test_local_run_on_the_node_itself_needs_no_ssh(bed, make_node):
    node = make_node()

    result = node.exec(str(EXECUTABLE), "run", "--local", "--yes", "-o", "json", check=False)

    assert result.returncode == 0, result.stdout + result.stderr
    report = json_output(result)["nodes"][0]
    assert report["host"] == "localhost" and report["status"] == "changed"
    assert node.max_map_count() == 262144
    assert node.run_container()["RLIMIT_NOFILE"] == WRITTEN_NOFILE
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


def _home_copy(bed, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(bed.home, home)
    return home


def test_a_changed_host_key_is_refused_even_with_accept_new(bed, make_node, tmp_path):
    node = make_node(docker=False)
    home = _home_copy(bed, tmp_path)
    known_hosts = home / ".ssh" / "known_hosts"
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)], check=True)
    forged = f"{node.address} {' '.join(other.with_suffix('.pub').read_text().split()[:2])}\n"
    known_hosts.write_text(
        "".join(
            line
            for line in known_hosts.read_text().splitlines(keepends=True)
            if not line.startswith(f"{node.address} ")
        )
        + forged
    )

    for extra in ((), ("--accept-new-host-keys",)):
        result = trains_nodeprep(bed, "check", "--host", node.address, *extra, home=home)

        assert result.returncode == 3, result.stdout + result.stderr
        assert (
            "HOST KEY CHANGED" in result.stdout and f"ssh-keygen -R {node.address}" in result.stdout
        )
    assert known_hosts.read_text().endswith(forged)  # nothing added or replaced


def test_accept_new_records_the_key_in_the_aliases_user_known_hosts_file(bed, make_node, tmp_path):
    node = make_node(docker=False, known_host=False)
    home = _home_copy(bed, tmp_path)
    recorded = home / ".ssh" / "alias_known_hosts"
    config = home / ".ssh" / "config"
    config.write_text(
        f"Host the-alias\n  HostName {node.address}\n  User root\n"
        f"  IdentityFile {home}/.ssh/id_ed25519\n"
        f"  UserKnownHostsFile {recorded}\n\n" + config.read_text()
    )

    refused = trains_nodeprep(bed, "check", "--host", "the-alias", home=home)
    accepted = trains_nodeprep(
        bed, "check", "--host", "the-alias", "--accept-new-host-keys", "-o", "json", home=home
    )
    again = trains_nodeprep(bed, "check", "--host", "the-alias", "-o", "json", home=home)

    assert refused.returncode == 3 and "unknown host key (ssh-ed25519 SHA256:" in refused.stdout
    assert accepted.returncode == 1, accepted.stdout + accepted.stderr
    assert recorded.read_text() == f"{node.address} {node.host_public_key}\n"
    assert node.address not in (home / ".ssh" / "known_hosts").read_text()
    assert again.returncode == 1 and json_output(again)["nodes"][0]["status"] == "drift"
