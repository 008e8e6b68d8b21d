# shellcheck shell=sh
# The own mounts of a distribution's node (k3s, RKE2, MicroK8s: tests/testbed/distro.py). The
# bed copies this file into the node directory as kind-mounts.sh; node-init-systemd.sh sources
# it after node_state_mounts, before the node's initial files are written and systemd runs.
# $N and $B are set there (node_run_dirs of node-common.sh); the DISTRO_* settings come from
# the node's node.env (DistributionNode._prepare).
# shellcheck disable=SC2154

# The distribution keeps its own containerd binaries (k3s and RKE2 in their data directory,
# MicroK8s in its snap): the host's, read-only binds (as good as a copy for exec, and free),
# made before the host's paths are hidden below.
if [ -n "$DISTRO_BIN" ]; then
    mkdir -p "$DISTRO_BIN"
    for b in $DISTRO_BINARIES; do
        : > "$DISTRO_BIN/$b"
    done
fi
# links such as k3s's data/current or RKE2's bin (LINK=TARGET)
for link in $DISTRO_LINKS; do
    mkdir -p "$(dirname "${link%%=*}")"
    ln -s "${link#*=}" "${link%%=*}"
done
# read-only directories (a snap's squashfs): bound onto themselves (non-recursive, so before
# the binaries are bound into them), then remounted read-only after
for d in $DISTRO_RO_DIRS; do
    mount --bind "$d" "$d"
done
if [ -n "$DISTRO_BIN" ]; then
    for b in $DISTRO_BINARIES; do
        mount --bind "/usr/bin/$b" "$DISTRO_BIN/$b"
        mount -o remount,bind,ro "$DISTRO_BIN/$b"
    done
fi
for d in $DISTRO_RO_DIRS; do
    mount -o remount,bind,ro "$d"
done

# host directories with the node's own upper directory (names as in distro.py: /usr/local/bin
# -> ovl_usr_local_bin): /usr/local/bin holds the stand-ins and the host's docker client
# whited out; RKE2 also has its units in /usr/local/lib/systemd/system
for dir in $DISTRO_OVERLAYS; do
    upper="$N/ovl$(printf %s "$dir" | tr / _)"
    mount -t overlay overlay -o "lowerdir=$dir,upperdir=$upper,workdir=$upper-work" "$dir"
done

# only the distribution is installed: docker's and the system containerd's binaries and units
# are whited out by read-only overlays (the bed's layer of whiteouts over the host's
# directory, and the node's own added layer above it if the kind has one, e.g. MicroK8s's
# /usr/bin/snap); their /etc entries by whiteouts in the node's upper directory. No
# /var/lib/docker or /var/lib/containerd either.
for dir in /usr/bin /usr/sbin /usr/lib/systemd/system; do
    name=$(printf %s "$dir" | tr / _)
    lower="$B/distro-hidden/$name:$dir"
    if [ -d "$N/add$name" ]; then
        lower="$N/add$name:$lower"
    fi
    mount -t overlay overlay -o "lowerdir=$lower" "$dir"
done
for d in /var/lib/docker /var/lib/containerd; do
    umount "$d"
    rmdir "$d"
done

# k3s's and RKE2's units run `modprobe br_netfilter` and `modprobe overlay` (failures
# ignored). Root here has CAP_SYS_MODULE: a node must never load a module into the host's
# kernel.
if [ -e /usr/sbin/modprobe ]; then
    mount --bind /bin/false /usr/sbin/modprobe
fi
