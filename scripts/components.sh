#!/usr/bin/env bash
# Build (once) the upstream components the local real cluster runs, from their own Go modules, and cache them.
#
#   scripts/components.sh            build what is missing, then print the bin directory
#   scripts/components.sh --dir      print the bin directory without building (exit 1 when anything is missing)
#   scripts/components.sh --gpu      only the GPU components (the NVIDIA device plugin and GPU feature discovery): build
#                                    them if missing, print their bin directory; with --dir, print it without building
#
# The GPU components are opt-in, never part of the default run: they only run on a machine with a real NVIDIA GPU
# (scripts/gpu-facts.sh, docs/development/gpu-facts.md), and cost a build of their own (cgo; about 2 min
# with an empty Go build cache on two cores, 66 MB of binaries).
#
# The inputs are the small wrapper modules under scripts/components/<name>/ (go.mod pins the release, go.sum its
# module sums). Each is built into $HERD_COMPONENT_CACHE/<name>-<version>-<hash of go.mod and go.sum>/, so a change
# of version or of any pinned sum builds afresh and an unchanged one is reused. Kubernetes is stamped as upstream's
# release binaries are (kube-apiserver's /version and `kubectl version` report the release): -trimpath, the
# release's build tags, CGO off, and the version variables of k8s.io/component-base and client-go. The real node's
# kubelet and kubeadm come from the same release; containerd, runc and the CNI plugins from theirs, each built as
# upstream builds its static release (runc with cgo and libseccomp, the rest without cgo).
set -euo pipefail
cd "$(dirname "$0")/components"

CACHE=${HERD_COMPONENT_CACHE:-/var/cache/herd/components}
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

# name | its wrapper module's directory | the module pinned in its go.mod | the binaries it builds (package paths)
kube() { for b in "$@"; do printf 'k8s.io/kubernetes/cmd/%s ' "$b"; done; }
CONTAINERD=github.com/containerd/containerd/v2
CNI=github.com/containernetworking/plugins/plugins
COMPONENTS=(
    "etcd|etcd|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3"
    "kubernetes|kubernetes|k8s.io/kubernetes|$(kube kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kubeadm)"
    "kwok|kwok|sigs.k8s.io/kwok|sigs.k8s.io/kwok/cmd/kwok"
    "kueue|kueue|sigs.k8s.io/kueue|sigs.k8s.io/kueue/cmd/kueue"
    "containerd|containerd|$CONTAINERD|$CONTAINERD/cmd/containerd $CONTAINERD/cmd/containerd-shim-runc-v2 $CONTAINERD/cmd/ctr"
    "cni|cni|github.com/containernetworking/plugins|$CNI/main/bridge $CNI/main/loopback $CNI/ipam/host-local"
    "runc|runc|github.com/opencontainers/runc|github.com/opencontainers/runc"
)
NVIDIA=github.com/NVIDIA/k8s-device-plugin
GPU_COMPONENTS=(
    "nvidia|nvidia|$NVIDIA|$NVIDIA/cmd/nvidia-device-plugin $NVIDIA/cmd/gpu-feature-discovery"
)

version_of() { # the version go.mod requires of module $2, in directory $1
    awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}

dir_of() { # the cache directory of component $1 (wrapper module in directory $2, pinning module $3)
    local name=$1 dir=$2 module=$3
    local version hash
    version=$(version_of "$dir" "$module")
    [ -n "$version" ] || { echo "components.sh: $dir/go.mod does not require $module" >&2; exit 2; }
    hash=$(cat "$dir/go.mod" "$dir/go.sum" | sha256sum | cut -c1-12)
    echo "$CACHE/$name-$version-$hash"
}

