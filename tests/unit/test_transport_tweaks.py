"""Guards for node/tweaks.py: each test fails when a paramiko or CPython upgrade takes away the
private detail a speed-up relies on. When one fails, fix or drop that tweak in tweaks.py (the
tool still works without it, only slower), then update its test."""

from __future__ import annotations

import getpass
import socket
import subprocess
import sys
import textwrap

import paramiko
import paramiko.packet
import pytest

from trains_nodeprep.node import SSHNode, SSHOptions, parse_target, ssh
from trains_nodeprep.node.tweaks import (
    TCP_QUICKACK,
    QuickAckSocket,
    host_blocks_fast,
    needs_invoke,
    quick_acks,
    read_all,
    tuned_transport,
)

from .loopback_ssh import LoopbackSSHServer, loopback, ssh_config_file  # noqa: F401


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


# --- host_blocks_fast: SSHConfig._does_match -------------------------------------------------

MANY_HOSTS = "".join(f"Host node{i}\n  HostName 10.0.0.{i}\n" for i in range(50))


def getuser_calls(config_class, text: str, monkeypatch) -> int:
    config = config_class()
    config.parse(__import__("io").StringIO(text))
    calls = []
    monkeypatch.setattr(getpass, "getuser", lambda: calls.append(1) or "me")
    config.lookup("target")
    return len(calls)


def test_host_blocks_without_match_lines_do_not_ask_for_the_local_user(monkeypatch):
    """Breaks if SSHConfig._lookup no longer goes through `_does_match(match_list, ...)` (our
    override is then never called, and paramiko's own code asks getpass.getuser() per block):
    override the method that replaced it in host_blocks_fast. If only the second assertion
    fails, paramiko stopped asking per block itself: drop host_blocks_fast."""
    fast = host_blocks_fast(paramiko.SSHConfig)

    assert getuser_calls(fast, MANY_HOSTS, monkeypatch) == getuser_calls(fast, "", monkeypatch)
    assert getuser_calls(paramiko.SSHConfig, MANY_HOSTS, monkeypatch) >= 50


def test_match_blocks_keep_paramikos_rules(monkeypatch):
    """Breaks if the override's call to super()._does_match no longer fits its signature."""
    config = host_blocks_fast(paramiko.SSHConfig)()
    config.parse(
        __import__("io").StringIO(
            "Match localuser alice\n  User from-match\nMatch host web\n  Port 2022\n"
        )
    )

    monkeypatch.setattr(getpass, "getuser", lambda: "alice")
    assert config.lookup("web")["user"] == "from-match" and config.lookup("web")["port"] == "2022"
    monkeypatch.setattr(getpass, "getuser", lambda: "bob")
    assert "user" not in config.lookup("web") and "port" not in config.lookup("other")


# --- import_paramiko: invoke left out ---------------------------------------------------------


def test_paramiko_imports_without_invoke_unless_the_config_has_match_exec():
    """Breaks if paramiko comes to need invoke at import time (import_paramiko then raises
    ImportError: drop the sys.modules trick), or stops importing it at all (then the trick is
    useless: drop it)."""
    out = run_python(
        """
        import sys
        from trains_nodeprep.node.tweaks import import_paramiko
        paramiko = import_paramiko(needs_invoke=False)
        import paramiko.config
        print("invoke" in sys.modules, paramiko.config.invoke is None)
        """
    )
    assert out.split() == ["False", "True"]
    out = run_python(
        """
        import sys
        import paramiko
        print("invoke" in sys.modules)
        """
    )
    assert out.split() == ["True"], "paramiko no longer imports invoke: drop the trick"


def test_a_config_with_match_exec_gets_invoke_and_runs_it():
    """Breaks if paramiko runs `Match exec` some other way than with invoke."""
    out = run_python(
        """
        from trains_nodeprep.node.ssh_config import parse_ssh_config
        config = parse_ssh_config(["Match exec true\\n  User from-exec\\n"])
        print(config.lookup("web")["user"])
        """
    )
    assert out.split() == ["from-exec"]


def test_match_exec_is_recognised_in_any_case_and_spacing():
    assert needs_invoke(["Host a\n", '  MATCH host web EXEC "test -f /x"\n'])
    assert not needs_invoke(["Host exec-box\n  HostName exec.example.com\n"])


# --- silence: paramiko's thread tracebacks ----------------------------------------------------

HANG_UP_BEFORE_BANNER = """
import socket, threading
import paramiko
listener = socket.create_server(("127.0.0.1", 0))
threading.Thread(target=lambda: listener.accept()[0].close(), daemon=True).start()
transport = paramiko.Transport(socket.create_connection(listener.getsockname()))
try:
    transport.start_client(timeout=5)
except Exception as err:
    print("failed:", type(err).__name__)
"""


def test_paramikos_thread_tracebacks_do_not_reach_stderr():
    """Breaks if paramiko's transport logs under a logger outside "paramiko" (silence then
    misses it): give silence the new name. The second run shows the traceback it hides."""
    silenced = run_python(
        "from trains_nodeprep.node.tweaks import import_paramiko\n"
        "import_paramiko(needs_invoke=False)\n" + HANG_UP_BEFORE_BANNER
    )
    loud = run_python(HANG_UP_BEFORE_BANNER)

    assert "failed:" in silenced and "Traceback" not in silenced, silenced
    assert "Traceback" in loud, "paramiko no longer logs a traceback here: check silence"


# --- tuned_transport through SSHClient.connect's transport_factory ----------------------------


