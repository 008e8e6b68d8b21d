"""Integration test bed for trains-nodeprep: real sshd (+ dockerd) "nodes" on this machine.

Each node is one sshd (and, optionally, one dockerd started by the node's sysvinit script)
in its own network, mount, UTS and PID namespaces, with tini as PID 1 (no systemd), so the
tool under test must use `service docker restart` there; or, with init="systemd", a node
that boots the real systemd (see "systemd nodes" below). See /work/shared/TESTBED.md for
the facts this is built on. Must run as root.

    bed = TestBed(workdir); bed.start()
    node = bed.add_node("n1", docker=True, rhel=False)
    node.exec("cat", "/etc/docker/daemon.json")      # as root inside the node
    sd = bed.add_node("n2", init="systemd", docker=False)   # containerd=True by default
    sd.systemctl("restart", "containerd"); sd.unit_pid("containerd")
    bed.stop()

What a node has:
- an address 10.200.0.X on the host bridge tnpbr0 (10.200.0.1/24), port 22;
- /etc = overlay(bed layer + host /etc, per-node upper): users root (key only), deploy
  (passwordless sudo), secured (sudo asks TestBed.sudo_password); /etc/docker empty
  (opaque); a patched /etc/init.d/docker (ulimit may fail; sources /etc/sysconfig/docker
  and appends $OPTIONS, as RHEL's unit does; the RHEL-only --signature-verification,
  --add-registry, --block-registry, --confirm-def-push flags, which upstream dockerd 20.10
  rejects, are dropped with a note in /var/log/docker.log); /etc/default/docker registers
  the OCI runtime wrapper "tnp" (records requested rlimits, see tnp-runtime);
- private tmpfs /run, /home, /root, /tmp, /var/tmp; /var/lib an overlay with per-node
  /var/lib/docker and /var/lib/containerd; per-node /var/log (NODE_DIR/var-log on the host);
- /usr/local/bin/docker (the host's docker 28 client) replaced by /usr/bin/docker (20.10);
- /proc/sys read-only except net/ and a per-node regular file bound over
  /proc/sys/vm/max_map_count: `sysctl -w vm.max_map_count=N` and `sysctl -p FILE` act on
  this node only; `sysctl --system` exits non-zero (host-global keys are read-only).

systemd nodes (add_node(..., init="systemd", docker=False|True, containerd=True)):
- PID 1 is Debian's /lib/systemd/systemd (252) with container=other, booted by
  node-init-systemd.sh under script(1) (its pty is the node's /dev/console) in new mount,
  UTS, IPC, PID and cgroup namespaces. The node's cgroup is
  /sys/fs/cgroup/<hierarchy>/tnp-testbed/<TestBed.id>/<node> in every host hierarchy
  (Node.cgroup_path), mounted again inside the node as its /sys/fs/cgroup; a private /dev,
  a read-only sysfs, /proc/sys as on tini nodes (so `sysctl --system` exits 1 there too).
- Units: Debian's unchanged ssh.service (the bed's sshd_config, keys and users, as above;
  sshd logs to the journal), containerd.service (enabled unless containerd=False) and, with
  docker=True, docker.socket + docker.service (which reads /etc/default/docker: the runtime
  wrapper "tnp" is registered as on tini nodes). An extra /etc layer (TestBed.systemd_layer)
  has its own /etc/systemd/system (opaque: none of the host's enabled units), default target
  multi-user, masks units that cannot work in a namespace or would act on the host
  (SYSTEMD_MASKED: udev, systemd-tmpfiles-*, systemd-sysctl, modules, binfmt, apparmor,
  getty, logind, timesyncd, remount-fs, ...) and all generators (the host's /etc/init.d
  scripts and fstab would become units). The node's own /etc/hostname and /etc/machine-id.
- files= are written before systemd starts (drop-ins in /etc/systemd/system/*.d count at
  boot). Ready when `systemctl is-system-running` says running or degraded, containerd
  answers `ctr version` (and docker `docker info`) and sshd its banner; else NodeStartError
  with the console and the journal. Boot: about 0.4 s (0.9 s with docker) here.
- Helpers: node.systemctl(*args, check=True), node.unit_pid(unit) (MainPID or None),
  node.journal(unit, lines=50), node.run_containerd_container() (ctr run with a busybox
  rootfs and the runtime wrapper; returns {"requested": rlimits in the spec, "inherited":
  the wrapper's own RLIMIT_NOFILE/RLIMIT_MEMLOCK, i.e. what containerd passes down}).
- Limits: root here lacks CAP_SYS_RESOURCE. A unit's LimitNOFILE=1024:65536 shows as such in
  `systemctl show`, but systemd sets the closest it may (hard lowered to the node's own,
  nofile 20000 / memlock 8 MiB here). containerd and its shim are Go 1.19 programs, which
  raise their soft RLIMIT_NOFILE to the hard one and pass that on (Go >= 1.21 would pass
  the original soft limit on).
- Node.stop() SIGKILLs the node's PID 1 (the whole PID namespace) and removes its cgroups;
  TestBed.cleanup_leftovers() also kills and removes whatever is left below tnp-testbed.

Client side: TestBed.home/.ssh holds id_ed25519, known_hosts (plain "IP ssh-ed25519 ..."
lines for nodes made with known_host=True; lines a client adds stay until that node stops)
and config (an alias per node name, User root). Node.host(user) is a testinfra Host that
checks host keys against that known_hosts. Node.exec() returns str stdout/stderr
(text=False for bytes); Node.read() returns bytes.

pytest: tests/conftest.py has `pytest_plugins = ["tests.testbed"]`, giving the fixtures
`bed` (session) and `make_node` (function; nodes stopped at teardown). One bed per machine
at a time: a second session waits for /run/tnp-testbed.lock.
"""

from __future__ import annotations

import fcntl
import functools
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

__all__ = ["TestBed", "Node", "NodeStartError", "bed", "make_node"]

