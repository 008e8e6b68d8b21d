"""The /etc layers every node's /etc overlay is built from (above the host's /etc, below the
node's own upper directory): the bed layer (test users, sudo, sshd, host keys, docker's init
script and flags, the runtime wrapper) and the systemd layer of systemd nodes (default target,
masked units and generators). Built once per bed, from copies: the host's /etc is only read."""

from __future__ import annotations

import grp
import os
import shutil
import time
from pathlib import Path

from .host import run

HERE = Path(__file__).resolve().parent
BED_USERS = {"deploy": 1501, "secured": 1502}
RUNTIME_PATH = "/etc/tnp-testbed/tnp-runtime"  # path inside nodes (in the bed layer)
# sudo of the bed users (the same on every kind of node)
SUDOERS = (
    "# test bed users\n"
    "deploy ALL=(ALL) NOPASSWD:ALL\n"
    "secured ALL=(ALL) ALL\n"
    "# ask every time: tests must not depend on a cached sudo timestamp\n"
    "Defaults:secured timestamp_timeout=0\n"
)
# sshd of every node: keys only, the bed's host key, no PAM
SSHD_CONFIG = (
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
    "Subsystem sftp /usr/lib/openssh/sftp-server\n"
)
DOCKER_OPTS = (
    "\n# tnp test bed: OCI runtime wrapper that records requested rlimits\n"
    f'DOCKER_OPTS="--add-runtime tnp={RUNTIME_PATH} --default-runtime tnp"\n'
)
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


def build_bed_layer(layer: Path, keys: Path, client_key: Path, sudo_password: str) -> None:
    """The /etc layer shared by all nodes of a bed, in layer/etc (files only: the host's
    /etc is read, never written). keys holds the host keys, client_key the client's key."""
    if layer.exists():
        shutil.rmtree(layer)
    etc = layer / "etc"
    etc.mkdir(parents=True)

    # /etc/docker: opaque, so the host's /etc/docker never shows through
    (etc / "docker").mkdir(mode=0o755)
    os.setxattr(etc / "docker", "trusted.overlay.opaque", b"y")

    # users (copies of the host files + bed users)
    today = int(time.time() // 86400)
    pw_hash = (
        run("openssl", "passwd", "-6", "-stdin", input=sudo_password.encode())
        .stdout.decode()
        .strip()
    )
    passwd = _without_users(Path("/etc/passwd").read_text(), BED_USERS)
    group = _without_users(Path("/etc/group").read_text(), BED_USERS)
    shadow = _without_users(Path("/etc/shadow").read_text(), BED_USERS)
    gshadow = _without_users(Path("/etc/gshadow").read_text(), BED_USERS)
    for user, uid in BED_USERS.items():
        passwd += f"{user}:x:{uid}:{uid}:tnp test user:/home/{user}:/bin/bash\n"
        group += f"{user}:x:{uid}:\n"
        gshadow += f"{user}:!::\n"
        pw = pw_hash if user == "secured" else "*"
        shadow += f"{user}:{pw}:{today}:0:99999:7:::\n"
    write_file(etc / "passwd", passwd, 0o644)
    write_file(etc / "group", group, 0o644)
    write_file(etc / "shadow", shadow, 0o640, gid=_gid("shadow"))
    write_file(etc / "gshadow", gshadow, 0o640, gid=_gid("shadow"))

    # sudo
    (etc / "sudoers.d").mkdir(mode=0o755)
    write_file(etc / "sudoers.d" / "tnp-testbed", SUDOERS, 0o440)

    # sshd
    (etc / "ssh").mkdir(mode=0o755)
    write_file(etc / "ssh" / "sshd_config", SSHD_CONFIG, 0o644)
    shutil.copyfile(keys / "host_ed25519", etc / "ssh" / "ssh_host_ed25519_key")
    os.chmod(etc / "ssh" / "ssh_host_ed25519_key", 0o600)
    shutil.copyfile(keys / "host_ed25519.pub", etc / "ssh" / "ssh_host_ed25519_key.pub")

    # docker: patched init script, DOCKER_OPTS with the runtime wrapper
    (etc / "init.d").mkdir(mode=0o755)
    write_file(etc / "init.d" / "docker", _patched_init_script(), 0o755)
    (etc / "default").mkdir(mode=0o755)
    default = Path("/etc/default/docker")
    text = default.read_text() if default.exists() else ""
    text += DOCKER_OPTS
    write_file(etc / "default" / "docker", text, 0o644)

    # bed files used by node-init.sh and dockerd
    (etc / "tnp-testbed").mkdir(mode=0o755)
    shutil.copyfile(HERE / "tnp-runtime", etc / "tnp-testbed" / "tnp-runtime")
    os.chmod(etc / "tnp-testbed" / "tnp-runtime", 0o755)
    shutil.copyfile(client_key.with_suffix(".pub"), etc / "tnp-testbed" / "authorized_keys")
    os.chmod(etc / "tnp-testbed" / "authorized_keys", 0o644)
    os.chmod(layer, 0o755)


def build_systemd_layer(root: Path) -> None:
    """The extra /etc layer of systemd nodes (above the bed layer), in root/etc: its own
    /etc/systemd/system (opaque: none of the host's enabled services, timers or aliases
    shows through), default target multi-user, masked units (SYSTEMD_MASKED) and
    generators (the host's /etc/init.d scripts, fstab, gettys, ... would become units).
    Which services start is decided per node (wants links in the node's upper dir)."""
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


def _without_users(text: str, names: dict[str, int]) -> str:
    keep = [line for line in text.splitlines() if line.split(":", 1)[0] not in names]
    return "\n".join(keep) + "\n"


def _gid(group: str) -> int:
    try:
        return grp.getgrnam(group).gr_gid
    except KeyError:
        return 0


def write_file(path: Path, content: str | bytes, mode: int, uid: int = 0, gid: int = 0) -> None:
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
	echo "tnp-testbed: dropped RHEL-only dockerd flags:$TNP_DROPPED" \
		>> "$DOCKER_LOGFILE" 2>/dev/null || true
fi
"""