kueue_manifests() { # Kueue's CRDs and webhook configurations, from module $2 (in directory $1) into $3
    # From the module (never the repo), beside the binary of the same build: crds/ and webhook/.
    local src
    src=$(cd "$1" && go list -m -f '{{.Dir}}' "$2")/config/components
    mkdir -p "$3/crds.partial" "$3/webhook.partial"
    cp "$src"/crd/bases/*.yaml "$3/crds.partial/"
    cp "$src"/webhook/manifests.yaml "$3/webhook.partial/"
    rm -rf "$3/crds" "$3/webhook"
    mv "$3/crds.partial" "$3/crds" && mv "$3/webhook.partial" "$3/webhook"
}

nfd_clientset() { # NFD's generated clientset under the import path the device plugin v0.17.4 uses, into $1/nfd-compat
    # From sigs.k8s.io/node-feature-discovery's own module (nfd-compat/README.md says why): its
    # api/generated/clientset/versioned without the fakes, the import path rewritten, and the serializer line as
    # client-gen v0.31 writes it (the release builds with client-go v0.31.3, which lacks the newer helper).
    local release=v0.17.3 from to=$1/nfd-compat/pkg/generated/clientset/versioned
    from=$(cd "$1" && go mod download -json "sigs.k8s.io/node-feature-discovery@$release" \
        | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')/api/generated/clientset/versioned
    [ -d "$from" ] || { echo "components.sh: no generated clientset in sigs.k8s.io/node-feature-discovery@$release" >&2; exit 1; }
    (cd "$from" && find . -name fake -prune -o -name '*.go' -print) | while read -r file; do
        mkdir -p "$to/$(dirname "$file")"
        sed -e 's#node-feature-discovery/api/generated/clientset/versioned#node-feature-discovery/pkg/generated/clientset/versioned#' \
            -e 's#rest.CodecFactoryForGeneratedClient(scheme.Scheme, scheme.Codecs).WithoutConversion()#scheme.Codecs.WithoutConversion()#' \
            "$from/$file" >"$to/$file"
    done
    grep -q '= scheme.Codecs.WithoutConversion()' "$to/typed/nfd/v1alpha1/nfd_client.go" \
        || { echo "components.sh: NFD $release's clientset no longer has the serializer line herd rewrites" >&2; exit 1; }
}

build() { # component $1 (wrapper module in $2, pinning module $3) into cache dir $4, from packages $5
    local name=$1 dir=$2 module=$3 out=$4 packages=$5 version ldflags="" tags=selinux,notest binary
    version=$(version_of "$dir" "$module")
    command -v go >/dev/null || { echo "components.sh: no Go toolchain (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }
    if [ "$module" = k8s.io/kubernetes ]; then
        local minor=${version#v1.}
        minor=${minor%%.*}
        # The release's commit time from the module proxy's metadata: a reproducible build date.
        local date
        date=$(cd "$dir" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$module")
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
            ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
        done
    fi
    if [ "$name" = kueue ]; then
        ldflags+=" -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version"
    fi
    if [ "$name" = containerd ]; then
        # Upstream's static release: no btrfs snapshotter (it needs cgo), Go's own user and DNS lookups.
        ldflags+=" -X $CONTAINERD/version.Version=$version"
        tags=urfave_cli_no_docs,osusergo,netgo,static_build,no_btrfs
    fi
    local cgo=0 mode=""
    if [ "$name" = runc ]; then
        # As upstream's `make static`: cgo (its nsenter is C), seccomp through libseccomp, a static PIE.
        cgo=1 mode=-buildmode=pie
        ldflags+=" -linkmode external -extldflags -static-pie"
        tags=seccomp,urfave_cli_no_docs,netgo,osusergo
    fi
    if [ "$name" = nvidia ]; then
        # As upstream's Makefile: cgo (go-nvml dlopens libnvidia-ml at run time, so no driver is needed to build),
        # NVML's symbols left for that load to resolve, and the release stamped into internal/info. The module zip
        # carries no commit: gitCommit stays empty, which `--version` then omits.
        cgo=1
        ldflags+=" '-extldflags=-Wl,--export-dynamic -Wl,--unresolved-symbols=ignore-in-object-files'"
        ldflags+=" -X $NVIDIA/internal/info.version=$version"
        tags=""
    fi
    if [ "$name" = cni ]; then
        ldflags+=" -X github.com/containernetworking/plugins/pkg/utils/buildversion.BuildVersion=$version"
    fi
    echo "== building $name $version (cold: tens of minutes on two cores; cached afterwards in $out)" >&2
    local started=$SECONDS
    rm -rf "$out.partial"
    mkdir -p "$out.partial/bin"
    # shellcheck disable=SC2086 # packages is a list
    local src=$dir
    if [ "$name" = nvidia ]; then
        # The wrapper with NFD's generated clientset laid in from its module (never the repo): built from a copy.
        src=$(mktemp -d)
        cp -r "$dir/." "$src/"
        nfd_clientset "$src"
    fi
    (cd "$src" && CGO_ENABLED=$cgo go build $mode -trimpath -tags "$tags" -ldflags "-s -w$ldflags" -o "$out.partial/bin/" $packages)
    [ "$src" = "$dir" ] || rm -rf "$src"
    # go names the binary of go.etcd.io/etcd/server/v3 "server"; upstream ships it as etcd.
    if [ "$name" = etcd ]; then mv "$out.partial/bin/server" "$out.partial/bin/etcd"; fi
    if [ "$name" = kueue ]; then kueue_manifests "$dir" "$module" "$out.partial"; fi
    for binary in "$out.partial/bin/"*; do [ -x "$binary" ] || { echo "components.sh: $binary not built" >&2; exit 1; }; done
    echo "$name $version built in $((SECONDS - started)) s" >&2
    rm -rf "$out"
    mv "$out.partial" "$out"
}

print_only=false gpu=false
for arg in "$@"; do
    case "$arg" in
        --dir) print_only=true ;;
        --gpu) gpu=true ;;
        *) echo "components.sh: unknown argument $arg (--dir, --gpu)" >&2; exit 2 ;;
    esac
done

if $gpu; then
    for entry in "${GPU_COMPONENTS[@]}"; do
        IFS='|' read -r name dir module packages <<<"$entry"
        out=$(dir_of "$name" "$dir" "$module")
        if [ ! -d "$out/bin" ]; then
            if $print_only; then
                echo "components.sh: $name is not built ($out); run scripts/components.sh --gpu" >&2
                exit 1
            fi
            build "$name" "$dir" "$module" "$out" "$packages"
        fi
        echo "$out/bin"
    done
    exit 0
fi

bin="$CACHE/bin"
missing=0
links=()
for entry in "${COMPONENTS[@]}"; do
    IFS='|' read -r name dir module packages <<<"$entry"
    out=$(dir_of "$name" "$dir" "$module")
    if [ ! -d "$out/bin" ]; then
        if $print_only; then
            echo "components.sh: $name is not built ($out); run scripts/components.sh" >&2
            missing=1
            continue
        fi
        build "$name" "$dir" "$module" "$out" "$packages"
    fi
    # A build cached before its manifests were kept beside it gets them now (they come from the same module).
    if [ "$name" = kueue ] && [ ! -d "$out/webhook" ]; then
        if $print_only; then
            echo "components.sh: kueue's manifests are missing ($out/webhook); run scripts/components.sh" >&2
            missing=1
            continue
        fi
        command -v go >/dev/null || { echo "components.sh: no Go toolchain (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }
        kueue_manifests "$dir" "$module" "$out"
    fi
    for binary in "$out/bin/"*; do links+=("$binary"); done
done
[ "$missing" = 0 ] || exit 1

# One directory of links to the current builds: what local-cluster.sh and the tests put on PATH.
if ! $print_only; then
    mkdir -p "$bin.new"
    for binary in "${links[@]}"; do ln -sf "$binary" "$bin.new/$(basename "$binary")"; done
    rm -rf "$bin" && mv "$bin.new" "$bin"
fi
for binary in "${links[@]}"; do
    [ "$(readlink "$bin/$(basename "$binary")")" = "$binary" ] || { echo "components.sh: $bin is stale; run scripts/components.sh" >&2; exit 1; }
done
echo "$bin"
