#!/usr/bin/env bash
# Build (once) the Debian root filesystems the booted test hosts start from — bookworm (Debian 12) and trixie
# (Debian 13) — and cache them outside the repository. Usage: build-rootfs.sh [SUITE ...] (default: both).
# Idempotent: a finished image carries a stamp naming the recipe it was built from; a stamp that matches means
# there is nothing to do, a missing or different one means that image is rebuilt from scratch.
#
# The mirror is the one this machine's own apt already uses (scripts/debian-mirror.sh reads it from its sources),
# so the script needs no network beyond what apt-get has. Every test host boots from an overlay on top of one of
# these images; nothing writes into an image itself after it is built.
set -euo pipefail

CACHE=${HERD_TEST_HOST_CACHE:-/var/cache/herd}
# The releases the roles support (their meta/main.yml platforms; tests/playbooks/testbed.py RELEASES says the same).
SUITES=(bookworm trixie)
# python3-yaml: the kubeadm/kubectl test doubles parse the YAML handed to them. Everything else the roles need
# (containerd, chrony, nfs-common, gnupg ...) is installed by the roles themselves, through apt, during the tests.
INCLUDE=openssh-server,python3,python3-yaml,systemd,systemd-sysv,dbus,iproute2,ca-certificates

if [ "$(id -u)" != 0 ]; then
    echo "build-rootfs.sh: needs root (debootstrap)" >&2
    exit 1
fi
if [ $# -gt 0 ]; then
    for suite in "$@"; do
        [[ " ${SUITES[*]} " == *" $suite "* ]] || {
            echo "build-rootfs.sh: unknown suite $suite (one of: ${SUITES[*]})" >&2
            exit 1
        }
    done
    SUITES=("$@")
fi

up_to_date() { [ -f "$1/.herd-image" ] && [ "$(cat "$1/.herd-image")" = "$2" ]; }

build() {
    local suite=$1 recipe="v1 $1 minbase ${INCLUDE}" image="${CACHE}/rootfs-$1"
    if up_to_date "$image" "$recipe"; then
        echo "test-host image up to date: $image"
        return
    fi
    command -v debootstrap >/dev/null || { echo "build-rootfs.sh: debootstrap is not installed" >&2; exit 1; }
    local mirror
    mirror=$("$(dirname "$0")/../../../scripts/debian-mirror.sh")
    mkdir -p "$CACHE"
    exec 9>"${CACHE}/.build-${suite}.lock"
    flock 9
    # Another run may have finished the image while this one waited for the lock.
    if up_to_date "$image" "$recipe"; then
        echo "test-host image up to date: $image"
        exec 9>&-
        return
    fi
    local tmp="${image}.tmp" log="${CACHE}/debootstrap-${suite}.log" started=$SECONDS
    rm -rf "$tmp" "$image"
    echo "building test-host image in $image (debootstrap $suite from this machine's mirror)"
    debootstrap --variant=minbase --include="$INCLUDE" "$suite" "$tmp" "$mirror" >"$log" 2>&1 || {
        tail -20 "$log" >&2
        exit 1
    }
    # A clean image: no package cache, no machine id (each booted host gets its own), sshd ready for keys.
    rm -rf "$tmp"/var/cache/apt/archives/*.deb "$tmp"/var/lib/apt/lists/*
    : >"$tmp/etc/machine-id"
    mkdir -p "$tmp/root/.ssh"
    chmod 700 "$tmp/root/.ssh"
    echo "$recipe" >"$tmp/.herd-image"
    mv "$tmp" "$image"
    exec 9>&-
    echo "test-host image built: $image ($(du -sh "$image" | cut -f1), $((SECONDS - started)) s)"
}

for suite in "${SUITES[@]}"; do
    build "$suite"
done
