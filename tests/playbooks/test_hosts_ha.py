"""Three control planes behind a virtual IP, converged for real on booted test hosts.

The first member runs kubeadm init with --upload-certs; the others join as control-plane members with a
certificate key minted and uploaded for this run and a bootstrap token minted on the first member; kube-vip's
static pod holds the virtual IP on each. kubeadm and kube-vip are not real here: the kubeadm double checks the
configurations, and nothing runs the kube-vip manifest (no kubelet runs pods), so the VIP failing over is one of
the things only real servers show.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from herd_ops import run_playbook
from tests.playbooks.testbed import HostSpec, Testbed, why_not_available

# One Debian release only: what differs between releases (packages, repositories, containerd) is what
# test_hosts.py converges on both, and the three-member join does not depend on it; on trixie too it would add
# about 5 minutes of CI for nothing new (README, "What the test hosts prove").
RELEASE = "bookworm"
pytestmark = [pytest.mark.hosts, pytest.mark.skipif(why_not_available(RELEASE) is not None,
                                                    reason=str(why_not_available(RELEASE)))]  # fmt: skip

NET = 3
VIP = f"10.213.{NET}.100"
HA = {"herd_control_plane_vip": VIP, "herd_control_plane_vip_interface": "host0",
      "herd_control_plane_endpoint": f"{VIP}:6443"}  # fmt: skip
HOSTS = [HostSpec(f"cp{i}", "control_plane", host_vars=HA) for i in (1, 2, 3)]


def test_three_control_planes(tmp_path: Path) -> None:
    with Testbed(HOSTS, tmp_path / "bed", net=NET, release=RELEASE) as bed:
        first = run_playbook("control_plane", bed.inventory)
        assert first.ok, {h.name: (h.failed_task, h.message) for h in first.failed_hosts}

        (init,) = [c for c in bed.calls("cp1", "kubeadm") if c["argv"][0] == "init" and c["argv"][1] != "phase"]
        assert "--upload-certs" in init["argv"]
        assert init["config"]["ClusterConfiguration"]["controlPlaneEndpoint"] == f"{VIP}:6443"
        assert VIP in init["config"]["ClusterConfiguration"]["apiServer"]["certSANs"]
        cluster = json.loads(bed.read("cp1", "/var/lib/herd-doubles/cluster.json"))
        (uploaded,) = cluster["uploaded_certificate_keys"]
        minted = [t["token"] for t in json.loads(bed.read("cp1", "/var/lib/herd-doubles/tokens.json"))]
        assert len(minted) == 1
        for name in ("cp2", "cp3"):
            joined = json.loads(bed.read(name, "/var/lib/herd-doubles/join.json"))
            assert joined["control_plane"] and joined["certificate_key"] == uploaded
            assert joined["token"] == minted[0] and joined["endpoint"] == f"{VIP}:6443"
            assert {"key": "node-role.kubernetes.io/control-plane", "value": "", "effect": "NoSchedule"} in [
                {"value": "", **t} for t in joined["taints"]]  # fmt: skip
        for name in ("cp1", "cp2", "cp3"):
            manifest = yaml.safe_load(bed.read(name, "/etc/kubernetes/manifests/kube-vip.yaml"))
            env = {e["name"]: e["value"] for e in manifest["spec"]["containers"][0]["env"]}
            assert (env["address"], env["vip_interface"], env["cp_enable"]) == (VIP, "host0", "true")
            assert manifest["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"

        second = run_playbook("control_plane", bed.inventory)
        assert second.ok and second.changed == 0, {n: h.changed for n, h in second.hosts.items()}