HERE = Path(__file__).resolve().parent
BRIDGE = "tnpbr0"
SUBNET_PREFIX = "10.200.0."
BRIDGE_ADDRESS = SUBNET_PREFIX + "1"
BRIDGE_MAC = "02:74:6e:70:00:01"
FIRST_OCTET = 10
NETNS_PREFIX = "tnp-"
VETH_PREFIX = "tnpv"
LOCK_FILE = "/run/tnp-testbed.lock"
IMAGE = "tnp-busybox"
RLIMITS_RECORD = "/var/log/tnp-rlimits.jsonl"
RUNTIME_PATH = "/etc/tnp-testbed/tnp-runtime"  # path inside nodes (in the bed layer)
NODE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
CLEAN_ENV = {"PATH": NODE_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
UNLIMITED = 2**64 - 1
BED_USERS = {"deploy": 1501, "secured": 1502}
RHEL_SYSCONFIG = (HERE / "sysconfig-docker.rhel").read_text()
INITS = ("tini", "systemd")
CGROUP_ROOT = Path("/sys/fs/cgroup")
CGROUP_TOP = "tnp-testbed"  # /sys/fs/cgroup/<hierarchy>/tnp-testbed/<bed id>/<node>
BUSYBOX_ROOTFS = "/var/lib/containerd/tnp-busybox-rootfs"  # in systemd nodes (per node)
# Units a systemd node must not run: they cannot work in a namespace, or would act on the
# host (its /tmp, sysctls, kernel modules, clock, root file system), or are host services.
# Each becomes a symlink to /dev/null in the systemd layer's /etc/systemd/system.
SYSTEMD_MASKED = (
    # udev
    "systemd-udevd.service",
    "systemd-udevd-control.socket",
    "systemd-udevd-kernel.socket",
    "systemd-udev-trigger.service",
    "systemd-udev-settle.service",
    "systemd-hwdb-update.service",
    # tmpfiles (its boot run would clean the host's /tmp), sysctl, modules, binfmt, apparmor
    "systemd-tmpfiles-setup.service",
    "systemd-tmpfiles-setup-dev.service",
    "systemd-tmpfiles-setup-dev-early.service",
    "systemd-tmpfiles-clean.service",
    "systemd-tmpfiles-clean.timer",
    "systemd-sysctl.service",
    "systemd-modules-load.service",
    "kmod-static-nodes.service",
    "proc-sys-fs-binfmt_misc.automount",
    "proc-sys-fs-binfmt_misc.mount",
    "systemd-binfmt.service",
    "apparmor.service",
    # consoles and logins
    "getty.target",
    "getty-static.service",
    "console-getty.service",
    "getty@.service",
    "serial-getty@.service",
    "systemd-logind.service",
    # file systems, clock, kernel state
    "systemd-remount-fs.service",
    "systemd-fsck-root.service",
    "systemd-fsck@.service",
    "dev-hugepages.mount",
    "dev-mqueue.mount",
    "sys-kernel-config.mount",
    "sys-kernel-debug.mount",
    "sys-kernel-tracing.mount",
    "sys-fs-fuse-connections.mount",
    "systemd-pstore.service",
    "systemd-timesyncd.service",
    "systemd-random-seed.service",
    "systemd-journald-audit.socket",
    "systemd-firstboot.service",
    "systemd-machine-id-commit.service",
    "systemd-sysusers.service",
    "ldconfig.service",
    "systemd-journal-catalog-update.service",
    "systemd-update-done.service",
    "e2scrub_reap.service",
    "e2scrub_all.timer",
    "fstrim.timer",
)
_NAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,39}$")


class NodeStartError(RuntimeError):
    pass


def _run(
    *argv: str, check: bool = True, input: bytes | None = None, timeout: float | None = 60
) -> subprocess.CompletedProcess:
    proc = subprocess.run(argv, input=input, capture_output=True, timeout=timeout, env=CLEAN_ENV)
    if check and proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, argv, proc.stdout, proc.stderr)
    return proc


def _children(pid: int) -> list[int]:
    """Direct children of pid (this kernel has no /proc/PID/task/TID/children)."""
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            kids.append(int(entry))
    return kids


def _pid_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def _netns_pids(netns: str) -> list[int]:
    proc = _run("ip", "netns", "pids", netns, check=False)
    return [int(p) for p in proc.stdout.split()]


def _link_exists(name: str) -> bool:
    return _run("ip", "link", "show", "dev", name, check=False).returncode == 0


def _cgroup_hierarchies() -> list[tuple[str, str, str]]:
    """The host's cgroup hierarchies: (directory below /sys/fs/cgroup, fstype, options),
    e.g. ("memory", "cgroup", "memory"), ("systemd", "cgroup", "name=systemd"),
    ("unified", "cgroup2", "")."""
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            pre, _, post = line.partition(" - ")
            mount_point = pre.split()[4]
            fstype, _source, options = post.split()[:3]
            if fstype not in ("cgroup", "cgroup2"):
                continue
            if mount_point == str(CGROUP_ROOT):
                raise NodeStartError(
                    "systemd nodes need cgroup v1 hierarchies below "
                    "/sys/fs/cgroup; this machine has a pure cgroup v2 "
                    "mount there (not supported by the test bed)"
                )
            parent, _, name = mount_point.rpartition("/")
            if parent != str(CGROUP_ROOT):
                continue
            opts = [o for o in options.split(",") if o not in ("rw", "ro")]
            found.append((name, fstype, ",".join(opts)))
    return found


def _cgroup_hierarchies_or_none() -> list[tuple[str, str, str]]:
    try:
        return _cgroup_hierarchies()
    except NodeStartError:
        return []


def _cgroup_procs(path: Path) -> list[int]:
    """pids (host view) in the cgroup directory path and all its descendants."""
    pids = []
    for dirpath, _dirs, _files in os.walk(path):
        try:
            pids += [int(p) for p in Path(dirpath, "cgroup.procs").read_text().split()]
        except (OSError, ValueError):
            pass
    return pids


def _remove_cgroup_tree(path: Path, timeout: float = 10.0) -> None:
    """SIGKILL every process in the cgroup tree at path, then remove its directories
    (deepest first). Raises RuntimeError if that does not succeed within timeout."""
    deadline = time.monotonic() + timeout
    while path.exists():
        for pid in _cgroup_procs(path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        for dirpath, _dirs, _files in os.walk(path, topdown=False):
            try:
                os.rmdir(dirpath)
            except FileNotFoundError:
                pass
            except OSError:
                break  # busy (processes still exiting): retry
        if not path.exists():
            return
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"cannot remove cgroup {path}: processes {_cgroup_procs(path)} remain"
            )
        time.sleep(0.05)


def _make_cgroup(path: Path) -> None:
    """mkdir -p of a cgroup directory; in a cpuset hierarchy copy cpus and mems down, which
    a new v1 cpuset lacks (no process could join it otherwise)."""
    missing = []
    p = path
    while not p.exists():
        missing.append(p)
        p = p.parent
    for d in reversed(missing):
        d.mkdir()
        for key in ("cpuset.cpus", "cpuset.mems"):
            f = d / key
            if f.exists() and not f.read_text().strip():
                f.write_text((d.parent / key).read_text())


def _descendants(pid: int, depth: int = 5) -> list[int]:
    found, level = [], [pid]
    for _ in range(depth):
        level = [kid for p in level for kid in _children(p)]
        found += level
    return found


