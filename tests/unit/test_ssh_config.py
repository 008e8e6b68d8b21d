"""~/.ssh/config resolution (node/ssh_config.py): config texts and a target in, the route of
logins out, as ssh resolves them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from trains_nodeprep.errors import ConnectionFailed
from trains_nodeprep.node import SSHNode, SSHOptions, parse_target
from trains_nodeprep.node.ssh_config import Hop, parse_ssh_config, resolve_route

from .loopback_ssh import ssh_config_file  # noqa: F401

DEFAULT_KNOWN_HOSTS = (
    (Path(os.path.expanduser("~/.ssh/known_hosts")), Path("/etc/ssh/ssh_known_hosts")),
    Path(os.path.expanduser("~/.ssh/known_hosts")),
)


def route(
    target: str, user_config: str = "", system_config: str = "", **options
) -> tuple[Hop, ...]:
    """As SSHNode resolves it with `user_config` as ~/.ssh/config and `system_config` as
    /etc/ssh/ssh_config, for a local user named `me`."""
    config = parse_ssh_config([user_config, system_config])
    return resolve_route(parse_target(target), SSHOptions(**options), config.lookup, lambda: "me")


def test_an_alias_with_no_config_is_a_host_name_on_port_22_as_the_local_user():
    assert route("node1") == (
        Hop(
            host="node1",
            hostname="node1",
            port=22,
            user="me",
            identity_files=(),
            known_hosts=DEFAULT_KNOWN_HOSTS,
        ),
    )


def test_hostname_user_and_port_come_from_the_hosts_entry():
    (node,) = route("web", "Host web\n  HostName 10.0.0.5\n  User admin\n  Port 2222\n")

    assert (node.host, node.hostname, node.user, node.port) == ("web", "10.0.0.5", "admin", 2222)


def test_hostname_expands_h_to_the_alias():
    (node,) = route("web", "Host web\n  HostName %h.example.com\n")

    assert node.hostname == "web.example.com"


def test_user_and_port_options_win_over_the_config_and_user_at_and_port_over_them():
    """As ssh's -l and -p do: the command line first."""
    config = "Host web\n  User admin\n  Port 2222\n"

    (from_options,) = route("web", config, user="deploy", port=23)
    (from_config,) = route("web", config)
    (from_target,) = route("ops@web:24", config, user="deploy", port=23)

    assert (from_options.user, from_options.port) == ("deploy", 23)
    assert (from_config.user, from_config.port) == ("admin", 2222)
    assert (from_target.user, from_target.port) == ("ops", 24)


def test_user_and_port_options_are_defaults_for_hosts_the_config_does_not_name():
    (node,) = route("other", "Host web\n  User admin\n", user="deploy", port=2200)

    assert (node.user, node.port) == ("deploy", 2200)


def test_the_local_user_is_only_asked_when_nothing_names_a_user():
    config = parse_ssh_config(["Host web\n  User admin\n"])

    def no_local_user() -> str:
        raise AssertionError("asked for the local user")

    (node,) = resolve_route(parse_target("web"), SSHOptions(), config.lookup, no_local_user)
    assert node.user == "admin"


def test_identity_files_from_the_command_line_then_every_identityfile_in_order():
    config = (
        "Host web\n  IdentityFile /keys/a\n  IdentityFile /keys/b\nHost *\n  IdentityFile /keys/c\n"
    )

    (node,) = route("web", config, identity_files=("/cli/key",))

    assert node.identity_files == ("/cli/key", "/keys/a", "/keys/b", "/keys/c")


def test_identityfile_expands_the_home_directory():
    (node,) = route("web", "Host web\n  IdentityFile ~/.ssh/web_key\n")

    assert node.identity_files == (os.path.expanduser("~/.ssh/web_key"),)


def test_one_proxyjump_hop_is_resolved_from_its_own_entry():
    config = (
        "Host inner\n  HostName 10.1.0.9\n  ProxyJump bastion\n  IdentityFile /keys/inner\n"
        "Host bastion\n  HostName bastion.example.com\n  User jumper\n  Port 2022\n"
        "  IdentityFile /keys/bastion\n"
    )

    jump, node = route("inner", config, user="deploy", identity_files=("/cli/key",))

    assert (jump.host, jump.hostname, jump.user, jump.port) == (
        "bastion",
        "bastion.example.com",
        "jumper",
        2022,
    )
    assert jump.identity_files == ("/keys/bastion",)  # the command line's keys are the node's
    assert (node.hostname, node.user, node.identity_files) == (
        "10.1.0.9",
        "deploy",
        ("/cli/key", "/keys/inner"),
    )


def test_a_jump_host_without_a_user_is_the_local_user_not_the_user_option():
    jump, node = route("inner", "Host inner\n  ProxyJump bastion\n", user="deploy")

    assert (jump.user, node.user) == ("me", "deploy")


