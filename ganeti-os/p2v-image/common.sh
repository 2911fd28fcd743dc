# common.sh - helpers shared by the p2v-image OS scripts (Ganeti OS API 20).
#
# Sourced by create, import, export, rename and verify.  Plain POSIX sh: the
# scripts run on Ganeti nodes, which have no Node.js and whose /bin/sh is dash.
# They need only coreutils (dd, stat, head, wc), util-linux (blockdev,
# fallocate) and, for images that are not raw, qemu-img.
#
# Rules every script follows:
#   * stdout carries disk data (export writes the dump there, import reads it
#     from stdin), so every message goes to stderr, through log or die;
#   * every error is one line saying what is wrong, a "hint:" line saying
#     what to do, and a non-zero exit: Ganeti 3.0 only logs a failing import
#     script as a warning, so the message in the OS log is all an admin gets;
#   * a resource is registered with cleanup_push as soon as it exists; the
#     stack runs newest first on every exit, including INT/TERM/HUP.
#
# Interface:
#   os_script_init, log, debug, die, cleanup_push: see the p2v-common.sh block
#   os_no_args USAGE [ARGS...]      usage error (exit 2) when given arguments
#   make_workdir                    sets WORKDIR (removed at exit)
#   check_disk PATH WHAT rw|ro      PATH is a block device or a file we can use
#   disk_bytes PATH                 size in bytes of a block device or file
#   zero_disk PATH BYTES            make PATH read as zeros cheaply, or fail
#   write_disk PATH BYTES SPARSE    stdin -> PATH, at most BYTES; sets WRITTEN
#   stdin_is_drained                true when stdin has no byte left
#   human BYTES                     "N MiB" or "N bytes", for messages

P2V_OS_NAME=p2v-image
P2V_SCRIPT=${0##*/}
P2V_RUN_BY='gnt-instance add, gnt-backup import/export'

# Copy granularity.  64 KiB is the default chunk of LVM thin pools and the
# grain of streamOptimized VMDKs: a zero region this large stays a hole on
# file and thin storage, while the copy still runs at memory speed.
P2V_BLOCK=65536

# ---- BEGIN p2v-common.sh (a copy: edit ganeti-os/common/p2v-common.sh, then run ganeti-os/common/sync.sh) ----
# p2v-common.sh - the helpers every p2v Ganeti OS definition shares: messages,
# the cleanup stack and the script entry checks.  This file is the one source;
# each OS's common.sh carries a copy of it between BEGIN/END markers, so that
# every OS directory stays self-contained wherever it is copied (Ganeti runs
# an OS from its own directory; admins install with cp -a or p2v-ganeti-os
# install).  After editing, run ganeti-os/common/sync.sh; a test fails while
# a copy differs.
#
# The including common.sh sets, before the copy:
#   P2V_OS_NAME   the OS name, for messages and the variant check
#   P2V_SCRIPT    the running script's name
#   P2V_RUN_BY    the Ganeti commands that run the scripts, for the hint
#
# Interface:
#   os_script_init USAGE [ARGS...]  --help, OS API and variant checks, traps
#   log MSG / debug MSG / die MSG [HINT]
#   cleanup_push SHELL-COMMAND      run at exit, newest first

log() {
  printf '%s %s: %s\n' "$P2V_OS_NAME" "$P2V_SCRIPT" "$*" >&2
}

debug() {
  case ${DEBUG_LEVEL:-0} in
  '' | 0) ;;
  *) log "debug: $*" ;;
  esac
}

# die MESSAGE [HINT]: the one way a script fails.
die() {
  log "error: $1"
  if [ -n "${2:-}" ]; then log "hint: $2"; fi
  exit 1
}

# ---------------------------------------------------------------- cleanup
# A newline-separated list of shell commands, newest first (POSIX sh has no
# arrays).  Each command is eval'ed once; a failing one is only a warning.
P2V_CLEANUP=''

cleanup_push() {
  P2V_CLEANUP="$1
$P2V_CLEANUP"
}

cleanup_run() {
  p2v_rc=$?
  trap - EXIT
  p2v_list=$P2V_CLEANUP
  P2V_CLEANUP=''
  p2v_oldifs=$IFS
  IFS='
'
  set -f
  for p2v_cmd in $p2v_list; do
    IFS=$p2v_oldifs
    debug "cleanup: $p2v_cmd"
    eval "$p2v_cmd" || log "warning: cleanup step failed: $p2v_cmd"
  done
  IFS=$p2v_oldifs
  set +f
  exit "$p2v_rc"
}

