# shellcheck shell=sh
# The k3s node's own mounts (tests/testbed/k3s.py). The bed copies this file into the node
# directory as kind-mounts.sh; node-init-systemd.sh sources it after node_state_mounts, before
# the node's initial files are written and systemd runs. $N and $B are set there
# (node_run_dirs of node-common.sh).
# shellcheck disable=SC2154

# k3s keeps its own containerd binaries in its data directory: the host's, read-only binds
# (as good as a copy for exec, and free), made before the host's paths are hidden below.
K3S_DATA=/var/lib/rancher/k3s/data
k3s_bin="$K3S_DATA/tnp-stand-in/bin"
mkdir -p "$k3s_bin"
ln -s tnp-stand-in "$K3S_DATA/current"
for b in containerd containerd-shim-runc-v2 ctr; do
    : > "$k3s_bin/$b"
    mount --bind "/usr/bin/$b" "$k3s_bin/$b"
    mount -o remount,bind,ro "$k3s_bin/$b"
done

# /usr/local/bin: the stand-in `k3s` and the `ctr` link, as install.sh puts them there (an
# overlay: the host's directory below, the node's upper directory with the two files above)
mount -t overlay overlay \
    -o "lowerdir=/usr/local/bin,upperdir=$N/usr-local-bin,workdir=$N/usr-local-bin-work" \
    /usr/local/bin

# only k3s is installed: docker and the system containerd are not (their binaries become
# /dev/null, which is not executable; their units are absent from a copy of the unit
# directory that the bed made without them; their /etc files are whited out by the bed)
for f in /usr/bin/docker /usr/local/bin/docker /usr/sbin/dockerd /usr/sbin/docker-proxy \
    /usr/bin/containerd /usr/bin/containerd-shim /usr/bin/containerd-shim-runc-v1 \
    /usr/bin/containerd-shim-runc-v2 /usr/bin/ctr; do
    if [ -e "$f" ]; then
        mount --bind /dev/null "$f"
    fi
done
mount --bind "$B/k3s-units" /lib/systemd/system
mount -o remount,bind,ro /lib/systemd/system
for d in /var/lib/docker /var/lib/containerd; do
    umount "$d"
    rmdir "$d"
done

# k3s.service runs `modprobe br_netfilter` and `modprobe overlay` (failures ignored). Root
# here has CAP_SYS_MODULE: a node must never load a module into the host's kernel.
if [ -e /usr/sbin/modprobe ]; then
    mount --bind /bin/false /usr/sbin/modprobe
fi
