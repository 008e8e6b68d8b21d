# shellcheck shell=sh
# Restarting MicroK8s as it documents (microk8s stop; microk8s start: every pod restarts), by
# units.apply.sh. Its containerd is the main process of the snap's daemon unit and listens on
# the snap's own socket; `microk8s ctr` talks to it.
MICROK8S_UNIT=snap.microk8s.daemon-containerd.service
MICROK8S_SOCKET=/var/snap/microk8s/common/run/containerd.sock
MICROK8S=microk8s  # snapd's bin directory: /snap/bin (Debian, Ubuntu) or /var/lib/snapd/snap/bin
for m in /var/lib/snapd/snap/bin/microk8s /snap/bin/microk8s; do if [ -x "$m" ]; then MICROK8S=$m; fi; done
microk8s_pid() { unit_pid "$MICROK8S_UNIT"; }
restart_microk8s() {
  exec 8>&- 9>&-  # in this subshell only: MicroK8s must not inherit (and hold) the run lock
  "$MICROK8S" stop && "$MICROK8S" start
}
wait_microk8s() { unit_wait "$MICROK8S_UNIT" "$1" "$2" "$MICROK8S_SOCKET" main "$MICROK8S" ctr version; }
microk8s_log() { unit_log "$MICROK8S_UNIT"; }
