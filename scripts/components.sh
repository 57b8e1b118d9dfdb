#!/usr/bin/env bash
# Build (once) the upstream components the local real cluster runs, from their own Go modules, and cache them.
#
#   scripts/components.sh            build what is missing, then print the bin directory
#   scripts/components.sh --dir      print the bin directory without building (exit 1 when anything is missing)
#
# The inputs are the small wrapper modules under scripts/components/<name>/ (go.mod pins the release, go.sum its
# module sums). Each is built into $HERD_COMPONENT_CACHE/<name>-<version>-<hash of go.mod and go.sum>/, so a change
# of version or of any pinned sum builds afresh and an unchanged one is reused. Kubernetes is stamped as upstream's
# release binaries are (kube-apiserver's /version and `kubectl version` report the release): -trimpath, the
# release's build tags, CGO off, and the version variables of k8s.io/component-base and client-go.
set -euo pipefail
cd "$(dirname "$0")/components"

CACHE=${HERD_COMPONENT_CACHE:-/var/cache/herd/components}
export PATH="$PATH:/usr/local/go/bin"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly CGO_ENABLED=0

# name | the module pinned in its go.mod | the binaries it builds (package paths)
KUBE_BINARIES="kube-apiserver kube-controller-manager kube-scheduler kubectl"
COMPONENTS=(
    "etcd|go.etcd.io/etcd/server/v3|go.etcd.io/etcd/server/v3"
    "kubernetes|k8s.io/kubernetes|$(for b in $KUBE_BINARIES; do printf 'k8s.io/kubernetes/cmd/%s ' "$b"; done)"
    "kwok|sigs.k8s.io/kwok|sigs.k8s.io/kwok/cmd/kwok"
    "kueue|sigs.k8s.io/kueue|sigs.k8s.io/kueue/cmd/kueue"
)

version_of() { # the version go.mod requires of module $2, in directory $1
    awk -v m="$2" '$1 == m && $2 ~ /^v/ {print $2; exit} $1 == "require" && $2 == m {print $3; exit}' "$1/go.mod"
}

dir_of() { # the cache directory of component $1
    local name=$1 module=$2
    local version hash
    version=$(version_of "$name" "$module")
    [ -n "$version" ] || { echo "components.sh: $name/go.mod does not require $module" >&2; exit 2; }
    hash=$(cat "$name/go.mod" "$name/go.sum" | sha256sum | cut -c1-12)
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

build() { # component $1 at $3 (cache dir) from packages $4
    local name=$1 module=$2 out=$3 packages=$4 version ldflags="" binary
    version=$(version_of "$name" "$module")
    command -v go >/dev/null || { echo "components.sh: no Go toolchain (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }
    if [ "$name" = kubernetes ]; then
        local minor=${version#v1.}
        minor=${minor%%.*}
        # The release's commit time from the module proxy's metadata: a reproducible build date.
        local date
        date=$(cd "$name" && go list -m -f '{{.Time.UTC.Format "2006-01-02T15:04:05Z"}}' "$module")
        for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
            ldflags+=" -X $p.gitVersion=$version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
            ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
        done
    fi
    if [ "$name" = kueue ]; then
        ldflags+=" -X sigs.k8s.io/kueue/pkg/version.GitVersion=$version"
    fi
    echo "== building $name $version (cold: tens of minutes on two cores; cached afterwards in $out)" >&2
    local started=$SECONDS
    rm -rf "$out.partial"
    mkdir -p "$out.partial/bin"
    # shellcheck disable=SC2086 # packages is a list
    (cd "$name" && go build -trimpath -tags selinux,notest -ldflags "-s -w$ldflags" -o "$out.partial/bin/" $packages)
    # go names the binary of go.etcd.io/etcd/server/v3 "server"; upstream ships it as etcd.
    if [ "$name" = etcd ]; then mv "$out.partial/bin/server" "$out.partial/bin/etcd"; fi
    if [ "$name" = kueue ]; then kueue_manifests "$name" "$module" "$out.partial"; fi
    for binary in "$out.partial/bin/"*; do [ -x "$binary" ] || { echo "components.sh: $binary not built" >&2; exit 1; }; done
    echo "$name $version built in $((SECONDS - started)) s" >&2
    rm -rf "$out"
    mv "$out.partial" "$out"
}

print_only=false
[ "${1:-}" = --dir ] && print_only=true

bin="$CACHE/bin"
missing=0
links=()
for entry in "${COMPONENTS[@]}"; do
    IFS='|' read -r name module packages <<<"$entry"
    out=$(dir_of "$name" "$module")
    if [ ! -d "$out/bin" ]; then
        if $print_only; then
            echo "components.sh: $name is not built ($out); run scripts/components.sh" >&2
            missing=1
            continue
        fi
        build "$name" "$module" "$out" "$packages"
    fi
    # A build cached before its manifests were kept beside it gets them now (they come from the same module).
    if [ "$name" = kueue ] && [ ! -d "$out/webhook" ]; then
        if $print_only; then
            echo "components.sh: kueue's manifests are missing ($out/webhook); run scripts/components.sh" >&2
            missing=1
            continue
        fi
        command -v go >/dev/null || { echo "components.sh: no Go toolchain (looked in PATH and /usr/local/go/bin)" >&2; exit 1; }
        kueue_manifests "$name" "$module" "$out"
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
