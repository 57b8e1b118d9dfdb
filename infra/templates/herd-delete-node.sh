#!/bin/bash
# herd: delete this node's Node object as the instance shuts down (ExecStop of herd-delete-node.service).
# Installed by the boot script (infra/templates/user-data.sh). Uses the kubelet's own client certificate,
# which may delete this Node only.
set -uo pipefail
source "${HERD_NODE_ENV:-/etc/herd/node-cleanup.env}"  # API_SERVER=host:port
cert=${KUBELET_CLIENT_CERT:-/var/lib/kubelet/pki/kubelet-client-current.pem}
ca=${CLUSTER_CA:-/etc/kubernetes/pki/ca.crt}
subject=$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253) || {
    echo "herd-delete-node: cannot read the kubelet certificate $cert; nothing deleted" >&2
    exit 0
}
node=$(sed -n 's/^subject=.*CN=system:node:\([^,]*\).*$/\1/p' <<<"$subject")
if [ -z "$node" ]; then
    echo "herd-delete-node: $cert is not a node certificate ($subject); nothing deleted" >&2
    exit 0
fi
code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$ca" --cert "$cert" --key "$cert" \
    -X DELETE "https://${API_SERVER}/api/v1/nodes/${node}")
case "$code" in
    200 | 202 | 404) echo "herd-delete-node: Node $node deleted (HTTP $code)" ;;
    *)
        echo "herd-delete-node: deleting Node $node failed (HTTP $code)" >&2
        exit 1
        ;;
esac
