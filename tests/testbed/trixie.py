"""Debian13Node: a node that boots a real Debian 13 (trixie) userland, its own systemd 257,
docker 26 and containerd 1.7, for the tests of trains-nodeprep on current engines.

The rootfs is built once per bed by mmdebstrap (suite trixie, the host's own Debian mirror and
archive keyring) and prepared once with the rootfs's own tools (users by `chroot useradd`,
masks from its own wants; `prepare_rootfs`). Each node mounts a copy-on-write overlay of it
(the rootfs and the bed's small layer with its host key below, read-only; a per-node upper
directory above) and pivots into it (node-init-systemd.sh, `node_pivot_root` of
node-common.sh), then boots as a SystemdNode does, with the rootfs's /lib/systemd/systemd.

Where the rootfs lives: below the bed's workdir, removed when the bed stops; or, if
TNP_TESTBED_CACHE names a directory, there, keyed by the recipe (TNP_TESTBED_CACHE/
debian13-rootfs-KEY, kept for later runs: a change of the recipe or of prepare_rootfs is a new
key).
If it cannot be built (no mmdebstrap, no mirror, no keyring, mmdebstrap fails), starting the
node raises RootfsError with the reason: a test bed never skips."""

from __future__ import annotations

import hashlib
import inspect
import os
import re
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING

from .host import NodeStartError, run
from .layers import (
    BED_USERS,
    DOCKER_OPTS,
    HERE,
    SSHD_CONFIG,
    SUDOERS,
    SYSTEMD_MASKED,
    write_file,
)
from .systemd import SystemdNode

if TYPE_CHECKING:
    from .bed import TestBed

SUITE = "trixie"
PACKAGES = (
    "systemd",
    "systemd-sysv",
    "dbus",
    "libpam-systemd",
    "openssh-server",
    "openssh-sftp-server",
    "sudo",
    "docker.io",
    "docker-cli",  # Debian 13 split the CLI off docker.io (only a Recommends there)
    "containerd",
    "runc",
    "iproute2",
    "procps",
    "iptables",
    "ca-certificates",
    "python3",  # the runtime wrapper tnp-runtime is Python
)
PATH_EXCLUDES = ("/usr/share/doc/*", "/usr/share/man/*", "/usr/share/locale/*")
KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
MMDEBSTRAP = "mmdebstrap"
MMDEBSTRAP_TIMEOUT = 900.0
CACHE_ENV = "TNP_TESTBED_CACHE"
APT_SOURCES = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
# Units the rootfs's own wants start at boot that a node keeps: the journal, D-Bus, and
# what only waits or listens. Every other unit wanted there is masked (with SYSTEMD_MASKED):
# udev, tmpfiles, sysctl, TPM/PCR, firstboot, tmp.mount (over the node's own /tmp), ...
KEEP_UNITS = frozenset(
    {
        "dbus.service",
        "dbus.socket",
        "systemd-journald.service",
        "systemd-journald.socket",
        "systemd-journald-dev-log.socket",
        "systemd-journal-flush.service",
        "systemd-user-sessions.service",
        "systemd-ask-password-console.path",
        "systemd-ask-password-wall.path",
        "systemd-initctl.socket",
        "run-lock.mount",
        "remote-fs.target",
    }
)
COMPLETE = ".tnp-rootfs-complete"  # written last: a rootfs without it is not used


class RootfsError(NodeStartError):
    """The Debian 13 rootfs cannot be built here (the message says why)."""


# --------------------------------------------------------------------------- the recipe


