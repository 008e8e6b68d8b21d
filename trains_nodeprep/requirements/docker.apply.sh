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
