# shellcheck shell=sh
# Restarting a distribution's unit whose own containerd runs the pods (k3s, RKE2; see restart in
# remote/apply.sh): systemd reloads the drop-ins and restarts the unit (KillMode=process: the
# pods keep running). It is back when the unit has a new main process, that process a containerd
# child, and containerd answers on the distribution's socket.
unit_pid() { systemctl show -p MainPID --value "$1" 2>/dev/null | grep -v '^0$'; }
unit_log() { journalctl -u "$1" --no-pager -n 8 -o cat 2>/dev/null; }
unit_restart() {  # UNIT
  exec 8>&- 9>&-  # in this subshell only: the unit must not inherit (and hold) the run lock
  systemctl daemon-reload && systemctl reset-failed "$1" >/dev/null 2>&1; systemctl restart "$1"
}
# unit_wait UNIT OLDPID SECONDS SOCKET WHERE CTR...: WHERE the containerd is, "child" (of the
# unit's main process) or "main" (the main process itself); CTR, the argv of the distribution's
# ctr command that asks containerd for its version, is tried when it is installed (the socket
# alone says less)
unit_wait() {
  unit=$1 before=$2 tries=$(($3 * 5)) socket=$4 where=$5; shift 5
  while [ "$tries" -gt 0 ]; do
    pid=$(unit_pid "$unit")
    if [ -n "$pid" ] && [ "$pid" != "$before" ] && systemctl is-active --quiet "$unit" \
       && has_containerd "$pid" "$where" && [ -S "$socket" ] \
       && { ! command -v "$1" >/dev/null 2>&1 || timeout 5 "$@" >/dev/null 2>&1; }; then return 0; fi
    sleep 0.2; tries=$((tries - 1))
  done
  return 1
}
has_containerd() {  # PID WHERE
  if [ "$2" = main ]; then read -r comm < "/proc/$1/comm" && [ "$comm" = containerd ]
  else ! command -v pgrep >/dev/null 2>&1 || pgrep -P "$1" -x containerd >/dev/null; fi
}
