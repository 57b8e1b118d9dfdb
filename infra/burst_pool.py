"""BurstNodePool: one Auto Scaling group of cloud nodes that join the on-prem cluster when runs are pending.

Per pool: an IAM role that can read the join parameter and nothing else of note, a launch template (IMDSv2 only,
hop limit 1 so pods cannot borrow the node's credentials, encrypted gp3 root volume, no public IP), user-data that
installs containerd, kubelet and kubeadm at the cluster's exact version and joins the control plane with the token
it fetches from SSM at boot, and an ASG of mixed instance types (spot or on-demand) tagged for cluster-autoscaler
auto-discovery, with node-template tags (labels, taints, GPU count) so the autoscaler can scale the pool from zero
nodes: with no node to look at, those tags are all it knows of what a new node would offer.
"""

from __future__ import annotations

import base64
import json
import shlex
from dataclasses import dataclass
from textwrap import dedent
from typing import Any

import pulumi
import pulumi_aws as aws
import yaml

from infra.config import Pool, StackConfig
from infra.join import JoinCredential
from ml_jobs import taxonomy

__all__ = [
    "DELETE_NODE_SCRIPT",
    "DELETE_NODE_UNIT",
    "BurstNodePool",
    "ControlPlane",
    "KubeadmControlPlane",
    "asg_name",
    "autoscaler_tags",
    "gpu_product_label",
    "gpu_resource_count",
    "node_labels",
    "node_taints",
    "render_user_data",
]

CA_TAG = "k8s.io/cluster-autoscaler"


@dataclass(frozen=True)
class KubeadmControlPlane:
    """The on-prem kubeadm control plane burst nodes join (the seam an EKS Hybrid Nodes mode would replace).

    Attributes:
        endpoint: host:port of the API server as reached over the VPN.
        ca_cert_hash: ``sha256:...`` of the cluster CA's public key, pinned at join.
    """

    endpoint: str
    ca_cert_hash: str


ControlPlane = KubeadmControlPlane


def asg_name(cfg: StackConfig, pool: Pool) -> str:
    """The ASG's name: fixed, so the autoscaler's priority expander can match it."""
    return f"{cfg.cluster_name}-{pool.name}"


def gpu_product_label(cfg: StackConfig, pool: Pool) -> str:
    """The ``nvidia.com/gpu.product`` value GFD will write on a node of ``pool``.

    With time-slicing on, GFD appends ``-SHARED`` to the product; the node registers with (and the autoscaler's
    node template predicts) that value, so neither disagrees with GFD later.
    """
    assert pool.gpu is not None
    suffix = "-SHARED" if cfg.gpu_time_slicing_replicas > 1 else ""
    return pool.gpu.product_label + suffix


def gpu_resource_count(cfg: StackConfig, pool: Pool) -> int:
    """How many ``nvidia.com/gpu`` a node of ``pool`` advertises (each GPU counts replicas times when sliced)."""
    assert pool.gpu is not None
    return pool.gpu.count * max(1, cfg.gpu_time_slicing_replicas)


def node_labels(cfg: StackConfig, pool: Pool) -> dict[str, str]:
    """The labels a node of ``pool`` registers with: the taxonomy's, then the pool's extras."""
    labels = {
        taxonomy.LABELS["location"].key: "cloud",
        taxonomy.LABELS["pool"].key: pool.name,
        taxonomy.LABELS["tier"].key: pool.tier,
    }
    if pool.gpu is not None:
        labels[taxonomy.LABELS["gpu_product"].key] = gpu_product_label(cfg, pool)
        labels[taxonomy.LABELS["gpu_count"].key] = str(pool.gpu.count)
        # cluster-autoscaler (AWS) waits for a GPU node with this label to advertise its GPUs before scaling again.
        labels[taxonomy.LABELS["aws_accelerator"].key] = pool.gpu.product_label
    labels.update(pool.labels)
    return labels


def node_taints(pool: Pool) -> list[dict[str, str]]:
    """The taints a node of ``pool`` registers with: the GPU taint on GPU pools, then the pool's extras."""
    taints = [taxonomy.GPU_TAINT.as_node_taint()] if pool.gpu is not None else []
    taints += [{"key": t.key, "value": t.value, "effect": t.effect} for t in pool.taints]
    return taints


def autoscaler_tags(cfg: StackConfig, pool: Pool) -> dict[str, str]:
    """ASG tags for cluster-autoscaler: auto-discovery, and the node template for scaling from zero."""
    tags = {f"{CA_TAG}/enabled": "true", f"{CA_TAG}/{cfg.cluster_name}": "owned"}
    for key, value in node_labels(cfg, pool).items():
        tags[f"{CA_TAG}/node-template/label/{key}"] = value
    for taint in node_taints(pool):
        tags[f"{CA_TAG}/node-template/taint/{taint['key']}"] = f"{taint['value']}:{taint['effect']}"
    if pool.gpu is not None:
        tags[f"{CA_TAG}/node-template/resources/{taxonomy.GPU_RESOURCE}"] = str(gpu_resource_count(cfg, pool))
    return tags


