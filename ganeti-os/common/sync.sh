#!/bin/sh
# sync.sh - copy ganeti-os/common/p2v-common.sh into the marked block of each
# OS's common.sh (see the header of p2v-common.sh for why it is a copy).
# Usage: sh ganeti-os/common/sync.sh [OS-DIR...]   (default: every sibling OS)
set -eu
here=$(cd -- "$(dirname -- "$0")" && pwd)
src=$here/p2v-common.sh
begin='# ---- BEGIN p2v-common.sh (a copy: edit ganeti-os/common/p2v-common.sh, then run ganeti-os/common/sync.sh) ----'
end='# ---- END p2v-common.sh ----'
if [ $# -eq 0 ]; then set -- "$here"/../p2v-image "$here"/../p2v-target; fi
for dir in "$@"; do
  f=$dir/common.sh
  if ! grep -qxF -- "$begin" "$f" || ! grep -qxF -- "$end" "$f"; then
    echo "sync.sh: $f has no BEGIN/END p2v-common.sh markers" >&2
    exit 1
  fi
  tmp=$f.sync.$$
  awk -v begin="$begin" -v end="$end" -v src="$src" '
    $0 == begin { print; while ((getline line < src) > 0) print line; close(src); skip = 1; next }
    $0 == end { skip = 0 }
    !skip { print }
  ' "$f" >"$tmp"
  mv -- "$tmp" "$f"
done
