# common.sh - helpers shared by the p2v-target OS scripts (Ganeti OS API 20).
#
# p2v-target is the bootstrap OS of the direct path: a minimal Debian with
# sshd that the instance runs *from RAM* (started with the p2v-ramboot
# initrd), so that p2v-export --direct can stream the physical machine's disk
# straight onto the instance's own disk 0.  See docs/ramboot.md.
#
# Plain POSIX sh (the node's /bin/sh is dash).  Every message goes to stderr
# through log or die; every error is one line, then a "hint:" line.
#
# Interface:
#   os_script_init, log, debug, die, cleanup_push: see the p2v-common.sh block
#   check_key_params                validates OSP_AUTHORIZED_KEY(_URL); sets KEY_SOURCE
#   valid_pubkey LINE               true when LINE is one plain public key

P2V_OS_NAME=p2v-target
P2V_SCRIPT=${0##*/}
P2V_RUN_BY='gnt-instance add/reinstall'

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

# valid_pubkey LINE: one public key "TYPE BASE64 [COMMENT]" of a type sshd
# accepts, with no authorized_keys options: the key only lets its holder in as
# root on a throw-away bootstrap system, but an option such as command= or a
# second line would be a way to smuggle configuration in.
valid_pubkey() {
  case $1 in
  *'
'*) return 1 ;;
  esac
  printf '%s\n' "$1" | grep -Eq '^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)|sk-ssh-ed25519@openssh\.com|sk-ecdsa-sha2-nistp256@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^[:cntrl:]]*)?$'
}

# check_key_params: exactly one of authorized_key / authorized_key_url, well
# formed.  Sets KEY_SOURCE to "key" or "url".
check_key_params() {
  p2v_key=${OSP_AUTHORIZED_KEY:-}
  p2v_url=${OSP_AUTHORIZED_KEY_URL:-}
  if [ -n "$p2v_key" ] && [ -n "$p2v_url" ]; then
    die "both authorized_key and authorized_key_url are set" "give only one: -O authorized_key='ssh-ed25519 AAAA…' or -O authorized_key_url=https://…"
  fi
  if [ -z "$p2v_key" ] && [ -z "$p2v_url" ]; then
    die "no SSH key for root: neither authorized_key nor authorized_key_url is set" "add -O authorized_key='ssh-ed25519 AAAA… p2v' (the public half of the key p2v-export --direct uses)"
  fi
  if [ -n "$p2v_key" ]; then
    valid_pubkey "$p2v_key" || die "authorized_key is not one SSH public key line without options" "give the content of a .pub file, e.g. -O authorized_key=\"\$(cat ~/.ssh/p2v_ed25519.pub)\""
    KEY_SOURCE=key
  else
    case $p2v_url in
    http://* | https://*) ;;
    *) die "authorized_key_url '$p2v_url' is not an http or https URL" "e.g. -O authorized_key_url=https://keys.example.org/p2v.pub" ;;
    esac
    case $p2v_url in
    *[[:space:]]* | *"'"* | *'"'* | *'\'*) die "authorized_key_url contains spaces or quotes" "URL-encode them" ;;
    esac
    KEY_SOURCE=url
  fi
}