def debian_mirror(sources: dict[str, str]) -> str | None:
    """The Debian mirror of apt sources ({file name: text}, one-line .list or deb822
    .sources): the first `deb` source whose URI's path ends in /debian (not -security,
    -ports, ...), e.g. http://deb.debian.org/debian. None if there is none."""
    for name, text in sorted(sources.items()):
        if name.endswith(".sources"):
            for stanza in re.split(r"\n\s*\n", text):
                fields = dict(
                    (k.strip().lower(), v.strip())
                    for k, _, v in (
                        line.partition(":")
                        for line in stanza.splitlines()
                        if ":" in line and not line.lstrip().startswith("#")
                    )
                )
                if fields.get("enabled", "yes").lower() == "no":
                    continue
                if "deb" not in fields.get("types", "").split():
                    continue
                for uri in fields.get("uris", "").split():
                    if _is_debian_uri(uri):
                        return uri.rstrip("/")
        else:
            for line in text.splitlines():
                words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
                if len(words) >= 2 and words[0] == "deb" and _is_debian_uri(words[1]):
                    return words[1].rstrip("/")
    return None


def _is_debian_uri(uri: str) -> bool:
    return uri.startswith(("http://", "https://")) and uri.rstrip("/").endswith("/debian")


def host_debian_mirror() -> str:
    """The Debian mirror of this host's own apt sources; RootfsError if it has none."""
    sources: dict[str, str] = {}
    for path in APT_SOURCES:
        files = sorted(path.iterdir()) if path.is_dir() else [path] if path.is_file() else []
        for f in files:
            if f.suffix in (".list", ".sources") and f.is_file():
                sources[f.name] = f.read_text(errors="replace")
    mirror = debian_mirror(sources)
    if mirror is None:
        raise RootfsError(
            "Debian 13 nodes: no Debian mirror (a `deb` URI ending in /debian) in this host's "
            f"apt sources ({', '.join(sorted(sources)) or 'none found'})"
        )
    return mirror


def mmdebstrap_argv(target: Path, mirror: str) -> list[str]:
    """mmdebstrap's command line for the rootfs at target."""
    return [
        MMDEBSTRAP,
        "--variant=apt",
        "--components=main",
        "--include=" + ",".join(PACKAGES),
        f"--keyring={KEYRING}",
        *(f"--dpkgopt=path-exclude={p}" for p in PATH_EXCLUDES),
        SUITE,
        str(target),
        mirror,
    ]


def recipe_key(mirror: str, sudo_password: str) -> str:
    """What the cached rootfs depends on: mmdebstrap's argv, prepare_rootfs (its code and
    what it uses), the shared sshd/sudo/docker texts and the sudo password."""
    h = hashlib.sha256()
    for part in (
        *mmdebstrap_argv(Path("TARGET"), mirror),
        inspect.getsource(prepare_rootfs),
        *sorted(KEEP_UNITS),
        SSHD_CONFIG,
        SUDOERS,
        DOCKER_OPTS,
        *SYSTEMD_MASKED,
        repr(BED_USERS),
        sudo_password,
    ):
        h.update(part.encode() + b"\0")
    return h.hexdigest()[:16]


# --------------------------------------------------------------------------- building


