#!/usr/bin/env bash
# The README's second command: install everything the tests use and run the whole suite, every tier.
# Needs root for the booted test hosts (Debian packages, systemd-nspawn); without root those tests skip and say why.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "== Debian packages for the test hosts"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends $(grep -v '^#' scripts/apt-packages.txt) >/dev/null
fi

echo "== Python packages"
scripts/setup.sh examples,infra,ops,dev

if [ -x tests/playbooks/hosts/build-rootfs.sh ] && [ "$(id -u)" = 0 ]; then
    echo "== test-host images (Debian bookworm and trixie)"
    tests/playbooks/hosts/build-rootfs.sh
fi

echo "== Kubernetes components (etcd, control plane, kubectl, kubelet, kubeadm, KWOK, Kueue, containerd, runc, CNI) from Go modules"
# Built once into /var/cache/herd/components, keyed by version and module sums; reused afterwards. The cluster
# tests run against them (tests/conftest.py starts the local real cluster).
if command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; then
    scripts/components.sh >/dev/null
else
    echo "no Go toolchain: the tests against the real control plane will skip (they fail under CI=true)"
fi

echo "== container images (the real node's: pause, the example's; kubeadm's: etcd, the control plane) as OCI archives"
# Built once into /var/cache/herd/images, keyed by a hash of each image's recipe; reused afterwards. Needs root
# (debootstrap), Go (the pause source is in the Kubernetes module) and the components above (kubeadm's images are
# their binaries). The real node and the test hosts import them with ctr.
if [ "$(id -u)" = 0 ] && { command -v go >/dev/null || [ -x /usr/local/go/bin/go ]; }; then
    scripts/images.sh >/dev/null
else
    echo "not root or no Go toolchain: the images are not built; the tests that read them skip (they fail under CI=true)"
fi

echo "== lint"
.venv/bin/ruff check .
.venv/bin/ruff format --check .

echo "== tests"
exec .venv/bin/pytest "$@"
