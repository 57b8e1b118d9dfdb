"""cluster-autoscaler for the burst pools.

It runs on-prem (next to the API server; a pool may have no node at all) and so cannot use an instance role: it
gets an IAM user whose policy may only describe Auto Scaling groups and change the ones tagged as this cluster's.
The access key goes into a Kubernetes Secret the chart reads with ``envFromSecret``, never into chart values.
The priority expander tries cheaper pools first (spot before on-demand unless a pool sets its priority).
"""

from __future__ import annotations

import json
from collections import defaultdict

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from infra.addons import _helm
from infra.addons._helm import CONTROL_PLANE_TOLERATION
from infra.addons.charts import CLUSTER_AUTOSCALER
from infra.burst_pool import CA_TAG, asg_name
from infra.config import StackConfig
from ml_jobs import taxonomy

__all__ = [
    "AUTOSCALER_IMAGE_TAGS",
    "IMAGE_NEWER_THAN_CHART",
    "ClusterAutoscaler",
    "autoscaler_policy",
    "autoscaler_values",
    "priorities",
]

# cluster-autoscaler's minor must match the cluster's (it embeds the scheduler it simulates). 1.35 runs an image of
# the pinned chart's own appVersion minor (1.35.0). No chart packages the 1.36 or 1.37 images (the newest chart,
# 9.59.1, still has appVersion 1.35.0), so those minors override the chart's image tag, as the chart's README says
# to; its ClusterRole already grants what they read (storage.k8s.io, resource.k8s.io, podtemplates). v1.35.2 and
# v1.36.1 are upstream releases (July 2026); v1.37.0, that minor's first release, was not checked against
# upstream's release list. The tests in tests/infra/test_chart_values.py hold this table to those rules.
AUTOSCALER_IMAGE_TAGS = {"1.35": "v1.35.2", "1.36": "v1.36.1", "1.37": "v1.37.0"}
# Minors that run an image newer than the pinned chart's appVersion (see above).
IMAGE_NEWER_THAN_CHART = frozenset({"1.36", "1.37"})
CREDENTIALS_SECRET = "cluster-autoscaler-aws"


def priorities(cfg: StackConfig) -> dict[str, list[str]]:
    """The priority expander's table: priority -> regexes of ASG names (higher priority is tried first)."""
    table: dict[int, list[str]] = defaultdict(list)
    for pool in cfg.pools:
        table[pool.expander_priority].append(f"^{asg_name(cfg, pool)}$")
    return {str(p): table[p] for p in sorted(table)}


def autoscaler_values(cfg: StackConfig) -> dict:
    """Values of the cluster-autoscaler chart."""
    return {
        "cloudProvider": "aws",
        "awsRegion": cfg.aws_region,
        "autoDiscovery": {"clusterName": cfg.cluster_name},
        "image": {"tag": AUTOSCALER_IMAGE_TAGS[cfg.kubernetes_minor]},
        "envFromSecret": CREDENTIALS_SECRET,
        "extraArgs": {
            "expander": "priority",
            "scale-down-unneeded-time": cfg.autoscaler_scale_down_unneeded_time,
            "balance-similar-node-groups": True,
            # Runs write checkpoints to the NFS claim, not to emptyDir; a node with emptyDir may still go.
            "skip-nodes-with-local-storage": False,
        },
        "expanderPriorities": priorities(cfg),
        # On-prem (a pool may have no node at all); on the control plane if no other on-prem node is untainted.
        "nodeSelector": {taxonomy.LABELS["location"].key: "onprem"},
        "tolerations": [CONTROL_PLANE_TOLERATION],
        "resources": {"requests": {"cpu": "100m", "memory": "300Mi"}, "limits": {"memory": "600Mi"}},
    }


def autoscaler_policy(cluster_name: str) -> dict:
    """IAM policy: read everything it must see, change only this cluster's tagged groups."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Sid": "Discover",
                "Effect": "Allow",
                "Action": [
                    "autoscaling:DescribeAutoScalingGroups",
                    "autoscaling:DescribeAutoScalingInstances",
                    "autoscaling:DescribeLaunchConfigurations",
                    "autoscaling:DescribeScalingActivities",
                    "autoscaling:DescribeTags",
                    "ec2:DescribeImages",
                    "ec2:DescribeInstanceTypes",
                    "ec2:DescribeLaunchTemplateVersions",
                    "ec2:GetInstanceTypesFromInstanceRequirements",
                ],
                "Resource": "*",
            },
            {
                "Sid": "ScaleOwnGroups",
                "Effect": "Allow",
                "Action": ["autoscaling:SetDesiredCapacity", "autoscaling:TerminateInstanceInAutoScalingGroup"],
                "Resource": "*",
                "Condition": {"StringEquals": {f"aws:ResourceTag/{CA_TAG}/{cluster_name}": "owned"}},
            },
        ],
    }


class ClusterAutoscaler(pulumi.ComponentResource):
    """cluster-autoscaler with its AWS identity."""

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        namespace: str,
        opts: pulumi.ResourceOptions,
    ) -> None:
        # opts carries the cluster's Kubernetes provider; AWS children use the default AWS provider.
        super().__init__("herd:addons:ClusterAutoscaler", name, None, opts)
        aws_child = k8s_child = _helm.child_opts(self, opts)
        user = aws.iam.User(
            f"{name}-user",
            name=f"{cfg.cluster_name}-cluster-autoscaler",
            tags={"herd.dev/cluster": cfg.cluster_name},
            opts=aws_child,
        )
        aws.iam.UserPolicy(
            f"{name}-policy",
            user=user.name,
            policy=json.dumps(autoscaler_policy(cfg.cluster_name)),
            opts=aws_child,
        )
        key = aws.iam.AccessKey(f"{name}-key", user=user.name, opts=aws_child)
        self.credentials = k8s.core.v1.Secret(
            f"{name}-credentials",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=CREDENTIALS_SECRET, namespace=namespace, labels={"app.kubernetes.io/managed-by": "herd"}
            ),
            type="Opaque",
            string_data={
                "AWS_ACCESS_KEY_ID": key.id,
                "AWS_SECRET_ACCESS_KEY": pulumi.Output.secret(key.secret),  # type: ignore[arg-type]
            },
            opts=k8s_child,
        )
        self.release = _helm.release(
            "cluster-autoscaler",
            CLUSTER_AUTOSCALER,
            namespace,
            autoscaler_values(cfg),
            _helm.child_opts(self, opts, depends_on=[self.credentials]),
        )
        self.register_outputs({})
