# shellcheck shell=sh
# Which runtime the kubelet hands pods to: its --config (from the first kubelet's argv), its flag
# files and config file, the CRI sockets present
KUBELET_CONFIG=''
kubelet_process() {  # PID FIRST (on_process hook)
  if [ "$2" = yes ]; then
    KUBELET_CONFIG=$(tr '\000' '\n' < "/proc/$1/cmdline" | sed -n "s/^--config=//p;/^--config$/{n;p;}")
  fi
}
kubelet_files() {  # DEFAULT_CONFIG FLAG_FILE...: each that exists, and the running kubelet's --config
  default=$1
  for path do readfile_if_present "$path"; done
  if [ -n "$KUBELET_CONFIG" ] && [ "$KUBELET_CONFIG" != "$default" ]; then readfile "$KUBELET_CONFIG"; fi
}
cri_sockets() {  # SOCKET...
  for socket do if [ -S "$socket" ]; then record socket "$socket" ok ''; fi; done
}
