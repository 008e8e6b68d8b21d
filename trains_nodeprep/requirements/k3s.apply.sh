# shellcheck shell=sh
# Restarting k3s's unit (server: k3s.service, agent: k3s-agent.service), by units.apply.sh. k3s's
# containerd listens on this socket; `k3s ctr` talks to it.
K3S_SOCKET=/run/k3s/containerd/containerd.sock
k3s_pid() { unit_pid k3s.service; }
restart_k3s() { unit_restart k3s.service; }
wait_k3s() { unit_wait k3s.service "$1" "$2" "$K3S_SOCKET" child k3s ctr version; }
k3s_log() { unit_log k3s.service; }
k3s_agent_pid() { unit_pid k3s-agent.service; }
restart_k3s_agent() { unit_restart k3s-agent.service; }
wait_k3s_agent() { unit_wait k3s-agent.service "$1" "$2" "$K3S_SOCKET" child k3s ctr version; }
k3s_agent_log() { unit_log k3s-agent.service; }
