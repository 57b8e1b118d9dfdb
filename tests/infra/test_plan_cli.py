"""``herd-plan``, the offline plan, as an operator runs it (a real subprocess of the installed console script)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.infra.helpers import EXAMPLE, REPO

pytestmark = pytest.mark.slow


def herd_plan(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    exe = shutil.which("herd-plan", path=str(Path(sys.executable).parent))
    cmd = [exe] if exe else [sys.executable, "-m", "infra.plan"]
    return subprocess.run([*cmd, *args], cwd=cwd, capture_output=True, text=True, timeout=180, check=False)


def test_plan_of_the_example_shows_the_whole_hybrid_cluster():
    result = herd_plan(str(EXAMPLE))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for expected in (
        "VpnConnection burst-vpn  IPsec, static routes; both tunnels: IKE ikev2; phase 1 AES256-GCM-16/AES256, "
        "SHA2-256/SHA2-384/SHA2-512, DH 14/15/16/17/18/19/20/21; phase 2 AES256-GCM-16/AES256, "
        "SHA2-256/SHA2-384/SHA2-512, DH 14/15/16/17/18/19/20/21",
        "CustomerGateway burst-onprem-router  203.0.113.10 (ASN 65000)",
        "CustomerGateway burst-onprem-router  203.0.113.10",
        "RouteTable burst-private-0  0.0.0.0/0→NAT, 10.20.0.0/22→VPN, 10.20.8.0/24→VPN",
        "Group pool-gpu-a10g-spot-asg  lab-gpu-a10g-spot: 0..4 x g5.2xlarge/g5.4xlarge, spot",
        "IMDSv2 required (hop limit 1)",
        "Parameter join-parameter  /herd/lab/join-token (SecureString) = [secret]",
        "Release calico  tigera-operator v3.30.3",
        "Release nvidia-device-plugin  nvidia-device-plugin 0.17.4",
        "Release nfs-provisioner  nfs-subdir-external-provisioner 4.0.18",
        "Release cluster-autoscaler  cluster-autoscaler 9.59.1",
        "PersistentVolumeClaim team-vision-results  vision/herd-results: ReadWriteMany 1Ti from herd-nfs",
        "vpnRouterSettings = [secret]",
    ):
        assert expected in out, expected
    assert out.splitlines()[0].startswith("herd-plan: ")
    assert "on-prem only" not in out


def test_plan_of_an_onprem_only_stack_says_it_declares_no_cloud_resources():
    from infra.plan import ON_PREM_ONLY

    result = herd_plan(str(REPO / "tests/infra/stacks/onprem-only.yaml"), "--project", str(REPO / "Pulumi.yaml"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("herd-plan: ") and lines[1] == ON_PREM_ONLY
    assert "declares no cloud resources" in ON_PREM_ONLY
    assert "PersistentVolumeClaim team-vision-results  vision/herd-results" in result.stdout
    assert "ClusterQueue queue-vision  vision (cohort herd): onprem " in result.stdout
    for cloud in ("Network", "Vpc", "VpnConnection", "Parameter", "BootstrapToken", "ClusterAutoscaler"):
        assert f"{cloud} " not in result.stdout, cloud
    assert lines[lines.index("outputs") :] == ["outputs", "  burstPools = {}"]
    doc = json.loads(herd_plan(str(REPO / "tests/infra/stacks/onprem-only.yaml"), "--json").stdout)
    assert doc["cloudResources"] == 0 and doc["outputs"] == {"burstPools": {}}


def test_json_plan_hides_secrets():
    result = herd_plan(str(EXAMPLE), "--json")
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["outputs"]["vpnRouterSettings"] == "[secret]"
    assert len(doc["resources"]) > 50
    assert doc["cloudResources"] > 30


def test_bad_stack_file_is_refused_in_one_line_naming_the_key(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["config"]["herd:pools"][0]["maxSize"] = -1
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(yaml.safe_dump(doc))
    result = herd_plan(str(stack), "--project", str(REPO / "Pulumi.yaml"))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0] == (
        f"herd-plan: error: {stack}: herd:pools[0].maxSize: Input should be greater than or equal to 1"
    )


BAD_FILES = [
    # (id, stack file text, the one line herd-plan prints after "herd-plan: error: <file>: "). Where the line
    # names a herd: key, the text's config is merged over the example stack's, so only that key is wrong.
    (
        "yaml-bad-indent",
        "config:\n  herd:clusterName: lab\n   herd:awsRegion: eu-central-1\n",
        "line 3, column 18: not valid YAML: mapping values are not allowed here",
    ),
    (
        "yaml-unclosed-list",
        "config:\n  herd:pools: [\n",
        "line 3, column 1: not valid YAML: while parsing a flow node, expected the node content, but found "
        "'<stream end>'",
    ),
    (
        "yaml-two-documents",
        "config:\n  herd:clusterName: lab\n---\nconfig: {}\n",
        "line 1, column 1: not valid YAML: expected a single document in the stream, but found another document "
        "at line 3, column 1",
    ),
    (
        "yaml-key-twice",
        "config:\n  herd:clusterName: lab\n  herd:clusterName: lab2\n",
        "line 3, column 3: not valid YAML: key 'herd:clusterName' is given twice (first on line 2)",
    ),
    ("config-not-mapping", "config: [a, b]\n", "config: must be a mapping of keys to values"),
    (
        "mixed-gpu-pool",
        "config:\n  herd:pools:\n    - {name: p, tier: gpu, maxSize: 2, instanceTypes: [g5.xlarge, g6.xlarge]}\n",
        "herd:pools[0].instanceTypes[1]: g6.xlarge has 1x NVIDIA L4 but g5.xlarge has 1x NVIDIA A10G; "
        "cluster-autoscaler builds one node template per pool, so every type must have the same GPUs",
    ),
    (
        "zones-the-region-lacks",
        "config:\n  herd:availabilityZones: 5\n",
        "herd:availabilityZones: 5, but eu-central-1 has 3 availability zones",
    ),
    (
        "zones-of-a-region-the-plan-cannot-stand-in-for",
        "config:\n  aws:region: us-isob-east-1\n",
        "aws:region: herd-plan does not know how many availability zones us-isob-east-1 has (add it to "
        "infra/availability_zones.yaml); `pulumi preview` asks AWS instead",
    ),
    (
        "weak-tunnel-crypto",
        "config:\n  herd:vpnTunnelOptions: {phase2IntegrityAlgorithms: [SHA1]}\n",
        "herd:vpnTunnelOptions.phase2IntegrityAlgorithms[0]: 'SHA1' is refused: SHA-1 is broken; use SHA2-256, "
        "SHA2-384 or SHA2-512",
    ),
    (
        "reserved-vpn-peer",
        "config:\n  herd:onpremVpnPublicIp: 250.1.2.3\n",
        "herd:onpremVpnPublicIp: 250.1.2.3 is in 240.0.0.0/4, reserved (class E): not an address the internet "
        "routes; give the on-prem VPN router's public IPv4 address",
    ),
]


@pytest.mark.parametrize(("text", "line"), [b[1:] for b in BAD_FILES], ids=[b[0] for b in BAD_FILES])
def test_bad_stack_files_are_refused_in_one_line_naming_the_file_once(tmp_path, text, line):
    stack = tmp_path / "Pulumi.bad.yaml"
    stack.write_text(text)
    if line.startswith(("herd:", "aws:")):  # a config error: the rest of the stack is the example's
        example = yaml.safe_load(EXAMPLE.read_text())["config"]
        stack.write_text(yaml.safe_dump({"config": {**example, **yaml.safe_load(text)["config"]}}))
    result = herd_plan(str(stack), "--project", str(REPO / "Pulumi.yaml"))
    assert (result.returncode, result.stdout) == (2, ""), result.stderr
    assert result.stderr.splitlines() == [f"herd-plan: error: {stack}: {line}"]


def test_six_zones_of_us_east_1_are_planned(tmp_path):
    example = yaml.safe_load(EXAMPLE.read_text())["config"]
    stack = tmp_path / "Pulumi.six.yaml"
    six = {**example, "aws:region": "us-east-1", "herd:availabilityZones": 6}
    stack.write_text(yaml.safe_dump({"config": six}))
    result = herd_plan(str(stack), "--project", str(REPO / "Pulumi.yaml"))
    assert result.returncode == 0, result.stderr
    for zone in "abcdef":
        assert f"in us-east-1{zone}" in result.stdout, zone


def test_encrypted_values_are_refused_offline(tmp_path):
    doc = yaml.safe_load(EXAMPLE.read_text())
    doc["config"]["herd:nfsPath"] = {"secure": "v1:abcdef"}
    stack = tmp_path / "Pulumi.enc.yaml"
    stack.write_text(yaml.safe_dump(doc))
    result = herd_plan(str(stack), "--project", str(REPO / "Pulumi.yaml"))
    assert result.returncode == 2
    assert "herd:nfsPath: encrypted (secure:)" in result.stderr
