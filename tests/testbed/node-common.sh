# shellcheck shell=sh
# Steps shared by node-init.sh (tini nodes) and node-init-systemd.sh (systemd nodes).
# Sourced early, while the script's own directory is still visible; the functions use
# $B (the bed), $N (the node dir), $BED_USERS and $KEEP of the sourcing script.

set -eu
export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
fail() { echo "TNP-FAILED: $*"; exit 1; }
# shellcheck disable=SC2154 # st is set inside the trap itself
trap 'st=$?; [ $st -eq 0 ] || echo "TNP-FAILED: init exited with status $st"' EXIT

# /run first, then make the node ($1) and bed directories reachable from there: the bed may
# live below /tmp, /root, /home, /opt or /var, of which nodes get their own later. The test's
# Python and venv stay visible in the node even there: stashed under /run, bound back by
# node_last_mounts.
# Sets N (the node dir), B (the bed dir) and KEEP.
node_run_dirs() {
    mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs /run
    mkdir -p /run/tnp-node /run/tnp-bed
    mount --bind "$1" /run/tnp-node
    mount --bind "$BED_DIR" /run/tnp-bed
    KEEP=""
    for keep in "$PYTHON_PREFIX" "${VENV_PREFIX:-}"; do
        case "$keep" in
            /root/*|/home/*|/tmp/*|/opt/*|/var/*)
                stash="/run/tnp-keep/$(printf %s "$keep" | tr / _)"
                mkdir -p "$stash"; mount --bind "$keep" "$stash"; KEEP="$KEEP $keep" ;;
        esac
    done
    N=/run/tnp-node
    B=/run/tnp-bed
}

# /proc/sys read-only except net/ (per network namespace) and this node's own copy of
# vm.max_map_count (the file $1): nothing in the node can change a host-global kernel value.
node_proc_sys() {
    mount --bind /proc/sys /proc/sys
    mount -o remount,bind,ro /proc/sys
    mount --bind /proc/sys/net /proc/sys/net
    mount -o remount,bind,rw /proc/sys/net
    mount --bind "$1" /proc/sys/vm/max_map_count
    mount -o remount,bind,rw /proc/sys/vm/max_map_count
}

# per-node state, hermetic: nothing of the host's /opt, /var/lib or /var/snap is seen (a
# host where trains-server or a kubelet ran has /opt/trains, /var/lib/kubelet) and nothing a
# node writes there reaches the host. /var is an overlay of the host's (so a directory made
# below it, e.g. /var/snap, stays in the node); /var/lib, /opt and /var/snap are per-node
# directories, empty at boot: sshd, sudo, systemd, docker and containerd create what they
# keep there. docker's and containerd's dirs and /var/log are plain binds of real
# directories (overlay2 cannot sit on overlayfs); private /var/tmp, /home, /root. The host
# has a docker 28 client in /usr/local/bin, first on PATH; a node has the client matching
# its dockerd (20.10). The node's own name resolves (sudo looks it up on every call).
node_state_mounts() {
    mount -t overlay overlay -o "lowerdir=/var,upperdir=$N/var-upper,workdir=$N/var-work" /var
    mkdir -p /var/snap
    mount --bind "$N/var-lib" /var/lib
    mount --bind "$N/var-snap" /var/snap
    mount --bind "$N/opt" /opt
    mkdir -p /var/lib/docker /var/lib/containerd
    mount --bind "$N/var-lib-docker" /var/lib/docker
    mount --bind "$N/var-lib-containerd" /var/lib/containerd
    mount --bind "$N/var-log" /var/log
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /var/tmp
    mount -t tmpfs -o mode=0755 tmpfs /home
    mount -t tmpfs -o mode=0700 tmpfs /root
    if [ -e /usr/local/bin/docker ] && [ -x /usr/bin/docker ]; then
        mount --bind /usr/bin/docker /usr/local/bin/docker
    fi
    printf '%s\t%s\n' "$NODE_ADDRESS" "$NODE_NAME" >> /etc/hosts
}

# home directories and authorized keys
node_homes() {
    mkdir -p /root/.ssh
    chmod 0700 /root/.ssh
    cp "$B/layer/etc/tnp-testbed/authorized_keys" /root/.ssh/authorized_keys
    chmod 0600 /root/.ssh/authorized_keys
    for u in $BED_USERS; do
        h=/home/$u
        mkdir -p "$h/.ssh"
        cp -a /etc/skel/. "$h/" 2>/dev/null || true
        cp "$B/layer/etc/tnp-testbed/authorized_keys" "$h/.ssh/authorized_keys"
        chmod 0750 "$h"
        chmod 0700 "$h/.ssh"
        chmod 0600 "$h/.ssh/authorized_keys"
        chown -R "$u:$u" "$h"
    done
}

# initial files of the node (NODE_DIR/files/MANIFEST: "INDEX MODE PATH" per line)
node_files() {
    if [ -f "$N/files/MANIFEST" ]; then
        while read -r idx mode path; do
            mkdir -p "$(dirname "$path")"
            cp "$N/files/$idx" "$path"
            chmod "$mode" "$path"
        done < "$N/files/MANIFEST"
    fi
}

# last: /tmp (may hide the bed's own directory), then drop the helper mounts
node_last_mounts() {
    mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs /tmp
    for keep in $KEEP; do
        mkdir -p "$keep"; mount --bind "/run/tnp-keep/$(printf %s "$keep" | tr / _)" "$keep"
    done
    umount -l /run/tnp-node /run/tnp-bed
    rmdir /run/tnp-node /run/tnp-bed
}

# Debian 13 nodes: mount the node's root, a copy-on-write overlay (below: the bed's layer
# $ROOT_LAYER and its rootfs $ROOTFS, read-only; above: the node's own root-upper), and
# pivot_root into it. The host's tree stays at /mnt until the init unmounts it; NODE_DIR,
# BED_DIR and the console ($console, a pty of the host's devpts) are reached through it.
# No module can be loaded from there: a modprobe of the rootfs would act on the host's kernel.
node_pivot_root() {
    root=$NODE_DIR/root
    mount -t overlay overlay \
        -o "lowerdir=$ROOT_LAYER:$ROOTFS,upperdir=$NODE_DIR/root-upper,workdir=$NODE_DIR/root-work" \
        "$root" || fail "cannot mount the root overlay of $ROOTFS"
    cd "$root"
    pivot_root . mnt || fail "pivot_root into $root failed"
    cd /
    NODE_DIR=/mnt$NODE_DIR
    BED_DIR=/mnt$BED_DIR
    console=/mnt$console
    for m in /usr/sbin/modprobe /usr/bin/kmod; do
        if [ -e "$m" ]; then
            mount --bind /bin/false "$m"
        fi
    done
}
