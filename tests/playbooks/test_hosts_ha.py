"""Three control planes behind a virtual IP, made for real by the playbooks on booted test hosts.

The first member runs the real kubeadm init with --upload-certs; the others join as control-plane members with a
certificate key minted and uploaded for this run and a bootstrap token minted on the first member; each member
runs its own API server and etcd member. kube-vip's static pod is written on each, but its image is not built
here (its module cannot be fetched), so the virtual IP is held by a STAND-IN: the test puts it on the first
member's interface before the playbook runs, as kube-vip's leader would. The VIP moving to another member when
the leader dies is therefore one of the things only real servers show (docs/development/test-hosts.md).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import yaml

from herd_ops import run_playbook
from tests.playbooks.testbed import HostSpec, Testbed, why_no_cluster, why_not_available

# One Debian release only: what differs between releases (packages, repositories, containerd) is what
# test_hosts.py converges on both, and the three-member join does not depend on it; on trixie too it would add
# minutes of CI for nothing new (docs/development/test-hosts.md).
RELEASE = "bookworm"
pytestmark = pytest.mark.hosts

NET = 3
VIP = f"10.213.{NET}.100"
HA = {"herd_control_plane_vip": VIP, "herd_control_plane_vip_interface": "host0",
      "herd_control_plane_endpoint": f"{VIP}:6443"}  # fmt: skip
HOSTS = [HostSpec(f"cp{i}", "control_plane", host_vars=HA) for i in (1, 2, 3)]
PKI = "/etc/kubernetes/pki/etcd"
ETCD_MEMBERS = (
    "python3 -c 'import ssl, urllib.request as u; "
    f'c = ssl.create_default_context(cafile="{PKI}/ca.crt"); '
    f'c.load_cert_chain("{PKI}/healthcheck-client.crt", "{PKI}/healthcheck-client.key"); '
    'r = u.Request("https://127.0.0.1:2379/v3/cluster/member/list", data=b"{}"); '
    "print(u.urlopen(r, context=c).read().decode())'"
)


def test_three_control_planes(tmp_path: Path) -> None:
    if (reason := why_not_available(RELEASE) or why_no_cluster()) is not None:
        if os.environ.get("CI") and os.geteuid() == 0:
            pytest.fail(f"CI must be able to run the test hosts (scripts/test.sh prepares them): {reason}")
        pytest.skip(reason)
    with Testbed(HOSTS, tmp_path / "bed", net=NET, release=RELEASE) as bed:
        bed.ssh("cp1", f"ip addr add {VIP}/32 dev host0")  # the kube-vip stand-in (module docstring)
        first = run_playbook("control_plane", bed.inventory)
        assert first.ok, {h.name: (h.failed_task, h.message) for h in first.failed_hosts}

        config = bed.get("configmap", "kubeadm-config", "-n", "kube-system")["data"]
        cluster = yaml.safe_load(config["ClusterConfiguration"])
        assert cluster["controlPlaneEndpoint"] == f"{VIP}:6443"
        assert VIP in cluster["apiServer"]["certSANs"]
        # The certificates were uploaded for the members' join (kubeadm's kubeadm-certs Secret, 2 hours).
        assert bed.kubectl("get", "secret", "kubeadm-certs", "-n", "kube-system").returncode == 0

        # Three members, each with its API server and etcd member, all Ready with the control-plane taint.
        deadline = time.monotonic() + 120
        while True:
            pods = bed.get("pods", "-n", "kube-system", "-l", "tier=control-plane")["items"]
            running = sorted(
                (p["metadata"]["labels"]["component"], p["spec"]["nodeName"])
                for p in pods
                if p["status"].get("phase") == "Running"
            )
            if len(running) == 12 or time.monotonic() > deadline:
                break
            time.sleep(3)
        components = ("etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler")
        assert running == sorted((c, n) for c in components for n in ("cp1", "cp2", "cp3"))
        # etcd has three voting members (asked over etcd's own API with kubeadm's health-check client).
        members = json.loads(bed.ssh("cp1", ETCD_MEMBERS).stdout)["members"]
        assert sorted(m["name"] for m in members) == ["cp1", "cp2", "cp3"]
        assert not any(m.get("isLearner") for m in members)
        nodes = bed.settled_nodes(["cp1", "cp2", "cp3"])  # a member's kubelet reports Ready after its pods run
        assert sorted(nodes) == ["cp1", "cp2", "cp3"]
        for node in nodes.values():
            assert {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"} in node["taints"]
        for name in ("cp1", "cp2", "cp3"):
            manifest = yaml.safe_load(bed.read(name, "/etc/kubernetes/manifests/kube-vip.yaml"))
            env = {e["name"]: e["value"] for e in manifest["spec"]["containers"][0]["env"]}
            assert (env["address"], env["vip_interface"], env["cp_enable"]) == (VIP, "host0", "true")
            assert manifest["spec"]["volumes"][0]["hostPath"]["path"] == "/etc/kubernetes/admin.conf"
            # Clients go through the virtual IP; each member's kubelet talks to its own API server (kubeadm's
            # local mode for control-plane kubelets).
            assert f"server: https://{VIP}:6443" in bed.read(name, "/etc/kubernetes/admin.conf")
            assert f"server: https://{bed.address(name)}:6443" in bed.read(name, "/etc/kubernetes/kubelet.conf")

        second = run_playbook("control_plane", bed.inventory)
        assert second.ok and second.changed == 0, {n: h.changed for n, h in second.hosts.items()}
