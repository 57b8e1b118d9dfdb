#!/usr/bin/env bash
# The README's second command: install everything the tests use and run the whole suite, every tier.
#
#   scripts/test.sh [TIER] [PYTEST ARGS...]
#
# TIER (default all): fast (unit tests, mocks, rendered objects: no build, a few minutes), cluster (the local real
# cluster: upstream components and images built from their modules), hosts (booted Debian test hosts running the
# playbooks), or all. What a tier does not use is not built. Needs root for the booted test hosts (Debian packages,
# systemd-nspawn); without root those tests skip and say why (under CI=true they fail).
set -euo pipefail
cd "$(dirname "$0")/.."

tier=all
case "${1:-}" in
    fast | cluster | hosts | all) tier=$1; shift ;;
esac
case $tier in
    fast) markers=(-m "not real_cluster and not hosts") ;;
    cluster) markers=(-m "real_cluster and not hosts") ;;
    hosts) markers=(-m hosts) ;;
    all) markers=() ;;
esac
step() { # step NAME: print how long the previous step took, then NAME
    [ -n "${step_name:-}" ] && echo "   ($step_name: $((SECONDS - step_start)) s)"
    step_name=$1 step_start=$SECONDS
    echo "== $1"
}
uses() { [ "$tier" = all ] || [[ " $* " == *" $tier "* ]]; }

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    step "Debian packages for the test hosts and builds"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $(grep -v '^#' scripts/apt-packages.txt) >/dev/null
fi

step "Python packages"
scripts/setup.sh examples,infra,ops,dev

if uses hosts && [ -x tests/playbooks/hosts/build-rootfs.sh ] && [ "$(id -u)" = 0 ]; then
    step "test-host images (Debian bookworm and trixie)"
    tests/playbooks/hosts/build-rootfs.sh
fi

if uses cluster hosts; then
    step "Kubernetes components (etcd, control plane, kubectl, kubelet, kubeadm, KWOK, Kueue, containerd, runc, CNI) from Go modules"
    # Built once into /var/cache/herd/components, keyed by version and module sums; reused afterwards (a cache hit
    # costs a second). The cluster tests run against them (tests/conftest.py starts the local real cluster).
    if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
        scripts/components.sh >/dev/null
    else
        echo "no Go toolchain: the tests against the real control plane will skip (they fail under CI=true)"
    fi

    step "container images (the real node's: pause, the example's; kubeadm's: etcd, the control plane) as OCI archives"
    # Built once into /var/cache/herd/images, keyed by a hash of each image's recipe; reused afterwards. Needs root
    # (debootstrap), Go (the pause source is in the Kubernetes module) and the components above (kubeadm's images
    # are their binaries). The real node and the test hosts import them with ctr.
    if [ "$(id -u)" = 0 ] && { command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; }; then
        scripts/images.sh >/dev/null
    else
        echo "not root or no Go toolchain: the images are not built; the tests that read them skip (they fail under CI=true)"
    fi
fi

step "lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

step "tests ($tier)"
# The slowest tests, and the time per tier (tests/conftest.py), close the output: where the minutes go.
exec .venv/bin/pytest ${markers[@]+"${markers[@]}"} --durations=15 "$@"