def agreed(server: LoopbackSSHServer, config, kex_algorithms: str | None = None) -> tuple:
    """The key exchange and cipher the loopback server agreed on with an SSHNode."""
    config.write_text(
        server.ssh_config("loop")
        + (f"  KexAlgorithms {kex_algorithms}\n" if kex_algorithms else "")
    )
    ssh._ssh_config.cache_clear()  # parsed once per process: this test changes it
    node = SSHNode(parse_target("loop"), SSHOptions(connect_timeout=5))
    try:
        assert node.run_as_root("true", timeout=10).ok
    finally:
        node.close()
    kex = [line.split()[1] for line in server.log.lines if line.startswith("Kex: ")]
    return kex[-1], server.transports[-1].remote_cipher


def test_the_node_connection_agrees_on_p256_and_aes_gcm(tmp_path, ssh_config_file):
    """The server takes both orders of preference (SSH lets the client's order decide): breaks
    if SSHClient.connect stops building its Transport with transport_factory(sock,
    disabled_algorithms=...) or if setting get_security_options() no longer changes what the
    client offers. Fix tuned_transport (e.g. through Transport's _preferred_kex and
    _preferred_ciphers)."""
    server = LoopbackSSHServer(
        tmp_path,
        kex=("curve25519-sha256@libssh.org", "ecdh-sha2-nistp256"),
        ciphers=("aes128-ctr", "aes256-ctr", "aes128-gcm@openssh.com"),
    )
    try:
        assert agreed(server, ssh_config_file) == ("ecdh-sha2-nistp256", "aes128-gcm@openssh.com")
        assert agreed(server, ssh_config_file, "curve25519-sha256")[0] == (
            "curve25519-sha256@libssh.org"
        )
    finally:
        server.close()


def test_a_tuned_transport_keeps_every_algorithm_paramiko_offers():
    left, right = socket.socketpair()
    with left, right:
        plain = paramiko.Transport(left).get_security_options()
        tuned = tuned_transport(right).get_security_options()

        assert sorted(tuned.kex) == sorted(plain.kex)
        assert sorted(tuned.ciphers) == sorted(plain.ciphers)
        assert tuned.ciphers[0] == "aes128-gcm@openssh.com"


# --- share_host_keys: SSHClient._system_host_keys ---------------------------------------------


def test_the_shared_known_hosts_keys_are_what_connect_trusts(loopback, ssh_config_file):
    """Breaks if SSHClient no longer checks the server's key against _system_host_keys: the
    connection, trusted only through the shared keys, is then refused as unknown. Fix
    share_host_keys (e.g. client.load_system_host_keys per connection, slower)."""
    ssh_config_file.write_text(loopback.ssh_config("loop"))
    node = SSHNode(parse_target("loop"), SSHOptions(connect_timeout=5))
    try:
        assert node.run_as_root("true", timeout=10).ok
        assert len(node._connect().get_host_keys()) == 0  # nothing came from elsewhere
    finally:
        node.close()


# --- read_all: Channel.recv until b"" ---------------------------------------------------------


def test_large_stdout_and_stderr_come_back_whole(loopback, ssh_config_file):
    """Breaks if Channel.recv / recv_stderr stop returning b"" at the end of the output
    (read_all then never returns or cuts the output short)."""
    stdout, stderr = bytes(range(256)) * 8192, b"e" * 100_000  # 2 MiB: more than a window
    loopback.handler = lambda command, stdin: (stdout, stderr, 7)
    ssh_config_file.write_text(loopback.ssh_config("loop"))
    node = SSHNode(parse_target("loop"), SSHOptions(connect_timeout=5))
    try:
        result = node.run_as_root("true", timeout=20)
    finally:
        node.close()

    assert result.output == stdout and result.stderr == stderr.decode()
    assert result.exit_status == 7


def test_read_all_reads_until_the_first_empty_chunk():
    chunks = iter([b"ab", b"c", b"", b"never"])

    assert read_all(lambda size: next(chunks)) == b"abc"


# --- QuickAckSocket: TCP_QUICKACK on each read ------------------------------------------------


@pytest.fixture
def connected_pair():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    yield client, server
    client.close()
    server.close()


def quick_ack_mode(sock: socket.socket) -> int:
    return sock.getsockopt(socket.IPPROTO_TCP, TCP_QUICKACK)


def test_paramikos_packetizer_reads_through_quick_ack_recv(connected_pair):
    """Breaks if paramiko's Packetizer stops reading with sock.recv (say recv_into: our recv
    is then bypassed and the 40 ms delayed ACKs come back), or if CPython no longer lets a
    socket subclass adopt a descriptor (fileno=). Fix QuickAckSocket for the new read call."""
    assert TCP_QUICKACK is not None, "this suite runs on Linux"
    client, server = connected_pair
    peer = client.getpeername()
    quick = quick_acks(client, timeout=5)
    assert isinstance(quick, QuickAckSocket) and quick.getpeername() == peer
    assert quick.gettimeout() == 5

    quick.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)  # the kernel's delayed-ACK mode
    assert quick_ack_mode(quick) == 0
    server.sendall(b"SSH-")
    assert paramiko.packet.Packetizer(quick).read_all(4) == b"SSH-"
    assert quick_ack_mode(quick) == 1


def test_a_plain_socket_stays_in_delayed_ack_mode(connected_pair):
    """The control for the test above: the flag is set by QuickAckSocket.recv, not by a read."""
    client, server = connected_pair
    client.setsockopt(socket.IPPROTO_TCP, TCP_QUICKACK, 0)
    server.sendall(b"SSH-")

    assert client.recv(4) == b"SSH-" and quick_ack_mode(client) == 0
