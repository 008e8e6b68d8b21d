"""Tests of the test bed itself (tests/testbed). Run as root: pytest tests/test_testbed.py"""

from __future__ import annotations

import json
import os
import resource
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

# tests/conftest.py registers the test bed's fixtures as a plugin; importing them here too
# keeps this file self-sufficient (both definitions share one TestBed per session).
from tests.testbed import (  # noqa: F401
    K3S_CONTAINERD_ARGV,
    K3S_SOCKET,
    MICROK8S_CONTAINERD_ARGV,
    MICROK8S_SOCKET,
    RKE2_CONTAINERD_ARGV,
    RKE2_SOCKET,
    Debian13Node,
    K3sNode,
    MicroK8sNode,
    Rke2Node,
    RootfsError,
    SystemdNode,
    TestBed,
    TiniNode,
    bed,
    k3s_unit_text,
    make_node,
    rke2_unit_text,
    trixie,
)
from tests.testbed.k3s import HIDDEN


def ssh(
    bed: TestBed,
    node,
    user: str,
    command: str,
    input: bytes | None = None,
    options: tuple[str, ...] = (),
) -> subprocess.CompletedProcess:
    """The system ssh client, with the bed's HOME and ~/.ssh/config only."""
    env = {"HOME": str(bed.home), "PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"}
    return subprocess.run(
        ["ssh", "-F", str(bed.ssh_config), *options, "-l", user, node.name, command],
        input=input,
        capture_output=True,
        env=env,
        timeout=60,
    )


def host_value(key: str) -> str:
    return Path("/proc/sys", *key.split(".")).read_text().strip()


# --------------------------------------------------------------------------- ssh, users


