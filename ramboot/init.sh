#!/bin/busybox sh
# /init of the p2v ramboot initramfs (built by `p2v-ramboot build`).
#
# Boots a Linux root filesystem *from RAM*: it mounts the root named by root=
# read-only, copies it into a tmpfs sized from the bytes it uses, unmounts the
# disk and switches to the copy. The disk is then free: nothing holds it open,
# so the direct path can write a whole new system onto it (p2v-import
# --device /dev/vda) while this system keeps running.
#
# Kernel command line:
#   root=UUID=…|LABEL=…|/dev/…|vda1      the filesystem to copy (required)
#   rootfstype=TYPE  rootflags=OPTS       as for the kernel
#   rootdelay=SECONDS                     how long to wait for root (default 30)
#   init=PATH                             init of the copy (default /sbin/init)
#   p2v.margin=MIB                        free space in the tmpfs (default: 10% of
#                                         the used bytes, at least 64 MiB)
#   p2v.reserve=MIB                       RAM left for the running system
#                                         (default 128 MiB)
#   p2v.break                             drop to a shell before copying
#
# Any failure prints "p2v-ramboot: ERROR: …" and a hint on the console, then
# starts a rescue shell there; leaving the shell powers the machine off (an
# unattended Ganeti instance then shows as stopped, with the reason in its
# console log).
#
# Plain busybox sh: the initramfs holds only a static busybox, the kernel
# modules listed in /etc/p2v-ramboot/modules (in load order) and this script.
# With P2V_RAMBOOT_LIB=1 the script only defines its functions (unit tests
# source it that way).

P2V_MODULES_LIST=/etc/p2v-ramboot/modules
P2V_DISK=/p2v-disk
P2V_NEWROOT=/root

# Messages go to stderr: functions whose stdout is a result ($(plan_tmpfs …))
# can still report. After main's redirection both end on the console.
say() {
	echo "p2v-ramboot: $*" >&2
}

# error MESSAGE HINT: report a failure; the caller returns non-zero.
error() {
	say "ERROR: $1"
	[ -z "$2" ] || say "hint: $2"
	return 1
}

# die MESSAGE HINT: report, then the rescue shell (main only, never in $(…)).
die() {
	error "$1" "$2"
	rescue_shell
}

rescue_shell() {
	say "starting a rescue shell; leaving it powers the machine off"
	setsid cttyhack sh -i || sh -i
	poweroff -f
}

# parse_cmdline "ARGS…": sets ROOT, ROOTFSTYPE, ROOTFLAGS, ROOTDELAY, INIT,
# MARGIN_MIB, RESERVE_MIB, BREAK.
parse_cmdline() {
	ROOT=
	ROOTFSTYPE=
	ROOTFLAGS=
	ROOTDELAY=30
	INIT=/sbin/init
	MARGIN_MIB=
	RESERVE_MIB=128
	BREAK=0
	for arg in $1; do
		case $arg in
		root=*) ROOT=${arg#root=} ;;
		rootfstype=*) ROOTFSTYPE=${arg#rootfstype=} ;;
		rootflags=*) ROOTFLAGS=${arg#rootflags=} ;;
		rootdelay=*) ROOTDELAY=${arg#rootdelay=} ;;
		init=*) INIT=${arg#init=} ;;
		p2v.margin=*) MARGIN_MIB=${arg#p2v.margin=} ;;
		p2v.reserve=*) RESERVE_MIB=${arg#p2v.reserve=} ;;
		p2v.break) BREAK=1 ;;
		esac
	done
	for n in "$ROOTDELAY" "$RESERVE_MIB" ${MARGIN_MIB:+"$MARGIN_MIB"}; do
		case $n in
		'' | *[!0-9]*)
			error "bad number '$n' on the kernel command line" "rootdelay=, p2v.margin= and p2v.reserve= take whole numbers"
			return 1
			;;
		esac
	done
	if [ -z "$ROOT" ]; then
		error "no root= on the kernel command line" "add root=UUID=<uuid of the bootstrap root filesystem>"
		return 1
	fi
}

# plan_tmpfs USED_KIB MEMAVAILABLE_KIB: prints the tmpfs size in KiB, or fails
# when the copy would not leave RESERVE_MIB of RAM to run the system in.
plan_tmpfs() {
	used=$1
	avail=$2
	if [ -n "$MARGIN_MIB" ]; then
		margin=$((MARGIN_MIB * 1024))
	else
		margin=$((used / 10))
		[ "$margin" -lt 65536 ] && margin=65536
	fi
	size=$((used + margin))
	need=$((size + RESERVE_MIB * 1024))
	if [ "$need" -gt "$avail" ]; then
		error "not enough RAM to run the root filesystem from memory: it uses $((used / 1024)) MiB; with margin and reserve $((need / 1024)) MiB are needed, $((avail / 1024)) MiB are available" \
			"give the instance at least $(((need - avail + 1023) / 1024)) MiB more memory (gnt-instance modify -B memory=…), or lower p2v.margin=/p2v.reserve="
		return 1
	fi
	echo "$size"
}

# mem_available_kib [MEMINFO]: MemAvailable from /proc/meminfo, in KiB.
mem_available_kib() {
	awk '$1 == "MemAvailable:" { print $2; found = 1 } END { if (!found) exit 1 }' "${1:-/proc/meminfo}"
}

# used_kib DIR: KiB used on the filesystem mounted at DIR.
used_kib() {
	df -k -P "$1" | awk 'NR == 2 { print $3 }'
}

