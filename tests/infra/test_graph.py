"""The whole resource graph under Pulumi's mocks: the example stack and the edge stacks (no pools, GPU-only,
many pools; on-prem only in test_onprem_only.py). What is checked is what the program declares; what AWS or a
cluster would do with it is not."""

from __future__ import annotations

import ipaddress
import json

import yaml

from infra import config
from infra.addons.charts import CHARTS
from infra.join import BOOTSTRAP_GROUP, rotation_window
from ml_jobs import taxonomy
from tests.infra.helpers import EDGE_STACKS, NOW, plan_of, stack_values, tags_of, user_data, waits_for

ASG = "aws:autoscaling/group:Group"
LT = "aws:ec2/launchTemplate:LaunchTemplate"
RELEASE = "kubernetes:helm.sh/v3:Release"
CA = "k8s.io/cluster-autoscaler"


def _edge(name: str):
    path = next(p for p in EDGE_STACKS if p.stem == name)
    values = stack_values(path)
    return values, plan_of(values)


# ----------------------------------------------------------------------------------------------------- network


def test_example_network_spans_two_azs_with_routes_to_onprem_over_the_vpn(example_plan, example_values):
    subnets = example_plan.of_type("aws:ec2/subnet:Subnet")
    private = [s for s in subnets if "private" in s.name]
    assert len(private) == 2
    assert {s.inputs["availabilityZone"] for s in private} == {"eu-central-1a", "eu-central-1b"}
    vpc = ipaddress.ip_network(example_values["herd:vpcCidr"])
    nets = [ipaddress.ip_network(s.inputs["cidrBlock"]) for s in subnets]
    assert all(n.subnet_of(vpc) for n in nets)
    assert not any(a.overlaps(b) for i, a in enumerate(nets) for b in nets[i + 1 :])
    assert all(s.inputs["mapPublicIpOnLaunch"] is False for s in subnets)

    onprem = set(example_values["herd:onpremCidrs"])
    vpn_routes = {
        r.inputs["destinationCidrBlock"]
        for r in example_plan.of_type("aws:ec2/vpnConnectionRoute:VpnConnectionRoute")
    }
    assert vpn_routes == onprem
    for table in example_plan.of_type("aws:ec2/routeTable:RouteTable"):
        if "private" in table.name:
            routes = {r["cidrBlock"]: r for r in table.inputs["routes"]}
            assert routes["0.0.0.0/0"]["natGatewayId"]
            assert {c for c, r in routes.items() if r.get("gatewayId") == "burst-vgw-id"} == onprem
    (vpn,) = example_plan.of_type("aws:ec2/vpnConnection:VpnConnection")
    assert vpn.inputs["staticRoutesOnly"] is True
    (cgw,) = example_plan.of_type("aws:ec2/customerGateway:CustomerGateway")
    assert cgw.inputs["ipAddress"] == example_values["herd:onpremVpnPublicIp"]
    assert len(example_plan.of_type("aws:ec2/natGateway:NatGateway")) == 1


def test_nat_per_az_and_three_azs():
    _, plan = _edge("gpu-only")
    assert len(plan.of_type("aws:ec2/natGateway:NatGateway")) == 3
    assert len([s for s in plan.of_type("aws:ec2/subnet:Subnet") if "private" in s.name]) == 3


def test_node_security_group_admits_cluster_traffic_from_internal_ranges(example_plan, example_values):
    (sg,) = example_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
    rules = {(r["protocol"], r["fromPort"]): set(r["cidrBlocks"]) for r in sg.inputs["ingress"]}
    internal = {example_values["herd:vpcCidr"], *example_values["herd:onpremCidrs"]}
    assert rules[("tcp", 10250)] == internal  # kubelet, from the control plane
    assert rules[("udp", 4789)] == internal  # Calico VXLAN
    assert rules[("tcp", 22)] == set(example_values["herd:onpremCidrs"])


