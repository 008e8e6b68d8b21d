#!/bin/sh
# Init of one test-bed node (tests/testbed). Runs under tini (PID 1) inside the node's
# own mount, UTS and PID namespaces, with the node's network namespace already entered.
# Usage: node-init.sh NODE_DIR   (NODE_DIR/node.env holds NODE_NAME, BED_DIR, DOCKER)
# It prints "TNP-READY" when sshd (and dockerd) accept requests, "TNP-FAILED: ..." otherwise.
# shellcheck source=node-common.sh source-path=SCRIPTDIR
. "$(dirname "$0")/node-common.sh"  # strict mode, PATH, fail and the EXIT report first
# shellcheck source=/dev/null # written by the bed for each node
. "$1/node.env"
hostname "$NODE_NAME"

node_run_dirs "$1"
node_proc_sys "$N/max_map_count"

# /etc: bed layer + host /etc, per-node upper dir.
mount -t overlay overlay -o "lowerdir=$B/layer/etc:/etc,upperdir=$N/upper,workdir=$N/work" /etc

node_state_mounts

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
