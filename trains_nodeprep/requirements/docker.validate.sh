# shellcheck shell=sh
# validate_docker CONFIG_B64 FLAG...: before anything is written, dockerd checks the daemon.json
# this run would write (base64) together with the flags of its next start. `dockerd --validate`
# exists from Docker 23.0; with older engines the restart is the validation.
validate_docker() {
  version=$(dockerd --version 2>/dev/null)
  major=$(printf %s "$version" | sed -n 's/^Docker version \([0-9]*\)\..*/\1/p')
  if [ "${major:-0}" -lt 23 ]; then
    say validate docker info "${version:-dockerd} has no --validate (Docker 23+): the restart is the validation"
    return 0
  fi
  config=$(mktemp /run/tnp-daemon.json.XXXXXX) || fail docker "cannot create a temp file in /run"
  if ! printf %s "$1" | base64 -d > "$config"; then rm -f "$config"; fail docker "cannot write $config"; fi
  shift
  if out=$(dockerd --validate --config-file "$config" "$@" 2>&1); then rm -f "$config"; say validate docker ok "$out"
  else rm -f "$config"; fail docker "dockerd --validate rejected the new daemon.json with the flags of its next start ($*), nothing was written: $out"; fi
}
