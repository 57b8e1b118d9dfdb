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
import string
from dataclasses import dataclass
from pathlib import Path
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
# The boot script and the files it installs, rendered with their values (render_user_data).
TEMPLATES = Path(__file__).resolve().parent / "templates"


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
# pods, so Jobs see them fail. An instance that dies without a clean shutdown leaves its Node
# (docs/operators/pulumi.md).
DELETE_NODE_SCRIPT = (TEMPLATES / "herd-delete-node.sh").read_text(encoding="utf-8")
# Stopped after the kubelet (Before=: stop order is the reverse of start order), so the kubelet cannot update the
# Node again, and before the network goes down (After=network-online.target).
DELETE_NODE_UNIT = (TEMPLATES / "herd-delete-node.service").read_text(encoding="utf-8")


class _BootScript(string.Template):
    """``@@{NAME}`` placeholders only (bash has plenty of ``$``, none of ``@@``); a placeholder left unfilled, or
    a value given for none, is an error rather than a broken script."""

    delimiter = "@@"
    idpattern = r"(?!)"  # no unbraced form
    braceidpattern = r"[A-Z][A-Z0-9_]*"


def render_user_data(cfg: StackConfig, pool: Pool, control_plane: KubeadmControlPlane, parameter_name: str) -> str:
    """The boot script of a node of ``pool``, from infra/templates/user-data.sh. It names the SSM parameter; it
    never contains the token. Scalar values are shell-quoted; the blocks (join configuration, GPU runtime, the
    shutdown script and unit) go into heredocs or stand as lines of their own."""
    quoted = {
        "HERD_POOL": pool.name,
        "K8S_MINOR": cfg.kubernetes_minor,
        "K8S_VERSION": cfg.kubernetes_version,
        "JOIN_PARAMETER": parameter_name,
        "AWS_REGION": cfg.aws_region,
        "API_SERVER": control_plane.endpoint,
    }
    blocks = {
        "GPU_RUNTIME": (TEMPLATES / "gpu-runtime.sh").read_text(encoding="utf-8")
        if pool.gpu is not None
        else "# No GPU on this pool: containerd keeps its default runtime (runc).\n",
        "JOIN_CONFIGURATION": yaml.safe_dump(_join_configuration(cfg, control_plane, pool), sort_keys=False),
        "DELETE_NODE_SCRIPT": DELETE_NODE_SCRIPT,
        "DELETE_NODE_UNIT": DELETE_NODE_UNIT,
    }
    template = _BootScript((TEMPLATES / "user-data.sh").read_text(encoding="utf-8"))
    values = {k: shlex.quote(v) for k, v in quoted.items()} | {k: v.rstrip("\n") for k, v in blocks.items()}
    placeholders = {m["braced"] for m in template.pattern.finditer(template.template) if m["braced"]}
    if placeholders != set(values):
        raise ValueError(f"user-data template and values disagree: {sorted(placeholders ^ set(values))}")
    return template.substitute(values)


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
        tags = {"herd.dev/cluster": cfg.cluster_name, "herd.dev/pool": pool.name}
        profile = _node_identity(self, name, pool, credential, tags)
        self.launch_template = _launch_template(
            self,
            name,
            cfg,
            pool,
            profile=profile,
            security_group_id=security_group_id,
            user_data=_user_data(cfg, pool, control_plane, credential),
            tags=tags,
        )
        self.asg_name = asg_name(cfg, pool)
        self.group = _group(
            self,
            name,
            cfg,
            pool,
            launch_template=self.launch_template,
            subnet_ids=subnet_ids,
            tags=tags,
            join_ready=join_ready or [],
        )
        self.register_outputs({"asgName": self.asg_name, "launchTemplateId": self.launch_template.id})


def _node_identity(
    parent: pulumi.Resource, name: str, pool: Pool, credential: JoinCredential, tags: dict[str, str]
) -> aws.iam.InstanceProfile:
    """The nodes' instance profile: a role that may read the join parameter and nothing else."""
    child = pulumi.ResourceOptions(parent=parent)
    role = aws.iam.Role(
        f"{name}-node",
        assume_role_policy=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
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
    return aws.iam.InstanceProfile(f"{name}-node", role=role.name, tags=tags, opts=child)


def _image_id(parent: pulumi.Resource, cfg: StackConfig, pool: Pool) -> pulumi.Input[str]:
    """The pool's AMI: configured, or the SSM public parameter of GPU or CPU images."""
    if pool.ami:
        return pool.ami
    parameter = cfg.gpu_ami_parameter if pool.gpu is not None else cfg.cpu_ami_parameter
    return aws.ssm.get_parameter_output(name=parameter, opts=pulumi.InvokeOptions(parent=parent)).value


def _user_data(
    cfg: StackConfig, pool: Pool, control_plane: KubeadmControlPlane, credential: JoinCredential
) -> pulumi.Output[str]:
    """The boot script, base64-encoded as a launch template wants it."""
    return credential.parameter_name.apply(
        lambda param: base64.b64encode(render_user_data(cfg, pool, control_plane, param).encode()).decode()
    )


def _launch_template(
    parent: pulumi.Resource,
    name: str,
    cfg: StackConfig,
    pool: Pool,
    *,
    profile: aws.iam.InstanceProfile,
    security_group_id: pulumi.Output[str],
    user_data: pulumi.Output[str],
    tags: dict[str, str],
) -> aws.ec2.LaunchTemplate:
    """IMDSv2 only with hop limit 1 (pods cannot borrow the node's role), encrypted gp3 root, no public IP."""
    return aws.ec2.LaunchTemplate(
        f"{name}-lt",
        name_prefix=f"{cfg.cluster_name}-{pool.name}-",
        image_id=_image_id(parent, cfg, pool),
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
        opts=pulumi.ResourceOptions(parent=parent),
    )


def _group(
    parent: pulumi.Resource,
    name: str,
    cfg: StackConfig,
    pool: Pool,
    *,
    launch_template: aws.ec2.LaunchTemplate,
    subnet_ids: list[pulumi.Output[str]],
    tags: dict[str, str],
    join_ready: list[pulumi.Resource],
) -> aws.autoscaling.Group:
    """The ASG: mixed instance types, spot or on-demand, tagged for the autoscaler's discovery and templates."""
    group_name = asg_name(cfg, pool)
    all_tags = {**tags, "Name": group_name, **autoscaler_tags(cfg, pool)}
    return aws.autoscaling.Group(
        f"{name}-asg",
        name=group_name,
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
                        launch_template_id=launch_template.id,
                        version=launch_template.latest_version.apply(str),
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
        # cluster-autoscaler owns the desired capacity; `pulumi up` must not reset it. Nodes start only once the
        # credential they join with (and the CNI they need) exist.
        opts=pulumi.ResourceOptions(parent=parent, ignore_changes=["desiredCapacity"], depends_on=join_ready),
    )
