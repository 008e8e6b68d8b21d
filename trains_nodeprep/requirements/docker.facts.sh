# shellcheck shell=sh
# docker's facts: is it installed, and where could a systemd unit (and its drop-ins) pass it flags
docker_facts() {
  if command -v dockerd >/dev/null 2>&1; then record docker installed ok yes; fi
  if [ "$INIT" = systemd ] && unit=$(systemctl cat docker.service 2>/dev/null); then
    record unit docker.service ok "$unit"
  fi
}
