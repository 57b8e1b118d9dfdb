#!/usr/bin/env bash
# Capture what a machine with real NVIDIA GPUs says, and check herd's GPU labels against GPU feature discovery's.
#
#   scripts/gpu-facts.sh OUT          capture into directory OUT (on the GPU machine; docs/development/gpu-facts.md)
#   scripts/gpu-facts.sh --prepare    here: pack what that machine lacks into .gpu-facts/carry.tar.xz (ignored by
#                                     git; carry it): bin/ (GFD and the device plugin, scripts/components.sh --gpu)
#                                     and python/<X.Y>/ (the packages ml_jobs needs, per Python minor herd supports);
#                                     the capture unpacks it into .gpu-facts/ first
#
# One run, bounded: every step has its own timeout and its own record (OUT/<step>.out, .err, .rc); a step that
# fails is recorded and the next one runs; once HERD_GPU_FACTS_BUDGET seconds (default 420) have passed, the steps
# left are recorded as skipped. OUT/summary.tsv lists every step with its exit status and seconds; OUT/compare.out is
# the table of herd's labels against GFD's. Runs as root there (the device plugin's socket directory).
set -uo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
CARRY=$REPO/.gpu-facts
# The Python minors herd supports (pyproject.toml: requires-python >= 3.11) that --prepare provides packages for.
PYTHON_MINORS=(3.11 3.12 3.13)

