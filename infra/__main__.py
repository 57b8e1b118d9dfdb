"""herd's Pulumi program: wiring only. Each piece lives in its own module; config is read in infra/config.py.

``pulumi up`` runs this file (``main: infra/`` in Pulumi.yaml). Tests and ``herd-plan`` import :func:`define` and
run it under Pulumi's mocks with a stack's config.
"""

# Pulumi's Python host runs this file by path (runpy), which puts infra/ itself, not the repository root, on
# sys.path; the absolute `infra.` imports below need the root. An installed herd (scripts/setup.sh does
# `pip install -e .`) already provides it; these lines make a bare checkout work too.
import sys
from pathlib import Path

_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import pulumi  # noqa: E402
import pulumi_kubernetes as k8s  # noqa: E402

from infra import config  # noqa: E402
from infra.addons.autoscaler import ClusterAutoscaler  # noqa: E402
from infra.addons.cni import cni_for  # noqa: E402
from infra.addons.gpu import NvidiaDevicePlugin  # noqa: E402
from infra.addons.priority import PriorityClasses  # noqa: E402
from infra.addons.queue_policy import TeamQueuePolicy  # noqa: E402
from infra.addons.queues import KueueQueues, admissible  # noqa: E402
from infra.addons.storage import NfsStorage  # noqa: E402
from infra.addons.system import SYSTEM_NAMESPACE, system_namespace  # noqa: E402
from infra.addons.team_policy import TeamStoragePolicy  # noqa: E402
from infra.addons.teams import TeamNamespace  # noqa: E402
from infra.burst_pool import BurstNodePool, KubeadmControlPlane  # noqa: E402
from infra.join import BootstrapToken  # noqa: E402
from infra.network import Network  # noqa: E402


def define(cfg: config.StackConfig, *, now: float | None = None) -> None:
    """Declare every resource of the stack described by ``cfg`` and export its outputs.

    The cluster side (add-ons, teams) is the same whatever the cloud side: a stack without a VPN declares no AWS
    resource, and adding the VPN and pools later only adds resources (docs/operators/pulumi.md, "A site without
    a cloud").

    Args:
        cfg: the validated stack config.
        now: the clock (Unix seconds) the join token's rotation epoch is computed from; the real time if None.
    """
    cluster = k8s.Provider("onprem-cluster", context=cfg.kube_context or None, enable_server_side_apply=True)
    in_cluster = pulumi.ResourceOptions(providers=[cluster])

    cni = cni_for(cfg, in_cluster)
    after_cni = pulumi.ResourceOptions(providers=[cluster], depends_on=list(cni.ready))
    system = system_namespace(after_cni)
    after_system = pulumi.ResourceOptions(providers=[cluster], depends_on=[system, *cni.ready])

    PriorityClasses("priorities", in_cluster)
    NvidiaDevicePlugin("gpu", cfg, after_cni)
    storage = NfsStorage("results", cfg, SYSTEM_NAMESPACE, after_system)
    if cfg.teams:
        policy = TeamStoragePolicy("team-storage", cfg, after_cni)
        queue_policy = TeamQueuePolicy("team-queues", cfg, after_cni)
        namespaces = [
            TeamNamespace(
                f"team-{team.name}",
                cfg,
                team,
                storage_class=storage.storage_class,
                # No one submits before the policies keep the team to its own results and its own queue.
                storage_policy=[*policy.bindings, *queue_policy.bindings],
                # Kueue runs wherever there are teams (below): their quotas hold all it may admit to them.
                admissible=admissible(cfg, team),
                opts=after_cni,
            )
            for team in cfg.teams
        ]
        after_namespaces = [*cni.ready, *(n.namespace for n in namespaces)]
        KueueQueues("queues", cfg, pulumi.ResourceOptions(providers=[cluster], depends_on=after_namespaces))

    # The cloud side, only where the stack has one. Nothing above depends on it, so adding it later creates
    # resources and changes none of the cluster's.
    network = Network("burst", cfg) if cfg.vpn else None
    pools: list[BurstNodePool] = []
    token = None
    if network is not None and cfg.pools:
        # The join credential exists only for what joins from the cloud: no pool, no token to leak or rotate.
        token = BootstrapToken("join", cfg, cluster, now=now)
        control_plane = KubeadmControlPlane(cfg.control_plane_endpoint, cfg.control_plane_ca_cert_hash)
        pools = [
            BurstNodePool(
                f"pool-{pool.name}",
                cfg,
                pool,
                subnet_ids=network.private_subnet_ids,
                security_group_id=network.node_security_group_id,
                control_plane=control_plane,
                credential=token,
                join_ready=[token.secret, token.parameter, *cni.ready],
            )
            for pool in cfg.pools
        ]
        ClusterAutoscaler(
            "autoscaler",
            cfg,
            SYSTEM_NAMESPACE,
            pulumi.ResourceOptions(providers=[cluster], depends_on=[system, *(p.group for p in pools)]),
        )

    # Outputs of what exists: an on-prem-only stack has no VPC, VPN or token to report, so it exports none of
    # them (`pulumi stack output vpcId` says the stack has no such output) and an empty burstPools.
    if network is not None:
        pulumi.export("vpcId", network.vpc_id)
        pulumi.export("privateSubnetIds", network.private_subnet_ids)
        pulumi.export("nodeSecurityGroupId", network.node_security_group_id)
        pulumi.export("vpnRouterSettings", network.router_settings())
    if token is not None:
        pulumi.export("joinTokenParameter", token.parameter_name)
        pulumi.export("joinTokenExpiresAt", token.expires_at.isoformat())
    pulumi.export("burstPools", {p.asg_name: pool.name for p, pool in zip(pools, cfg.pools, strict=True)})


if __name__ == "__main__":
    try:
        stack_config = config.from_pulumi()
    except config.ConfigError as e:
        # One line naming the key, no traceback: the CLI shows this and stops before anything is created.
        raise pulumi.RunError(str(e)) from None
    define(stack_config)