def _join_configuration(cfg: StackConfig, control_plane: KubeadmControlPlane, pool: Pool) -> dict[str, Any]:
    """kubeadm's JoinConfiguration; ``${...}`` are shell variables filled in on the node at boot."""
    return {
        "apiVersion": "kubeadm.k8s.io/v1beta4",
        "kind": "JoinConfiguration",
        "discovery": {
            "bootstrapToken": {
                "apiServerEndpoint": control_plane.endpoint,
                "token": "${JOIN_TOKEN}",
                "caCertHashes": [control_plane.ca_cert_hash],
            }
        },
        "nodeRegistration": {
            "criSocket": "unix:///run/containerd/containerd.sock",
            "kubeletExtraArgs": [
                {"name": "node-labels", "value": ",".join(f"{k}={v}" for k, v in node_labels(cfg, pool).items())},
                # cluster-autoscaler matches Nodes to ASG instances by providerID; without a cloud provider the
                # kubelet leaves it empty and the autoscaler would count the node as never registered.
                {"name": "provider-id", "value": "aws:///${AZ}/${INSTANCE_ID}"},
                {"name": "node-ip", "value": "${NODE_IP}"},
            ],
            "taints": node_taints(pool),
        },
    }


# Burst nodes join a kubeadm control plane with no cloud-controller-manager, and cluster-autoscaler does not
# delete Node objects: without this, the Node of a terminated instance (scale-down, spot reclaim) stays NotReady
# and its pods stay Terminating. At shutdown (the ASG terminates instances with an OS shutdown, spot reclaim too)
# the node deletes its own Node object with the kubelet's client certificate: the Node authorizer grants kubelets
# `delete` on nodes and NodeRestriction limits it to their own. Pod garbage collection then removes the node's
# pods, so Jobs see them fail. An instance that dies without a clean shutdown leaves its Node (README).
DELETE_NODE_SCRIPT = dedent(
    """\
    #!/bin/bash
    # herd: delete this node's Node object as the instance shuts down (ExecStop of herd-delete-node.service).
    # Rendered by infra/burst_pool.py. Uses the kubelet's own client certificate, which may delete this Node only.
    set -uo pipefail
    source "${HERD_NODE_ENV:-/etc/herd/node-cleanup.env}"  # API_SERVER=host:port
    cert=${KUBELET_CLIENT_CERT:-/var/lib/kubelet/pki/kubelet-client-current.pem}
    ca=${CLUSTER_CA:-/etc/kubernetes/pki/ca.crt}
    subject=$(openssl x509 -in "$cert" -noout -subject -nameopt RFC2253) || {
        echo "herd-delete-node: cannot read the kubelet certificate $cert; nothing deleted" >&2
        exit 0
    }
    node=$(sed -n 's/^subject=.*CN=system:node:\\([^,]*\\).*$/\\1/p' <<<"$subject")
    if [ -z "$node" ]; then
        echo "herd-delete-node: $cert is not a node certificate ($subject); nothing deleted" >&2
        exit 0
    fi
    code=$(curl -sS -o /dev/null -w '%{http_code}' --max-time 20 --cacert "$ca" --cert "$cert" --key "$cert" \\
        -X DELETE "https://${API_SERVER}/api/v1/nodes/${node}")
    case "$code" in
        200 | 202 | 404) echo "herd-delete-node: Node $node deleted (HTTP $code)" ;;
        *)
            echo "herd-delete-node: deleting Node $node failed (HTTP $code)" >&2
            exit 1
            ;;
    esac
    """
)
# Stopped after the kubelet (Before=: stop order is the reverse of start order), so the kubelet cannot update the
# Node again, and before the network goes down (After=network-online.target).
DELETE_NODE_UNIT = dedent(
    """\
    [Unit]
    Description=herd: delete this node's Node object when the instance shuts down
    Wants=network-online.target
    After=network-online.target
    Before=kubelet.service

    [Service]
    Type=oneshot
    RemainAfterExit=yes
    ExecStart=/bin/true
    ExecStop=/usr/local/sbin/herd-delete-node
    TimeoutStopSec=30

    [Install]
    WantedBy=multi-user.target
    """
)


