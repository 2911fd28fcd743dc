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