# ------------------------------------------------------------------------------------------------- burst pools


def test_gpu_pool_asg_is_mixed_spot_and_discoverable_from_zero(example_plan):
    group = example_plan.one(ASG, "pool-gpu-a10g-spot-asg")
    i = group.inputs
    assert (i["name"], i["minSize"], i["maxSize"]) == ("lab-gpu-a10g-spot", 0, 4)
    policy = i["mixedInstancesPolicy"]
    assert [o["instanceType"] for o in policy["launchTemplate"]["overrides"]] == ["g5.2xlarge", "g5.4xlarge"]
    assert policy["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 0
    assert policy["instancesDistribution"]["spotAllocationStrategy"] == "price-capacity-optimized"
    assert i["capacityRebalance"] is True
    tags = tags_of(group)
    assert tags[f"{CA}/enabled"] == "true"
    assert f"{CA}/lab" in tags
    assert tags[f"{CA}/node-template/label/herd.dev/pool"] == "gpu-a10g-spot"
    assert tags[f"{CA}/node-template/label/herd.dev/tier"] == "gpu"
    assert tags[f"{CA}/node-template/label/herd.dev/location"] == "cloud"
    assert tags[f"{CA}/node-template/label/nvidia.com/gpu.product"] == "NVIDIA-A10G"
    assert tags[f"{CA}/node-template/label/nvidia.com/gpu.count"] == "1"
    # What cluster-autoscaler's AWS provider reads to wait for a new GPU node's device plugin instead of scaling up
    # more GPU nodes meanwhile.
    assert tags[f"{CA}/node-template/label/k8s.amazonaws.com/accelerator"] == "NVIDIA-A10G"
    assert tags[f"{CA}/node-template/taint/nvidia.com/gpu"] == "present:NoSchedule"
    assert tags[f"{CA}/node-template/resources/nvidia.com/gpu"] == "1"
    # Autoscaler tags describe the group; they are not copied onto instances.
    propagated = {t["key"] for t in i["tags"] if t["propagateAtLaunch"]}
    assert not any(k.startswith(CA) for k in propagated)


def test_cpu_pool_is_on_demand_and_untainted(example_plan):
    group = example_plan.one(ASG, "pool-cpu-burst-asg")
    assert (
        group.inputs["mixedInstancesPolicy"]["instancesDistribution"]["onDemandPercentageAboveBaseCapacity"] == 100
    )
    tags = tags_of(group)
    assert not any("/taint/" in k or "/resources/" in k or "nvidia.com" in k or "accelerator" in k for k in tags)
    assert tags[f"{CA}/node-template/label/herd.dev/tier"] == "high-cpu"


def test_user_data_joins_with_the_taxonomy_and_fetches_the_token_at_boot(example_plan, example_values):
    script = user_data(example_plan.one(LT, "pool-gpu-a10g-spot-lt"))
    assert script.startswith("#!/bin/bash\n")
    assert "JOIN_PARAMETER=/herd/lab/join-token" in script
    assert "aws ssm get-parameter" in script and "--with-decryption" in script
    assert "kubeadm join --config /run/herd-join.yaml" in script
    assert "K8S_VERSION=1.36.3" in script and "K8S_MINOR=1.36" in script
    assert "nvidia-ctk runtime configure --runtime=containerd --set-as-default" in script
    join = yaml.safe_load(script.split("cat >/run/herd-join.yaml <<EOF\n")[1].split("\nEOF\n")[0])
    assert join["kind"] == "JoinConfiguration" and join["apiVersion"] == "kubeadm.k8s.io/v1beta4"
    discovery = join["discovery"]["bootstrapToken"]
    assert discovery["apiServerEndpoint"] == "10.20.0.10:6443"
    assert discovery["token"] == "${JOIN_TOKEN}"
    assert discovery["caCertHashes"] == [example_values["herd:controlPlaneCaCertHash"]]
    args = {a["name"]: a["value"] for a in join["nodeRegistration"]["kubeletExtraArgs"]}
    labels = dict(kv.split("=", 1) for kv in args["node-labels"].split(","))
    assert labels == {
        taxonomy.LABELS["location"].key: "cloud",
        taxonomy.LABELS["pool"].key: "gpu-a10g-spot",
        taxonomy.LABELS["tier"].key: "gpu",
        taxonomy.LABELS["gpu_product"].key: "NVIDIA-A10G",
        taxonomy.LABELS["gpu_count"].key: "1",
        taxonomy.LABELS["aws_accelerator"].key: "NVIDIA-A10G",
    }
    assert args["provider-id"] == "aws:///${AZ}/${INSTANCE_ID}"  # what cluster-autoscaler matches nodes by
    assert join["nodeRegistration"]["taints"] == [taxonomy.GPU_TAINT.as_node_taint()]

    cpu = user_data(example_plan.one(LT, "pool-cpu-burst-lt"))
    assert "nvidia-ctk" not in cpu and "taints: []" in cpu


def test_user_data_is_valid_bash(example_plan, tmp_path):
    import shutil
    import subprocess

    bash = shutil.which("bash")
    for lt in example_plan.of_type(LT):
        script = tmp_path / f"{lt.name}.sh"
        script.write_text(user_data(lt))
        subprocess.run([bash, "-n", str(script)], check=True)


def test_node_role_may_read_only_its_join_parameter(example_plan):
    for policy in example_plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        (statement,) = json.loads(policy.inputs["policy"])["Statement"]
        assert statement == {
            "Effect": "Allow",
            "Action": "ssm:GetParameter",
            "Resource": "arn:aws:ssm:eu-central-1:123456789012:parameter/herd/lab/join-token",
        }


def test_gpu_only_stack_time_slicing_and_pool_options():
    _, plan = _edge("gpu-only")
    l4 = tags_of(plan.one(ASG, "pool-l4-spot-asg"))
    assert l4[f"{CA}/node-template/label/nvidia.com/gpu.product"] == "NVIDIA-L4-SHARED"
    assert l4[f"{CA}/node-template/label/k8s.amazonaws.com/accelerator"] == "NVIDIA-L4"  # the product, unshared
    assert l4[f"{CA}/node-template/resources/nvidia.com/gpu"] == "4"  # 1 GPU x 4 replicas
    assert l4[f"{CA}/node-template/label/example.com/cost-center"] == "research"
    h100 = plan.one(ASG, "pool-h100-asg")
    tags = tags_of(h100)
    assert tags[f"{CA}/node-template/resources/nvidia.com/gpu"] == "32"
    assert tags[f"{CA}/node-template/taint/example.com/expensive"] == "true:NoSchedule"
    assert h100.inputs["minSize"] == 1
    lt = plan.one(LT, "pool-h100-lt")
    assert lt.inputs["imageId"] == "ami-0123456789abcdef0"  # configured AMI, no lookup
    assert lt.inputs["blockDeviceMappings"][0]["ebs"]["volumeSize"] == 1000
    assert "K8S_MINOR=1.37" in user_data(lt)
    device_plugin = plan.one(RELEASE, "nvidia-device-plugin")
    sharing = yaml.safe_load(device_plugin.inputs["values"]["config"]["map"]["herd"])["sharing"]["timeSlicing"]
    assert sharing["resources"] == [{"name": "nvidia.com/gpu", "replicas": 4}]
    assert not [r for r in plan.resources if "cpu" in r.name]


def test_no_pools_stack_has_no_asg_no_autoscaler_and_no_join_credential_but_keeps_vpn_and_addons():
    _, plan = _edge("no-pools")
    assert not plan.of_type(ASG) and not plan.of_type(LT)
    assert not [r for r in plan.resources if "autoscaler" in r.name]
    assert plan.of_type("aws:ec2/vpnConnection:VpnConnection")
    # Nothing joins from the cloud yet, so there is no token to keep (or leak): no SSM parameter, no Secret
    assert not plan.of_type("aws:ssm/parameter:Parameter")
    assert not [r for r in plan.of_type("kubernetes:core/v1:Secret") if r.name == "join-secret"]
    assert not [r for r in plan.resources if r.type.startswith("random:")]
    assert set(plan.outputs) == {
        "vpcId",
        "privateSubnetIds",
        "nodeSecurityGroupId",
        "vpnRouterSettings",
        "burstPools",
    }
    releases = {r.inputs["chart"] for r in plan.of_type(RELEASE)}
    assert releases == {"nvidia-device-plugin", "nfs-subdir-external-provisioner"}  # cni: none
    assert not plan.of_type("kubernetes:core/v1:PersistentVolumeClaim")  # no teams
    assert plan.outputs["burstPools"] == ({}, False)
    # Defaults from Pulumi.yaml apply under mocks too.
    (vpc,) = plan.of_type("aws:ec2/vpc:Vpc")
    assert vpc.inputs["cidrBlock"] == config.declarations()["herd:vpcCidr"].default


def test_many_pools_stack_one_asg_each_with_unique_names_and_expander_priorities():
    values, plan = _edge("many-pools")
    groups = plan.of_type(ASG)
    assert len(groups) == 20
    names = [g.inputs["name"] for g in groups]
    assert len(set(names)) == 20
    release = plan.one(RELEASE, "cluster-autoscaler")
    priorities = release.inputs["values"]["expanderPriorities"]
    matched = sorted(rx.strip("^$") for regexes in priorities.values() for rx in regexes)
    assert matched == sorted(names)
    cfg = config.load(values)
    for pool in cfg.pools:
        prio = next(p for p, rx in priorities.items() if f"^wide-{pool.name}$" in rx)
        assert int(prio) == (20 if pool.spot else 10)


def test_autoscaler_discovers_this_cluster_and_prefers_spot(example_plan):
    values = example_plan.one(RELEASE, "cluster-autoscaler").inputs["values"]
    assert values["autoDiscovery"]["clusterName"] == "lab"
    assert values["extraArgs"]["expander"] == "priority"
    assert values["expanderPriorities"] == {"10": ["^lab-cpu-burst$"], "20": ["^lab-gpu-a10g-spot$"]}
    assert values["image"]["tag"] == "v1.36.1"
    assert values["envFromSecret"] == "cluster-autoscaler-aws"
    policy = json.loads(example_plan.one("aws:iam/userPolicy:UserPolicy", "autoscaler-policy").inputs["policy"])
    scale = next(s for s in policy["Statement"] if s["Sid"] == "ScaleOwnGroups")
    assert scale["Condition"] == {"StringEquals": {f"aws:ResourceTag/{CA}/lab": "owned"}}


def test_every_release_is_a_pinned_upstream_chart(any_plan):
    pins = {c.reference: c for c in CHARTS}
    for release in any_plan.of_type(RELEASE):
        chart = pins[release.inputs["chart"]]
        assert release.inputs["version"] == chart.version
        if chart.oci:  # the chart's reference is its full OCI address, with no repository index
            assert release.inputs["chart"] == f"{chart.repo}/{chart.name}"
            assert "repositoryOpts" not in release.inputs
        else:
            assert release.inputs["repositoryOpts"]["repo"] == chart.repo


def test_calico_pool_is_the_pod_cidr_with_vxlan_and_the_vpn_mtu(example_plan, example_values):
    installation = example_plan.one(RELEASE, "calico").inputs["values"]["installation"]
    (pool,) = installation["calicoNetwork"]["ipPools"]
    assert pool["cidr"] == config.load(example_values).pod_cidr
    assert pool["encapsulation"] == "VXLAN"
    assert installation["calicoNetwork"]["bgp"] == "Disabled"
    assert installation["calicoNetwork"]["mtu"] == 1380


def test_results_storage(example_plan, example_values):
    (sc,) = example_plan.of_type("kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc.inputs["reclaimPolicy"] == "Retain"
    assert sc.inputs["parameters"] == {
        # No part a user controls: no claim annotation (the provisioner does not sanitise nfs.io/storage-path).
        "pathPattern": "${.PVC.namespace}/${.PVC.name}",
        "archiveOnDelete": "true",
    }
    nfs = example_plan.one(RELEASE, "nfs-provisioner").inputs["values"]
    assert nfs["nfs"] == {
        "server": "10.20.8.5",
        "path": "/export/herd",
        "mountOptions": ["nfsvers=4.1", "hard", "noatime"],
    }
    assert nfs["storageClass"]["provisionerName"] == sc.inputs["provisioner"]
    claims = example_plan.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert {c.inputs["metadata"]["namespace"] for c in claims} == {"vision", "nlp"}
    for claim in claims:
        assert claim.inputs["spec"]["accessModes"] == ["ReadWriteMany"]
        assert claim.inputs["metadata"]["name"] == "herd-results"
        assert not claim.inputs["metadata"].get("annotations")


def test_teams_get_quota_limits_and_a_submitter_binding(example_plan):
    quota = example_plan.one("kubernetes:core/v1:ResourceQuota", "team-vision-quota").inputs["spec"]["hard"]
    assert quota["requests.nvidia.com/gpu"] == "11"  # its 8 and nlp's on-prem 3 Kueue may lend it (test_queues.py)
    limits = example_plan.one("kubernetes:core/v1:LimitRange", "team-nlp-limits").inputs["spec"]["limits"][0]
    assert limits["max"] == {"cpu": "32", "memory": "128Gi"}
    binding = example_plan.one("kubernetes:rbac.authorization.k8s.io/v1:RoleBinding", "team-vision-submitters")
    assert binding.inputs["subjects"][0]["name"] == "ml-vision"
    assert binding.inputs["roleRef"]["name"] == "herd-submitter"


def test_the_submitter_role_is_what_ml_jobs_sends(example_plan):
    # The rules are ml_jobs.rbac's (tests/ml_jobs/cluster/test_rbac.py checks them against every request).
    from ml_jobs import rbac

    roles = example_plan.of_type("kubernetes:rbac.authorization.k8s.io/v1:Role")
    assert {r.inputs["metadata"]["namespace"] for r in roles} == {"vision", "nlp"}
    for role in roles:
        assert role.inputs["metadata"]["name"] == rbac.SUBMITTER_ROLE
        assert role.inputs["rules"] == rbac.policy_rules()


# ----------------------------------------------------------------------------------------------- join credential


def test_bootstrap_token_shape_and_secret(example_plan):
    token_id = example_plan.one("random:index/randomString:RandomString", "join-id")
    secret = example_plan.one("random:index/randomPassword:RandomPassword", "join-secret")
    for r, length in ((token_id, 6), (secret, 16)):
        assert r.inputs["length"] == length
        assert (r.inputs["upper"], r.inputs["special"], r.inputs["lower"], r.inputs["numeric"]) == (
            False,
            False,
            True,
            True,
        )
    import re

    assert re.fullmatch(r"[a-z0-9]{6}", token_id.outputs["result"])
    assert re.fullmatch(r"[a-z0-9]{16}", secret.outputs["result"])
    k8s_secret = example_plan.one("kubernetes:core/v1:Secret", "join-secret")
    data = k8s_secret.inputs["stringData"]
    assert k8s_secret.inputs["type"] == "bootstrap.kubernetes.io/token"
    assert k8s_secret.inputs["metadata"] == {
        "name": f"bootstrap-token-{token_id.outputs['result']}",
        "namespace": "kube-system",
        "labels": {"app.kubernetes.io/managed-by": "herd", "herd.dev/role": "burst-join"},
    }
    assert data["token-id"] == token_id.outputs["result"]
    assert data["token-secret"] == secret.outputs["result"]
    assert data["usage-bootstrap-authentication"] == data["usage-bootstrap-signing"] == "true"
    assert data["auth-extra-groups"] == BOOTSTRAP_GROUP
    window = rotation_window(NOW, 7, 0)
    assert data["expiration"] == window.expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
    parameter = example_plan.one("aws:ssm/parameter:Parameter", "join-parameter")
    assert parameter.inputs["type"] == "SecureString"
    assert parameter.inputs["value"] == f"{token_id.outputs['result']}.{secret.outputs['result']}"
    assert "value" in parameter.secret_paths


def test_rotation_window_arithmetic():
    day = 86400
    w = rotation_window(10 * 7 * day + 3 * day, 7, 0)
    assert w.epoch == 10
    assert w.expires_at.timestamp() == 12 * 7 * day  # valid >= one full period after minting
    assert rotation_window(10 * 7 * day + 6 * day, 7, 0).keepers == w.keepers
    assert rotation_window(11 * 7 * day, 7, 0).keepers != w.keepers
    assert rotation_window(10 * 7 * day, 7, 1).keepers != w.keepers


def test_rotation_changes_the_token_keepers_only_across_a_period_or_a_generation_bump(example_values):
    def keepers(values, now):
        plan = plan_of(values, now)
        return [
            plan.one(t, n).inputs["keepers"]
            for t, n in (
                ("random:index/randomString:RandomString", "join-id"),
                ("random:index/randomPassword:RandomPassword", "join-secret"),
            )
        ]

    same_period = keepers(example_values, NOW + 3600)
    assert keepers(example_values, NOW) == same_period
    next_period = keepers(example_values, NOW + 7 * 86400)
    assert next_period != same_period
    bumped = dict(example_values, **{"herd:joinTokenGeneration": 1})
    assert keepers(bumped, NOW) != same_period


def test_burst_groups_wait_for_the_join_credential_and_the_cni(example_plan):
    secret = example_plan.one("kubernetes:core/v1:Secret", "join-secret").urn
    parameter = example_plan.one("aws:ssm/parameter:Parameter", "join-parameter").urn
    calico = example_plan.one(RELEASE, "calico").urn
    for group in example_plan.of_type(ASG):
        assert {secret, parameter, calico} <= waits_for(example_plan, group), group.name


def test_addons_wait_for_the_cni(example_plan):
    calico = example_plan.one(RELEASE, "calico").urn
    for name in ("nvidia-device-plugin", "nfs-provisioner", "cluster-autoscaler"):
        assert calico in waits_for(example_plan, example_plan.one(RELEASE, name)), name


def test_results_claims_are_protected_and_autoscaler_owns_desired_capacity(any_plan):
    for claim in any_plan.of_type("kubernetes:core/v1:PersistentVolumeClaim"):
        assert claim.protect, claim.name
    for group in any_plan.of_type(ASG):
        assert group.ignore_changes == ["desiredCapacity"], group.name
        assert "desiredCapacity" not in group.inputs


def test_only_the_device_plugin_tolerates_the_gpu_taint(any_plan):
    """GPU nodes are tainted; of what herd installs, only GPU daemons (the device plugin chart's own defaults)
    may land there. herd's values add no toleration anywhere."""
    for release in any_plan.of_type(RELEASE):
        for toleration in release.inputs["values"].get("tolerations", []):
            assert toleration["key"] != taxonomy.GPU_TAINT.key, release.name
        assert taxonomy.GPU_TAINT.key + '"' not in json.dumps(release.inputs["values"]), release.name
    for group in any_plan.of_type(ASG):
        tags = tags_of(group)
        gpu = any("/resources/nvidia.com/gpu" in k for k in tags)
        assert (tags.get(f"{CA}/node-template/taint/nvidia.com/gpu") == "present:NoSchedule") == gpu, group.name