def render_user_data(cfg: StackConfig, pool: Pool, control_plane: KubeadmControlPlane, parameter_name: str) -> str:
    """The boot script of a node of ``pool``. It names the SSM parameter; it never contains the token."""
    minor = cfg.kubernetes_minor
    join_config = yaml.safe_dump(_join_configuration(cfg, control_plane, pool), sort_keys=False)
    gpu_runtime = (
        dedent(
            """\
            # The GPU image ships the NVIDIA driver and container toolkit; nvidia becomes containerd's default.
            nvidia-ctk runtime configure --runtime=containerd --set-as-default
            """
        )
        if pool.gpu is not None
        else ""
    )
    variables = {
        "HERD_POOL": pool.name,
        "K8S_MINOR": minor,
        "K8S_VERSION": cfg.kubernetes_version,
        "JOIN_PARAMETER": parameter_name,
        "AWS_REGION": cfg.aws_region,
    }
    assignments = "\n".join(f"{k}={shlex.quote(v)}" for k, v in variables.items())
    return (
        dedent(
            """\
            #!/bin/bash
            # herd burst node bootstrap, rendered by infra/burst_pool.py. Holds no secret: the join token is read
            # from SSM Parameter Store at boot with the instance role. Never add `set -x` (it would log the token).
            set -euo pipefail
            exec >>/var/log/herd-bootstrap.log 2>&1
            export DEBIAN_FRONTEND=noninteractive
            """
        )
        + assignments
        + "\n"
        + dedent(
            """\

            imds() {  # IMDSv2 only: a session token first
                local t
                t=$(curl -sf -X PUT http://169.254.169.254/latest/api/token \\
                    -H 'X-aws-ec2-metadata-token-ttl-seconds: 300')
                curl -sf -H "X-aws-ec2-metadata-token: $t" "http://169.254.169.254/latest/meta-data/$1"
            }

            # Kernel prerequisites of Kubernetes networking.
            modprobe overlay
            modprobe br_netfilter
            printf 'overlay\\nbr_netfilter\\n' >/etc/modules-load.d/herd-k8s.conf
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
            """
        )
        + gpu_runtime
        + dedent(
            """\
            systemctl restart containerd

            # kubelet and kubeadm at exactly the control plane's version.
            curl -fsSL "https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/Release.key" \\
                | gpg --dearmor -o /etc/apt/keyrings/kubernetes-apt-keyring.gpg
            K8S_REPO="https://pkgs.k8s.io/core:/stable:/v${K8S_MINOR}/deb/"
            echo "deb [signed-by=/etc/apt/keyrings/kubernetes-apt-keyring.gpg] $K8S_REPO /" \\
                >/etc/apt/sources.list.d/kubernetes.list
            apt-get update -q
            apt-get install -y -q "kubelet=${K8S_VERSION}-*" "kubeadm=${K8S_VERSION}-*"
            apt-mark hold kubelet kubeadm
            command -v aws >/dev/null || snap install aws-cli --classic

            INSTANCE_ID=$(imds instance-id)
            AZ=$(imds placement/availability-zone)
            NODE_IP=$(imds local-ipv4)
            JOIN_TOKEN=$(aws ssm get-parameter --region "$AWS_REGION" --name "$JOIN_PARAMETER" \\
                --with-decryption --query Parameter.Value --output text)

            # The join configuration holds the token: tmpfs, owner-only, removed right after the join.
            umask 077
            cat >/run/herd-join.yaml <<EOF
            """
        )
        + join_config
        + dedent(
            """\
            EOF
            kubeadm join --config /run/herd-join.yaml
            rm -f /run/herd-join.yaml
            unset JOIN_TOKEN

            # At shutdown, delete this node's Node object (no cloud-controller-manager does it).
            umask 022
            mkdir -p /etc/herd
            """
        )
        + f"echo API_SERVER={shlex.quote(control_plane.endpoint)} >/etc/herd/node-cleanup.env\n"
        + "cat >/usr/local/sbin/herd-delete-node <<'HERD_SCRIPT'\n"
        + DELETE_NODE_SCRIPT
        + "HERD_SCRIPT\n"
        + "chmod 0755 /usr/local/sbin/herd-delete-node\n"
        + "cat >/etc/systemd/system/herd-delete-node.service <<'HERD_UNIT'\n"
        + DELETE_NODE_UNIT
        + "HERD_UNIT\n"
        + "systemctl daemon-reload\n"
        + "systemctl enable --now herd-delete-node.service\n"
    )