def build_rootfs(dest: Path, mirror: str, sudo_password: str) -> float:
    """mmdebstrap the rootfs into dest (built beside it, renamed when complete) and prepare
    it; returns the seconds taken. RootfsError with mmdebstrap's output if it fails."""
    if shutil.which(MMDEBSTRAP, path=os.environ.get("PATH", "") + ":/usr/bin:/usr/sbin") is None:
        raise RootfsError(
            f"Debian 13 nodes need {MMDEBSTRAP} (apt-get install mmdebstrap; .ci/run installs it)"
        )
    if not KEYRING.is_file():
        raise RootfsError(
            f"Debian 13 nodes need the Debian archive keyring {KEYRING} "
            "(apt-get install debian-archive-keyring)"
        )
    t0 = time.monotonic()
    tmp = dest.with_name(dest.name + f".tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.parent.mkdir(parents=True, exist_ok=True)
    argv = mmdebstrap_argv(tmp, mirror)
    try:
        proc = run(*argv, check=False, timeout=MMDEBSTRAP_TIMEOUT)
    except subprocess.TimeoutExpired as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise RootfsError(
            f"Debian 13 rootfs: {' '.join(argv)} did not finish in {MMDEBSTRAP_TIMEOUT:.0f} s"
        ) from exc
    if proc.returncode != 0:
        shutil.rmtree(tmp, ignore_errors=True)
        out = (proc.stdout + proc.stderr).decode(errors="replace")
        raise RootfsError(
            f"Debian 13 rootfs: {' '.join(argv)} failed ({proc.returncode}):\n"
            + "\n".join(out.splitlines()[-30:])
        )
    try:
        prepare_rootfs(tmp, sudo_password)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    (tmp / COMPLETE).write_text(" ".join(argv) + "\n")
    shutil.rmtree(dest, ignore_errors=True)
    os.rename(tmp, dest)
    return time.monotonic() - t0


def prepare_rootfs(root: Path, sudo_password: str) -> None:
    """What every Debian 13 node shares, made once with the rootfs's own tools and files:
    no SSH host keys of its own (the bed's layer has the bed's), an empty /etc/locale.conf
    (else pam_env complains at every login), the bed users (chroot useradd; `deploy` with
    passwordless sudo, `secured` with the bed's sudo password), the bed's sshd_config and
    sudoers, docker's flags for the runtime wrapper in /etc/default/docker (read by
    Debian 13's docker.service as DOCKER_OPTS), and systemd: default target multi-user,
    none of the rootfs's own enabled units (a node enables its own), the units its static
    wants (/usr/lib/systemd/system/*.wants) start that cannot work in a node masked
    (SYSTEMD_MASKED and what is not in KEEP_UNITS), every generator masked."""
    etc = root / "etc"
    for key in (etc / "ssh").glob("ssh_host_*"):
        key.unlink()
    write_file(etc / "locale.conf", "", 0o644)

    pw_hash = (
        run("openssl", "passwd", "-6", "-stdin", input=sudo_password.encode())
        .stdout.decode()
        .strip()
    )
    for user, uid in BED_USERS.items():
        run(
            "chroot", str(root), "useradd", "--uid", str(uid), "--user-group",
            "--no-create-home", "--home-dir", f"/home/{user}", "--shell", "/bin/bash",
            "--comment", "tnp test user", user,
        )  # fmt: skip
    # "*": no password, but not locked ("!"): sshd refuses keys of a locked account
    run("chroot", str(root), "usermod", "--password", "*", "deploy")
    run("chroot", str(root), "usermod", "--password", pw_hash, "secured")
    write_file(etc / "sudoers.d" / "tnp-testbed", SUDOERS, 0o440)
    write_file(etc / "ssh" / "sshd_config", SSHD_CONFIG, 0o644)
    default = etc / "default" / "docker"
    text = default.read_text() if default.exists() else ""
    write_file(default, text + DOCKER_OPTS, 0o644)

    system = etc / "systemd" / "system"
    wanted: set[str] = set()
    for wants in [*system.glob("*.wants"), *system.glob("*.requires")]:
        shutil.rmtree(wants)  # the rootfs's own enabled units (ssh, docker, timers, getty)
    static = root / "usr" / "lib" / "systemd" / "system"
    for wants in [*static.glob("*.wants"), *static.glob("*.requires")]:
        wanted.update(p.name for p in wants.iterdir())
    for unit in sorted((wanted - KEEP_UNITS) | set(SYSTEMD_MASKED)):
        link = system / unit
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to("/dev/null")
    default_target = system / "default.target"
    default_target.unlink(missing_ok=True)
    default_target.symlink_to("/usr/lib/systemd/system/multi-user.target")
    generators = etc / "systemd" / "system-generators"
    generators.mkdir(exist_ok=True)
    for g in sorted((root / "usr" / "lib" / "systemd" / "system-generators").iterdir()):
        (generators / g.name).symlink_to("/dev/null")
    os.chmod(root, 0o755)


def build_bed_root_layer(bed: TestBed, layer: Path) -> None:
    """The bed's own layer above the rootfs (in layer/etc): its SSH host key and the runtime
    wrapper, as in the bed layer of the Debian 12 nodes."""
    shutil.rmtree(layer, ignore_errors=True)
    ssh = layer / "etc" / "ssh"
    ssh.mkdir(parents=True)
    shutil.copyfile(bed.keys / "host_ed25519", ssh / "ssh_host_ed25519_key")
    os.chmod(ssh / "ssh_host_ed25519_key", 0o600)
    shutil.copyfile(bed.keys / "host_ed25519.pub", ssh / "ssh_host_ed25519_key.pub")
    bed_files = layer / "etc" / "tnp-testbed"
    bed_files.mkdir()
    shutil.copyfile(HERE / "tnp-runtime", bed_files / "tnp-runtime")
    os.chmod(bed_files / "tnp-runtime", 0o755)
    shutil.copyfile(bed.client_key.with_suffix(".pub"), bed_files / "authorized_keys")
    for d in (layer, layer / "etc", ssh, bed_files):
        os.chmod(d, 0o755)


def debian13_rootfs(bed: TestBed) -> tuple[Path, Path]:
    """(rootfs, the bed's layer above it), built on the bed's first Debian 13 node and kept
    for the bed's life (or taken from TNP_TESTBED_CACHE if built there before)."""
    assets = bed.kind_assets.get("debian13")
    if assets is not None:
        return assets
    mirror = host_debian_mirror()
    cache = os.environ.get(CACHE_ENV)
    if cache:
        rootfs = Path(cache).resolve() / f"debian13-rootfs-{recipe_key(mirror, bed.sudo_password)}"
    else:
        rootfs = bed.workdir / "debian13-rootfs"
        bed.at_stop(lambda: shutil.rmtree(rootfs, ignore_errors=True))
    if not (rootfs / COMPLETE).is_file():
        bed.kind_assets["debian13-build-seconds"] = build_rootfs(rootfs, mirror, bed.sudo_password)
    layer = bed.workdir / "layer-debian13"
    build_bed_root_layer(bed, layer)
    bed.kind_assets["debian13"] = (rootfs, layer)
    return rootfs, layer


# --------------------------------------------------------------------------- the kind


class Debian13Node(SystemdNode):
    """A SystemdNode whose root is the bed's Debian 13 rootfs (a per-node overlay, entered by
    pivot_root) and whose PID 1 is its systemd 257; docker.service and containerd.service
    are Debian 13's own, unchanged. Options as SystemdNode: docker=True, containerd=True."""

    kind_name = "debian13"

    def __repr__(self) -> str:
        return (
            f"<Debian13Node {self.name} {self.address} docker={self.docker} "
            f"containerd={self.containerd}>"
        )

    def start(self, max_map_count: int, files: dict[str, str | bytes]) -> None:
        # the rootfs first (once per bed): its build is no part of the node's boot time
        self.rootfs, self.root_layer = debian13_rootfs(self.bed)
        super().start(max_map_count, files)

    def _prepare(self) -> None:
        """SystemdNode's preparation (hostname, machine-id, enabled units in the /etc upper
        dir, cgroups), the node's root overlay directories, and node.env for the pivot. The
        host's Python is not bound into the node (it would not run on the rootfs's libraries):
        `trains-nodeprep --local` does not run inside a Debian 13 node."""
        super()._prepare()
        for sub in ("root", "root-upper", "root-work"):
            (self.dir / sub).mkdir()
        with open(self.dir / "node.env", "a") as f:
            f.write(
                f"ROOTFS={shlex.quote(str(self.rootfs))}\n"
                f"ROOT_LAYER={shlex.quote(str(self.root_layer))}\n"
                "PYTHON_PREFIX=\nVENV_PREFIX=\n"
            )
