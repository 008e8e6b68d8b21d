# shellcheck shell=sh
set_sysctl() {  # KEY VALUE: at runtime, now
  if out=$(sysctl -w "$1=$2" 2>&1); then say sysctl "$1" ok "$out"
  else fail "$1" "sysctl -w $1=$2 failed: $out"; fi
}