def test_client_files(bed, make_node):
    a = make_node(docker=False)
    b = make_node(docker=False, known_host=False)
    ssh_dir = bed.home / ".ssh"
    assert (ssh_dir / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (ssh_dir / "id_ed25519.pub").read_text().startswith("ssh-ed25519 ")
    known = (ssh_dir / "known_hosts").read_text().splitlines()
    assert known == [f"{a.address} {a.host_public_key}"]
    assert known[0].startswith(f"{a.address} ssh-ed25519 AAAA")
    config = (ssh_dir / "config").read_text()
    for node in (a, b):
        assert f"Host {node.name}\n    HostName {node.address}\n" in config
    assert "StrictHostKeyChecking yes" in config
    assert f"UserKnownHostsFile {ssh_dir / 'known_hosts'}" in config
    assert a.address != b.address and a.port == 22


# kinds whose sshd, users and sudo are their own (the others share TiniNode's /etc layer)
LOGIN_KINDS = {
    TiniNode: {"docker": False},
    Debian13Node: {"docker": False, "containerd": False},
}


@pytest.mark.parametrize("kind", LOGIN_KINDS, ids=lambda k: k.kind_name)
@pytest.mark.parametrize("user", ["root", "deploy", "secured"])
def test_ssh_login_system_client(bed, make_node, user, kind):
    node = make_node(kind=kind, **LOGIN_KINDS[kind])
    proc = ssh(bed, node, user, "id -un; hostname; echo $HOME")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == [
        user,
        node.name,
        "/root" if user == "root" else f"/home/{user}",
    ]


@pytest.mark.parametrize("kind", LOGIN_KINDS, ids=lambda k: k.kind_name)
def test_ssh_paramiko_testinfra_and_sudo(bed, make_node, kind):
    node = make_node(kind=kind, **LOGIN_KINDS[kind])
    root, deploy, secured = (node.host(u) for u in ("root", "deploy", "secured"))
    assert root.run("id -un").stdout.strip() == "root"
    assert deploy.user().name == "deploy"
    assert secured.user().name == "secured"
    assert deploy.user().shell in ("/bin/bash", "/bin/sh")

    # deploy: passwordless sudo; secured: sudo asks a password
    ok = deploy.run("sudo -n true")
    assert ok.rc == 0 and ok.stderr == ""  # no "unable to resolve host" either
    assert deploy.run("sudo -n id -un").stdout.strip() == "root"
    failed = secured.run("sudo -n true")
    assert failed.rc != 0 and "password" in failed.stderr
    # sudo -S with the password works (stdin through the system ssh client)
    ok = ssh(
        bed, node, "secured", "sudo -S -p '' id -un", input=(bed.sudo_password + "\n").encode()
    )
    assert ok.returncode == 0, ok.stderr.decode()
    assert ok.stdout.decode().strip() == "root"
    # timestamp_timeout=0: no cached credentials for the next command
    assert secured.run("sudo -n true").rc != 0

    # /usr/sbin is not on a non-root login's PATH (sshd's default); root has it
    for user_host in (deploy, secured):
        path = user_host.run("echo $PATH").stdout.strip().split(":")
        assert "/usr/sbin" not in path and "/sbin" not in path, path
        assert user_host.run("command -v sysctl").rc != 0
    assert "/usr/sbin" in root.run("echo $PATH").stdout.strip().split(":")

    # password login is off, root by key only
    assert (
        ssh(bed, node, "root", "true", options=("-o", "PubkeyAuthentication=no")).returncode == 255
    )


def test_unknown_host_key_rejected(bed, make_node):
    known = make_node(docker=False)
    unknown = make_node(docker=False, known_host=False)
    assert unknown.host_public_key != known.host_public_key
    proc = ssh(bed, unknown, "root", "true", options=("-o", "StrictHostKeyChecking=yes"))
    assert proc.returncode == 255
    assert b"Host key verification failed" in proc.stderr
    assert unknown.address not in bed.known_hosts.read_text()
    with pytest.raises(Exception, match="not found in known_hosts"):
        unknown.host().run("true")
    # ...while the known node passes the same strict check
    assert (
        ssh(bed, known, "root", "true", options=("-o", "StrictHostKeyChecking=yes")).returncode == 0
    )


# --------------------------------------------------------------------------- node basics


def test_node_is_sysvinit_style_and_isolated(bed, make_node):
    node = make_node(docker=False, files={"/etc/sysctl.d/99-trains.conf": "# initial\n"})
    assert node.exec("hostname").stdout.strip() == node.name
    assert node.read("/proc/1/comm") == b"tini\n"
    assert node.exec("systemctl", "is-active", "docker", check=False).returncode != 0
    # node files: written inside, not on the host
    assert node.read("/etc/sysctl.d/99-trains.conf") == b"# initial\n"
    assert not Path("/etc/sysctl.d/99-trains.conf").exists()
    node.write("/etc/sysconfig/docker", "OPTIONS=\n", 0o600)
    assert node.read("/etc/sysconfig/docker") == b"OPTIONS=\n"
    assert node.exec("stat", "-c", "%a", "/etc/sysconfig/docker").stdout == "600\n"
    assert not Path("/etc/sysconfig/docker").exists()
    assert node.read("/etc/docker/daemon.json") is None
    assert node.exec("ls", "-A", "/etc/docker").stdout == ""  # opaque: host's not seen
    # users exist only in the node
    assert b"deploy:" in node.read("/etc/passwd")
    assert "deploy:" not in Path("/etc/passwd").read_text()
    # the node has no route out of 10.200.0.0/24
    assert "default" not in node.exec("ip", "route").stdout


def test_sysctl_is_per_node(bed, make_node):
    host_before = host_value("vm.max_map_count")
    a = make_node(docker=False)
    b = make_node(docker=False, max_map_count=70000)
    assert a.max_map_count() == 65530 and b.max_map_count() == 70000

    proc = ssh(bed, a, "root", "sysctl -w vm.max_map_count=262144")
    assert proc.returncode == 0, proc.stderr.decode()
    assert ssh(bed, a, "root", "cat /proc/sys/vm/max_map_count").stdout == b"262144\n"
    assert ssh(bed, a, "root", "sysctl -n vm.max_map_count").stdout == b"262144\n"
    assert a.max_map_count() == 262144
    # through sudo as deploy, in node b
    proc = ssh(bed, b, "deploy", "sudo -n sysctl -w vm.max_map_count=300000")
    assert proc.returncode == 0, proc.stderr.decode()
    assert b.max_map_count() == 300000 and a.max_map_count() == 262144
    assert host_value("vm.max_map_count") == host_before

    # every other host-global key is read-only in a node (write the current value back:
    # harmless even if this check ever failed)
    pid_max = host_value("kernel.pid_max")
    proc = a.exec("sysctl", "-w", f"kernel.pid_max={pid_max}", check=False)
    assert proc.returncode != 0
    assert a.exec("sysctl", "--system", check=False).returncode != 0
    assert host_value("vm.max_map_count") == host_before
    # the net tree is the node's own namespace and writable
    a.exec("sysctl", "-w", "net.ipv4.ip_forward=1")
    assert a.read("/proc/sys/net/ipv4/ip_forward") == b"1\n"


def test_node_stop_cleans_up(bed, make_node):
    node = make_node(docker=False)
    netns, veth, pid, ns_pid, d = node.netns, node.veth, node.init_pid, node.ns_pid, node.dir
    node.stop()
    assert (
        netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    assert subprocess.run(["ip", "link", "show", veth], capture_output=True).returncode != 0
    for gone in (pid, ns_pid):  # dead; a zombie is left for the host's PID 1 to reap
        stat = Path(f"/proc/{gone}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not d.exists()
    assert node.name not in bed.ssh_config.read_text()


@pytest.mark.parametrize(
    "kind",
    [TiniNode, SystemdNode, K3sNode, Rke2Node, MicroK8sNode, Debian13Node],
    ids=lambda k: k.kind_name,
)
def test_nodes_have_their_own_opt_var_lib_and_var_snap(bed, make_node, kind):
    """What the host has below /opt, /var/lib and /var/snap is not seen in a node, and what
    a node writes there does not reach the host (a host where trains-server ran has
    /opt/trains: a node must not look prepared because of it)."""
    tag = uuid.uuid4().hex[:8]
    probes = [Path("/opt/trains-testbed-probe"), Path(f"/var/lib/tnp-testbed-probe-{tag}")]
    written = Path(f"/opt/tnp-written-by-node-{tag}")
    var_snap_existed = Path("/var/snap").exists()
    try:
        (probes[0] / "config").mkdir(parents=True)
        (probes[0] / "config" / "services.conf").write_text("host\n")
        probes[1].write_text("host\n")
        options = {
            TiniNode: {"docker": False},
            SystemdNode: {"docker": False, "containerd": False},
            K3sNode: {},
            Rke2Node: {},
            MicroK8sNode: {},
            Debian13Node: {"docker": False, "containerd": False},
        }[kind]
        node = make_node(kind=kind, **options)
        for probe in probes:
            assert node.exec("test", "-e", str(probe), check=False).returncode == 1, probe
        assert node.exec("ls", "-A", "/opt").stdout == ""
        node.write(f"{written}/file", "node\n")
        node.write("/var/lib/kubelet/config.yaml", "kind: KubeletConfiguration\n")
        node.write("/var/snap/microk8s/current/args/kubelet", "--v=2\n")
        node.exec("mkdir", "-p", f"/var/tnp-dir-{tag}")
        assert node.read(f"{written}/file") == b"node\n"
        assert not written.exists()
        assert not Path("/var/lib/kubelet/config.yaml").exists()
        assert Path("/var/snap").exists() == var_snap_existed
        assert not Path(f"/var/tnp-dir-{tag}").exists()
        # what the node's own services keep there is in the node directory on the host
        assert (node.dir / "opt" / written.name / "file").read_text() == "node\n"
    finally:
        shutil.rmtree(probes[0], ignore_errors=True)
        probes[1].unlink(missing_ok=True)
        shutil.rmtree(written, ignore_errors=True)


# --------------------------------------------------------------------------- docker


def test_docker_node_rlimits(bed, make_node):
    node = make_node(files={"/etc/docker/daemon.json": '{"log-level": "warn"}\n'})
    pid = node.docker_pid()
    assert pid is not None
    assert node.read("/etc/docker/daemon.json") == b'{"log-level": "warn"}\n'
    assert not Path("/etc/docker/daemon.json").exists()
    argv = node.dockerd_argv()
    assert argv[0] == "/usr/sbin/dockerd" and "--default-runtime" in argv
    # no default-ulimits yet: docker asks for none
    assert node.run_container() == {}

    node.write(
        "/etc/docker/daemon.json",
        json.dumps(
            {
                "log-level": "warn",
                "log-opts": {"max-size": "10m", "max-file": "3"},
                "default-ulimits": {
                    "nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536},
                    "memlock": {"Name": "memlock", "Soft": -1, "Hard": -1},
                },
            }
        ),
    )
    proc = ssh(bed, node, "root", "service docker restart")
    assert proc.returncode == 0, proc.stdout.decode() + proc.stderr.decode()
    node.wait_docker()
    new_pid = node.docker_pid()
    assert new_pid is not None and new_pid != pid
    limits = node.run_container()
    assert limits == {"RLIMIT_NOFILE": (1024, 65536), "RLIMIT_MEMLOCK": (-1, -1)}
    # the real container runs with the request lowered to what root may set here
    # (no CAP_SYS_RESOURCE): soft kept, hard capped at the node's own hard limit
    hard = int(node.exec("sh", "-c", "ulimit -Hn").stdout)
    out = node.exec(
        "docker", "run", "--rm", "tnp-busybox", "sh", "-c", "ulimit -Sn; ulimit -Hn"
    ).stdout.split()
    assert out == ["1024", str(min(hard, 65536))]
    # the raw record (dockerd builds the list from a map: any order)
    assert sorted(node.rlimit_records()[-1]["rlimits"], key=lambda r: r["type"]) == [
        {"type": "RLIMIT_MEMLOCK", "hard": 2**64 - 1, "soft": 2**64 - 1},
        {"type": "RLIMIT_NOFILE", "hard": 65536, "soft": 1024},
    ]


def test_rhel_node_passes_options(bed, make_node):
    node = make_node(rhel=True)
    sysconfig = node.read("/etc/sysconfig/docker").decode()
    assert 'OPTIONS="--log-driver=journald --signature-verification=false"' in sysconfig
    argv = node.dockerd_argv()
    assert "--log-driver=journald" in argv
    assert "--signature-verification=false" not in argv  # RHEL-only flag, dropped
    assert (
        "dropped RHEL-only dockerd flags: --signature-verification=false"
        in (node.log_dir / "docker.log").read_text()
    )
    raw = node.read(f"/proc/{node.docker_pid()}/cmdline")
    assert b"--log-driver=journald\0" in raw

    # a flag put into OPTIONS reaches dockerd after `service docker restart`
    node.write(
        "/etc/sysconfig/docker",
        sysconfig.replace(
            'OPTIONS="--log-driver=journald',
            'OPTIONS="--default-ulimit nofile=2048:4096 --log-driver=journald',
        ),
    )
    proc = node.exec("service", "docker", "restart", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    node.wait_docker()
    argv = node.dockerd_argv()
    assert argv[argv.index("--default-ulimit") + 1] == "nofile=2048:4096"
    assert node.run_container() == {"RLIMIT_NOFILE": (2048, 4096)}


def test_docker_restart_with_broken_config_is_visible(bed, make_node):
    """A broken daemon.json stops dockerd (as on a real node)."""
    node = make_node()
    node.write("/etc/docker/daemon.json", "{broken")
    node.exec("service", "docker", "restart", check=False)
    deadline = time.monotonic() + 10
    while node.docker_pid() is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert node.docker_pid() is None
    assert node.exec("docker", "info", check=False).returncode != 0
    node.write("/etc/docker/daemon.json", "{}")
    node.exec("service", "docker", "start")
    node.wait_docker()
    assert node.docker_pid() is not None


# --------------------------------------------------------------------------- systemd nodes


def host_hard(res: int) -> int:
    """This process's hard limit (nodes inherit it; -1 = unlimited)."""
    hard = resource.getrlimit(res)[1]
    return -1 if hard == resource.RLIM_INFINITY else hard


def capped(value: int, cap: int) -> int:
    """value lowered to cap (-1 = unlimited on either side)."""
    if cap == -1:
        return value
    return cap if value == -1 else min(value, cap)


def go_version(path: str) -> tuple[int, int]:
    """(major, minor) of the Go toolchain that built the binary at path (its buildinfo)."""
    data = Path(path).read_bytes()
    i = data.find(b"\xff Go buildinf:")
    assert i >= 0 and data[i + 15] & 2, f"{path}: no inline Go buildinfo"
    pos, length, shift = i + 32, 0, 0
    while True:  # uvarint length, then the version ("go1.19.8")
        b = data[pos]
        pos += 1
        length |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            break
    major, minor = data[pos : pos + length].decode().removeprefix("go").split(".")[:2]
    return int(major), int(minor)


def test_systemd_node_boots_services_and_files(bed, make_node):
    canary = Path(f"/tmp/tnp-canary-{uuid.uuid4().hex}")  # systemd-tmpfiles would wipe it
    canary.write_text("host /tmp\n")
    try:
        node = make_node(
            kind=SystemdNode,
            docker=False,
            files={
                "/var/lib/kubelet/config.yaml": "kind: KubeletConfiguration\n",
                "/etc/systemd/system/containerd.service.d/10-x.conf": (
                    "[Service]\nEnvironment=TNP_DROPIN=1\n"
                ),
            },
        )
        assert node.read("/proc/1/comm") == b"systemd\n"
        assert node.exec("hostname").stdout.strip() == node.name
        assert node.systemctl("is-system-running").stdout.strip() == "running"
        assert node.systemctl("is-active", "ssh", "containerd").stdout.split() == [
            "active",
            "active",
        ]
        assert node.systemctl("is-active", "docker", check=False).stdout.strip() != "active"
        # initial files are in place before systemd starts: the drop-in is in effect
        assert node.read("/var/lib/kubelet/config.yaml") == b"kind: KubeletConfiguration\n"
        assert not Path("/var/lib/kubelet/config.yaml").exists()
        assert "TNP_DROPIN=1" in node.systemctl("show", "-p", "Environment", "containerd").stdout
        assert "Server:" in node.exec("ctr", "version").stdout  # containerd answers

        # ssh (ssh.service) as root and as deploy with sudo, as on tini nodes
        proc = ssh(bed, node, "root", "id -un; hostname; systemctl is-active ssh")
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode().split() == ["root", node.name, "active"]
        proc = ssh(bed, node, "deploy", "id -un; sudo -n systemctl is-system-running")
        assert proc.returncode == 0, proc.stderr.decode()
        assert proc.stdout.decode().split() == ["deploy", "running"]

        # restart: a new MainPID; the journal has both starts
        pid = node.unit_pid("containerd")
        assert pid is not None
        proc = ssh(bed, node, "root", "systemctl restart containerd")
        assert proc.returncode == 0, proc.stderr.decode()
        new_pid = node.unit_pid("containerd")
        assert new_pid is not None and new_pid != pid
        assert node.exec("cat", f"/proc/{new_pid}/comm").stdout == "containerd\n"
        assert node.journal("containerd", lines=500).count("Started containerd.service") == 2
        assert canary.read_text() == "host /tmp\n"
    finally:
        canary.unlink()


def test_systemd_node_limits_sysctl_and_stop(bed, make_node):
    host_before = host_value("vm.max_map_count")
    node = make_node(kind=SystemdNode, docker=False)
    node.write(
        "/etc/systemd/system/containerd.service.d/99-x.conf",
        "[Service]\nLimitNOFILE=1024:65536\nLimitMEMLOCK=infinity\n",
    )
    node.systemctl("daemon-reload")
    node.systemctl("restart", "containerd")
    shown = node.systemctl(
        "show", "-p", "LimitNOFILE", "-p", "LimitNOFILESoft", "-p", "LimitMEMLOCK", "containerd"
    ).stdout.split()
    assert sorted(shown) == ["LimitMEMLOCK=infinity", "LimitNOFILE=65536", "LimitNOFILESoft=1024"]

    # What the kernel gives: root here lacks CAP_SYS_RESOURCE, so systemd cannot raise a hard
    # limit above the node's own (nofile 20000, memlock 8 MiB on this machine) and sets the
    # closest it can: soft as asked, hard lowered. A non-Go process of the same unit shows it:
    nofile_hard = capped(65536, host_hard(resource.RLIMIT_NOFILE))
    memlock = host_hard(resource.RLIMIT_MEMLOCK)
    out = node.exec(
        "systemd-run",
        "--wait",
        "--pipe",
        "--quiet",
        "-p",
        "LimitNOFILE=1024:65536",
        "-p",
        "LimitMEMLOCK=infinity",
        "sh",
        "-c",
        "ulimit -Sn; ulimit -Hn; ulimit -Sl; ulimit -Hl",
    ).stdout.split()
    kib = "unlimited" if memlock == -1 else str(memlock // 1024)
    assert out == ["1024", str(nofile_hard), kib, kib]
    # containerd itself, and its shim, are Go programs: Go (>= 1.19) raises its own soft
    # RLIMIT_NOFILE to the hard limit at start.
    limits = node.exec("cat", f"/proc/{node.unit_pid('containerd')}/limits").stdout
    nofile = next(
        line.split()[3:5] for line in limits.splitlines() if line.startswith("Max open files")
    )
    assert nofile == [str(nofile_hard), str(nofile_hard)]

    # What containerd passes down (what a CRI pod gets): the runtime wrapper's own limits.
    # Go >= 1.21 restores the original soft limit in the processes it starts (containerd ->
    # shim -> runtime: 1024); the Go 1.19 of Debian 12's containerd 1.6 does not, so there
    # the runtime inherits the raised soft limit, i.e. the (lowered) hard one. Only the
    # latter was seen on this machine.
    got = node.run_containerd_container()
    go = go_version("/usr/bin/containerd-shim-runc-v2")
    soft = 1024 if go >= (1, 21) else nofile_hard
    assert got["inherited"] == {
        "RLIMIT_NOFILE": (soft, nofile_hard),
        "RLIMIT_MEMLOCK": (memlock, memlock),
    }
    assert got["requested"] == {"RLIMIT_NOFILE": (1024, 1024)}  # ctr's default spec
    assert node.rlimit_records()[-1]["process_rlimits"][0]["type"] == "RLIMIT_NOFILE"

    # vm.max_map_count is per node; every host-global key is read-only
    assert node.max_map_count() == 65530
    proc = ssh(bed, node, "root", "sysctl -w vm.max_map_count=262144")
    assert proc.returncode == 0, proc.stderr.decode()
    assert node.max_map_count() == 262144
    assert node.exec("sysctl", "--system", check=False).returncode != 0
    assert host_value("vm.max_map_count") == host_before

    # stop: no process, netns, veth, cgroup directory or node directory is left
    cgroups = [Path("/sys/fs/cgroup", h, node.cgroup_path) for h in os.listdir("/sys/fs/cgroup")]
    assert any(c.is_dir() for c in cgroups)
    procs = [
        int(p)
        for c in cgroups
        for sub, _dirs, _files in os.walk(c)
        for p in Path(sub, "cgroup.procs").read_text().split()
    ]
    assert node.ns_pid in procs
    netns, veth, pids, d = node.netns, node.veth, (node.init_pid, node.ns_pid), node.dir
    node.stop()
    assert (
        netns
        not in subprocess.run(
            ["ip", "netns", "list"], capture_output=True, text=True, check=True
        ).stdout
    )
    assert (
        subprocess.run(["ip", "link", "show", veth], capture_output=True, check=False).returncode
        != 0
    )
    for gone in (*pids, *procs):
        stat = Path(f"/proc/{gone}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not any(c.exists() for c in cgroups)
    assert not d.exists()


def test_systemd_node_with_docker(bed, make_node):
    node = make_node(kind=SystemdNode, docker=True)
    assert (
        node.systemctl("is-active", "docker.socket", "docker", "containerd").stdout.split()
        == ["active"] * 3
    )
    argv = node.dockerd_argv()
    assert argv[:3] == ["/usr/sbin/dockerd", "-H", "fd://"]
    assert argv[argv.index("--default-runtime") + 1] == "tnp"  # from /etc/default/docker
    pid = node.unit_pid("docker")
    node.systemctl("restart", "docker")
    node.wait_docker()
    assert node.unit_pid("docker") not in (None, pid)
    assert node.run_container() == {}


# --------------------------------------------------------------------------- k3s nodes


def children_of(node, pid: int) -> list[tuple[int, str]]:
    """(pid, comm) of the processes of node whose parent is pid."""
    out = node.exec("ps", "-o", "pid=,comm=", "--ppid", str(pid), check=False).stdout
    return [(int(p), c) for p, c in (line.split(None, 1) for line in out.splitlines())]


def limits_of(node, pid: int) -> dict[str, tuple[str, str]]:
    """/proc/PID/limits of a process of node: {"Max open files": (soft, hard), ...}."""
    rows = node.exec("cat", f"/proc/{pid}/limits").stdout.splitlines()[1:]
    return {row[:26].strip(): tuple(row[26:].split()[:2]) for row in rows}


@pytest.mark.parametrize("role", ["server", "agent"])
def test_k3s_node_boots_k3s_and_its_containerd(bed, make_node, role):
    config = "write-kubeconfig-mode: '0644'\n"
    node = make_node(kind=K3sNode, role=role, files={"/etc/rancher/k3s/config.yaml": config})
    unit = "k3s" if role == "server" else "k3s-agent"
    assert node.unit == unit and node.kind_name == "k3s"
    assert node.read("/proc/1/comm") == b"systemd\n"
    assert node.systemctl("is-system-running").stdout.strip() == "running"
    assert node.systemctl("is-active", "ssh", unit).stdout.split() == ["active", "active"]
    assert node.systemctl("is-enabled", unit).stdout.strip() == "enabled"
    other = "k3s-agent" if role == "server" else "k3s"
    assert node.systemctl("is-active", other, check=False).stdout.strip() == "inactive"
    assert node.read(f"/etc/systemd/system/{unit}.service") == k3s_unit_text(role).encode()
    assert node.read("/etc/rancher/k3s/config.yaml") == config.encode()
    env = node.read(f"/etc/systemd/system/{unit}.service.env").decode()
    assert ("K3S_URL=https://" in env) == (role == "agent")
    shown = node.unit_show(
        "Type", "KillMode", "Delegate", "LimitNOFILE", "LimitNPROC", "LimitCORE", "TasksMax"
    )
    assert shown == {
        "Type": "notify",
        "KillMode": "process",
        "Delegate": "yes",
        "LimitNOFILE": "1048576",
        "LimitNPROC": "infinity",
        "LimitCORE": "infinity",
        "TasksMax": "infinity",
    }
    exec_start = node.unit_show("ExecStart")["ExecStart"]
    assert f"path=/usr/local/bin/k3s ; argv[]=/usr/local/bin/k3s {role} ;" in exec_start

    # the unit's main process is the stand-in as k3s-server / k3s-agent, the parent of the
    # real containerd, started with k3s's argv from k3s's data directory
    pid = node.k3s_pid()
    assert pid is not None and node.unit_pid(unit) == pid
    assert node.read(f"/proc/{pid}/comm") == f"k3s-{role}\n".encode()
    containerd = node.containerd_pid()
    assert containerd is not None
    assert (containerd, "containerd") in children_of(node, pid)
    assert node.argv(containerd) == list(K3S_CONTAINERD_ARGV)
    exe = node.exec("readlink", f"/proc/{containerd}/exe").stdout.strip()
    assert exe == "/var/lib/rancher/k3s/data/tnp-stand-in/bin/containerd"
    assert "Server:" in node.exec("ctr", "--address", K3S_SOCKET, "version").stdout
    # `ctr` (install.sh's link to k3s) and `k3s ctr` talk to k3s's socket by default
    proc = ssh(bed, node, "root", "ctr version && k3s ctr version && readlink $(command -v ctr)")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().count("Server:") == 2
    assert proc.stdout.decode().endswith("k3s\n")
    assert "Started" in node.journal(unit)

    # a container gets the unit's limits, capped by the sandbox: LimitNOFILE=1048576 (soft
    # and hard; Go raises a soft one to the hard anyway), no LimitMEMLOCK (systemd's default)
    limits = node.unit_show("LimitNOFILE", "LimitNOFILESoft", "LimitMEMLOCK", "LimitMEMLOCKSoft")
    assert limits["LimitNOFILE"] == limits["LimitNOFILESoft"] == "1048576"
    memlock_cap = host_hard(resource.RLIMIT_MEMLOCK)
    memlock = tuple(
        capped(-1 if v == "infinity" else int(v), memlock_cap)
        for v in (limits["LimitMEMLOCKSoft"], limits["LimitMEMLOCK"])
    )
    nofile = capped(1048576, host_hard(resource.RLIMIT_NOFILE))
    got = node.run_k3s_container()
    assert got["requested"] == {"RLIMIT_NOFILE": (1024, 1024)}  # ctr's default spec
    assert got["inherited"] == {
        "RLIMIT_NOFILE": (nofile, nofile),
        "RLIMIT_MEMLOCK": memlock,
    }


def test_k3s_node_hides_docker_and_the_system_containerd(bed, make_node):
    node = make_node(kind=K3sNode)
    for name in ("docker", "dockerd", "containerd", "containerd-shim-runc-v2"):
        proc = ssh(bed, node, "root", f"command -v {name}")
        assert proc.returncode != 0 and proc.stdout == b"", name
    # only k3s's ctr is on PATH (install.sh's link), the system one is hidden
    assert node.exec("sh", "-c", "command -v ctr").stdout == "/usr/local/bin/ctr\n"
    assert node.exec("test", "-e", "/usr/bin/ctr", check=False).returncode == 1
    proc = ssh(bed, node, "deploy", "command -v docker containerd dockerd; ls -A /usr/bin | wc -l")
    left = set(os.listdir("/usr/bin")) - set(HIDDEN["/usr/bin"])
    assert proc.stdout.decode().split() == [str(len(left))]  # the rest is all there
    load = node.systemctl(
        "show", "-p", "LoadState", "docker.service", "docker.socket", "containerd.service"
    ).stdout.split()
    assert load == ["LoadState=not-found"] * 3
    for path in (
        "/usr/sbin/dockerd",
        "/lib/systemd/system/docker.service",
        "/etc/docker",
        "/etc/containerd",
        "/etc/init.d/docker",
        "/etc/default/docker",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/run/containerd",
        "/run/docker.sock",
    ):
        assert node.exec("test", "-e", path, check=False).returncode == 1, path
    # ...while the host keeps all of it
    for path in ("/usr/bin/containerd", "/usr/sbin/dockerd", "/lib/systemd/system/docker.service"):
        assert Path(path).stat().st_size > 0, path
    assert not Path("/usr/local/bin/k3s").exists()
    assert not Path("/var/lib/rancher/k3s/data").exists()


def test_k3s_restart_brings_a_new_containerd_with_the_new_limits(bed, make_node):
    """A drop-in for k3s.service + daemon-reload + `systemctl restart k3s`: a new k3s and a
    new containerd with the unit's new limits; a container started before keeps its shim
    with the old limits (KillMode=process), as running pods do on a real k3s node."""
    node = make_node(kind=K3sNode)
    nofile_cap = host_hard(resource.RLIMIT_NOFILE)
    memlock_cap = host_hard(resource.RLIMIT_MEMLOCK)
    old_k3s, old_containerd = node.k3s_pid(), node.containerd_pid()
    running = node.start_k3s_container("/bin/sleep", "600")
    task = node.task_pid(running)
    shim = int(node.exec("ps", "-o", "ppid=", "-p", str(task)).stdout)
    assert node.read(f"/proc/{shim}/comm") == b"containerd-shim\n"
    old_nofile = str(capped(1048576, nofile_cap))
    assert limits_of(node, shim)["Max open files"] == (old_nofile, old_nofile)

    node.write(
        "/etc/systemd/system/k3s.service.d/x.conf",
        "[Service]\nLimitMEMLOCK=infinity\nLimitNOFILE=12345\n",
    )
    proc = ssh(bed, node, "root", "systemctl daemon-reload && systemctl restart k3s")
    assert proc.returncode == 0, proc.stderr.decode()
    assert node.unit_show("LimitNOFILE", "LimitMEMLOCK") == {
        "LimitNOFILE": "12345",
        "LimitMEMLOCK": "infinity",
    }
    new_k3s, new_containerd = node.k3s_pid(), node.containerd_pid()
    assert new_k3s not in (None, old_k3s)
    assert new_containerd not in (None, old_containerd)
    assert node.exec("test", "-e", f"/proc/{old_containerd}", check=False).returncode == 1
    assert (new_containerd, "containerd") in children_of(node, new_k3s)
    assert node.argv(new_containerd) == list(K3S_CONTAINERD_ARGV)
    assert node.journal("k3s", lines=500).count("Started k3s.service") == 2

    got = node.run_k3s_container()
    assert got["inherited"] == {
        "RLIMIT_NOFILE": (capped(12345, nofile_cap),) * 2,
        "RLIMIT_MEMLOCK": (capped(-1, memlock_cap),) * 2,
    }
    # the container started before runs on, its shim with the old limits
    assert node.task_pid(running) == task
    assert limits_of(node, shim)["Max open files"] == (old_nofile, old_nofile)

    # stop: nothing is left, shims and containers included
    cgroups = [Path("/sys/fs/cgroup", h, node.cgroup_path) for h in os.listdir("/sys/fs/cgroup")]
    netns, d = node.netns, node.dir
    pids = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(pids) >= 6  # systemd, sshd, k3s-server, containerd, the shim, sleep, ...
    node.stop()
    assert (
        netns not in subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    )
    for gone in pids:
        stat = Path(f"/proc/{gone}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not any(c.exists() for c in cgroups)
    assert not d.exists()


def stop_leaves_nothing(node) -> None:
    """node.stop(): no process of its network namespace, no namespace, cgroup or directory."""
    cgroups = [Path("/sys/fs/cgroup", h, node.cgroup_path) for h in os.listdir("/sys/fs/cgroup")]
    netns, d = node.netns, node.dir
    pids = subprocess.run(
        ["ip", "netns", "pids", netns], capture_output=True, text=True, check=True
    ).stdout.split()
    assert len(pids) >= 5  # systemd, journald, sshd, containerd, ...
    node.stop()
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert netns not in listed
    for gone in pids:
        stat = Path(f"/proc/{gone}/stat")
        assert not stat.exists() or stat.read_text().rsplit(")", 1)[1].split()[0] == "Z"
    assert not any(c.exists() for c in cgroups)
    assert not d.exists()


# --------------------------------------------------------------------------- RKE2 nodes


@pytest.mark.parametrize("role", ["server", "agent"])
def test_rke2_node_boots_rke2_its_containerd_and_kubelet(bed, make_node, role):
    config = "write-kubeconfig-mode: '0644'\n"
    node = make_node(kind=Rke2Node, role=role, files={"/etc/rancher/rke2/config.yaml": config})
    unit = f"rke2-{role}"
    unit_path = f"/usr/local/lib/systemd/system/{unit}.service"
    assert node.unit == unit and node.kind_name == "rke2"
    assert node.read("/proc/1/comm") == b"systemd\n"
    assert node.systemctl("is-system-running").stdout.strip() == "running"
    assert node.systemctl("is-active", "ssh", unit).stdout.split() == ["active", "active"]
    assert node.systemctl("is-enabled", unit).stdout.strip() == "enabled"
    assert node.unit_show("FragmentPath") == {"FragmentPath": unit_path}
    assert node.read(unit_path) == rke2_unit_text(role).encode()
    assert not Path(unit_path).exists()  # the node's own /usr/local/lib
    assert node.read("/etc/rancher/rke2/config.yaml") == config.encode()
    shown = node.unit_show(
        "Type", "KillMode", "Delegate", "LimitNOFILE", "LimitNPROC", "LimitCORE", "TasksMax"
    )
    assert shown == {
        "Type": "notify",
        "KillMode": "process",
        "Delegate": "yes",
        "LimitNOFILE": "1048576",
        "LimitNPROC": "infinity",
        "LimitCORE": "infinity",
        "TasksMax": "infinity",
    }
    exec_start = node.unit_show("ExecStart")["ExecStart"]
    assert f"path=/usr/local/bin/rke2 ; argv[]=/usr/local/bin/rke2 {role} ;" in exec_start

    # the unit's main process is the stand-in, comm rke2, the parent of the real containerd
    # (RKE2's argv, from RKE2's data directory) and of a kubelet with RKE2's flags
    pid = node.rke2_pid()
    assert pid is not None and node.unit_pid(unit) == pid
    assert node.read(f"/proc/{pid}/comm") == b"rke2\n"
    containerd, kubelet = node.containerd_pid(), node.kubelet_pid()
    assert containerd is not None and kubelet is not None
    assert {(containerd, "containerd"), (kubelet, "kubelet")} <= set(children_of(node, pid))
    assert node.argv(containerd) == list(RKE2_CONTAINERD_ARGV)
    data_bin = node.exec("readlink", "-f", "/var/lib/rancher/rke2/bin").stdout.strip()
    assert data_bin.startswith("/var/lib/rancher/rke2/data/v") and data_bin.endswith("/bin")
    exe = node.exec("readlink", f"/proc/{containerd}/exe").stdout.strip()
    assert exe == f"{data_bin}/containerd"
    argv = node.argv(kubelet)
    assert argv[0] == f"{data_bin}/kubelet"
    assert f"--container-runtime-endpoint=unix://{RKE2_SOCKET}" in argv
    assert f"--hostname-override={node.name}" in argv
    assert node.ctr_argv == ("/var/lib/rancher/rke2/bin/ctr", "--address", RKE2_SOCKET)
    assert "Server:" in node.exec(*node.ctr_argv, "version").stdout
    assert "Started" in node.journal(unit)

    # a container gets the unit's limits, capped by the sandbox (as on k3s)
    limits = node.unit_show("LimitNOFILE", "LimitNOFILESoft", "LimitMEMLOCK", "LimitMEMLOCKSoft")
    assert limits["LimitNOFILE"] == limits["LimitNOFILESoft"] == "1048576"
    memlock_cap = host_hard(resource.RLIMIT_MEMLOCK)
    memlock = tuple(
        capped(-1 if v == "infinity" else int(v), memlock_cap)
        for v in (limits["LimitMEMLOCKSoft"], limits["LimitMEMLOCK"])
    )
    nofile = capped(1048576, host_hard(resource.RLIMIT_NOFILE))
    got = node.run_distro_container()
    assert got["requested"] == {"RLIMIT_NOFILE": (1024, 1024)}  # ctr's default spec
    assert got["inherited"] == {"RLIMIT_NOFILE": (nofile, nofile), "RLIMIT_MEMLOCK": memlock}


@pytest.mark.parametrize("kind", [Rke2Node, MicroK8sNode])
def test_distribution_nodes_hide_docker_and_the_system_containerd(bed, make_node, kind):
    node = make_node(kind=kind)
    for name in ("docker", "dockerd", "containerd", "containerd-shim-runc-v2", "ctr"):
        proc = ssh(bed, node, "root", f"command -v {name}")
        assert proc.returncode != 0 and proc.stdout == b"", name
    load = node.systemctl(
        "show", "-p", "LoadState", "docker.service", "docker.socket", "containerd.service"
    ).stdout.split()
    assert load == ["LoadState=not-found"] * 3
    for path in (
        "/usr/bin/ctr",
        "/usr/sbin/dockerd",
        "/usr/local/bin/docker",
        "/lib/systemd/system/docker.service",
        "/etc/docker",
        "/etc/containerd",
        "/etc/init.d/docker",
        "/etc/default/docker",
        "/var/lib/docker",
        "/var/lib/containerd",
        "/run/containerd",
        "/run/docker.sock",
    ):
        assert node.exec("test", "-e", path, check=False).returncode == 1, path
    # the distribution's own containerd is not the system one
    assert node.exec("systemctl", "is-active", "containerd", check=False).stdout != "active\n"
    for path in ("/usr/bin/containerd", "/usr/sbin/dockerd", "/lib/systemd/system/docker.service"):
        assert Path(path).stat().st_size > 0, path


def test_rke2_restart_brings_a_new_containerd_with_the_new_limits(bed, make_node):
    """A drop-in for rke2-server.service + daemon-reload + `systemctl restart rke2-server`: a
    new rke2, containerd and kubelet, containerd with the unit's new limits; a container
    started before keeps its shim with the old limits (KillMode=process)."""
    node = make_node(kind=Rke2Node)
    nofile_cap = host_hard(resource.RLIMIT_NOFILE)
    memlock_cap = host_hard(resource.RLIMIT_MEMLOCK)
    old = (node.rke2_pid(), node.containerd_pid(), node.kubelet_pid())
    running = node.start_distro_container("/bin/sleep", "600")
    task = node.task_pid(running)
    shim = int(node.exec("ps", "-o", "ppid=", "-p", str(task)).stdout)
    old_nofile = str(capped(1048576, nofile_cap))
    assert limits_of(node, shim)["Max open files"] == (old_nofile, old_nofile)

    node.write(
        "/etc/systemd/system/rke2-server.service.d/x.conf",
        "[Service]\nLimitMEMLOCK=infinity\nLimitNOFILE=12345\n",
    )
    proc = ssh(bed, node, "root", "systemctl daemon-reload && systemctl restart rke2-server")
    assert proc.returncode == 0, proc.stderr.decode()
    assert node.unit_show("LimitNOFILE", "LimitMEMLOCK") == {
        "LimitNOFILE": "12345",
        "LimitMEMLOCK": "infinity",
    }
    new = (node.rke2_pid(), node.containerd_pid(), node.kubelet_pid())
    for before, after in zip(old, new, strict=True):
        assert after not in (None, before)
        assert node.exec("test", "-e", f"/proc/{before}", check=False).returncode == 1
    assert (new[1], "containerd") in children_of(node, new[0])
    assert node.argv(new[1]) == list(RKE2_CONTAINERD_ARGV)
    assert node.journal("rke2-server", lines=500).count("Started rke2-server.service") == 2

    got = node.run_distro_container()
    assert got["inherited"] == {
        "RLIMIT_NOFILE": (capped(12345, nofile_cap),) * 2,
        "RLIMIT_MEMLOCK": (capped(-1, memlock_cap),) * 2,
    }
    assert node.task_pid(running) == task
    assert limits_of(node, shim)["Max open files"] == (old_nofile, old_nofile)
    stop_leaves_nothing(node)


# --------------------------------------------------------------------------- MicroK8s nodes

MIB = 1024 * 1024
SNAP = "/var/lib/snapd/snap/microk8s/x1"
MICROK8S_ARGS = "/var/snap/microk8s/current/args"


def microk8s_expected(nofile: int, memlock_kib: int) -> dict[str, tuple[int, int]]:
    """What containerd-env's `ulimit -n NOFILE || true` and `ulimit -l KIB || true` give
    containerd and so its containers: bash sets soft and hard together, and where the sandbox
    forbids raising the hard limit the ulimit fails and `|| true` keeps the inherited value
    (the unit has no Limit*: systemd's defaults, capped); containerd raises its soft nofile to
    the hard one."""
    nofile_cap = host_hard(resource.RLIMIT_NOFILE)
    memlock_cap = host_hard(resource.RLIMIT_MEMLOCK)
    memlock = memlock_kib * 1024
    if memlock_cap != -1 and memlock > memlock_cap:
        memlock = capped(8 * MIB, memlock_cap)  # systemd's default DefaultLimitMEMLOCK
    return {"RLIMIT_NOFILE": (capped(nofile, nofile_cap),) * 2, "RLIMIT_MEMLOCK": (memlock,) * 2}


def test_microk8s_node_boots_containerd_and_kubelite_as_snapd_runs_them(bed, make_node):
    node = make_node(kind=MicroK8sNode)
    units = ["snap.microk8s.daemon-containerd", "snap.microk8s.daemon-kubelite"]
    assert node.unit == units[0] and node.kind_name == "microk8s"
    assert node.systemctl("is-system-running").stdout.strip() == "running"
    assert node.systemctl("is-active", "ssh", *units).stdout.split() == ["active"] * 3
    assert node.systemctl("is-enabled", *units).stdout.split() == ["enabled"] * 2
    unit_text = node.read(f"/etc/systemd/system/{units[0]}.service").decode()
    assert "Limit" not in unit_text and "X-Snappy=yes" in unit_text
    assert node.unit_show("Type", "KillMode", "Restart", "LimitMEMLOCK") == {
        "Type": "simple",
        "KillMode": "process",
        "Restart": "on-failure",
        "LimitMEMLOCK": "8388608",  # systemd's default: the unit sets none
    }
    exec_start = node.unit_show("ExecStart")["ExecStart"]
    assert "argv[]=/usr/bin/snap run microk8s.daemon-containerd ;" in exec_start
    mount = node.systemctl("is-active", "var-lib-snapd-snap-microk8s-x1.mount").stdout
    assert mount.strip() == "active"  # the unit's Requires=, the snap's read-only directory
    assert node.exec("touch", f"{SNAP}/x", check=False).returncode != 0

    # containerd is the unit's main process (the wrapper execs it), with MicroK8s's args
    pid = node.containerd_pid()
    assert pid is not None and pid == node.unit_pid(units[0])
    assert node.argv(pid) == list(MICROK8S_CONTAINERD_ARGV)
    assert node.exec("readlink", f"/proc/{pid}/exe").stdout.strip() == f"{SNAP}/bin/containerd"
    kubelite = node.kubelite_pid()
    assert kubelite is not None and node.read(f"/proc/{kubelite}/comm") == b"kubelite\n"
    assert "--kubelet-args-file=/var/snap/microk8s/x1/args/kubelet" in node.argv(kubelite)
    kubelet_args = node.read(f"{MICROK8S_ARGS}/kubelet").decode()
    assert "--container-runtime-endpoint=${SNAP_COMMON}/run/containerd.sock" in kubelet_args
    env = node.read(f"{MICROK8S_ARGS}/containerd-env").decode()
    assert "ulimit -n 65536 || true\n" in env and "ulimit -l 16384 || true\n" in env
    assert node.ctr_argv == (f"{SNAP}/bin/ctr", "--address", MICROK8S_SOCKET)

    # the microk8s command (snapd's link to snap) is on every PATH, `microk8s ctr` talks to
    # MicroK8s's containerd
    for user in ("root", "deploy"):
        proc = ssh(bed, node, user, "command -v microk8s")
        assert proc.stdout == b"/usr/local/bin/microk8s\n", user
    proc = ssh(bed, node, "root", "microk8s ctr version")
    assert proc.returncode == 0 and b"Server:" in proc.stdout, proc.stderr.decode()

    # a container gets containerd-env's limits, as far as the sandbox lets them be set
    got = node.run_distro_container()
    assert got["requested"] == {"RLIMIT_NOFILE": (1024, 1024)}  # ctr's default spec
    assert got["inherited"] == microk8s_expected(65536, 16384)


def test_microk8s_stop_start_brings_containerd_env_limits_and_ends_the_pods(bed, make_node):
    """containerd-env edited + `microk8s stop; microk8s start`: a new containerd whose
    containers get the new limits, and every container of before is gone (MicroK8s kills the
    shims). A restart of the containerd unit alone keeps them (KillMode=process)."""
    node = make_node(kind=MicroK8sNode)
    running = node.start_distro_container("/bin/sleep", "600")
    task = node.task_pid(running)
    first = node.containerd_pid()
    node.systemctl("restart", "snap.microk8s.daemon-containerd")
    second = node.containerd_pid()
    assert second not in (None, first)
    assert node.task_pid(running) == task  # the pod survives a restart of containerd

    env = node.read(f"{MICROK8S_ARGS}/containerd-env").decode()
    env = env.replace("ulimit -n 65536", "ulimit -n 12345").replace(
        "ulimit -l 16384", "ulimit -l 4096"
    )
    node.write(f"{MICROK8S_ARGS}/containerd-env", env)
    proc = ssh(bed, node, "root", "microk8s stop && microk8s start")
    assert proc.returncode == 0, proc.stderr.decode()
    assert proc.stdout.decode().split() == ["Stopped.", "Started."]
    third = node.containerd_pid()
    assert third not in (None, first, second)
    assert node.argv(third) == list(MICROK8S_CONTAINERD_ARGV)
    assert node.exec("test", "-e", f"/proc/{task}", check=False).returncode == 1
    got = node.run_distro_container()
    assert got["inherited"] == {
        "RLIMIT_NOFILE": (capped(12345, host_hard(resource.RLIMIT_NOFILE)),) * 2,
        "RLIMIT_MEMLOCK": (4 * MIB, 4 * MIB),
    }
    node.start_distro_container("/bin/sleep", "600")
    stop_leaves_nothing(node)


# --------------------------------------------------------------------------- Debian 13 nodes


def test_debian13_node_boots_its_own_systemd_docker_and_containerd(bed, make_node):
    node = make_node(
        kind=Debian13Node,
        files={
            "/etc/systemd/system/containerd.service.d/10-x.conf": "[Service]\nEnvironment=X=1\n"
        },
    )
    assert node.kind_name == "debian13"
    assert node.read("/proc/1/comm") == b"systemd\n"
    assert node.exec("systemctl", "--version").stdout.startswith("systemd 257 ")
    assert node.systemctl("is-system-running").stdout.strip() == "running"
    os_release = node.read("/etc/os-release").decode()
    assert "VERSION_CODENAME=trixie" in os_release and 'VERSION_ID="13"' in os_release
    assert node.exec("hostname").stdout.strip() == node.name
    assert node.exec("dockerd", "--version").stdout.startswith("Docker version 26.")
    assert node.exec("docker", "version", "--format", "{{.Server.Version}}").stdout.startswith(
        "26."
    )
    assert node.exec("containerd", "--version").stdout.split()[2].startswith(("1.7.", "v1.7."))
    units = ("ssh", "containerd", "docker.socket", "docker")
    assert node.systemctl("is-active", *units).stdout.split() == ["active"] * 4
    assert "X=1" in node.systemctl("show", "-p", "Environment", "containerd").stdout
    # the rootfs's own units, unchanged: docker.service reads DOCKER_OPTS from
    # /etc/default/docker (where the bed registers the runtime wrapper) and sets no
    # LimitNOFILE; containerd.service has LimitNOFILE=infinity
    unit = node.read("/lib/systemd/system/docker.service").decode()
    assert "EnvironmentFile=-/etc/default/docker\n" in unit and "$DOCKER_OPTS" in unit
    assert "LimitNOFILE" not in unit
    assert "LimitNOFILE=infinity" in node.read("/lib/systemd/system/containerd.service").decode()
    assert node.read("/etc/docker/daemon.json") is None
    argv = node.dockerd_argv()
    assert argv[:3] == ["/usr/sbin/dockerd", "-H", "fd://"]
    assert argv[argv.index("--default-runtime") + 1] == "tnp"
    assert node.wait_docker()["DefaultRuntime"] == "tnp"
    # the host's files are not the node's: its passwd is the rootfs's with the bed users
    passwd = node.read("/etc/passwd").decode()
    assert "deploy:x:1501:1501:" in passwd and "deploy:" not in Path("/etc/passwd").read_text()
    assert node.exec("test", "-e", "/etc/ssh/ssh_host_rsa_key", check=False).returncode == 1

    # a container through docker and the wrapper: no default-ulimits, no rlimits asked
    assert node.run_container() == {}
    node.write(
        "/etc/docker/daemon.json",
        json.dumps(
            {"default-ulimits": {"nofile": {"Name": "nofile", "Soft": 1024, "Hard": 65536}}}
        ),
    )
    pid = node.unit_pid("docker")
    proc = ssh(bed, node, "root", "systemctl restart docker")
    assert proc.returncode == 0, proc.stderr.decode()
    assert node.unit_pid("docker") not in (None, pid)
    assert node.run_container() == {"RLIMIT_NOFILE": (1024, 65536)}
    # through containerd alone: ctr's spec asks 1024:1024; the runtime inherits containerd's
    # infinity as capped by the sandbox
    got = node.run_containerd_container()
    assert got["requested"] == {"RLIMIT_NOFILE": (1024, 1024)}
    nofile = host_hard(resource.RLIMIT_NOFILE)
    assert got["inherited"]["RLIMIT_NOFILE"][1] == nofile

    # dockerd --validate (docker >= 23): a good file, a broken one, a flag/file conflict
    node.write("/tmp/good.json", '{"log-level": "warn"}\n')
    node.write("/tmp/bad.json", '{"log-level": "warn"\n')
    node.write("/tmp/both.json", '{"insecure-registries": ["r.example:5000"]}\n')
    good = node.exec("dockerd", "--validate", "--config-file", "/tmp/good.json", check=False)
    assert (good.returncode, good.stdout + good.stderr) == (0, "configuration OK\n")
    bad = node.exec("dockerd", "--validate", "--config-file", "/tmp/bad.json", check=False)
    assert bad.returncode == 1 and "configuration OK" not in bad.stdout + bad.stderr
    both = node.exec(
        "dockerd",
        "--validate",
        "--config-file",
        "/tmp/both.json",
        "--insecure-registry",
        "r.example:5000",
        check=False,
    )
    assert both.returncode == 1
    assert "specified both as a flag and in the configuration file" in both.stderr
    assert "insecure-registries" in both.stderr

    # stop: nothing is left; the rootfs stays for the bed's next Debian 13 node
    stop_leaves_nothing(node)
    assert (node.rootfs / "usr/lib/os-release").is_file()


def test_debian13_nodes_have_their_own_root(bed, make_node):
    """Two nodes on one rootfs: what one writes anywhere is not seen by the other, nor in the
    rootfs (copy-on-write)."""
    a = make_node(kind=Debian13Node, docker=False, containerd=False)
    b = make_node(kind=Debian13Node, docker=False, containerd=False, known_host=False)
    a.write("/usr/local/bin/tnp-probe", "a\n")
    a.exec("rm", "/usr/bin/dpkg")
    assert b.read("/usr/local/bin/tnp-probe") is None
    assert b.exec("test", "-x", "/usr/bin/dpkg", check=False).returncode == 0
    assert not (a.rootfs / "usr/local/bin/tnp-probe").exists()
    assert (a.rootfs / "usr/bin/dpkg").exists()
    assert a.host_public_key != b.host_public_key
    assert ssh(bed, b, "root", "true").returncode == 255  # an unknown host key
    assert ssh(bed, a, "root", "true").returncode == 0


def test_debian13_rootfs_recipe_and_loud_failures(bed, make_node, monkeypatch, tmp_path):
    """The mirror comes from the host's apt sources; a rootfs that cannot be built fails the
    node's start with the reason (never a skip)."""
    deb822 = (
        "Types: deb\nURIs: http://deb.debian.org/debian-security\nSuites: bookworm-security\n\n"
        "Types: deb-src\nURIs: http://src.example/debian\n\n"
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm\n"
    )
    assert trixie.debian_mirror({"debian.sources": deb822}) == "http://mirror.example/debian"
    one_line = "deb [signed-by=/k.gpg] https://m.example/debian bookworm main\n"
    assert trixie.debian_mirror({"a.list": "# deb http://x/debian b main\n" + one_line}) == (
        "https://m.example/debian"
    )
    assert (
        trixie.debian_mirror({"n.list": "deb https://deb.nodesource.com/node_20.x x m\n"}) is None
    )
    assert trixie.host_debian_mirror().endswith("/debian")

    # no mirror in the host's sources: the node does not start, and says why
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "other.list").write_text("deb https://packages.example/apt x main\n")
    monkeypatch.setattr(trixie, "APT_SOURCES", (tmp_path / "sources",))
    monkeypatch.setattr(bed, "kind_assets", {})
    with pytest.raises(RootfsError, match="no Debian mirror"):
        make_node(kind=Debian13Node)
    assert not list(bed.nodes_dir.iterdir())
    # no mmdebstrap; a mirror that does not answer: mmdebstrap's own message
    monkeypatch.setattr(trixie, "MMDEBSTRAP", "tnp-no-such-mmdebstrap")
    with pytest.raises(RootfsError, match="need tnp-no-such-mmdebstrap"):
        trixie.build_rootfs(tmp_path / "rootfs", "http://127.0.0.1:9/debian", "pw")
    monkeypatch.setattr(trixie, "MMDEBSTRAP", "mmdebstrap")
    with pytest.raises(RootfsError, match="(?s)failed.*127.0.0.1:9"):
        trixie.build_rootfs(tmp_path / "rootfs", "http://127.0.0.1:9/debian", "pw")
    assert not (tmp_path / "rootfs").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["sources"]


# --------------------------------------------------------------------------- hygiene

HOST_FILES = (
    "/etc/passwd",
    "/etc/shadow",
    "/etc/group",
    "/etc/sudoers",
    "/etc/ssh/sshd_config",
    "/etc/init.d/docker",
    "/etc/default/docker",
    "/etc/hostname",
    "/etc/machine-id",
)
HOST_KEYS = (
    "vm.max_map_count",
    "kernel.pid_max",
    "net.ipv4.ip_forward",
    "fs.nr_open",
    "fs.file-max",
    "kernel.hostname",
)


def host_state() -> dict:
    state = {p: Path(p).read_bytes() if Path(p).exists() else None for p in HOST_FILES}
    state.update({k: host_value(k) for k in HOST_KEYS})
    for d in (
        "/etc/docker",
        "/etc/sysctl.d",
        "/etc/sudoers.d",
        "/home",
        "/etc/systemd/system",
        "/usr/local/bin",
        "/usr/lib/systemd/system",
    ):
        state[d] = sorted(os.listdir(d)) if os.path.isdir(d) else None
    state["/etc/sysconfig"] = os.path.exists("/etc/sysconfig")
    return state


@pytest.fixture(scope="module", autouse=True)
def host_state_before(bed):
    """Taken before the first test of this file (after the bed started)."""
    return host_state()


def test_host_untouched(bed, host_state_before):
    """Last test of the file: the host's files and kernel values are as before."""
    assert host_state() == host_state_before
