"""The join credential burst nodes use: a kubeadm bootstrap token, rotated by ``pulumi up``.

One token ``<id>.<secret>`` (``[a-z0-9]{6}.[a-z0-9]{16}``, random, a Pulumi secret) lives in two places:

* the ``bootstrap-token-<id>`` Secret in ``kube-system`` (type ``bootstrap.kubernetes.io/token``), which is what
  makes the API server accept it: it authenticates as ``system:bootstrap:<id>`` in the group
  ``system:bootstrappers:kubeadm:default-node-token`` (the group kubeadm's RBAC lets request a kubelet
  certificate), and signs the ``cluster-info`` ConfigMap so a joining node can check it against the CA hash;
* an SSM SecureString parameter, which burst nodes read at boot with their instance role. The token is never in
  user-data, stack outputs or logs.

Rotation. Bootstrap tokens should be short-lived, but Pulumi has no clock: it changes a resource only when its
inputs change. So the token's random parts are keyed (``keepers``) on a *rotation epoch* computed when the program
runs: ``floor(now / rotation period)`` plus the ``joinTokenGeneration`` config. The first ``pulumi up`` after a
period boundary sees new keepers, replaces the token, rewrites the Secret (new name, old one deleted) and the SSM
parameter. The token expires two periods after its epoch began, so it is valid for at least one full period after
it was minted, and a node booting during a rotation finds either the old or the new token valid. If nobody runs
``pulumi up`` for two periods the token expires and new burst nodes cannot join: schedule ``pulumi up`` (CI) at
least once a period. Bump ``joinTokenGeneration`` to rotate at once (e.g. after a leak).

The on-prem join playbook does not use this token; it mints its own short-lived one per run with
``kubeadm token create``.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s
import pulumi_random as random

from infra.config import StackConfig

__all__ = ["BOOTSTRAP_GROUP", "BootstrapToken", "JoinCredential", "RotationWindow", "rotation_window"]

BOOTSTRAP_GROUP = "system:bootstrappers:kubeadm:default-node-token"
_DAY = 86400


class JoinCredential(Protocol):
    """What a burst pool needs from a join credential (the seam a later EKS Hybrid Nodes mode fills differently).

    Attributes:
        parameter_name: the SSM parameter a node reads at boot.
        parameter_arn: its ARN, for the node role's policy.
    """

    parameter_name: pulumi.Output[str]
    parameter_arn: pulumi.Output[str]


@dataclass(frozen=True)
class RotationWindow:
    """The rotation epoch a run falls in, and when a token minted in it expires."""

    epoch: int
    generation: int
    expires_at: datetime

    @property
    def keepers(self) -> dict[str, str]:
        """Random-resource keepers: a change of either value replaces the token."""
        return {"epoch": str(self.epoch), "generation": str(self.generation)}


def rotation_window(now: float, rotation_days: int, generation: int) -> RotationWindow:
    """The rotation window ``now`` (Unix seconds) falls in."""
    period = rotation_days * _DAY
    epoch = math.floor(now / period)
    return RotationWindow(
        epoch=epoch,
        generation=generation,
        expires_at=datetime.fromtimestamp((epoch + 2) * period, tz=UTC),
    )


class BootstrapToken(pulumi.ComponentResource):
    """A kubeadm bootstrap token as a kube-system Secret and an SSM SecureString.

    Attributes:
        parameter_name: SSM parameter holding ``<id>.<secret>``.
        parameter_arn: its ARN.
        token_id: the public half (it names the Secret; not a secret).
        expires_at: when the API server stops accepting the token.
    """

    def __init__(
        self,
        name: str,
        cfg: StackConfig,
        k8s_provider: pulumi.ProviderResource,
        now: float | None = None,
        opts: pulumi.ResourceOptions | None = None,
    ) -> None:
        super().__init__("herd:join:BootstrapToken", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        window = rotation_window(
            time.time() if now is None else now, cfg.join_token_rotation_days, cfg.join_token_generation
        )
        self.expires_at = window.expires_at

        token_id = random.RandomString(
            f"{name}-id",
            length=6,
            upper=False,
            special=False,
            numeric=True,
            lower=True,
            keepers=window.keepers,
            opts=child,
        )
        token_secret = random.RandomPassword(
            f"{name}-secret",
            length=16,
            upper=False,
            special=False,
            numeric=True,
            lower=True,
            keepers=window.keepers,
            opts=child,
        )
        self.token_id = token_id.result
        token: pulumi.Output[str] = pulumi.Output.secret(  # type: ignore[arg-type]
            pulumi.Output.concat(token_id.result, ".", token_secret.result)
        )
        expiration = window.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")

        self.secret = k8s.core.v1.Secret(
            f"{name}-secret",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=token_id.result.apply(lambda i: f"bootstrap-token-{i}"),
                namespace="kube-system",
                labels={"app.kubernetes.io/managed-by": "herd", "herd.dev/role": "burst-join"},
            ),
            type="bootstrap.kubernetes.io/token",
            string_data={
                "description": f"herd burst nodes of {cfg.cluster_name}; rotated by pulumi up",
                "token-id": token_id.result,
                "token-secret": token_secret.result,
                "expiration": expiration,
                "usage-bootstrap-authentication": "true",
                "usage-bootstrap-signing": "true",
                "auth-extra-groups": BOOTSTRAP_GROUP,
            },
            opts=pulumi.ResourceOptions(parent=self, provider=k8s_provider),
        )
        self.parameter = aws.ssm.Parameter(
            f"{name}-parameter",
            name=f"/herd/{cfg.cluster_name}/join-token",
            type="SecureString",
            value=token,
            description=f"kubeadm bootstrap token of {cfg.cluster_name}'s burst nodes (expires {expiration})",
            tags={"herd.dev/cluster": cfg.cluster_name},
            opts=child,
        )
        self.parameter_name = self.parameter.name
        self.parameter_arn = self.parameter.arn
        self.register_outputs(
            {"parameterName": self.parameter_name, "tokenId": self.token_id, "expiresAt": expiration}
        )
