# shellcheck shell=sh
# The facts script's own functions (after lib.sh): read-only, as root. It writes records
# (see remote/protocol.py) and ends with one tar archive, raw, of every regular file it read,
# the entries asked for, and the node's clock: any bytes survive the trip, in one process.
# Each requirement module adds its own functions (requirements/NAME.facts.sh) and the calls.

exec </dev/null
FILES=''  # the paths to put in the archive, one per line

# readfile PATH: the file's state now; its content and mtime come in the archive
readfile() {
  case "$1" in *"$T"*|*"$NL"*) record oddname - ok "$1"; return 0 ;; esac  # records and FILES split there
  case "$NL$FILES" in *"$NL$1$NL"*) return 0 ;; esac
  if [ -d "$1" ]; then record file "$1" directory ''
  elif [ -f "$1" ]; then record want "$1" ok ''; FILES="$FILES$1$NL"
  elif [ -e "$1" ]; then record file "$1" unreadable ''
  else record file "$1" absent ''; fi
}
readfile_if_present() { if [ -e "$1" ]; then readfile "$1"; fi; }

# archive_entry PATH: PATH itself in the archive (a directory: its owner and mode, not its tree)
archive_entry() { FILES="$FILES$1$NL"; }

# started NAME PID: when the process started, in clock ticks since boot, beside the uptime now
started() {
  read -r _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ _ ticks _ < "/proc/$2/stat" && read -r up _ < /proc/uptime \
    && record clock "$1-started" ok "$ticks $up"
}

# unit_show UNIT PROPERTY...: systemd's view of UNIT (its limits as loaded: unit file and drop-ins)
# and when its main process started (clock UNIT-started)
unit_show() {
  unit=$1; shift
  if [ "$INIT" = systemd ] && show=$(systemctl show "$unit" "$@" 2>/dev/null); then
    record unit-show "$unit" ok "$show"
    main=$(printf %s "$show" | sed -n "s/^MainPID=//p")
    if [ "${main:-0}" != 0 ]; then started "$unit" "$main"; fi
  fi
}
# installed_unit UNIT PROPERTY...: unit_show, if UNIT's file is in one of systemd's unit directories
# (tested by builtins: most nodes have none of the distributions' units)
installed_unit() {
  for dir in /etc/systemd/system /usr/local/lib/systemd/system /usr/lib/systemd/system /lib/systemd/system; do
    if [ -e "$dir/$1" ]; then unit_show "$@"; return 0; fi
  done
}

lock_shared() { lock_dir; exec 9>>"$LOCK_FILE" && flock -s -w "$LOCK_WAIT" 9; }

read_identity() {
  record id user ok "${USER:-$(id -un)}"
  if [ -d /run/systemd/system ]; then INIT=systemd
  elif command -v service >/dev/null 2>&1 || [ -x /usr/sbin/service ]; then INIT=sysvinit
  else INIT=unknown; fi
  record init system ok "$INIT"
}

# sysctl_key /proc/sys/vm/max_map_count: sets KEY=vm.max_map_count
# shellcheck disable=SC2086 # split at "/" on purpose
sysctl_key() { set -f; IFS=/; set -- ${1#/proc/sys/}; IFS=.; KEY="$*"; unset IFS; set +f; }

# scan NAMES VALUE...: one grep finds the running daemons named in NAMES (a|b|c, each a
# process's comm) and reads the kernel values at the paths VALUE... (procfs answers whole reads
# only; the shell would read them byte by byte). A kernel value is a number, possibly negative;
# a process whose name starts with one is skipped. For each daemon: its argv (where its flags
# really came from), when the first of each name started, and on_process NAME PID FIRST, which
# the requirement modules' hooks answer.
scan() {
  names="|$1|"; shift; values=" $* "
  found=$(grep -sHxE "${names#|}-?[0-9].*" "$@" /proc/[0-9]*/comm)
  set -f; IFS=$NL
  # shellcheck disable=SC2086 # one argument per line of grep's output
  set -- $found
  unset IFS; set +f
  seen='|'; got=' '
  for hit do
    path=${hit%%:*}; value=${hit#*:}
    case "$path" in
      /proc/sys/*) sysctl_key "$path"; record sysctl "$KEY" ok "$value"; got="$got$path " ;;
      /proc/*/comm)
        case "$names" in *"|$value|"*) ;; *) continue ;; esac
        pid=${path#/proc/}; pid=${pid%/comm}
        # NUL-separated args joined by \037 (a tab or newline inside an arg becomes one too)
        record proc "$value" "$pid" "$(tr '\000\t\n' '\037\037\037' < "/proc/$pid/cmdline")"
        case "$seen" in
          *"|$value|"*) first=no ;;
          *) first=yes; seen="$seen$value|"; started "$value" "$pid" ;;
        esac
        on_process "$value" "$pid" "$first" ;;
    esac
  done
  for path in $values; do
    case "$got" in *" $path "*) ;; *) sysctl_key "$path"; record sysctl "$KEY" absent '' ;; esac
  done
}

# backups PATTERN...: the backups beside every file the tool may write (globs come sorted, so
# the newest is last), and the newest one's content, for `restore`
backups() {
  for pattern do
    for path in $pattern; do backups_of "$path"; done
  done
}
backups_of() {
  target=$1
  set -- "$1".*.bak
  [ -e "$1" ] || return 0
  for backup do record backup "$target" ok "$backup"; done
  eval "readfile \"\${$#}\""
}

# send: the records, then the archive. Its first entry is the node's clock, to age the files a
# daemon reads only at start: procfs makes tar's own /proc/PID entry, with the time, when tar
# first looks at it. So tar must be a new process, never this shell exec'ed (the caller does not
# end with it: some shells exec the last command), because this shell's own entry may have been
# made long ago, by anything that scanned /proc while we waited for the lock. tar's complaints
# about paths it could not read are not the script's failure: they are just not in the archive.
send() {
  record end end ok ''
  record archive all ok ''
  flush
  set -f; IFS=$NL
  # shellcheck disable=SC2086 # one path per line: no process needed to feed them on stdin
  tar_archive "$NOW_ENTRY" $FILES 2>/dev/null
  unset IFS; set +f
}