class BurstNodePool(pulumi.ComponentResource):
    """A pool of burst nodes: role, launch template, Auto Scaling group.

    Attributes:
        asg_name: the ASG's name (what the autoscaler's priority expander matches).
        launch_template: the launch template.
        group: the Auto Scaling group.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        pool: Pool,
        *,
        subnet_ids: list[pulumi.Output[str]],
        security_group_id: pulumi.Output[str],
        control_plane: KubeadmControlPlane,
        credential: JoinCredential,
        join_ready: list[pulumi.Resource] | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("herd:burst:BurstNodePool", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        tags = {"herd.dev/cluster": cfg.cluster_name, "herd.dev/pool": pool.name}

        role = aws.iam.Role(
            f"{name}-node",
            assume_role_policy=json.dumps(
                {
                    "Version": "2012-10-17",
                    "Statement": [
                        {
                            "Effect": "Allow",
                            "Principal": {"Service": "ec2.amazonaws.com"},
                            "Action": "sts:AssumeRole",
                        }
                    ],
                }
            ),
            description=f"herd burst node of pool {pool.name}: reads its join token, nothing else",
            tags=tags,
            opts=child,
        )
        aws.iam.RolePolicy(
            f"{name}-read-join-token",
            role=role.id,
            policy=credential.parameter_arn.apply(
                lambda arn: json.dumps(
                    {
                        "Version": "2012-10-17",
                        "Statement": [{"Effect": "Allow", "Action": "ssm:GetParameter", "Resource": arn}],
                    }
                )
            ),
            opts=child,
        )
        profile = aws.iam.InstanceProfile(f"{name}-node", role=role.name, tags=tags, opts=child)

        if pool.ami:
            image_id: pulumi.Input[str] = pool.ami
        else:
            parameter = cfg.gpu_ami_parameter if pool.gpu is not None else cfg.cpu_ami_parameter
            image_id = aws.ssm.get_parameter_output(name=parameter, opts=pulumi.InvokeOptions(parent=self)).value

        user_data = credential.parameter_name.apply(
            lambda param: base64.b64encode(render_user_data(cfg, pool, control_plane, param).encode()).decode()
        )
        self.launch_template = aws.ec2.LaunchTemplate(
            f"{name}-lt",
            name_prefix=f"{cfg.cluster_name}-{pool.name}-",
            image_id=image_id,
            update_default_version=True,
            user_data=user_data,
            iam_instance_profile=aws.ec2.LaunchTemplateIamInstanceProfileArgs(arn=profile.arn),
            vpc_security_group_ids=[security_group_id],
            metadata_options=aws.ec2.LaunchTemplateMetadataOptionsArgs(
                http_endpoint="enabled",
                http_tokens="required",
                http_put_response_hop_limit=1,
                instance_metadata_tags="disabled",
            ),
            block_device_mappings=[
                aws.ec2.LaunchTemplateBlockDeviceMappingArgs(
                    device_name="/dev/sda1",
                    ebs=aws.ec2.LaunchTemplateBlockDeviceMappingEbsArgs(
                        volume_size=pool.volume_gib,
                        volume_type="gp3",
                        encrypted="true",
                        delete_on_termination="true",
                    ),
                )
            ],
            tag_specifications=[
                aws.ec2.LaunchTemplateTagSpecificationArgs(
                    resource_type=kind, tags={**tags, "Name": f"{cfg.cluster_name}-{pool.name}"}
                )
                for kind in ("instance", "volume")
            ],
            tags=tags,
            opts=child,
        )

        self.asg_name = asg_name(cfg, pool)
        all_tags = {**tags, "Name": self.asg_name, **autoscaler_tags(cfg, pool)}
        self.group = aws.autoscaling.Group(
            f"{name}-asg",
            name=self.asg_name,
            min_size=pool.min_size,
            max_size=pool.max_size,
            vpc_zone_identifiers=subnet_ids,
            capacity_rebalance=pool.spot,
            mixed_instances_policy=aws.autoscaling.GroupMixedInstancesPolicyArgs(
                instances_distribution=aws.autoscaling.GroupMixedInstancesPolicyInstancesDistributionArgs(
                    on_demand_base_capacity=0,
                    on_demand_percentage_above_base_capacity=0 if pool.spot else 100,
                    spot_allocation_strategy="price-capacity-optimized",
                ),
                launch_template=aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateArgs(
                    launch_template_specification=(
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateLaunchTemplateSpecificationArgs(
                            launch_template_id=self.launch_template.id,
                            version=self.launch_template.latest_version.apply(str),
                        )
                    ),
                    overrides=[
                        aws.autoscaling.GroupMixedInstancesPolicyLaunchTemplateOverrideArgs(instance_type=t)
                        for t in pool.instance_types
                    ],
                ),
            ),
            tags=[
                aws.autoscaling.GroupTagArgs(key=k, value=v, propagate_at_launch=not k.startswith(CA_TAG))
                for k, v in all_tags.items()
            ],
            # cluster-autoscaler owns the desired capacity; `pulumi up` must not reset it. Nodes start only once
            # the credential they join with (and the CNI they need) exist.
            opts=pulumi.ResourceOptions(
                parent=self, ignore_changes=["desiredCapacity"], depends_on=join_ready or []
            ),
        )
        self.register_outputs({"asgName": self.asg_name, "launchTemplateId": self.launch_template.id})
