"""GPU scheduling: the NVIDIA device plugin advertises ``nvidia.com/gpu``, and GPU feature discovery (with node
feature discovery, a dependency of the chart) labels nodes with ``nvidia.com/gpu.product`` and friends. The chart's
daemonsets tolerate the GPU taint; nothing else herd installs does.
"""

from __future__ import annotations

import pulumi
import yaml

from infra.addons import _helm
from infra.addons.charts import NVIDIA_DEVICE_PLUGIN
from infra.config import StackConfig
from ml_jobs import taxonomy

__all__ = ["NvidiaDevicePlugin", "device_plugin_values"]


def device_plugin_values(cfg: StackConfig) -> dict:
    """Values of the nvidia-device-plugin chart: GFD on, time-slicing when configured."""
    values: dict = {"gfd": {"enabled": True}}
    if cfg.gpu_time_slicing_replicas > 1:
        plugin_config = {
            "version": "v1",
            "flags": {"migStrategy": "none"},
            "sharing": {
                "timeSlicing": {
                    "renameByDefault": False,
                    "resources": [{"name": taxonomy.GPU_RESOURCE, "replicas": cfg.gpu_time_slicing_replicas}],
                }
            },
        }
        values["config"] = {"map": {"herd": yaml.safe_dump(plugin_config, sort_keys=False)}, "default": "herd"}
    return values


class NvidiaDevicePlugin(pulumi.ComponentResource):
    """The NVIDIA device plugin with GPU feature discovery."""

    def __init__(self, name: str, cfg: StackConfig, opts: pulumi.ResourceOptions) -> None:
        super().__init__("herd:addons:NvidiaDevicePlugin", name, None, opts)
        self.release = _helm.release(
            "nvidia-device-plugin",
            NVIDIA_DEVICE_PLUGIN,
            "nvidia-device-plugin",
            device_plugin_values(cfg),
            _helm.child_opts(self, opts),
            create_namespace=True,
        )
        self.register_outputs({})
