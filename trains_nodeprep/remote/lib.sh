# shellcheck shell=sh
# What both remote scripts (facts and apply) start with: a known PATH and locale, the one record
# writer, and the run lock's directory. scripts.py puts the protocol constants each script uses
# (LOCK_FILE, LOCK_WAIT, ...) before this file, from remote/protocol.py, where they are defined once.
#
# Each process started costs the node about a millisecond (50 nodes share two cores in a test
# run): shell builtins and parameter expansions wherever they do the job of a command.

PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin; export PATH
LC_ALL=C; export LC_ALL
T='	'
NL='
'
OUT=''  # the records so far: written out in one go (each write is one more SSH packet)

# record FIELD... DATA: one line of tab-separated fields, the last one DATA: as it is after "="
# when it holds no tab or newline, else in base64. Only a newline ends a record.
record() {
  line=''
  while [ "$#" -gt 1 ]; do line="$line$1$T"; shift; done
  case "$1" in
    *"$T"*|*"$NL"*) OUT="$OUT$line$(printf %s "$1" | base64 -w0)$NL" ;;
    *) OUT="$OUT$line=$1$NL" ;;
  esac
}
flush() { printf %s "$OUT"; OUT=''; }

# The run lock, on fd 9: one apply per node at a time (exclusive); facts take it shared, so they
# never see a node halfway through an apply. A daemon that a restart starts must not inherit it.
lock_dir() { [ -d "${LOCK_FILE%/*}" ] || mkdir -p "${LOCK_FILE%/*}"; }
