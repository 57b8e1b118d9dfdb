#!/usr/bin/env bash
# Build (once) the container images herd's nodes import, as OCI archives, and cache them: the ones the local
# cluster's real node imports (pause, the example's) and the ones kubeadm init runs (pause, etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler). herd_local/images.py says what each is and how it is built.
#
#   scripts/images.sh              build what is missing, then print the cache directory
#   scripts/images.sh --dir        print the cache directory without building (exit 1 when an image is missing)
#   scripts/images.sh --archives   build what is missing, then print each image's reference and archive
#
# Add --node or --kubeadm to any of these for one set only (default: both).
# The cache is $HERD_IMAGE_CACHE (default /var/cache/herd/images); each archive is named by a hash of its recipe.
# Building needs root (debootstrap), umoci, gcc, Go (it finds upstream's pause source in the Kubernetes module) and,
# for kubeadm's images, the binaries scripts/components.sh builds.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m herd_local images "$@"
