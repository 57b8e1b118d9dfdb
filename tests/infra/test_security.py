"""Security properties of what the program declares, for every committed stack (the on-prem-only one has no
VPN, pools or join token: the checks of those hold there because it has none, which test_onprem_only.py shows)."""

from __future__ import annotations

import json

from tests.infra.helpers import every_secret, secrets_of, user_data

WORLD = {"0.0.0.0/0", "::/0"}


def test_instances_require_imdsv2_and_pods_cannot_reach_the_metadata_service(any_plan):
    for lt in any_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        meta = lt.inputs["metadataOptions"]
        assert meta["httpTokens"] == "required", lt.name
        assert meta["httpPutResponseHopLimit"] == 1, lt.name  # one hop: the node, not a pod behind it


def test_every_volume_is_encrypted(any_plan):
    for lt in any_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        mappings = lt.inputs["blockDeviceMappings"]
        assert mappings, lt.name
        for m in mappings:
            assert m["ebs"]["encrypted"] == "true", lt.name


def test_no_ingress_from_the_world_and_ssh_only_from_onprem(any_plan):
    onprem = {
        r.inputs["destinationCidrBlock"] for r in any_plan.of_type("aws:ec2/vpnConnectionRoute:VpnConnectionRoute")
    }
    groups = any_plan.of_type("aws:ec2/securityGroup:SecurityGroup")
    assert len(groups) == len(any_plan.of_type("aws:ec2/vpc:Vpc"))  # one per VPC: where there is a VPN
    for sg in groups:
        for rule in sg.inputs["ingress"]:
            sources = set(rule.get("cidrBlocks", [])) | set(rule.get("ipv6CidrBlocks", []))
            assert not sources & WORLD, rule
            if rule["protocol"] == "tcp" and rule["fromPort"] <= 22 <= rule["toPort"]:
                assert sources <= onprem, rule
            if rule["protocol"] == "tcp" and rule["fromPort"] <= 6443 <= rule["toPort"]:
                assert not sources & WORLD
    # No standalone rule resources that could open the group elsewhere.
    assert not any_plan.of_type("aws:ec2/securityGroupRule:SecurityGroupRule")
    assert not any_plan.of_type("aws:vpc/securityGroupIngressRule:SecurityGroupIngressRule")


def test_no_instance_gets_a_public_address(any_plan):
    for subnet in any_plan.of_type("aws:ec2/subnet:Subnet"):
        assert subnet.inputs["mapPublicIpOnLaunch"] is False
    for lt in any_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate"):
        assert "networkInterfaces" not in lt.inputs  # no associatePublicIpAddress override


def test_user_data_never_holds_the_token_or_any_secret(any_plan):
    secrets = secrets_of(any_plan)
    templates = any_plan.of_type("aws:ec2/launchTemplate:LaunchTemplate")
    assert not templates or len(secrets) >= 3  # with pools: the token secret and both VPN keys, at least
    for lt in templates:
        script = user_data(lt)
        for secret in secrets:
            assert secret not in script, lt.name
        assert "set -x" not in script.replace("Never add `set -x`", "")
        assert "${JOIN_TOKEN}" in script  # filled in on the node, at boot


def test_plain_stack_outputs_hold_no_secret_and_secret_outputs_are_marked(any_plan):
    secrets = every_secret(any_plan)
    for name, (value, is_secret) in any_plan.outputs.items():
        if is_secret:
            continue
        text = json.dumps(value)
        for secret in secrets:
            assert secret not in text, name
    # Where there is a VPN, its router settings hold the tunnels' pre-shared keys, as a secret.
    assert ("vpnRouterSettings" in any_plan.outputs) == bool(
        any_plan.of_type("aws:ec2/vpnConnection:VpnConnection")
    )
    if "vpnRouterSettings" in any_plan.outputs:
        assert any_plan.outputs["vpnRouterSettings"][1] is True
        tunnels = any_plan.outputs["vpnRouterSettings"][0]["tunnels"]
        assert {t["presharedKey"] for t in tunnels} <= set(secrets)


def test_secret_inputs_stay_pulumi_secrets(any_plan):
    # The join credential exists where something joins from the cloud: with pools, and only then.
    parameters = any_plan.of_type("aws:ssm/parameter:Parameter")
    tokens = [r for r in any_plan.of_type("kubernetes:core/v1:Secret") if r.name == "join-secret"]
    assert len(parameters) == len(tokens) == (1 if any_plan.of_type("aws:autoscaling/group:Group") else 0)
    for parameter in parameters:
        assert parameter.inputs["type"] == "SecureString" and "value" in parameter.secret_paths
    for token in tokens:
        assert "stringData" in token.secret_paths
    for creds in [r for r in any_plan.of_type("kubernetes:core/v1:Secret") if r.name == "autoscaler-credentials"]:
        assert "stringData" in creds.secret_paths


def test_helm_values_hold_no_secret(any_plan):
    secrets = every_secret(any_plan)
    for release in any_plan.of_type("kubernetes:helm.sh/v3:Release"):
        text = json.dumps(release.inputs["values"])
        assert not any(s in text for s in secrets), release.name
        assert "awsSecretAccessKey" not in release.inputs["values"]


def test_node_role_reads_one_parameter_and_nothing_else(any_plan):
    for role in any_plan.of_type("aws:iam/role:Role"):
        trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"]
        assert trust == [
            {"Effect": "Allow", "Principal": {"Service": "ec2.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ]
        assert not role.inputs.get("managedPolicyArns")
    assert not any_plan.of_type("aws:iam/rolePolicyAttachment:RolePolicyAttachment")
    for policy in any_plan.of_type("aws:iam/rolePolicy:RolePolicy"):
        statements = json.loads(policy.inputs["policy"])["Statement"]
        assert [s["Action"] for s in statements] == ["ssm:GetParameter"]
        assert all(":parameter/herd/" in s["Resource"] for s in statements)
