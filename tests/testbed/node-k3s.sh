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

# /usr/local/bin: the stand-in `k3s` and the `ctr` link, as install.sh puts them there, and
# the host's docker client whited out (an overlay: the host's directory below, the node's
# upper directory prepared by the bed)
mount -t overlay overlay \
    -o "lowerdir=/usr/local/bin,upperdir=$N/usr-local-bin,workdir=$N/usr-local-bin-work" \
    /usr/local/bin

# only k3s is installed: docker's and the system containerd's binaries and units are whited
# out by read-only overlays (the bed's layer of whiteouts over the host's directory; names
# as in k3s.py: /usr/bin -> _usr_bin); their /etc entries by whiteouts in the node's upper
# directory. No /var/lib/docker or /var/lib/containerd either.
for dir in /usr/bin /usr/sbin /usr/lib/systemd/system; do
    layer="$B/k3s-hidden/$(printf %s "$dir" | tr / _)"
    mount -t overlay overlay -o "lowerdir=$layer:$dir" "$dir"
done
for d in /var/lib/docker /var/lib/containerd; do
    umount "$d"
    rmdir "$d"
done

# k3s.service runs `modprobe br_netfilter` and `modprobe overlay` (failures ignored). Root
# here has CAP_SYS_MODULE: a node must never load a module into the host's kernel.
if [ -e /usr/sbin/modprobe ]; then
    mount --bind /bin/false /usr/sbin/modprobe
fi
