#!/bin/sh
# Init of one test-bed node (tests/testbed). Runs under tini (PID 1) inside the node's
# own mount, UTS and PID namespaces, with the node's network namespace already entered.
# Usage: node-init.sh NODE_DIR   (NODE_DIR/node.env holds NODE_NAME, BED_DIR, DOCKER)
# It prints "TNP-READY" when sshd (and dockerd) accept requests, "TNP-FAILED: ..." otherwise.
set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "TNP-FAILED: $*"; exit 1; }
trap 'st=$?; [ $st -eq 0 ] || echo "TNP-FAILED: init exited with status $st"' EXIT

. "$1/node.env"
. "$(dirname "$0")/node-common.sh"
hostname "$NODE_NAME"

# /run first, then make the node and bed directories reachable from there: the bed
# may live below /tmp, /root or /home, which get their own tmpfs below.
mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
mkdir -p /run/tnp-node /run/tnp-bed
mount --bind "$1" /run/tnp-node
mount --bind "$BED_DIR" /run/tnp-bed
# The test's Python and venv stay visible in the node even below /root, /home or /tmp,
# which get their own tmpfs below: stash them under /run, bind them back at the end.
KEEP=""
for keep in "$PYTHON_PREFIX" "${VENV_PREFIX:-}"; do
    case "$keep" in
        /root/*|/home/*|/tmp/*)
            stash="/run/tnp-keep/$(printf %s "$keep" | tr / _)"
            mkdir -p "$stash"; mount --bind "$keep" "$stash"; KEEP="$KEEP $keep" ;;
    esac
done
N=/run/tnp-node
B=/run/tnp-bed

# /proc/sys: read-only except the per-netns net/ and this node's own copy of
# vm.max_map_count. Nothing inside the node can change a host-global kernel value.
mount --bind /proc/sys /proc/sys
mount -o remount,bind,ro /proc/sys
mount --bind /proc/sys/net /proc/sys/net
mount -o remount,bind,rw /proc/sys/net
mount --bind "$N/max_map_count" /proc/sys/vm/max_map_count
mount -o remount,bind,rw /proc/sys/vm/max_map_count

# /etc: bed layer + host /etc, per-node upper dir.
mount -t overlay overlay -o "lowerdir=$B/layer/etc:/etc,upperdir=$N/upper,workdir=$N/work" /etc

# per-node state: /var/lib is an overlay too (sudo, dpkg, ... state stays in the node;
# the mount points need no directories on the host), docker's dirs are plain binds
mount -t overlay overlay -o "lowerdir=/var/lib,upperdir=$N/var-lib-upper,workdir=$N/var-lib-work" /var/lib
# /opt too: trains-server's data directories (/opt/trains) belong to the node, never the host
mount -t overlay overlay -o "lowerdir=/opt,upperdir=$N/opt-upper,workdir=$N/opt-work" /opt
mkdir -p /var/lib/docker /var/lib/containerd
mount --bind "$N/var-lib-docker" /var/lib/docker
mount --bind "$N/var-lib-containerd" /var/lib/containerd
mount --bind "$N/var-log" /var/log
mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
mount -t tmpfs -o mode=0755 tmpfs /home
mount -t tmpfs -o mode=0700 tmpfs /root
# The host has a docker 28 client in /usr/local/bin, first on PATH; a node has the
# client matching its dockerd (20.10).
if [ -e /usr/local/bin/docker ] && [ -x /usr/bin/docker ]; then
    mount --bind /usr/bin/docker /usr/local/bin/docker
fi

# the node's own name resolves (sudo looks it up on every call)
printf '%s\t%s\n' "$NODE_ADDRESS" "$NODE_NAME" >> /etc/hosts

mkdir -p /run/sshd /run/lock
chmod 0755 /run/sshd

node_homes

# initial files of the node
node_files

node_last_mounts

/usr/sbin/sshd -E /var/log/sshd.log || fail "sshd did not start"

if [ "$DOCKER" = 1 ]; then
    service docker start || fail "service docker start failed"
    i=0
    until docker info >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -lt 300 ] || fail "docker info does not answer"
        sleep 0.05
    done
fi

echo TNP-READY
trap - EXIT
exec sleep infinity
