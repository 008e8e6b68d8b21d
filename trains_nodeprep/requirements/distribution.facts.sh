# shellcheck shell=sh
# present PATH...: which of these exist (a distribution's units, data and args), by builtins alone
present() {
  for path do if [ -e "$path" ]; then record path "$path" ok ''; fi; done
}
