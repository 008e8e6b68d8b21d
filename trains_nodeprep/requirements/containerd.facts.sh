# shellcheck shell=sh
# containerd's facts: installed; without systemd, the running containerd's own limits; with it,
# its limits as systemd loaded them (unit + drop-ins) and when its main process started
containerd_installed() {
  if command -v containerd >/dev/null 2>&1; then record containerd installed ok yes; fi
}
containerd_process() {  # PID FIRST (on_process hook): nothing but the process tells its limits without systemd
  if [ "$INIT" != systemd ]; then record limits "$1" ok "$(cat "/proc/$1/limits")"; fi
}
containerd_unit() {  # PROPERTY...
  if [ "$INIT" = systemd ] && show=$(systemctl show containerd.service "$@" 2>/dev/null); then
    record unit-show containerd.service ok "$show"
    main=$(printf %s "$show" | sed -n "s/^MainPID=//p")
    if [ "${main:-0}" != 0 ]; then started containerd.service "$main"; fi
  fi
}