prepare() {
    set -e
    local bin stage=$CARRY.stage
    bin=$("$REPO/scripts/components.sh" --gpu)
    rm -rf "$stage" && mkdir -p "$stage/bin"
    cp "$bin"/* "$stage/bin/"
    local pip=${PIP:-$REPO/.venv/bin/pip}
    # ml-jobs run --local's imports, at the versions pinned for herd (constraints.txt); ansible-core for the role.
    local packages=(pydantic pyyaml ruamel.yaml typer rich ansible-core)
    for minor in "${PYTHON_MINORS[@]}"; do
        "$pip" install --quiet --target "$stage/python/$minor" --python-version "$minor" --only-binary=:all: \
            --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
            -c "$REPO/constraints.txt" "${packages[@]}"
    done
    # One compressed file: what travels to the GPU machine (the binaries alone are ~66 MB unpacked).
    rm -rf "$CARRY" && mkdir -p "$CARRY"
    tar -C "$stage" -cf - bin python | xz -T0 -6 >"$CARRY/carry.tar.xz"
    rm -rf "$stage"
    ls -l "$CARRY/carry.tar.xz" >&2
    echo "$CARRY/carry.tar.xz"
}

if [ "${1:-}" = --prepare ]; then prepare; exit $?; fi
[ $# = 1 ] || { echo "usage: scripts/gpu-facts.sh OUT | --prepare" >&2; exit 2; }
mkdir -p "$1" || exit 2
OUT=$(cd "$1" && pwd)
BUDGET=${HERD_GPU_FACTS_BUDGET:-420}
STARTED=$SECONDS
printf 'step\trc\tseconds\n' >"$OUT/summary.tsv"

step() { # name timeout command...: run one step with its own record; never stops the script
    local name=$1 limit=$2 began=$SECONDS rc
    shift 2
    mkdir -p "$(dirname "$OUT/$name")"
    if ((SECONDS - STARTED >= BUDGET)); then
        echo "skipped: the run's budget of $BUDGET s was spent" >"$OUT/$name.err"
        printf '%s\tskipped\t0\n' "$name" >>"$OUT/summary.tsv"
        return 0
    fi
    timeout --kill-after=5 "$limit" "$@" >"$OUT/$name.out" 2>"$OUT/$name.err" </dev/null
    rc=$?
    echo "$rc" >"$OUT/$name.rc"
    printf '%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - began))" >>"$OUT/summary.tsv"
    echo "== $name: rc $rc ($((SECONDS - began)) s)" >&2
}

skip() { # name reason: a step that cannot run here, recorded as such
    mkdir -p "$(dirname "$OUT/$1")"
    echo "skipped: $2" >"$OUT/$1.err"
    printf '%s\tskipped\t0\n' "$1" >>"$OUT/summary.tsv"
    echo "== $1: skipped ($2)" >&2
}

if [ -f "$CARRY/carry.tar.xz" ] && [ ! -d "$CARRY/bin" ]; then
    step unpack 120 tar -C "$CARRY" -xJf "$CARRY/carry.tar.xz"
fi

# --- Python with ml_jobs' packages: HERD_PYTHON, the repository's venv, or python3 with what --prepare carried.
PY=${HERD_PYTHON:-}
if [ -z "$PY" ] && "$REPO/.venv/bin/python" -c 'import ml_jobs, yaml' 2>/dev/null; then PY=$REPO/.venv/bin/python; fi
if [ -z "$PY" ]; then
    PY=$(command -v python3)
    minor=$("$PY" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
    export PYTHONPATH=$REPO:$CARRY/python/$minor
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$REPO
BIN=${HERD_GPU_BIN:-$CARRY/bin}

# --- the machine
step date 5 date -u +%Y-%m-%d
step machine/uname 5 uname -a
step machine/os-release 5 cat /etc/os-release
step machine/glibc 5 ldd --version
step machine/python 5 "$PY" --version
# herd's GPU detection (playbooks/roles/nvidia/tasks/detect.yml): NVIDIA (0x10de) display or 3D controllers.
step machine/pci-gpus 10 bash -c 'for d in /sys/bus/pci/devices/*; do v=$(cat "$d/vendor"); c=$(cat "$d/class")
    case "$v:$c" in 0x10de:0x0300*|0x10de:0x0302*) echo "$(basename "$d") $v $c" ;; esac; done'

# --- nvidia-smi, exactly as the nvidia role asks (playbooks/roles/nvidia/tasks/query.yml), and what ml_jobs asks
step nvidia-smi/query 30 nvidia-smi --query-gpu=name,memory.total,count --format=csv,noheader
step nvidia-smi/list 30 nvidia-smi -L
step nvidia-smi/driver-version 30 nvidia-smi --query-gpu=driver_version --format=csv,noheader
step nvidia-smi/version 30 nvidia-smi --version
step nvidia-smi/summary 30 nvidia-smi

# --- GPU feature discovery, once, writing the labels it would set (no timestamp, to compare and to keep)
if [ -x "$BIN/gpu-feature-discovery" ]; then
    step gfd/version 10 "$BIN/gpu-feature-discovery" --version
    step gfd/run 120 "$BIN/gpu-feature-discovery" --oneshot --no-timestamp --output-file "$OUT/gfd/labels" \
        --driver-root-ctr-path / --fail-on-init-error
else
    skip gfd/run "no $BIN/gpu-feature-discovery (scripts/gpu-facts.sh --prepare, or HERD_GPU_BIN)"
fi

# --- herd's labels of the same nvidia-smi answer: the Python twin, the role itself, and the two against GFD
step herd/labels 30 "$PY" -m herd_local.gpu_facts labels "$OUT"
ANSIBLE_PLAYBOOK=$(dirname "$PY")/ansible-playbook
[ -x "$ANSIBLE_PLAYBOOK" ] || ANSIBLE_PLAYBOOK=$(command -v ansible-playbook || true)
if [ -z "$ANSIBLE_PLAYBOOK" ] && "$PY" -c 'import ansible' 2>/dev/null; then
    ANSIBLE_PLAYBOOK="$PY -m ansible.cli.playbook"
fi
if [ -n "$ANSIBLE_PLAYBOOK" ] && [ -s "$OUT/nvidia-smi/query.out" ]; then
    # The role's own gpu_labels.yml on the captured answer (the fixture playbook tests/playbooks/test_gpu_labels.py runs).
    vars=$("$PY" -c 'import json, sys; print(json.dumps({"answers": [open(sys.argv[1]).read()],
        "out": sys.argv[2], "repo": sys.argv[3]}))' "$OUT/nvidia-smi/query.out" "$OUT/herd/role-labels.json" "$REPO")
    # shellcheck disable=SC2086 # a command and its arguments
    step herd/role 120 env ANSIBLE_CONFIG="$REPO/ansible.cfg" $ANSIBLE_PLAYBOOK -i localhost, \
        "$REPO/tests/playbooks/fixtures/gpu_labels.yml" -e "$vars"
else
    skip herd/role "no ansible-playbook, or no nvidia-smi answer to parse"
fi
step compare 30 "$PY" -m herd_local.gpu_facts compare "$OUT"

# --- ml-jobs run --local with one GPU: what a run sees
mkdir -p "$OUT/ml-jobs"
cat >"$OUT/ml-jobs/spec.yaml" <<'EOF'
name: gpu-facts
image: unused.invalid/local-only:0
command: [sh, -c, 'echo "CUDA_VISIBLE_DEVICES=$CUDA_VISIBLE_DEVICES"; nvidia-smi -L; echo "{}" > "$RESULTS_DIR/metrics.json"']
resources: {cpu: 100m, memory: 64Mi, gpus: 1}
EOF
step ml-jobs/run 120 "$PY" -m ml_jobs.cli run "$OUT/ml-jobs/spec.yaml" --local --results-dir "$OUT/ml-jobs/results"

# --- the device plugin: NVML, its devices and its gRPC server; no kubelet runs here to register with, so it is
# expected to stop at registration (the log shows what it would have advertised)
if [ -x "$BIN/nvidia-device-plugin" ]; then
    sockets=$(mktemp -d)
    step device-plugin/version 10 "$BIN/nvidia-device-plugin" --version
    step device-plugin/run 30 "$BIN/nvidia-device-plugin" --kubelet-socket "$sockets/kubelet.sock" \
        --driver-root-ctr-path / --fail-on-init-error
    ls -la "$sockets" >"$OUT/device-plugin/sockets.out" 2>&1
    rm -rf "$sockets"
else
    skip device-plugin/run "no $BIN/nvidia-device-plugin (scripts/gpu-facts.sh --prepare, or HERD_GPU_BIN)"
fi

echo "== done in $((SECONDS - STARTED)) s: $OUT/summary.tsv" >&2
cat "$OUT/summary.tsv" >&2
[ -f "$OUT/compare.out" ] && cat "$OUT/compare.out" >&2
exit 0
