#!/usr/bin/env bash
# Build a Debian image with systemd as PID 1 from a debootstrap rootfs, for molecule and the demo.
# Nothing is pulled from a registry. The image is cached by tag: rebuilt only when missing
# (or when FORCE=1).
#
#   scripts/build-image.sh 12|13|bookworm|trixie
#
# Environment:
#   WSGIDEPLOY_IMAGE_PREFIX  tag prefix              (default: wsgideploy/debian-systemd)
#   DEBIAN_MIRROR            debootstrap mirror URL  (default: debootstrap's own default)
#   FORCE=1                  rebuild even if the tag exists
#
# An image built by an older version of this script (another io.wsgideploy.image-rev label) is
# rebuilt too.
set -euo pipefail

say() { printf 'build-image: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }

case "${1:-}" in
  12|bookworm) version=12; suite=bookworm ;;
  13|trixie)   version=13; suite=trixie ;;
  *) die "usage: $0 12|13 (Debian 12 bookworm or 13 trixie)" ;;
esac

prefix="${WSGIDEPLOY_IMAGE_PREFIX:-wsgideploy/debian-systemd}"
tag="${prefix}:${version}"
# Bump when the image's content changes (2: sshd, reached by the demo and the cluster scenario).
rev=2

if [ "${FORCE:-0}" != 1 ] &&
   [ "$(docker image inspect -f '{{ index .Config.Labels "io.wsgideploy.image-rev" }}' "$tag" 2>/dev/null)" = "$rev" ]; then
  exit 0
fi

[ "$(id -u)" -eq 0 ] || die "debootstrap needs root"
if ! command -v debootstrap >/dev/null 2>&1; then
  say "installing debootstrap"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null 2>&1 || {
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  } || die "could not install debootstrap"
fi
[ -e "/usr/share/debootstrap/scripts/$suite" ] || die "this debootstrap does not know '$suite'; upgrade debootstrap"

packages=python3,systemd,systemd-sysv,dbus,iproute2,procps,curl,ca-certificates,sudo,openssh-server
work="$(mktemp -d /var/tmp/wsgideploy-rootfs.XXXXXX)"
trap 'rm -rf "$work"' EXIT
rootfs="$work/rootfs"

say "debootstrap $suite -> $tag (a few minutes; log: $work/debootstrap.log)"
# The mirror argument is left out unless the user sets one: debootstrap picks its default.
# shellcheck disable=SC2086
if ! debootstrap --variant=minbase --include="$packages" "$suite" "$rootfs" ${DEBIAN_MIRROR:-} \
    >"$work/debootstrap.log" 2>&1; then
  tail -n 30 "$work/debootstrap.log" >&2
  die "debootstrap $suite failed"
fi

# Trim what a container does not need; keep systemd usable as PID 1.
chroot "$rootfs" /bin/sh -e <<'EOF'
apt-get clean
rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/*.log /tmp/* /var/tmp/*
# Units that make no sense (or hang) inside a container.
for u in systemd-udevd.service systemd-udev-trigger.service systemd-udevd-control.socket \
         systemd-udevd-kernel.socket getty.target console-getty.service \
         systemd-firstboot.service systemd-remount-fs.service sys-kernel-config.mount \
         sys-kernel-debug.mount sys-kernel-tracing.mount dev-hugepages.mount \
         systemd-networkd-wait-online.service; do
  ln -sf /dev/null "/etc/systemd/system/$u"
done
: > /etc/machine-id
echo 'APT::Install-Recommends "false";' > /etc/apt/apt.conf.d/90no-recommends
# sshd: no host keys in the image (every container would share them); each container makes its
# own on its first start, before sshd's config test. Keys only, no passwords.
rm -f /etc/ssh/ssh_host_*
mkdir -p /etc/systemd/system/ssh.service.d
printf '%s\n' '[Service]' 'ExecStartPre=' 'ExecStartPre=/usr/bin/ssh-keygen -A' 'ExecStartPre=/usr/sbin/sshd -t' \
  > /etc/systemd/system/ssh.service.d/host-keys.conf
printf '%s\n' 'PasswordAuthentication no' 'KbdInteractiveAuthentication no' 'PermitRootLogin no' \
  > /etc/ssh/sshd_config.d/wsgideploy.conf
EOF

say "importing into Docker as $tag"
tar -C "$rootfs" -c . | docker import \
  --change 'ENV container=docker' \
  --change 'CMD ["/lib/systemd/systemd"]' \
  --change "LABEL io.wsgideploy.image-rev=$rev" \
  --message "wsgideploy Debian $version ($suite) systemd image, built by debootstrap" \
  - "$tag" >/dev/null
say "built $tag"
