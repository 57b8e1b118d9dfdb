#!/usr/bin/env bash
# Build (once) the Debian bookworm root filesystem the booted test hosts start from, and cache it outside the
# repository. Idempotent: a finished image carries a stamp naming the recipe it was built from; a stamp that
# matches means there is nothing to do, a missing or different one means the image is rebuilt from scratch.
#
# The mirror is the one this machine's own apt already uses (read from its sources), so the script needs no
# network beyond what apt-get has. Every test host boots from an overlay on top of this image; nothing writes
# into the image itself after it is built.
set -euo pipefail

CACHE=${HERD_TEST_HOST_CACHE:-/var/cache/herd}
SUITE=bookworm
# python3-yaml: the kubeadm/kubectl test doubles parse the YAML handed to them. Everything else the roles need
# (containerd, chrony, nfs-common, gnupg ...) is installed by the roles themselves, through apt, during the tests.
INCLUDE=openssh-server,python3,python3-yaml,systemd,systemd-sysv,dbus,iproute2,ca-certificates
RECIPE="v1 ${SUITE} minbase ${INCLUDE}"
IMAGE="${CACHE}/rootfs-${SUITE}"
STAMP="${IMAGE}/.herd-image"

if [ "$(id -u)" != 0 ]; then
    echo "build-rootfs.sh: needs root (debootstrap)" >&2
    exit 1
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
    echo "test-host image up to date: $IMAGE"
    exit 0
fi
command -v debootstrap >/dev/null || { echo "build-rootfs.sh: debootstrap is not installed" >&2; exit 1; }

mirror=$("$(dirname "$0")/../../../scripts/debian-mirror.sh")

mkdir -p "$CACHE"
exec 9>"${CACHE}/.build.lock"
flock 9
# Another run may have finished the image while this one waited for the lock.
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$RECIPE" ]; then
    echo "test-host image up to date: $IMAGE"
    exit 0
fi

tmp="${IMAGE}.tmp"
rm -rf "$tmp" "$IMAGE"
echo "building test-host image in $IMAGE (debootstrap $SUITE from this machine's mirror)"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$tmp" "$mirror" >"${CACHE}/debootstrap.log" 2>&1 || {
    tail -20 "${CACHE}/debootstrap.log" >&2
    exit 1
}
# A clean image: no package cache, no machine id (each booted host gets its own), sshd ready for keys.
rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
: >"$tmp/etc/machine-id"
mkdir -p "$tmp/root/.ssh"
chmod 700 "$tmp/root/.ssh"
echo "$RECIPE" >"$tmp/.herd-image"
mv "$tmp" "$IMAGE"
echo "test-host image built: $IMAGE ($(du -sh "$IMAGE" | cut -f1))"