def test_two_proxyjump_hops_in_ssh_order_with_an_ssh_url():
    config = "Host inner\n  ProxyJump first, ssh://root@second:2222\nHost second\n  User ignored\n"

    first, second, node = route("inner", config)

    assert [(h.host, h.user, h.port) for h in (first, second, node)] == [
        ("first", "me", 22),
        ("second", "root", 2222),
        ("inner", "me", 22),
    ]


def test_proxyjump_none_is_a_direct_connection():
    assert len(route("inner", "Host inner\n  ProxyJump none\nHost *\n  ProxyJump bastion\n")) == 1


def test_a_proxyjump_that_is_not_a_target_fails_the_node_naming_the_line():
    with pytest.raises(ConnectionFailed) as raised:
        route("inner", "Host inner\n  ProxyJump bad/host\n")

    assert str(raised.value) == (
        "inner: ProxyJump 'bad/host' in ~/.ssh/config is not [user@]host[:port]; fix that line"
    )


def test_proxycommand_expands_h_and_p_and_none_means_none():
    config = "Host web\n  HostName 10.0.0.5\n  Port 2200\n  ProxyCommand ssh -W %h:%p bastion\n"

    assert route("web", config)[0].proxy_command == "ssh -W 10.0.0.5:2200 bastion"
    assert route("web", "Host web\n  ProxyCommand none\n")[0].proxy_command is None


def test_proxyjump_wins_over_proxycommand():
    """Only the first hop's ProxyCommand is used: with a ProxyJump that is the jump host."""
    config = "Host web\n  ProxyJump bastion\n  ProxyCommand nc %h %p\n"

    jump, node = route("web", config)

    assert jump.proxy_command is None and node.proxy_command == "nc web 22"


def test_user_and_global_known_hosts_files_new_keys_go_to_the_first_user_file():
    config = (
        "Host web\n  UserKnownHostsFile ~/.ssh/web_hosts /shared/hosts\n"
        "  GlobalKnownHostsFile /etc/ssh/a /etc/ssh/b\n"
    )

    (node,) = route("web", config)

    web_hosts = Path(os.path.expanduser("~/.ssh/web_hosts"))
    assert node.known_hosts == (
        (web_hosts, Path("/shared/hosts"), Path("/etc/ssh/a"), Path("/etc/ssh/b")),
        web_hosts,
    )


def test_kexalgorithms_is_passed_on_as_written():
    (node,) = route("web", "Host web\n  KexAlgorithms -ecdh-sha2-nistp*,curve25519-sha256\n")

    assert node.kex_algorithms == "-ecdh-sha2-nistp*,curve25519-sha256"
    assert route("other")[0].kex_algorithms is None


def test_the_users_config_wins_over_the_system_config_which_fills_the_rest():
    user_config = "Host web\n  User mine\n"
    system_config = "Host web\n  User system\n  Port 2022\nHost *\n  HostName %h.lan\n"

    (node,) = route("web", user_config, system_config)

    assert (node.user, node.port, node.hostname) == ("mine", 2022, "web.lan")


def test_within_a_file_the_first_value_found_wins():
    (node,) = route("web", "Host *\n  User everyone\nHost web\n  User admin\n")

    assert node.user == "everyone"


def test_a_port_that_is_not_a_number_fails_the_node_naming_the_line():
    with pytest.raises(ConnectionFailed) as raised:
        route("web", "Host web\n  Port ssh\n")

    assert str(raised.value) == (
        "web: Port 'ssh' for web in ~/.ssh/config is not a number; fix that line"
    )


def test_a_lookup_that_raises_fails_the_node_in_one_line():
    def broken(host: str):
        raise ValueError("bad Match line")

    with pytest.raises(ConnectionFailed) as raised:
        resolve_route(parse_target("web"), SSHOptions(), broken, lambda: "me")

    assert str(raised.value) == (
        "web: cannot use ~/.ssh/config for web (bad Match line); fix or remove that entry"
    )


def test_sshnode_reads_its_config_files_in_order(ssh_config_file, tmp_path, monkeypatch):
    from trains_nodeprep.node import ssh

    system = tmp_path / "system_config"
    system.write_text("Host web\n  User system\n  Port 2022\n")
    ssh_config_file.write_text("Host web\n  User mine\n")
    monkeypatch.setattr(ssh, "SSH_CONFIG_FILES", (ssh_config_file, tmp_path / "missing", system))

    node = SSHNode(parse_target("web"), SSHOptions())

    assert (node.user, node.route[-1].port) == ("mine", 2022)


def test_an_unreadable_config_file_fails_each_node_when_it_connects(
    ssh_config_file, tmp_path, monkeypatch
):
    from trains_nodeprep.node import ssh

    monkeypatch.setattr(ssh, "SSH_CONFIG_FILES", (tmp_path,))  # a directory: read_text fails

    node = SSHNode(parse_target("admin@web"), SSHOptions())

    assert node.user == "admin" and node.route == ()
    with pytest.raises(ConnectionFailed) as raised:
        node.run_as_root("true", timeout=5)
    assert str(raised.value).startswith(
        f"admin@web: cannot use ~/.ssh/config for web (cannot read {tmp_path} ("
    )
