# shellcheck shell=sh
# containerd's facts: installed; each running containerd's parent and own limits (what docker's
# containers inherit when docker sets no default ulimits, and the kubelet's containerd without
# systemd); with systemd, its limits as systemd loaded them (unit + drop-ins) and when its main
# process started
containerd_installed() {
  if command -v containerd >/dev/null 2>&1; then record containerd installed ok yes; fi
}
# PID FIRST (on_process hook), on every node: there are one or two containerds. Read by the
# shell's own `read` (no process started), the rows of /proc/PID/limits joined by "|" (they
# hold letters, digits and spaces), so the record needs no base64 either.
containerd_process() {
  read -r _ _ _ ppid _ 2>/dev/null < "/proc/$1/stat" || return 0
  record parent "$1" ok "$ppid"
  rows=''
  while IFS= read -r row; do rows="$rows$row|"; done 2>/dev/null < "/proc/$1/limits"
  record limits "$1" ok "$rows"
}
containerd_unit() { unit_show containerd.service "$@"; }  # PROPERTY...