def _nspid(pid: int) -> list[int]:
    """NSpid of pid: its pid in each PID namespace, outermost first ([] if gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("NSpid:"):
                    return [int(x) for x in line.split()[1:]]
    except OSError:
        pass
    return []


def _tail(path: Path, limit: int = 4000) -> str:
    try:
        data = path.read_bytes()
    except OSError:
        return f"({path}: absent)"
    return data[-limit:].decode(errors="replace")


# --------------------------------------------------------------------------- TestBed


class TestBed:
    """A set of nodes on the bridge tnpbr0. One bed per machine at a time (flock)."""

    __test__ = False  # not a pytest test class

    sudo_password: str = "tnp-Secured-2024!"
    node_start_timeout: float = 20.0

    def __init__(self, workdir: Path) -> None:
        self.workdir = Path(workdir).resolve()
        self.home = self.workdir / "home"
        self.layer = self.workdir / "layer"
        self.keys = self.workdir / "keys"
        self.nodes_dir = self.workdir / "nodes"
        self.nodes: dict[str, Node] = {}
        self._next_octet = FIRST_OCTET
        self._lock_fd: int | None = None
        self._busybox_tar: bytes | None = None
        self.started = False
        # names this bed's cgroup directory (systemd nodes): CGROUP_TOP/<id>/<node>
        self.id = f"bed{os.getpid()}-{uuid.uuid4().hex[:8]}"

    # ----------------------------------------------------------------- life cycle
    def start(self, lock_timeout: float = 900.0) -> None:
        if os.geteuid() != 0:
            raise PermissionError("the test bed needs root")
        if self.started:
            return
        self._lock(lock_timeout)
        try:
            self.cleanup_leftovers()
            self._setup_bridge()
            for d in (self.home, self.keys, self.nodes_dir):
                d.mkdir(parents=True, exist_ok=True)
            self._make_keys()
            self._build_layer()
            self._write_ssh_client_files(reset=True)
        except BaseException:
            self._unlock()
            raise
        self.started = True

    def stop(self) -> None:
        errors = []
        for node in list(self.nodes.values()):
            try:
                node.stop()
            except Exception as exc:  # keep stopping the others
                errors.append(f"{node.name}: {exc!r}")
        self.cleanup_leftovers()
        self.started = False
        self._unlock()
        if errors:
            raise RuntimeError("stopping nodes failed: " + "; ".join(errors))

    def __enter__(self) -> TestBed:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _lock(self, timeout: float) -> None:
        fd = os.open(LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(fd)
                    holder = Path(LOCK_FILE).read_text().strip()
                    raise RuntimeError(f"another test bed holds {LOCK_FILE} ({holder})")
                time.sleep(0.5)
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()} workdir {self.workdir}\n".encode())
        self._lock_fd = fd

    def _unlock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    @staticmethod
    def cleanup_leftovers() -> None:
        """Kill nodes of any earlier (crashed) bed: netns tnp-*, their processes, veths tnpv*,
        and the processes and directories of /sys/fs/cgroup/*/tnp-testbed (systemd nodes).

        Only call it while holding the bed lock (start() does)."""
        out = _run("ip", "netns", "list", check=False).stdout.decode()
        names = [line.split()[0] for line in out.splitlines() if line.startswith(NETNS_PREFIX)]
        for netns in names:
            for pid in _netns_pids(netns):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 10
        for netns in names:
            while _netns_pids(netns) and time.monotonic() < deadline:
                time.sleep(0.05)
        out = _run("ip", "-o", "link", "show", check=False).stdout.decode()
        for line in out.splitlines():
            m = re.match(r"\d+: (" + VETH_PREFIX + r"\d+)[@:]", line)
            if m:
                _run("ip", "link", "del", m.group(1), check=False)
        for netns in names:
            _run("ip", "netns", "del", netns, check=False)
        hierarchies = [CGROUP_ROOT / h[0] / CGROUP_TOP for h in _cgroup_hierarchies_or_none()]
        for top in hierarchies:  # first kill everything in any hierarchy, then rmdir
            for pid in _cgroup_procs(top):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for top in hierarchies:
            _remove_cgroup_tree(top)

    def _setup_bridge(self) -> None:
        if not _link_exists(BRIDGE):
            _run("ip", "link", "add", BRIDGE, "type", "bridge")
        addrs = _run("ip", "-o", "-4", "addr", "show", "dev", BRIDGE).stdout.decode()
        if f"{BRIDGE_ADDRESS}/24" not in addrs:
            _run("ip", "addr", "add", f"{BRIDGE_ADDRESS}/24", "dev", BRIDGE)
        # A bridge without an address of its own takes its lowest port's MAC, and changes it as nodes
        # (ports) come and go: nodes that learned the old MAC for the host then send into the void
        # until their ARP entry expires (seen: an SSH reply stuck for 60 s while other nodes started
        # and stopped). A fixed, locally administered MAC never changes.
        _run("ip", "link", "set", BRIDGE, "address", BRIDGE_MAC)
        _run("ip", "link", "set", BRIDGE, "up")

    def remove_bridge(self) -> None:
        _run("ip", "link", "del", BRIDGE, check=False)

    # ----------------------------------------------------------------- assets
    def _make_keys(self) -> None:
        ssh = self.home / ".ssh"
        ssh.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(ssh, 0o700)
        for path, comment in (
            (ssh / "id_ed25519", "tnp-testbed-client"),
            (self.keys / "host_ed25519", "tnp-testbed-host"),
            (self.keys / "host_unknown_ed25519", "tnp-testbed-unknown-host"),
        ):
            if not path.exists():
                _run("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path))

    def _build_layer(self) -> None:
        """The /etc layer shared by all nodes of this bed (files only: host /etc untouched)."""
        if self.layer.exists():
            shutil.rmtree(self.layer)
        etc = self.layer / "etc"
        etc.mkdir(parents=True)

        # /etc/docker: opaque, so the host's /etc/docker never shows through
        (etc / "docker").mkdir(mode=0o755)
        os.setxattr(etc / "docker", "trusted.overlay.opaque", b"y")

        # users (copies of the host files + bed users)
        today = int(time.time() // 86400)
        pw_hash = (
            _run("openssl", "passwd", "-6", "-stdin", input=self.sudo_password.encode())
            .stdout.decode()
            .strip()
        )
        passwd = _filtered(Path("/etc/passwd").read_text(), BED_USERS)
        group = _filtered(Path("/etc/group").read_text(), BED_USERS)
        shadow = _filtered(Path("/etc/shadow").read_text(), BED_USERS)
        gshadow = _filtered(Path("/etc/gshadow").read_text(), BED_USERS)
        for user, uid in BED_USERS.items():
            passwd += f"{user}:x:{uid}:{uid}:tnp test user:/home/{user}:/bin/bash\n"
            group += f"{user}:x:{uid}:\n"
            gshadow += f"{user}:!::\n"
            pw = pw_hash if user == "secured" else "*"
            shadow += f"{user}:{pw}:{today}:0:99999:7:::\n"
        _write(etc / "passwd", passwd, 0o644)
        _write(etc / "group", group, 0o644)
        _write(etc / "shadow", shadow, 0o640, gid=_gid("shadow"))
        _write(etc / "gshadow", gshadow, 0o640, gid=_gid("shadow"))

        # sudo
        (etc / "sudoers.d").mkdir(mode=0o755)
        _write(
            etc / "sudoers.d" / "tnp-testbed",
            "# test bed users\n"
            "deploy ALL=(ALL) NOPASSWD:ALL\n"
            "secured ALL=(ALL) ALL\n"
            "# ask every time: tests must not depend on a cached sudo timestamp\n"
            "Defaults:secured timestamp_timeout=0\n",
            0o440,
        )

        # sshd
        (etc / "ssh").mkdir(mode=0o755)
        _write(
            etc / "ssh" / "sshd_config",
            "# tnp test bed\n"
            "Port 22\n"
            "HostKey /etc/ssh/ssh_host_ed25519_key\n"
            "PermitRootLogin prohibit-password\n"
            "PubkeyAuthentication yes\n"
            "AuthorizedKeysFile .ssh/authorized_keys\n"
            "PasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\n"
            "UsePAM no\n"
            "UseDNS no\n"
            "PrintMotd no\n"
            "X11Forwarding no\n"
            "AcceptEnv LANG LC_*\n"
            "MaxStartups 100:30:200\n"
            "MaxSessions 50\n"
            "PidFile /run/sshd.pid\n"
            "Subsystem sftp /usr/lib/openssh/sftp-server\n",
            0o644,
        )
        shutil.copyfile(self.keys / "host_ed25519", etc / "ssh" / "ssh_host_ed25519_key")
        os.chmod(etc / "ssh" / "ssh_host_ed25519_key", 0o600)
        shutil.copyfile(self.keys / "host_ed25519.pub", etc / "ssh" / "ssh_host_ed25519_key.pub")

        # docker: patched init script, DOCKER_OPTS with the runtime wrapper
        (etc / "init.d").mkdir(mode=0o755)
        _write(etc / "init.d" / "docker", _patched_init_script(), 0o755)
        (etc / "default").mkdir(mode=0o755)
        default = Path("/etc/default/docker")
        text = default.read_text() if default.exists() else ""
        text += (
            "\n# tnp test bed: OCI runtime wrapper that records requested rlimits\n"
            f'DOCKER_OPTS="--add-runtime tnp={RUNTIME_PATH} --default-runtime tnp"\n'
        )
        _write(etc / "default" / "docker", text, 0o644)

        # bed files used by node-init.sh and dockerd
        (etc / "tnp-testbed").mkdir(mode=0o755)
        shutil.copyfile(HERE / "tnp-runtime", etc / "tnp-testbed" / "tnp-runtime")
        os.chmod(etc / "tnp-testbed" / "tnp-runtime", 0o755)
        shutil.copyfile(
            self.home / ".ssh" / "id_ed25519.pub", etc / "tnp-testbed" / "authorized_keys"
        )
        os.chmod(etc / "tnp-testbed" / "authorized_keys", 0o644)
        for p in (self.workdir, self.layer):
            os.chmod(p, 0o755)
        self._build_systemd_layer()

    @property
    def systemd_layer(self) -> Path:
        return self.workdir / "layer-systemd"

    def _build_systemd_layer(self) -> None:
        """The extra /etc layer of systemd nodes (above the bed layer): its own
        /etc/systemd/system (opaque: none of the host's enabled services, timers or aliases
        shows through), default target multi-user, masked units (SYSTEMD_MASKED) and
        generators (the host's /etc/init.d scripts, fstab, gettys, ... would become units).
        Which services start is decided per node (wants links in the node's upper dir)."""
        root = self.systemd_layer
        if root.exists():
            shutil.rmtree(root)
        system = root / "etc" / "systemd" / "system"
        system.mkdir(parents=True)
        os.chmod(root, 0o755)
        for d in (root / "etc", root / "etc" / "systemd"):
            os.chmod(d, 0o755)
        os.setxattr(system, "trusted.overlay.opaque", b"y")
        (system / "default.target").symlink_to("/lib/systemd/system/multi-user.target")
        (system / "sshd.service").symlink_to("/lib/systemd/system/ssh.service")  # as enabled
        for unit in SYSTEMD_MASKED:
            (system / unit).symlink_to("/dev/null")
        generators = root / "etc" / "systemd" / "system-generators"
        generators.mkdir()
        os.setxattr(generators, "trusted.overlay.opaque", b"y")
        for d in (
            Path("/lib/systemd/system-generators"),
            Path("/usr/lib/systemd/system-generators"),
        ):
            for g in d.iterdir() if d.is_dir() else ():
                if not (generators / g.name).is_symlink():
                    (generators / g.name).symlink_to("/dev/null")

    def _write_ssh_client_files(self, reset: bool = False) -> None:
        """home/.ssh/config: one alias per node. known_hosts is only reset at start();
        afterwards lines are added/removed per node, so keys a client recorded stay."""
        ssh = self.home / ".ssh"
        if reset or not (ssh / "known_hosts").exists():
            _write(ssh / "known_hosts", "", 0o644)
        conf = []
        for node in self.nodes.values():
            conf.append(
                f"Host {node.name}\n"
                f"    HostName {node.address}\n"
                f"    Port {node.port}\n"
                f"    User root\n"
                f"    IdentityFile {ssh / 'id_ed25519'}\n"
                f"    IdentitiesOnly yes\n"
                f"    StrictHostKeyChecking yes\n"
                f"    UserKnownHostsFile {ssh / 'known_hosts'}\n"
                f"    GlobalKnownHostsFile /dev/null\n"
                f"    HashKnownHosts no\n"
                f"    BatchMode yes\n"
                f"    ConnectTimeout 10\n\n"
            )
        _write(ssh / "config", "".join(conf), 0o644)

    def _known_hosts_update(self, address: str, line: str | None) -> None:
        """Drop every known_hosts line for address; then append line (if given)."""
        path = self.known_hosts
        old = path.read_text().splitlines(keepends=True) if path.exists() else []
        keep = [
            entry
            for entry in old
            if address not in entry.split(" ", 1)[0].replace("[", "").split(",")
            and f"[{address}]:22" not in entry.split(" ", 1)[0].split(",")
        ]
        if line:
            keep.append(line.rstrip("\n") + "\n")
        _write(path, "".join(keep), 0o644)

    @property
    def ssh_config(self) -> Path:
        return self.home / ".ssh" / "config"

    @property
    def known_hosts(self) -> Path:
        return self.home / ".ssh" / "known_hosts"

    @property
    def client_key(self) -> Path:
        return self.home / ".ssh" / "id_ed25519"

    def busybox_tar(self) -> bytes:
        """A tarball with a static busybox (/bin/busybox, sh, true, cat), for `docker import`."""
        if self._busybox_tar is None:
            import io
            import tarfile

            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for d in ("bin", "tmp", "etc", "proc", "sys", "dev"):
                    info = tarfile.TarInfo(d)
                    info.type, info.mode = tarfile.DIRTYPE, 0o1777 if d == "tmp" else 0o755
                    tar.addfile(info)
                tar.add("/bin/busybox", arcname="bin/busybox")
                for name in ("sh", "true", "cat", "ls", "echo", "sleep", "env", "id"):
                    info = tarfile.TarInfo(f"bin/{name}")
                    info.type, info.linkname, info.mode = tarfile.SYMTYPE, "busybox", 0o777
                    tar.addfile(info)
            self._busybox_tar = buf.getvalue()
        return self._busybox_tar

    # ----------------------------------------------------------------- nodes
    def add_node(
        self,
        name: str,
        *,
        docker: bool = True,
        rhel: bool = False,
        known_host: bool = True,
        max_map_count: int = 65530,
        files: dict[str, str] | None = None,
        init: str = "tini",
        containerd: bool | None = None,
    ) -> Node:
        """Start a node. init="tini" (default): sysvinit style, see the module docstring.
        init="systemd": the real systemd as PID 1 with ssh.service, containerd.service
        (containerd=True, the default there) and docker.service/docker.socket (docker=True);
        containerd= is for systemd nodes only, rhel=True for tini nodes only."""
        if not self.started:
            raise RuntimeError("TestBed.start() first")
        if not _NAME_RE.match(name):
            raise ValueError(f"bad node name {name!r} (want [a-z][a-z0-9-]*, <= 40 chars)")
        if name in self.nodes:
            raise ValueError(f"node {name!r} exists")
        if init not in INITS:
            raise ValueError(f"init must be one of {INITS}, not {init!r}")
        if init == "tini" and containerd is not None:
            raise ValueError(
                "containerd= is for init='systemd' nodes (a tini node's dockerd "
                "runs its own containerd)"
            )
        if init == "systemd" and rhel:
            raise ValueError("rhel=True is not supported for init='systemd' nodes")
        files = dict(files or {})
        if rhel:
            files.setdefault("/etc/sysconfig/docker", RHEL_SYSCONFIG)
        octet = self._allocate_octet()
        node = Node(
            self,
            name,
            f"{SUBNET_PREFIX}{octet}",
            octet,
            docker=docker,
            rhel=rhel,
            known_host=known_host,
            init=init,
            containerd=(containerd is not False) if init == "systemd" else False,
        )
        self.nodes[name] = node
        try:
            node._start(max_map_count, files)
        except BaseException:
            try:
                node.stop()
            finally:
                self.nodes.pop(name, None)
            raise
        self._known_hosts_update(
            node.address, f"{node.address} {node.host_public_key}" if known_host else None
        )
        self._write_ssh_client_files()
        return node

    def _allocate_octet(self) -> int:
        used = {n.octet for n in self.nodes.values()}
        for _ in range(256):
            octet = self._next_octet
            self._next_octet = FIRST_OCTET if octet >= 254 else octet + 1
            if octet not in used:
                return octet
        raise RuntimeError("no free node address in 10.200.0.0/24")

    def _node_gone(self, node: Node) -> None:
        self.nodes.pop(node.name, None)
        if self.started:
            self._known_hosts_update(node.address, None)
            self._write_ssh_client_files()


def _filtered(text: str, names: dict[str, int]) -> str:
    keep = [line for line in text.splitlines() if line.split(":", 1)[0] not in names]
    return "\n".join(keep) + "\n"


def _gid(group: str) -> int:
    import grp

    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return 0


def _write(path: Path, content: str | bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
    data = content.encode() if isinstance(content, str) else content
    tmp = path.with_name(path.name + ".tnp-tmp")
    with open(tmp, "wb") as f:
        f.write(data)
    os.chown(tmp, uid, gid)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def _patched_init_script() -> str:
    text = Path("/etc/init.d/docker").read_text()

    def sub(old: str, new: str) -> None:
        nonlocal text
        if old not in text:
            raise RuntimeError(f"/etc/init.d/docker: {old!r} not found; update the test bed")
        text = text.replace(old, new)

    # root here lacks CAP_SYS_RESOURCE: these fail under `set -e`
    sub("ulimit -n 1048576\n", "ulimit -n 1048576 || true  # tnp-testbed\n")
    sub("ulimit -u unlimited\n", "ulimit -u unlimited || true  # tnp-testbed\n")
    sub("ulimit -p unlimited\n", "ulimit -p unlimited || true  # tnp-testbed\n")
    # nodes share the host's cgroup mounts; do not mount missing hierarchies (that is
    # kernel-global state and would leave directories in the host's /sys/fs/cgroup)
    sub("\t\tcgroupfs_mount\n", "\t\t: cgroupfs_mount  # tnp-testbed: cgroups come from the host\n")
    sub(
        "if [ -f /etc/default/$BASE ]; then\n\t. /etc/default/$BASE\nfi\n",
        "if [ -f /etc/default/$BASE ]; then\n\t. /etc/default/$BASE\nfi\n" + SYSCONFIG_BLOCK,
    )
    return text


SYSCONFIG_BLOCK = r"""
# tnp-testbed: a RHEL-style node keeps its daemon flags in /etc/sysconfig/docker, read as
# RHEL's docker.service does (EnvironmentFile=-/etc/sysconfig/docker, ExecStart=... $OPTIONS).
# This dockerd is upstream 20.10, which lacks RHEL's patches: RHEL-only flags are dropped.
TNP_DROPPED=
if [ -f /etc/sysconfig/docker ]; then
	. /etc/sysconfig/docker
	tnp_skip=
	for tnp_opt in $OPTIONS; do
		if [ -n "$tnp_skip" ]; then
			TNP_DROPPED="$TNP_DROPPED $tnp_opt"; tnp_skip=; continue
		fi
		case "$tnp_opt" in
			--signature-verification|--signature-verification=*|--confirm-def-push|--confirm-def-push=*|--add-registry=*|--block-registry=*)
				TNP_DROPPED="$TNP_DROPPED $tnp_opt" ;;
			--add-registry|--block-registry)
				TNP_DROPPED="$TNP_DROPPED $tnp_opt"; tnp_skip=1 ;;
			*)
				DOCKER_OPTS="$DOCKER_OPTS $tnp_opt" ;;
		esac
	done
fi
if [ -n "$TNP_DROPPED" ] && [ "$1" = start ]; then
	echo "tnp-testbed: dropped RHEL-only dockerd flags:$TNP_DROPPED" >> "$DOCKER_LOGFILE" 2>/dev/null || true
fi
"""


# --------------------------------------------------------------------------- Node


class Node:
    """One node: sshd (+ dockerd) in namespaces; see the module docstring."""

    port = 22

    def __init__(
        self,
        bed: TestBed,
        name: str,
        address: str,
        octet: int,
        *,
        docker: bool,
        rhel: bool,
        known_host: bool,
        init: str = "tini",
        containerd: bool = False,
    ) -> None:
        self.bed = bed
        self.name = name
        self.init = init
        self.containerd = containerd  # containerd.service enabled (systemd nodes only)
        self.address = address
        self.octet = octet
        self.docker = docker
        self.rhel = rhel
        self.known_host = known_host
        self.netns = NETNS_PREFIX + name
        self.veth = f"{VETH_PREFIX}{octet}"
        self.dir = bed.nodes_dir / name
        self.init_pid: int = 0  # pid of `unshare` (tini) or `script` (systemd) (host view)
        self.ns_pid: int = 0  # pid of tini or systemd, PID 1 of the node (host view)
        # systemd nodes: the node's cgroup, relative to each hierarchy's root
        self.cgroup_path = f"{CGROUP_TOP}/{bed.id}/{name}"
        self.system_state: str | None = None  # systemd nodes: `is-system-running` at start
        self._popen: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        key = bed.keys / ("host_ed25519.pub" if known_host else "host_unknown_ed25519.pub")
        self.host_public_key = " ".join(key.read_text().split()[:2])

    def __repr__(self) -> str:
        return (
            f"<Node {self.name} {self.address} init={self.init} docker={self.docker} "
            f"rhel={self.rhel}>"
        )

    @property
    def init_log(self) -> Path:
        return self.dir / "init.log"

    @property
    def log_dir(self) -> Path:
        """The node's /var/log, seen from the host."""
        return self.dir / "var-log"

    # ----------------------------------------------------------------- start / stop
    def _start(self, max_map_count: int, files: dict[str, str | bytes]) -> None:
        t0 = time.monotonic()
        if self.dir.exists():
            shutil.rmtree(self.dir)
        for sub in (
            "upper",
            "work",
            "var-lib-upper",
            "var-lib-work",
            "opt-upper",
            "opt-work",
            "var-lib-docker",
            "var-lib-containerd",
            "var-log",
            "files",
        ):
            (self.dir / sub).mkdir(parents=True)
        os.chmod(self.dir / "var-log", 0o755)
        (self.dir / "max_map_count").write_text(f"{int(max_map_count)}\n")
        if not self.known_host:
            (self.dir / "upper" / "ssh").mkdir()
            key = self.dir / "upper" / "ssh" / "ssh_host_ed25519_key"
            shutil.copyfile(self.bed.keys / "host_unknown_ed25519", key)
            os.chmod(key, 0o600)
            shutil.copyfile(
                self.bed.keys / "host_unknown_ed25519.pub",
                self.dir / "upper" / "ssh" / "ssh_host_ed25519_key.pub",
            )
        manifest = []
        for i, (path, content) in enumerate(files.items()):
            if not path.startswith("/") or "\n" in path:
                raise ValueError(f"bad node file path {path!r}")
            data = content.encode() if isinstance(content, str) else content
            (self.dir / "files" / str(i)).write_bytes(data)
            manifest.append(f"{i} 0644 {path}\n")
        (self.dir / "files" / "MANIFEST").write_text("".join(manifest))
        (self.dir / "node.env").write_text(
            f"NODE_NAME={shlex.quote(self.name)}\n"
            f"NODE_ADDRESS={self.address}\n"
            f"BED_DIR={shlex.quote(str(self.bed.workdir))}\n"
            f"DOCKER={1 if self.docker else 0}\n"
            f"BED_USERS={shlex.quote(' '.join(BED_USERS))}\n"
            # The Python that runs the tests, so `trains-nodeprep --local` can run inside a node
            # even when that Python lives below /root or /home (pyenv), which nodes hide.
            f"PYTHON_PREFIX={shlex.quote(os.path.realpath(sys.base_prefix))}\n"
            # ... and the venv of the tests (CI clones below /tmp, which nodes hide too).
            f"VENV_PREFIX={shlex.quote(os.path.realpath(sys.prefix))}\n"
        )
        if self.init == "systemd":
            self._start_systemd(t0)
            return

        self._setup_network()
        log = open(self.init_log, "wb")
        try:
            self._popen = subprocess.Popen(
                [
                    "nsenter",
                    f"--net=/run/netns/{self.netns}",
                    "unshare",
                    "--mount",
                    "--uts",
                    "--pid",
                    "--kill-child",
                    "--mount-proc",
                    "--propagation",
                    "private",
                    "tini",
                    "--",
                    "/bin/sh",
                    str(HERE / "node-init.sh"),
                    str(self.dir),
                ],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
                cwd="/",
            )
        finally:
            log.close()
        self.init_pid = self._popen.pid
        self._wait_ready(t0)
        self.start_seconds = time.monotonic() - t0

    def _start_systemd(self, t0: float) -> None:
        """Boot the real systemd as the node's PID 1 (node-init-systemd.sh)."""
        hierarchies = _cgroup_hierarchies()
        if not hierarchies:
            raise NodeStartError("no cgroup hierarchies below /sys/fs/cgroup")
        upper = self.dir / "upper"
        (upper / "hostname").write_text(self.name + "\n")
        (upper / "machine-id").write_text(uuid.uuid4().hex + "\n")
        wants = {"multi-user.target.wants": ["ssh.service"], "sockets.target.wants": []}
        if self.containerd:
            wants["multi-user.target.wants"].append("containerd.service")
        if self.docker:
            wants["multi-user.target.wants"].append("docker.service")
            wants["sockets.target.wants"].append("docker.socket")
        for target, units in wants.items():
            d = upper / "systemd" / "system" / target
            d.mkdir(parents=True, exist_ok=True)
            for unit in units:
                (d / unit).symlink_to(f"/lib/systemd/system/{unit}")
        with open(self.dir / "node.env", "a") as f:
            f.write(
                f"CGROUP_PATH={shlex.quote(self.cgroup_path)}\n"
                "CGROUP_MOUNTS=" + shlex.quote(" ".join(":".join(h) for h in hierarchies)) + "\n"
            )
        for h in hierarchies:
            _make_cgroup(CGROUP_ROOT / h[0] / self.cgroup_path)

        self._setup_network()
        init = (
            f"exec unshare --mount --uts --ipc --pid --fork --kill-child "
            f"--propagation private /bin/sh {shlex.quote(str(HERE / 'node-init-systemd.sh'))}"
            f" {shlex.quote(str(self.dir))}"
        )
        with open(self.init_log, "wb") as log:
            # script(1): its pty becomes the node's /dev/console. Its stdin is a pipe that
            # stays open until stop() (script may end its session at EOF on stdin).
            self._popen = subprocess.Popen(
                ["nsenter", f"--net=/run/netns/{self.netns}", "script", "-qefc", init, "/dev/null"],
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                env=CLEAN_ENV,
                cwd="/",
            )
        self.init_pid = self._popen.pid
        self._wait_ready_systemd(t0)
        self.start_seconds = time.monotonic() - t0

    def _wait_ready_systemd(self, t0: float) -> None:
        """Until sshd answers, `systemctl is-system-running` says running or degraded,
        `ctr version` answers (containerd=True) and `docker info` answers (docker=True)."""
        deadline = t0 + self.bed.node_start_timeout
        why = "timed out"
        booted = False
        while True:
            if time.monotonic() > deadline:
                break
            if self._popen is not None and self._popen.poll() is not None:
                why = f"init exited with status {self._popen.returncode}"
                break
            if not self.ns_pid:
                for pid in _descendants(self.init_pid):
                    ns = _nspid(pid)
                    if len(ns) > 1 and ns[-1] == 1:
                        self.ns_pid = pid
                        break
            log = self.init_log.read_bytes()
            if b"TNP-FAILED" in log:
                why = "init failed"
                break
            if not (self.ns_pid and b"TNP-BOOT" in log):
                time.sleep(0.02)
                continue
            state = self.exec(
                "systemctl", "is-system-running", check=False, timeout=10
            ).stdout.strip()
            self.system_state = state
            if state in ("maintenance", "stopping"):  # "offline": not listening yet
                why = f"systemctl is-system-running: {state}"
                break
            if state not in ("running", "degraded"):
                time.sleep(0.05)
                continue
            booted = True
            break
        if booted:
            try:
                if self.containerd:
                    self._wait_service(
                        "containerd", ("ctr", "--timeout", "2s", "version"), deadline
                    )
                if self.docker:
                    self._wait_service("docker", ("docker", "info"), deadline)
                if not self._ssh_banner(max(0.5, deadline - time.monotonic())):
                    raise NodeStartError("sshd does not answer")
                return
            except NodeStartError as exc:
                why = str(exc)
        journal = ""
        if self.ns_pid and _pid_alive(self.ns_pid):
            try:
                journal = self.exec(
                    "journalctl", "-b", "-n", "80", "--no-pager", check=False, timeout=10
                ).stdout
                journal += (
                    "\n--- systemctl --failed:\n"
                    + self.exec(
                        "systemctl", "--failed", "--no-pager", check=False, timeout=10
                    ).stdout
                )
            except (OSError, subprocess.SubprocessError) as exc:  # the node may be dying
                journal = f"(journal not readable: {exc!r})"
        raise NodeStartError(
            f"systemd node {self.name} ({self.address}) did not start ({why}, "
            f"system state {self.system_state}, timeout {self.bed.node_start_timeout:.0f} s)"
            f"\n--- init.log (console):\n{_tail(self.init_log)}\n--- journal:\n{journal}"
        )

    def _wait_service(self, unit: str, argv: tuple[str, ...], deadline: float) -> None:
        """Until unit is active and argv succeeds; NodeStartError if the unit failed or
        the deadline passed."""
        while True:
            state = self.exec(
                "systemctl", "is-active", unit, check=False, timeout=10
            ).stdout.strip()
            if state == "failed":
                raise NodeStartError(f"{unit}.service failed")
            err = f"{unit}.service is {state}"
            if state == "active":
                try:
                    proc = self.exec(*argv, check=False, timeout=5)
                    if proc.returncode == 0:
                        return
                    err = f"{' '.join(argv)}: {proc.stderr.strip()}"
                except subprocess.TimeoutExpired:
                    err = f"{' '.join(argv)} timed out"
            if time.monotonic() > deadline:
                raise NodeStartError(f"{unit} does not answer ({err})")
            time.sleep(0.05)

    def _setup_network(self) -> None:
        if _link_exists(self.veth):
            _run("ip", "link", "del", self.veth, check=False)
        if Path(f"/run/netns/{self.netns}").exists():
            _run("ip", "netns", "del", self.netns, check=False)
        _run("ip", "netns", "add", self.netns)
        _run(
            "ip",
            "link",
            "add",
            self.veth,
            "type",
            "veth",
            "peer",
            "name",
            "eth0",
            "netns",
            self.netns,
        )
        _run("ip", "link", "set", self.veth, "master", BRIDGE, "up")
        _run("ip", "-n", self.netns, "addr", "add", f"{self.address}/24", "dev", "eth0")
        _run("ip", "-n", self.netns, "link", "set", "eth0", "up")
        _run("ip", "-n", self.netns, "link", "set", "lo", "up")

    def _wait_ready(self, t0: float) -> None:
        deadline = t0 + self.bed.node_start_timeout
        ready = False
        while time.monotonic() < deadline:
            if not self.ns_pid:
                kids = _children(self.init_pid)
                if kids:
                    self.ns_pid = kids[0]
            log = self.init_log.read_bytes()
            if b"TNP-FAILED" in log:
                break
            if b"TNP-READY" in log:
                ready = True
                break
            if self._popen is not None and self._popen.poll() is not None:
                break
            time.sleep(0.02)
        if ready and self.ns_pid and self._ssh_banner():
            return
        raise NodeStartError(
            f"node {self.name} ({self.address}) did not start within "
            f"{self.bed.node_start_timeout:.0f} s\n--- init.log:\n{_tail(self.init_log)}"
            f"\n--- /var/log/docker.log:\n{_tail(self.log_dir / 'docker.log')}"
            f"\n--- /var/log/sshd.log:\n{_tail(self.log_dir / 'sshd.log')}"
        )

    def _ssh_banner(self, timeout: float = 5.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection((self.address, self.port), timeout=2) as s:
                    s.settimeout(2)
                    if s.recv(64).startswith(b"SSH-2.0-"):
                        return True
            except OSError:
                time.sleep(0.05)
        return False

    def stop(self) -> None:
        """Kill the node (all its processes), remove its netns, veth, cgroups (systemd
        nodes) and directories."""
        if self.init == "systemd" and self.ns_pid:
            # systemd ignores SIGTERM; SIGKILL of a PID namespace's init kills all of it
            try:
                os.kill(self.ns_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if self._popen is not None:
                try:
                    self._popen.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    pass
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pids = _netns_pids(self.netns) if Path(f"/run/netns/{self.netns}").exists() else []
            if not pids and not (self.ns_pid and _pid_alive(self.ns_pid)):
                break
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.05)
        else:
            raise RuntimeError(f"node {self.name}: processes still alive after SIGKILL")
        if self.init == "systemd":
            for h in _cgroup_hierarchies():
                _remove_cgroup_tree(CGROUP_ROOT / h[0] / self.cgroup_path)
        if self._popen is not None and self._popen.stdin is not None:
            try:
                self._popen.stdin.close()
            except OSError:
                pass
        _run("ip", "link", "del", self.veth, check=False)
        _run("ip", "netns", "del", self.netns, check=False)
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        self.init_pid = self.ns_pid = 0
        self.bed._node_gone(self)

    # ----------------------------------------------------------------- inside the node
    def exec(
        self,
        *argv: str,
        check: bool = True,
        input: bytes | str | None = None,
        text: bool = True,
        timeout: float | None = 120,
    ) -> subprocess.CompletedProcess:
        """Run argv as root inside the node (its mount/net/pid/uts namespaces).

        stdout/stderr are str (UTF-8, undecodable bytes replaced) unless text=False;
        input may be bytes or str. A clean environment (PATH with /usr/sbin, HOME=/root)."""
        if not self.ns_pid:
            raise RuntimeError(f"node {self.name} is not running")
        if isinstance(input, str):
            input = input.encode()
        cmd = [
            "nsenter",
            "-t",
            str(self.ns_pid),
            "-m",
            "-u",
            "-n",
            "-p",
            *(("-i", "-C") if self.init == "systemd" else ()),
            "--",
            *argv,
        ]
        proc = subprocess.run(
            cmd, input=input, capture_output=True, timeout=timeout, env=CLEAN_ENV, cwd="/"
        )
        proc.args = list(argv)
        if text:
            proc.stdout = proc.stdout.decode(errors="replace")
            proc.stderr = proc.stderr.decode(errors="replace")
        if check and proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, list(argv), proc.stdout, proc.stderr
            )
        return proc

    def sh(self, script: str, check: bool = True) -> subprocess.CompletedProcess:
        """exec("/bin/sh", "-c", script)"""
        return self.exec("/bin/sh", "-c", script, check=check)

    def read(self, path: str) -> bytes | None:
        proc = self.exec(
            "/bin/sh",
            "-c",
            'if [ -e "$1" ]; then exec cat -- "$1"; else exit 99; fi',
            "sh",
            path,
            check=False,
            text=False,
        )
        if proc.returncode == 99:
            return None
        if proc.returncode != 0:
            raise subprocess.CalledProcessError(
                proc.returncode, ["cat", path], proc.stdout, proc.stderr.decode(errors="replace")
            )
        return proc.stdout

    def write(self, path: str, content: str | bytes, mode: int = 0o644) -> None:
        data = content.encode() if isinstance(content, str) else content
        self.exec(
            "/bin/sh",
            "-c",
            'mkdir -p "$(dirname "$1")" && cat > "$1" && chmod "$2" "$1"',
            "sh",
            path,
            f"{mode:o}",
            input=data,
        )

    def max_map_count(self) -> int:
        return int(self.exec("cat", "/proc/sys/vm/max_map_count").stdout)

    def docker_pid(self) -> int | None:
        """pid (as seen in the node) of the running dockerd, or None."""
        out = self.exec(
            "/bin/sh",
            "-c",
            "for p in /proc/[0-9]*; do "
            '[ "$(cat $p/comm 2>/dev/null)" = dockerd ] || continue; '
            'grep -q "^State:.*Z" $p/status 2>/dev/null && continue; '
            "echo ${p#/proc/}; done",
            check=False,
        ).stdout.split()
        pids = sorted(int(p) for p in out)
        return pids[0] if pids else None

    def dockerd_argv(self) -> list[str] | None:
        pid = self.docker_pid()
        if pid is None:
            return None
        raw = self.read(f"/proc/{pid}/cmdline") or b""
        return [a.decode() for a in raw.split(b"\0") if a]

    def docker_restart(self) -> subprocess.CompletedProcess:
        """`service docker restart` inside the node, then wait until `docker info` answers."""
        proc = self.exec("service", "docker", "restart", check=False)
        self.wait_docker()
        return proc

    def wait_docker(self, timeout: float = 20.0) -> dict:
        """Wait until `docker info` answers; return a few of its fields."""
        deadline = time.monotonic() + timeout
        while True:
            proc = self.exec(
                "docker",
                "info",
                "--format",
                '{"LoggingDriver": {{json .LoggingDriver}}, '
                '"DefaultRuntime": {{json .DefaultRuntime}}}',
                check=False,
            )
            if proc.returncode == 0:
                return json.loads(proc.stdout)
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"docker in {self.name} does not answer:\n"
                    f"{proc.stderr}\n--- docker.log:\n"
                    f"{_tail(self.log_dir / 'docker.log')}"
                )
            time.sleep(0.1)

    def ensure_image(self) -> None:
        if self.exec("docker", "image", "inspect", IMAGE, check=False).returncode == 0:
            return
        self.exec("docker", "import", "-", IMAGE, input=self.bed.busybox_tar())

    def run_container(self, *docker_run_args: str) -> dict[str, tuple[int, int]]:
        """`docker run --rm tnp-busybox true`; the rlimits the runtime wrapper saw requested
        for it, e.g. {"RLIMIT_NOFILE": (1024, 65536)} (unlimited = -1; {} if none)."""
        info = self.wait_docker()
        self.ensure_image()
        cidfile = f"/tmp/tnp-cid-{uuid.uuid4().hex}"
        # journald (RHEL's default) cannot work without systemd-journald: log nothing then
        log = ["--log-driver", "none"] if info.get("LoggingDriver") == "journald" else []
        proc = self.exec(
            "docker",
            "run",
            "--rm",
            *log,
            "--cidfile",
            cidfile,
            *docker_run_args,
            IMAGE,
            "true",
            check=False,
        )
        cid = (self.read(cidfile) or b"").decode().strip()
        self.exec("rm", "-f", cidfile)
        if proc.returncode != 0:
            raise RuntimeError(
                f"docker run in {self.name} failed ({proc.returncode}): "
                f"{proc.stderr}\n--- docker.log:\n{_tail(self.log_dir / 'docker.log')}"
            )
        for rec in reversed(self.rlimit_records()):
            if rec.get("id") == cid:
                return {
                    rl["type"]: (_signed(rl["soft"]), _signed(rl["hard"]))
                    for rl in rec.get("rlimits") or []
                }
        raise RuntimeError(
            f"no rlimit record for container {cid} in {RLIMITS_RECORD}"
            f" (runtime errors: {_tail(self.log_dir / 'tnp-runtime.err')})"
        )

    # ----------------------------------------------------------------- systemd nodes
    def _need_systemd(self) -> None:
        if self.init != "systemd":
            raise RuntimeError(f"node {self.name} does not run systemd (init={self.init!r})")

    def systemctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """`systemctl ARGS` inside a systemd node (str stdout/stderr)."""
        self._need_systemd()
        return self.exec("systemctl", *args, check=check)

    def unit_pid(self, unit: str) -> int | None:
        """MainPID of unit (as seen in the node), or None if it has no running main process."""
        out = self.systemctl("show", "-p", "MainPID", "--value", unit).stdout.strip()
        return int(out) if out and out != "0" else None

    def journal(self, unit: str, lines: int = 50) -> str:
        """The last lines of `journalctl -u unit` in a systemd node."""
        self._need_systemd()
        return self.exec(
            "journalctl", "-u", unit, "-n", str(int(lines)), "--no-pager", check=False
        ).stdout

    def run_containerd_container(self) -> dict[str, dict[str, tuple[int, int]]]:
        """Run a short container through containerd alone (no docker, no image registry):
        `ctr run --rm --rootfs --runc-binary TNP-RUNTIME BUSYBOX-ROOTFS ID true`.

        Returns what the runtime wrapper recorded for it: {"requested": rlimits in the
        container's spec (ctr's default spec asks RLIMIT_NOFILE 1024:1024), "inherited": the
        wrapper's own RLIMIT_NOFILE and RLIMIT_MEMLOCK, i.e. what containerd (through its
        shim) passes to what it starts; that is what a pod gets from the CRI plugin, which
        puts no rlimits in the spec}. Values are (soft, hard), unlimited = -1."""
        self._need_systemd()
        if self.exec("test", "-x", f"{BUSYBOX_ROOTFS}/bin/busybox", check=False).returncode:
            self.exec("mkdir", "-p", BUSYBOX_ROOTFS)
            self.exec("tar", "-x", "-C", BUSYBOX_ROOTFS, "-f", "-", input=self.bed.busybox_tar())
        cid = f"tnp-{uuid.uuid4().hex[:12]}"
        proc = self.exec(
            "ctr",
            "run",
            "--rm",
            "--rootfs",
            "--runc-binary",
            RUNTIME_PATH,
            BUSYBOX_ROOTFS,
            cid,
            "/bin/true",
            check=False,
            timeout=60,
        )
        if proc.returncode != 0:
            raise RuntimeError(
                f"ctr run in {self.name} failed ({proc.returncode}): {proc.stderr}"
                f"\n--- runtime errors: {_tail(self.log_dir / 'tnp-runtime.err')}"
                f"\n--- journal:\n{self.journal('containerd', 20)}"
            )
        for rec in reversed(self.rlimit_records()):
            if rec.get("id") == cid:
                return {
                    key: {
                        rl["type"]: (_signed(rl["soft"]), _signed(rl["hard"]))
                        for rl in rec.get(field) or []
                    }
                    for key, field in (("requested", "rlimits"), ("inherited", "process_rlimits"))
                }
        raise RuntimeError(
            f"no rlimit record for container {cid} in {RLIMITS_RECORD}"
            f" (runtime errors: {_tail(self.log_dir / 'tnp-runtime.err')})"
        )

    def rlimit_records(self) -> list[dict]:
        data = self.read(RLIMITS_RECORD) or b""
        return [json.loads(line) for line in data.splitlines() if line.strip()]

    def ssh_argv(self, user: str = "root") -> list[str]:
        """argv prefix for the system ssh client: ssh_argv("deploy") + ["id"]."""
        return ["ssh", "-F", str(self.bed.ssh_config), "-l", user, self.name]

    def host(self, user: str = "root"):
        """A testinfra Host (paramiko backend) for user@node, through home/.ssh/config.

        Unlike testinfra's own paramiko backend, it checks the host key against
        home/.ssh/known_hosts (reject unknown), and it is not cached by testinfra."""
        import testinfra.host

        backend = _strict_paramiko_backend()(
            f"{user}@{self.name}", ssh_config=str(self.bed.ssh_config)
        )
        backend.known_hosts = str(self.bed.known_hosts)
        host = testinfra.host.Host(backend)
        backend.set_host(host)
        return host


def _signed(v: int) -> int:
    return -1 if v >= UNLIMITED else int(v)


@functools.cache
def _strict_paramiko_backend():
    import paramiko
    from testinfra.backend.paramiko import ParamikoBackend

    class StrictParamikoBackend(ParamikoBackend):
        known_hosts: str = ""

        @functools.cached_property
        def client(self) -> paramiko.SSHClient:
            client = paramiko.SSHClient()
            client.load_host_keys(self.known_hosts)
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            cfg: dict[str, Any] = {
                "hostname": self.host.name,
                "port": 22,
                "username": self.host.user,
                "timeout": self.timeout,
                "allow_agent": False,
                "look_for_keys": False,
            }
            ssh_config = paramiko.SSHConfig.from_path(self.ssh_config)
            self._load_ssh_config(client, cfg, ssh_config, os.path.dirname(self.ssh_config))
            if self.host.user:  # testinfra would let the config's "User root" win
                cfg["username"] = self.host.user
            client.set_missing_host_key_policy(paramiko.RejectPolicy())
            client.connect(**cfg)
            return client

    return StrictParamikoBackend


# --------------------------------------------------------------------------- pytest


@pytest.fixture(scope="session")
def bed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory):
    """The session's TestBed (shared even if this fixture is imported in several places)."""
    if os.geteuid() != 0:
        pytest.fail("the trains-nodeprep test bed needs root (run pytest as root)", pytrace=False)
    holder = request.config.__dict__.setdefault("_tnp_testbed", {"bed": None, "users": 0})
    if holder["bed"] is None:
        tb = TestBed(tmp_path_factory.mktemp("testbed"))
        tb.start()
        holder["bed"] = tb
    holder["users"] += 1
    try:
        yield holder["bed"]
    finally:
        holder["users"] -= 1
        if holder["users"] == 0:
            tb, holder["bed"] = holder["bed"], None
            tb.stop()


@pytest.fixture
def make_node(bed: TestBed):
    """Factory: make_node(**add_node_kwargs) -> Node, unique name, stopped at teardown."""
    created: list[Node] = []

    def factory(name: str | None = None, **kwargs: Any) -> Node:
        while name is None or name in bed.nodes:
            counter = bed.__dict__.setdefault("_name_counter", 0) + 1
            bed.__dict__["_name_counter"] = counter
            name = f"node{counter}"
        node = bed.add_node(name, **kwargs)
        created.append(node)
        return node

    yield factory
    for node in reversed(created):
        if node.init_pid:
            node.stop()
