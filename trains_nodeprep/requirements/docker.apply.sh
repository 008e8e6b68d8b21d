# shellcheck shell=sh
# Restarting docker (see restart in remote/apply.sh). A restart can "succeed" while dockerd dies a
# moment later: wait for a new dockerd that answers.
docker_pid() { pidof dockerd 2>/dev/null | cut -d' ' -f1; }
wait_docker() {
  tries=$(($2 * 5))
  while [ "$tries" -gt 0 ]; do
    pid=$(docker_pid)
    if [ -n "$pid" ] && [ "$pid" != "$1" ] && timeout 5 docker version >/dev/null 2>&1; then return 0; fi
    sleep 0.2; tries=$((tries - 1))
  done
  return 1
}
docker_log() {
  if [ "$INIT" = systemd ]; then journalctl -u docker --no-pager -n 8 -o cat 2>/dev/null
  else tail -n 8 /var/log/docker.log 2>/dev/null; fi
}
restart_docker() {  # OLDPID (empty: docker was not running)
  exec 8>&- 9>&-  # in this subshell only: dockerd must not inherit (and hold) the run lock
  if [ "$INIT" = systemd ]; then systemctl reset-failed docker docker.socket >/dev/null 2>&1; systemctl restart docker
  elif [ -n "$1" ]; then service docker restart
  else service docker start; fi
}
# validate_docker CONFIG: `dockerd --validate` exists from Docker 23.0; with older engines the
# restart is the validation
validate_docker() {
  version=$(dockerd --version 2>/dev/null)
  major=$(printf %s "$version" | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
  if [ "${major:-0}" -ge 23 ]; then
    if out=$(dockerd --validate --config-file "$1" 2>&1); then say validate docker ok "$out"
    else fail docker "dockerd --validate rejected the new daemon.json: $out"; fi
  else say validate docker info "${version:-dockerd} has no --validate (Docker 23+): the restart is the validation"; fi
}
