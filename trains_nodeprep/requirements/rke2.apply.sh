# shellcheck shell=sh
# Restarting RKE2's unit (rke2-server.service, rke2-agent.service), by units.apply.sh. RKE2's
# containerd listens on k3s's socket path; RKE2 ships its ctr in its data directory.
RKE2_SOCKET=/run/k3s/containerd/containerd.sock
RKE2_CTR=/var/lib/rancher/rke2/bin/ctr
rke2_server_pid() { unit_pid rke2-server.service; }
restart_rke2_server() { unit_restart rke2-server.service; }
wait_rke2_server() { unit_wait rke2-server.service "$1" "$2" "$RKE2_SOCKET" child "$RKE2_CTR" --address "$RKE2_SOCKET" version; }
rke2_server_log() { unit_log rke2-server.service; }
rke2_agent_pid() { unit_pid rke2-agent.service; }
restart_rke2_agent() { unit_restart rke2-agent.service; }
wait_rke2_agent() { unit_wait rke2-agent.service "$1" "$2" "$RKE2_SOCKET" child "$RKE2_CTR" --address "$RKE2_SOCKET" version; }
rke2_agent_log() { unit_log rke2-agent.service; }
