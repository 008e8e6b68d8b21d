# shellcheck shell=sh
# Restarting containerd (see restart in remote/apply.sh), after systemd reloaded its drop-ins.
containerd_pid() { systemctl show -p MainPID --value containerd.service 2>/dev/null | grep -v '^0$'; }
wait_containerd() {
  # Type=notify: a restart returns once containerd says it is ready; still, it must answer
  # (on its default socket, when it listens there: a custom address is left to systemd's word).
  tries=$(($2 * 5))
  while [ "$tries" -gt 0 ]; do
    pid=$(containerd_pid)
    if [ -n "$pid" ] && [ "$pid" != "$1" ] && systemctl is-active --quiet containerd.service \
       && { [ ! -S /run/containerd/containerd.sock ] || ! command -v ctr >/dev/null 2>&1 || timeout 5 ctr version >/dev/null 2>&1; }; then return 0; fi
    sleep 0.2; tries=$((tries - 1))
  done
  return 1
}
containerd_log() { journalctl -u containerd --no-pager -n 8 -o cat 2>/dev/null; }
restart_containerd() {
  exec 8>&- 9>&-  # in this subshell only: containerd must not inherit (and hold) the run lock
  systemctl daemon-reload && systemctl reset-failed containerd.service >/dev/null 2>&1; systemctl restart containerd.service
}
