#!/usr/bin/env bash
# Runs README's two commands in a bare Debian 12 (no compiler, no CUDA, no Python): a
# chroot made with debootstrap, holding only the machine's apt sources, pip configuration
# and CA certificates, so that it reaches the same package registries. Shows that
# scripts/setup.sh installs everything itself and that the build works without a CUDA
# toolkit (LibTorch's CPU libraries from the wheel). Not part of CI: it takes ~40 minutes.
#
#   sudo bash scripts/bare-debian-check.sh [CHROOT_DIR]     (default: /var/tmp/lightning-bare)
#
# Prints the wall time of each command; the chroot is left for inspection (remove it with
# `umount CHROOT_DIR/{proc,sys,dev/shm,dev}; rm -rf CHROOT_DIR`).
set -euo pipefail

readonly root=${1:-/var/tmp/lightning-bare}
readonly source_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if [[ $(id -u) -ne 0 ]]; then
  echo "bare-debian-check: needs root (debootstrap, chroot, mount)" >&2
  exit 1
fi
command -v debootstrap >/dev/null || apt-get install -y -qq debootstrap

if [[ ! -x $root/bin/bash ]]; then
  debootstrap --variant=minbase bookworm "$root" http://deb.debian.org/debian
fi
# The machine's registries: apt sources and settings, pip configuration, CA certificates.
cp /etc/apt/sources.list.d/*.sources "$root/etc/apt/sources.list.d/" 2>/dev/null || true
[[ -f /etc/apt/sources.list ]] && cp /etc/apt/sources.list "$root/etc/apt/sources.list"
cp /etc/apt/apt.conf.d/* "$root/etc/apt/apt.conf.d/" 2>/dev/null || true
[[ -f /etc/pip.conf ]] && cp /etc/pip.conf "$root/etc/pip.conf"
mkdir -p "$root/etc/ssl/certs" "$root/usr/local/share/ca-certificates"
cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/"
# Also as a local CA file: installing Debian's ca-certificates in the chroot regenerates the
# bundle from Debian's CAs plus these, so the machine's own CAs (a registry proxy's) stay.
cp /etc/ssl/certs/ca-certificates.crt "$root/usr/local/share/ca-certificates/machine-bundle.crt"
cp /etc/resolv.conf "$root/etc/resolv.conf"
for fs in proc sys dev; do
  mountpoint -q "$root/$fs" || mount --bind "/$fs" "$root/$fs"
done
mountpoint -q "$root/dev/shm" || mount -t tmpfs tmpfs "$root/dev/shm"

# The committed tree, as a fresh clone has it.
rm -rf "$root/src"
git -C "$source_dir" archive --format=tar --prefix=src/ HEAD | tar -x -C "$root"

run() {
  local start=$SECONDS
  chroot "$root" /usr/bin/env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    LANG=C.UTF-8 bash -c "cd /src && bash scripts/setup.sh $1"
  echo "bare-debian-check: 'bash scripts/setup.sh $1' took $((SECONDS - start)) s"
}
chroot "$root" bash -c 'for p in g++ c++ python3 nvcc cmake; do command -v $p || echo "no $p"; done'
run example
run test
