# Steps shared by node-init.sh (tini nodes) and node-init-systemd.sh (systemd nodes).
# Sourced early, while the script's own directory is still visible; the functions use
# $B (the bed), $N (the node dir), $BED_USERS and $KEEP of the sourcing script.

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
