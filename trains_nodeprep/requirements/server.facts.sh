# shellcheck shell=sh
# data_dir DIR...: whether each DIR is absent, not a directory, empty, or holds data (any entry);
# globs, not ls: no process per directory
data_dir() {
  for dir do
    if [ ! -e "$dir" ] && [ ! -L "$dir" ]; then record datadir "$dir" absent ''
    elif [ ! -d "$dir" ]; then record datadir "$dir" notdir ''
    elif holds_entries "$dir"; then record datadir "$dir" data ''
    else record datadir "$dir" empty ''
    fi
  done
}
holds_entries() {
  for entry in "$1"/* "$1"/.[!.]* "$1"/..?*; do
    if [ -e "$entry" ] || [ -L "$entry" ]; then return 0; fi
  done
  return 1
}