# resolve_root SPEC: the device node for root=, or nothing when not there yet.
resolve_root() {
	case $1 in
	UUID=* | LABEL=*) findfs "$1" 2>/dev/null ;;
	/dev/*) [ -b "$1" ] && echo "$1" ;;
	*) [ -b "/dev/$1" ] && echo "/dev/$1" ;;
	esac
}

wait_for_root() {
	i=0
	while [ "$i" -le "$((ROOTDELAY * 4))" ]; do
		[ "$i" -gt 0 ] && mdev -s 2>/dev/null
		dev=$(resolve_root "$ROOT")
		if [ -n "$dev" ]; then
			echo "$dev"
			return 0
		fi
		usleep 250000
		i=$((i + 1))
	done
	return 1
}

load_modules() {
	[ -f "$P2V_MODULES_LIST" ] || return 0
	# "RELEASE/PATH.ko [optional]": optional ones (soft dependencies such as
	# crc32c-intel) fail on CPUs without the instructions, and that is fine.
	while read -r ko flag; do
		case $ko in '' | '#'*) continue ;; esac
		insmod "/lib/modules/$ko" 2>/dev/null ||
			grep -q "^$(basename "$ko" .ko | tr - _) " /proc/modules ||
			[ "$flag" = optional ] ||
			say "warning: could not load $ko"
	done <"$P2V_MODULES_LIST"
}

# copy_root FROM TO: the whole tree, with owners, modes, links and devices.
# pipefail: a read error on the disk side must fail the copy too.
copy_root() {
	(
		set -o pipefail
		(cd "$1" && tar -cf - .) | (cd "$2" && tar -xpf -)
	)
}

# neutralize_fstab FSTAB DEV: comment out every entry that would touch the
# disk (the root, /boot, swap…): the running system must not mount or fsck it.
# Pseudo filesystems stay.
neutralize_fstab() {
	[ -f "$1" ] || return 0
	awk -v dev="$2" '
		/^[ \t]*#/ || NF < 3 { print; next }
		$3 ~ /^(tmpfs|proc|sysfs|devpts|devtmpfs|cgroup2?|securityfs|debugfs|tracefs|efivarfs|mqueue|hugetlbfs|configfs|fusectl|binfmt_misc|pstore|bpf)$/ { print; next }
		{ print "# p2v-ramboot: the root runs from RAM; disk entry disabled: " $0 }
	' "$1" >"$1.p2v-ramboot" && mv "$1.p2v-ramboot" "$1"
}

main() {
	/bin/busybox mkdir -p /bin /sbin /usr/bin /usr/sbin /proc /sys /dev /run /tmp
	/bin/busybox --install -s
	export PATH=/sbin:/bin:/usr/sbin:/usr/bin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev 2>/dev/null || mdev -s
	[ -e /dev/console ] && exec </dev/console >/dev/console 2>&1

	parse_cmdline "$(cat /proc/cmdline)" || {
		rescue_shell
		return
	}
	say "loading drivers"
	load_modules
	mdev -s 2>/dev/null

	say "waiting for root $ROOT"
	dev=$(wait_for_root) || {
		die "root device $ROOT did not appear within $ROOTDELAY s" "check root= and that the disk is virtio (or add its driver: p2v-ramboot build --add-module)"
		return
	}
	mkdir -p "$P2V_DISK" "$P2V_NEWROOT"
	# shellcheck disable=SC2086
	mount -o "ro${ROOTFLAGS:+,$ROOTFLAGS}" ${ROOTFSTYPE:+-t "$ROOTFSTYPE"} "$dev" "$P2V_DISK" || {
		die "cannot mount $dev (root=$ROOT)" "check the filesystem type (rootfstype=) and that its driver is in the initramfs"
		return
	}
	[ "$BREAK" = 1 ] && {
		say "p2v.break: shell before the copy; exit it to continue"
		setsid cttyhack sh -i || sh -i
	}
	used=$(used_kib "$P2V_DISK") && avail=$(mem_available_kib) || {
		die "cannot measure the root filesystem or the free memory" "report this as a bug"
		return
	}
	size=$(plan_tmpfs "$used" "$avail") || {
		umount "$P2V_DISK"
		rescue_shell
		return
	}
	say "copying $((used / 1024)) MiB from $dev into RAM (tmpfs of $((size / 1024)) MiB, $((avail / 1024)) MiB available)"
	mount -t tmpfs -o "size=${size}k,mode=0755" p2v-ramroot "$P2V_NEWROOT" || {
		die "cannot mount the tmpfs" "give the instance more memory"
		return
	}
	copy_root "$P2V_DISK" "$P2V_NEWROOT" || {
		umount "$P2V_DISK"
		die "copying the root filesystem into RAM failed" "give the instance more memory (p2v.margin= raises the tmpfs size)"
		return
	}
	umount "$P2V_DISK" || {
		die "cannot unmount $dev after the copy" "report this as a bug: the disk must be free before the system starts"
		return
	}
	neutralize_fstab "$P2V_NEWROOT/etc/fstab" "$dev"
	mkdir -p "$P2V_NEWROOT/etc"
	printf 'source=%s\ndevice=%s\nused_kib=%s\ntmpfs_kib=%s\n' "$ROOT" "$dev" "$used" "$size" >"$P2V_NEWROOT/etc/p2v-ramboot"
	[ -x "$P2V_NEWROOT$INIT" ] || [ -L "$P2V_NEWROOT$INIT" ] || {
		die "$INIT is missing in the copied root" "check init= on the kernel command line"
		return
	}
	say "$dev is free; starting $INIT from RAM"
	mount --move /dev "$P2V_NEWROOT/dev" 2>/dev/null || umount /dev
	umount /sys
	umount /proc
	exec switch_root "$P2V_NEWROOT" "$INIT"
	die "switch_root failed" "report this as a bug"
}

if [ "${P2V_RAMBOOT_LIB:-0}" != 1 ]; then
	main
	rescue_shell
fi
