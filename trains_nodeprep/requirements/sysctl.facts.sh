# shellcheck shell=sh
# sysctl_dirs DIR...: every DIR/*.conf, the files `sysctl --system` applies at boot
sysctl_dirs() {
  for dir do
    # /lib/sysctl.d is /usr/lib/sysctl.d on merged-/usr systems: read it once
    if [ "$dir" = /lib/sysctl.d ] && [ /lib/sysctl.d -ef /usr/lib/sysctl.d ]; then continue; fi
    for conf in "$dir"/*.conf; do readfile_if_present "$conf"; done
  done
}
