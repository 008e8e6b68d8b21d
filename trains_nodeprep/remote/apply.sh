# shellcheck shell=sh
# The apply script's own functions (after lib.sh), as root: each file is replaced only if it still
# has the content the facts saw, atomically, after a backup beside it; services restart only
# after every write; if one does not come back, every file is put back byte for byte. Each step
# is one record `step KIND SUBJECT STATUS MESSAGE`, written at once. The caller sets STAMP (the
# backups' UTC time), INIT (systemd | sysvinit | unknown) and KEEP (backups kept per file).
# Each service a change restarts brings NAME_pid, restart_NAME, wait_NAME OLDPID SECONDS and
# NAME_log (requirements/NAME.apply.sh).

exec 7<&0 </dev/null  # fd 7: secrets sent on stdin (after the sudo password line, if any)
trap '' HUP PIPE  # a dropped connection must not stop the change halfway
umask 022

say() { record step "$@"; flush; }
lock_exclusive() { lock_dir && exec 9>"$LOCK_FILE" && flock -w "$LOCK_WAIT" 9; }
unlock() { exec 9>&-; }

WRITTEN=''  # the backups made so far, one per line; each names its file: PATH.STAMP[.absent].bak
restore_files() {
  set -f; IFS=$NL  # a line is one backup, whatever spaces or glob characters its path holds
  for backup in $WRITTEN; do
    case "$backup" in
      *.absent.bak) path=${backup%".$STAMP.absent.bak"}; rm -f "$path" "$backup" ;;
      *) path=${backup%".$STAMP.bak"}; cp -p "$backup" "$path.tnp-restore" && mv -f "$path.tnp-restore" "$path" && rm -f "$backup" ;;
    esac
    say restore "$path" ok ""
  done
  unset IFS; set +f
  WRITTEN=''
}
fail() { say error "$1" fail "$2"; restore_files; exit 1; }
resolve() { if [ -L "$1" ]; then R=$(readlink -f "$1"); else R=$1; fi; }  # sets R

# checked PATH SHA256: the file still has the content the facts saw ("-": it did not exist)
checked() {
  if [ -e "$1" ]; then have=$(sha256sum < "$1"); have=${have%% *}; else have=-; fi
  [ "$have" = "$2" ] && return 0
  say stale "$1" fail "changed on the node since its facts were read"; restore_files; exit "$EXIT_STALE"
}

# backup_of PATH: sets B to a copy beside it, or to an empty marker that says it did not exist
backup_of() {
  if [ -e "$1" ]; then B="$1.$STAMP.bak"; cp -p "$1" "$B" || return 1
  else B="$1.$STAMP.absent.bak"; true > "$B" || return 1; fi
  # keep the newest $KEEP backups of this file: their names sort by stamp, and globs come sorted
  set -- "$1".*.bak
  while [ "$#" -gt "$KEEP" ]; do rm -f -- "$1"; shift; done
}

# put PATH SHA256 CONTENT ENCODING MODE: ENCODING esc (for printf %b) or b64; MODE for a new file
put() {
  resolve "$1"; path=$R; checked "$path" "$2"
  dir=${path%/*}; [ -n "$dir" ] || dir=/
  [ -d "$dir" ] || mkdir -p "$dir" || fail "$1" "cannot create directory $dir"
  tmp="$dir/.${path##*/}.tnp.$STAMP.$$"
  set -C  # the temp file is new, never an existing file or link
  true > "$tmp" 2>/dev/null; created=$?; set +C
  [ "$created" = 0 ] || fail "$1" "cannot create a temp file in $dir (read-only or full?)"
  if [ "$4" = b64 ]; then printf %s "$3" | base64 -d > "$tmp"; else printf %b "$3" > "$tmp"; fi \
    || { rm -f "$tmp"; fail "$1" "cannot write $tmp"; }
  if [ -e "$path" ]; then
    { chmod --reference="$path" "$tmp" && chown --reference="$path" "$tmp"; } \
      || { rm -f "$tmp"; fail "$1" "cannot copy mode and owner of $path"; }
    if [ -e /sys/fs/selinux/enforce ] && command -v chcon >/dev/null 2>&1; then chcon --reference="$path" "$tmp" 2>/dev/null; fi
  elif [ "$5" != 0644 ]; then  # umask 022 already made it 0644
    chmod "$5" "$tmp"
  fi
  backup_of "$path" || { rm -f "$tmp"; fail "$1" "cannot write a backup beside $path"; }
  backup=$B
  sync "$tmp" 2>/dev/null
  mv -f "$tmp" "$path" || { rm -f "$tmp" "$backup"; fail "$1" "cannot replace $path"; }
  sync "$dir" 2>/dev/null
  WRITTEN="$WRITTEN$backup$NL"
  say write "$1" ok "$backup"
}

