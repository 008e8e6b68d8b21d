#!/bin/sh
# Init of one systemd test-bed node (tests/testbed, Node with init="systemd").
#
# Started by the bed as
#   nsenter --net=/run/netns/NS script -qefc "exec unshare --mount --uts --ipc --pid --fork
#       --kill-child --propagation private /bin/sh node-init-systemd.sh NODE_DIR" /dev/null
# so it runs as PID 1 of a new PID namespace, in its own mount, UTS and IPC namespaces, with
# the pty of script(1) as stdin/stdout (it becomes the node's /dev/console).
#
# Phase 1 (this file without a second argument): move PID 1 into the node's cgroup in every
# host hierarchy (NODE_DIR/node.env: CGROUP_PATH, CGROUP_MOUNTS; the bed made the
# directories), then re-exec itself in a new cgroup namespace rooted there.
# Phase 2 (second argument "--in-cgroupns"): replace the mounts (fresh /proc, private /dev,
# read-only sysfs with the cgroup hierarchies of the namespace, read-only /proc/sys except
# net/ and the node's own vm.max_map_count, overlay /etc with the systemd layer, tmpfs /run,
# /tmp, /var/tmp, /home, /root, per-node /var/lib/docker, /var/lib/containerd, /var/log),
# put the users' keys and the node's initial files in place, and exec the real systemd.
# A Debian 13 node (node.env: ROOTFS, ROOT_LAYER) first pivots into its own root (an overlay
# of the bed's rootfs) and then does the same there, with the rootfs's own files and systemd.
# Any failure before systemd runs prints "TNP-FAILED: ..."; "TNP-BOOT" is printed last, and
# written to NODE_DIR/booted.
# shellcheck source=node-common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/node-common.sh"  # strict mode, PATH, fail and the EXIT report first
# shellcheck source=/dev/null # written by the bed for each node
. "$1/node.env"

if [ "${2:-}" != --in-cgroupns ]; then
    [ $$ = 1 ] || fail "not PID 1 of a new PID namespace"
    # CGROUP_MOUNTS: "DIR:FSTYPE:OPTIONS ..." (DIR below /sys/fs/cgroup, as on the host)
    for m in $CGROUP_MOUNTS; do
        dir=${m%%:*}
        echo 0 > "/sys/fs/cgroup/$dir/$CGROUP_PATH/cgroup.procs" \
            || fail "cannot enter cgroup $dir/$CGROUP_PATH"
    done
    trap - EXIT
    exec unshare --cgroup /bin/sh "$0" "$1" --in-cgroupns
fi

hostname "$NODE_NAME"
NODE_DIR=$1
console=$(tty) || fail "stdin is not the pty of script(1)"

# Debian 13 nodes (trixie.py): the root becomes a copy-on-write overlay of the bed's rootfs;
# everything below happens inside it, with the host's tree at /mnt until the end.
if [ -n "${ROOTFS:-}" ]; then
    node_pivot_root
fi

# /proc of this PID namespace, its /proc/sys read-only but for the node's own keys
# (systemd would try to set host-global ones: fs.nr_open, fs.file-max, ...).
mount -t proc -o nosuid,nodev,noexec proc /proc
node_proc_sys "$NODE_DIR/max_map_count"
if [ -e /proc/sysrq-trigger ]; then
    mount --bind /proc/sysrq-trigger /proc/sysrq-trigger
    mount -o remount,bind,ro /proc/sysrq-trigger
fi

node_run_dirs "$NODE_DIR"

# a private /dev; the pty of script(1) (our stdin, $console) becomes /dev/console (kept on a
# file in the node directory while /dev is replaced)
: > "$N/console"
mount --bind "$console" "$N/console"
mount -t tmpfs -o mode=0755,nosuid,size=4m tmpfs /dev
mknod -m 666 /dev/null c 1 3
mknod -m 666 /dev/zero c 1 5
mknod -m 666 /dev/full c 1 7
mknod -m 666 /dev/random c 1 8
mknod -m 666 /dev/urandom c 1 9
mknod -m 666 /dev/tty c 5 0
mkdir -m 0755 /dev/pts /dev/shm /dev/mqueue
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts /dev/pts
ln -s pts/ptmx /dev/ptmx
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /dev/shm
mount -t mqueue -o nosuid,nodev,noexec mqueue /dev/mqueue
ln -s /proc/self/fd /dev/fd
ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout
ln -s /proc/self/fd/2 /dev/stderr
ln -s /proc/kcore /dev/core
touch /dev/console
mount --bind "$N/console" /dev/console
umount "$N/console"

# sysfs read-only (it shows this network namespace's devices); below it the cgroup
# hierarchies again, mounted inside the cgroup namespace: their root is this node's cgroup.
mount -t sysfs -o ro,nosuid,nodev,noexec sysfs /sys
mount -t tmpfs -o mode=0755,nosuid,nodev,noexec tmpfs /sys/fs/cgroup
for m in $CGROUP_MOUNTS; do
    dir=${m%%:*}; rest=${m#*:}; fstype=${rest%%:*}; opts=${rest#*:}
    mkdir -p "/sys/fs/cgroup/$dir"
    mount -t "$fstype" -o "nosuid,nodev,noexec${opts:+,$opts}" "$fstype" "/sys/fs/cgroup/$dir" \
        || fail "cannot mount cgroup $dir ($fstype $opts)"
done
mount -o remount,ro,nosuid,nodev,noexec /sys/fs/cgroup

# /etc: systemd layer + bed layer + host /etc, per-node upper dir. A Debian 13 node's /etc
# (its rootfs's, prepared by the bed) has all of that already.
etc_lower="$B/layer-systemd/etc:$B/layer/etc:/etc"
[ -z "${ROOTFS:-}" ] || etc_lower=/etc
mount -t overlay overlay -o "lowerdir=$etc_lower,upperdir=$N/upper,workdir=$N/work" /etc

node_state_mounts

# a kind's own mounts (distribution nodes: node-distro.sh), copied into the node directory
# by the bed
if [ -f "$N/kind-mounts.sh" ]; then
    # shellcheck source=node-distro.sh
    . "$N/kind-mounts.sh"
fi

node_homes

# initial files of the node, before systemd reads its units: drop-ins given here are in
# effect at boot
node_files

# NODE_DIR/booted, kept open across the unmounts below: TNP-BOOT goes there too, as the bed
# waits for it there (systemd resets /dev/console as it starts, flushing output script(1) has
# not read yet, so under load the console line can be lost)
exec 9> "$N/booted"
node_last_mounts
if [ -n "${ROOTFS:-}" ]; then
    umount -l /mnt  # the host's tree
fi

echo TNP-BOOT >&9
exec 9>&-
echo TNP-BOOT
trap - EXIT
cd /
exec env -i container=other TERM=linux SYSTEMD_COLORS=0 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin /lib/systemd/systemd
