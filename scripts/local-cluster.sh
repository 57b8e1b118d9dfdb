#!/usr/bin/env bash
# A local real Kubernetes cluster on 127.0.0.1: upstream etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler (built from their Go modules by scripts/components.sh) and KWOK nodes shaped like the example site,
# holding the in-cluster objects the Pulumi program declares for Pulumi.example.yaml.
#
#   scripts/local-cluster.sh up       start it; prints the admin and alice kubeconfigs; exits 0 once it answers
#   scripts/local-cluster.sh down     stop what up started (by process id) and remove its state
#   scripts/local-cluster.sh status   say whether it runs
#
# HERD_LOCAL_CLUSTER_DIR  state directory (certificates, data, logs, kubeconfigs); default .herd/local-cluster
# HERD_LOCAL_CLUSTER_PORT the API server's port (default 16443); etcd, the controller manager and the scheduler
#                         take the next ones (herd_local/ports.py)
# HERD_COMPONENTS_BIN     where the binaries are (default: what scripts/components.sh built)
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import pulumi_aws, ml_jobs' 2>/dev/null; then
    # The in-cluster objects come from the Pulumi program's offline plan: it needs the infra extra.
    scripts/setup.sh examples,infra >&2
fi
exec .venv/bin/python -m herd_local "$@"
