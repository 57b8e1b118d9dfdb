#!/bin/bash
# herd burst node bootstrap, rendered from infra/templates/user-data.sh by infra/burst_pool.py, which fills in
# its placeholders (values shell-quoted). Holds no secret: the join token is read from SSM Parameter Store at boot
# with the instance role. Never add `set -x` (it would log the token).
set -euo pipefail
exec >>/var/log/herd-bootstrap.log 2>&1
export DEBIAN_FRONTEND=noninteractive
HERD_POOL=@@{HERD_POOL}
K8S_MINOR=@@{K8S_MINOR}
K8S_VERSION=@@{K8S_VERSION}
JOIN_PARAMETER=@@{JOIN_PARAMETER}
AWS_REGION=@@{AWS_REGION}

imds() {  # IMDSv2 only: a session token first
    local t
    t=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \
        -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
    curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
}

# Kernel prerequisites of Kubernetes networking.
modprobe overlay
modprobe br_netfilter
printf 'overlay\nbr_netfilter\n' >/etc/modules-load.d/herd-k8s.conf
{
    echo net.bridge.bridge-nf-call-iptables=1
    echo net.bridge.bridge-nf-call-ip6tables=1
    echo net.ipv4.ip_forward=1
} >/etc/sysctl.d/99-herd-k8s.conf
sysctl --system
swapoff -a

# containerd with the systemd cgroup driver (what kubeadm configures the kubelet for).
apt-get update -q
apt-get install -y -q apt-transport-https ca-certificates curl gpg
# Images that ship Docker already have containerd (containerd.io); Ubuntu's package would conflict.
command -v containerd >/dev/null || apt-get install -y -q containerd
mkdir -p /etc/containerd /etc/apt/keyrings
containerd config default >/etc/containerd/config.toml
sed -i 's/SystemdCgroup = false/SystemdCgroup = true/' /etc/containerd/config.toml
@@{GPU_RUNTIME}
systemctl restart containerd

# kubelet and kubeadm at exactly the control plane's version.
curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/Release.key" \
    | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
K8S_REPO="https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/"
echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $K8S_REPO /" \
    >/etc/apt/sources.list.d/kubernetes.list
apt-get update -q
apt-get install -y -q "kubelet=${K8S_VERSION}-*" "kubeadm=${K8S_VERSION}-*"
apt-mark hold kubelet kubeadm
command -v aws >/dev/null || snap install aws-cli --classic

INSTANCE_ID=$(imds instance-id)
AZ=$(imds placement/availability-zone)
NODE_IP=$(imds local-ipv4)
JOIN_TOKEN=$(aws ssm get-parameter --region "$AWS_REGION" --name "$JOIN_PARAMETER" \
    --with-decryption --query Parameter.Value --output text)

# The join configuration holds the token: tmpfs, owner-only, removed right after the join.
umask 077
cat >/run/herd-join.yaml <<EOF
@@{JOIN_CONFIGURATION}
EOF
kubeadm join --config /run/herd-join.yaml
rm -f /run/herd-join.yaml
unset JOIN_TOKEN

# At shutdown, delete this node's Node object (no cloud-controller-manager does it).
umask 022
mkdir -p /etc/herd
echo API_SERVER=@@{API_SERVER} >/etc/herd/node-cleanup.env
cat >/usr/local/sbin/herd-delete-node <<'HERD_SCRIPT'
@@{DELETE_NODE_SCRIPT}
HERD_SCRIPT
chmod 0755 /usr/local/sbin/herd-delete-node
cat >/etc/systemd/system/herd-delete-node.service <<'HERD_UNIT'
@@{DELETE_NODE_UNIT}
HERD_UNIT
systemctl daemon-reload
systemctl enable --now herd-delete-node.service