# remove PATH SHA256
remove() {
  resolve "$1"; path=$R; checked "$path" "$2"
  [ -e "$path" ] || return 0
  backup_of "$path" || fail "$1" "cannot write a backup beside $path"
  backup=$B
  rm -f "$path" || fail "$1" "cannot remove $path"
  WRITTEN="$WRITTEN$backup$NL"
  say remove "$1" ok "$backup"
}

# ensure_dir PATH OWNER GROUP MODE ("-": leave as it is)
ensure_dir() {
  mkdir -p "$1" || fail "$1" "cannot create directory $1"
  [ "$2" = - ] || chown "$2:$3" "$1" || fail "$1" "cannot chown $1 to $2:$3"
  [ "$4" = - ] || chmod "$4" "$1" || fail "$1" "cannot chmod $1 to $4"
  say dir "$1" ok ""
}

# Secret file contents come on stdin (fd 7), never in argv: skip to the marker (a sudo
# password line may come first; it is never echoed), then one base64 line each.
open_secrets() {
  while IFS= read -r secret <&7; do [ "$secret" = "$SECRETS_MARKER" ] && return 0; done
  fail secrets "the secret file contents did not arrive on stdin"
}
next_secret() { IFS= read -r secret <&7; printf %s "$secret"; }

# reload_units: systemd reads the changed units and drop-ins now, so that a stopped unit that
# the run leaves stopped starts with them
reload_units() {
  [ "$INIT" = systemd ] || return 0
  if out=$(systemctl daemon-reload 2>&1); then say reload systemd ok ''
  else fail systemd "systemctl daemon-reload failed: $out"; fi
}

RESTARTED=''  # the services this run restarted, in order
# restart SERVICE SECONDS: restart it and wait for a new process that answers. If none does,
# every file is put back and the service, and each one restarted before it, restarted again
# with the previous files; the script then ends with status 1. SERVICE's functions spell its
# "-" as "_" (k3s-agent: k3s_agent_pid).
restart() {
  f=$(printf %s "$1" | tr - _)
  old=$("$f"_pid)
  (restart_"$f" "$old") >/dev/null 2>&1
  if wait_"$f" "${old:-none}" "$2"; then
    RESTARTED="$RESTARTED $f"; say restart "$1" ok "$("$f"_pid)"; return 0
  fi
  log=$("$f"_log); say restart "$1" fail "$1 did not answer within $2 s after the restart: $log"
  failed=$("$f"_pid); restore_files; (restart_"$f" "$failed") >/dev/null 2>&1
  for earlier in $RESTARTED; do  # the restored files must reach it too
    pid=$("$earlier"_pid); (restart_"$earlier" "$pid") >/dev/null 2>&1
    wait_"$earlier" "${pid:-none}" "$2" \
      || say rollback "$earlier" fail "$earlier does not answer after its files were restored: $("$earlier"_log)"
  done
  if wait_"$f" "${failed:-none}" "$2"; then say rollback "$1" ok "files restored, $1 restarted with the previous config"
  else say rollback "$1" fail "files restored, but $1 is still not answering: check it on the node now"; fi
  exit 1
}