# ---------------------------------------------------------------- entry
# os_script_init USAGE "$@": every script calls this first.  Ganeti passes no
# arguments to create/import/export/rename and one ("parameters") to verify.
os_script_init() {
  p2v_usage=$1
  shift
  case ${1:-} in
  -h | --help)
    printf 'usage: %s %s\n' "$P2V_SCRIPT" "$p2v_usage"
    printf 'Part of the %s Ganeti OS definition; Ganeti runs it (see ganeti-os-interface(7)).\n' "$P2V_OS_NAME"
    exit 0
    ;;
  esac
  trap cleanup_run EXIT
  trap 'exit 129' HUP
  trap 'exit 130' INT
  trap 'exit 143' TERM
  if [ "${OS_API_VERSION:-}" != 20 ]; then
    if [ -z "${OS_API_VERSION:-}" ]; then
      die "OS_API_VERSION is not set" "this script is run by Ganeti ($P2V_RUN_BY), not by hand"
    fi
    die "OS API version '$OS_API_VERSION' is not supported (only 20)" "install a $P2V_OS_NAME matching this Ganeti version"
  fi
  case ${OS_VARIANT:-default} in
  '' | default) ;;
  *) die "unknown variant '$OS_VARIANT'" "use the OS name $P2V_OS_NAME+default" ;;
  esac
  debug "instance ${INSTANCE_NAME:-?}, ${DISK_COUNT:-?} disk(s)"
}
# ---- END p2v-common.sh ----

make_workdir() {
  WORKDIR=$(mktemp -d "${TMPDIR:-/tmp}/p2v-image.XXXXXXXX") ||
    die "cannot create a temporary directory under ${TMPDIR:-/tmp}" "check that the node's /tmp is writable and not full"
  cleanup_push "rm -rf -- '$WORKDIR'"
}

# os_no_args USAGE "$@": for the scripts that take no argument.
os_no_args() {
  p2v_usage=$1
  shift
  if [ $# -gt 0 ]; then
    printf 'usage: %s %s\n' "$P2V_SCRIPT" "$p2v_usage" >&2
    exit 2
  fi
}

# ---------------------------------------------------------------- disks
# check_disk PATH WHAT rw|ro: PATH must be a block device or a regular file
# (Ganeti's file and sharedfile templates) that this script can use.
check_disk() {
  if [ -z "$1" ]; then
    die "$2 has no local path" "p2v-image needs a block device or a file disk; userspace-only (URI) disks are not supported"
  fi
  if [ ! -e "$1" ]; then
    die "$2 ($1) does not exist" "check that the instance's disks are activated on this node (gnt-instance activate-disks)"
  fi
  if [ ! -b "$1" ] && [ ! -f "$1" ]; then
    die "$2 ($1) is neither a block device nor a regular file" "check the instance's disk template"
  fi
  if [ "$3" = rw ] && [ ! -w "$1" ]; then
    die "$2 ($1) is not writable" "check the disk's permissions and that it is not read-only"
  fi
  if [ ! -r "$1" ]; then
    die "$2 ($1) is not readable" "check the disk's permissions"
  fi
}

disk_bytes() {
  if [ -b "$1" ]; then
    blockdev --getsize64 "$1" || die "cannot read the size of block device $1" "check that the device is active"
  else
    stat -L -c %s -- "$1" || die "cannot read the size of $1" "check the file's permissions"
  fi
}

# zero_disk PATH BYTES: make the first BYTES of PATH read as zeros without
# writing them, by punching a hole (files) or asking the device to zero
# itself (block devices: the kernel does it only when the device can do it
# cheaply, e.g. thin LVM, loop, SSDs with WRITE ZEROES).  Returns non-zero
# when that is not possible; the caller must then write every byte, because
# a block skipped over would keep whatever the storage held before.
zero_disk() {
  if [ "$2" -eq 0 ]; then return 0; fi
  fallocate --punch-hole --offset 0 --length "$2" -- "$1" 2>/dev/null
}

# write_disk PATH BYTES SPARSE: copy stdin onto PATH, never more than BYTES
# (the disk's size) and never truncating a file disk.  SPARSE=yes skips
# all-zero blocks (PATH must already read as zeros: see zero_disk).  Sets
# WRITTEN to the number of bytes taken from stdin.  Needs WORKDIR.
write_disk() {
  p2v_conv=notrunc,fsync
  if [ "$3" = yes ]; then p2v_conv=sparse,$p2v_conv; fi
  # iflag=fullblock: a pipe returns short reads, and a short block would
  # defeat both the zero-block test and the byte count.
  # iflag=count_bytes: stop exactly at the disk's end, whatever the block size.
  if ! LC_ALL=C dd of="$1" bs="$P2V_BLOCK" iflag=fullblock,count_bytes count="$2" \
    conv="$p2v_conv" 2>"$WORKDIR/dd.log"; then
    die "writing $1 failed: $(tail -n 1 "$WORKDIR/dd.log")" "check the node's kernel log and the storage behind $1"
  fi
  WRITTEN=$(sed -n 's/^\([0-9][0-9]*\) bytes.*/\1/p' "$WORKDIR/dd.log" | tail -n 1)
  if [ -z "$WRITTEN" ]; then
    die "cannot tell how much dd wrote to $1: $(tail -n 1 "$WORKDIR/dd.log")" "this dd is not GNU coreutils' dd"
  fi
}

# stdin_is_drained: true when stdin holds no further byte (reads at most a
# buffer; only used to decide to fail, so the lost bytes do not matter).
stdin_is_drained() {
  [ "$(head -c 1 | wc -c)" -eq 0 ]
}

# human BYTES: "1024 MiB" when whole mebibytes (Ganeti's unit), else "N bytes".
human() {
  if [ $(($1 % 1048576)) -eq 0 ]; then
    printf '%s MiB' "$(($1 / 1048576))"
  else
    printf '%s bytes' "$1"
  fi
}
