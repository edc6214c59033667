#!/bin/sh
# tests/vm/install-deps.sh: installs what the VM tests need (Debian, as root):
# qemu (TCG is enough, no KVM needed), a kernel image for the guest, a static
# busybox for the initramfs, and cpio to pack it. Safe to run again.
set -eu
if [ "$(id -u)" != 0 ]; then
  echo "install-deps.sh: run as root (apt-get install)" >&2
  exit 2
fi
pkgs="qemu-system-x86 linux-image-amd64 busybox-static cpio"
missing=""
for p in $pkgs; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
if [ -z "$missing" ]; then
  echo "install-deps.sh: all installed ($pkgs)"
  exit 0
fi
apt-get update -q
# shellcheck disable=SC2086  # one word per package
DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
