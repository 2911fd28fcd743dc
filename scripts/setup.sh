#!/usr/bin/env bash
# Installs everything ganeti-p2v needs on this machine, then builds it.
#   scripts/setup.sh          npm packages + the Debian packages of the default suite
#   scripts/setup.sh --slow   also what the slow suite needs (qemu-system, grub, a kernel, OVMF, mtools)
# Debian packages are installed with apt-get only when missing and only as root;
# otherwise the missing ones are listed and the script fails.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE_PKGS=(qemu-utils nbdkit nbdfuse libnbd-bin e2fsprogs fdisk util-linux mount
  libxml2-utils fuse3 cpio zstd xz-utils gzip tar openssh-server openssh-client
  dosfstools busybox-static lz4 iproute2 dash curl debootstrap
  xfsprogs xfsdump btrfs-progs rsync acl attr lvm2 cryptsetup-bin
  mtools ovmf grub-efi-amd64-bin grub-pc-bin)
SLOW_PKGS=(qemu-system-x86 grub-pc-bin grub2-common socat python3 linux-image-amd64)

pkgs=("${BASE_PKGS[@]}")
if [ "${1:-}" = "--slow" ]; then pkgs+=("${SLOW_PKGS[@]}"); fi

# What is installed, by name and by what each installed package provides: a
# virtual package (nbdfuse on Debian 12, provided by libnbd-bin) is never
# "installed" itself, and without its provider counting every run would call
# apt-get again.
present="$(dpkg-query -W -f='${db:Status-Abbrev}|${Package}|${Provides}\n' 2>/dev/null |
  awk -F'|' '$1 ~ /^ii/ { print $2; n = split($3, v, ","); for (i = 1; i <= n; i++) { split(v[i], w, " "); if (w[1] != "") print w[1] } }')"
missing=()
for p in "${pkgs[@]}"; do
  grep -qxF "$p" <<<"$present" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "setup: installing Debian packages: ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  else
    echo "setup: missing Debian packages: ${missing[*]}" >&2
    echo "setup: run as root, or: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

# FUSE needs its device node; loop devices are created on demand by losetup.
[ -e /dev/fuse ] || { echo "setup: /dev/fuse is missing (modprobe fuse)" >&2; exit 1; }

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "setup: installing npm packages" >&2
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi

echo "setup: building" >&2
npx tsc -p tsconfig.json --noEmitOnError false >/dev/null || true
npx tsc -p tsconfig.json
# bin/ runs each CLI linked into one file (dist/bundle/): a start loads a third as much.
node scripts/bundle.mjs
