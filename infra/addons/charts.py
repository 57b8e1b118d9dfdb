"""The upstream Helm charts herd installs, pinned. Change a version here only together with its value-key list
under tests/infra/chart_values/ (read from that version's values.yaml), so the values test keeps meaning
something."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["CALICO", "CHARTS", "CLUSTER_AUTOSCALER", "KUEUE", "NFS_PROVISIONER", "NVIDIA_DEVICE_PLUGIN", "Chart"]


@dataclass(frozen=True)
class Chart:
    """A chart at a pinned version in its upstream repository."""

    name: str
    version: str
    repo: str

    @property
    def reference(self) -> str:
        """What a Helm release names as its chart: the name in a classic repository, the full URL of an OCI one."""
        return f"{self.repo}/{self.name}" if self.oci else self.name

    @property
    def oci(self) -> bool:
        """Whether the chart is an OCI artifact (no index to add as a repository)."""
        return self.repo.startswith("oci://")

    @property
    def key(self) -> str:
        """``<name>-<version>``: the name of its value-key list under tests/infra/chart_values/."""
        return f"{self.name}-{self.version}"


CALICO = Chart("tigera-operator", "v3.30.3", "https://docs.tigera.io/calico/charts")
# The release whose GFD and device plugin scripts/components/nvidia/go.mod builds for the GPU machine's checks
# (scripts/gpu-facts.sh); tests/infra/test_chart_values.py holds the two together.
NVIDIA_DEVICE_PLUGIN = Chart("nvidia-device-plugin", "0.17.4", "https://nvidia.github.io/k8s-device-plugin")
NFS_PROVISIONER = Chart(
    "nfs-subdir-external-provisioner",
    "4.0.18",
    "https://kubernetes-sigs.github.io/nfs-subdir-external-provisioner/",
)
# 9.59.1 (appVersion 1.35.0): its ClusterRole grants what autoscalers from 1.33 on read (volumeattachments and the
# other storage.k8s.io objects; 9.38.0, appVersion 1.31.0, did not). Used for every supported minor with the image
# of that minor (infra/addons/autoscaler.py: AUTOSCALER_IMAGE_TAGS).
CLUSTER_AUTOSCALER = Chart("cluster-autoscaler", "9.59.1", "https://kubernetes.github.io/autoscaler")

# The chart of the Kueue release whose controller the tests run (scripts/components/kueue/go.mod pins the same
# version; tests/infra/test_queues.py holds the two together). Published as an OCI artifact.
KUEUE = Chart("kueue", "0.17.0", "oci://registry.k8s.io/kueue/charts")

CHARTS = (CALICO, NVIDIA_DEVICE_PLUGIN, NFS_PROVISIONER, CLUSTER_AUTOSCALER, KUEUE)
