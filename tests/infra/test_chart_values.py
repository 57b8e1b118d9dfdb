"""Every value herd sets on a chart exists in that chart at the pinned version. The key lists under
chart_values/ were read from each pinned version's values.yaml (see the header of each file).

Not checked: the fields herd sets below the tigera-operator chart's `installation` (cni.type, calicoNetwork.bgp,
mtu, nodeAddressAutodetectionV4, ipPools[]). The chart passes them through as the operator's Installation spec,
and no schema of that CRD at the pinned operator version (v1.38.6) is held here; only the API server checks them,
at install time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from infra.addons.autoscaler import AUTOSCALER_IMAGE_TAGS, IMAGE_NEWER_THAN_CHART
from infra.addons.charts import CALICO, CHARTS, CLUSTER_AUTOSCALER, NVIDIA_DEVICE_PLUGIN, Chart
from infra.config import SUPPORTED_MINORS

KEYS = Path(__file__).resolve().parent / "chart_values"


def chart_keys(chart: Chart) -> set[str]:
    path = KEYS / f"{chart.key}.keys"
    lines = path.read_text().splitlines()
    return {line.strip() for line in lines if line.strip() and not line.startswith("#")}


def leaf_paths(values: Any, prefix: str = "") -> list[str]:
    """Dotted paths of everything ``values`` sets; lists of mappings as ``x[]``, lists of scalars as leaves."""
    if isinstance(values, dict):
        if not values:
            return [prefix]
        return [p for k, v in values.items() for p in leaf_paths(v, f"{prefix}.{k}" if prefix else str(k))]
    if isinstance(values, list) and values and all(isinstance(v, dict) for v in values):
        return sorted({p for v in values for p in leaf_paths(v, f"{prefix}[]")})
    return [prefix]


def unknown_paths(values: dict, keys: set[str]) -> list[str]:
    """The paths in ``values`` the chart does not have."""
    unknown = []
    for path in leaf_paths(values):
        if path in keys:
            continue
        parts = path.split(".")
        prefixes = [".".join(parts[:n]) for n in range(1, len(parts) + 1)]
        if any(p + ".*" in keys or (p.endswith("[]") and p in keys) for p in prefixes):
            continue
        unknown.append(path)
    return unknown


def test_every_pinned_chart_has_its_key_list():
    for chart in CHARTS:
        assert len(chart_keys(chart)) > 10, chart.key


def test_every_value_set_exists_in_the_pinned_chart(any_plan):
    by_name = {c.reference: c for c in CHARTS}
    releases = any_plan.of_type("kubernetes:helm.sh/v3:Release")
    assert releases
    for release in releases:
        chart = by_name[release.inputs["chart"]]
        assert release.inputs["version"] == chart.version
        assert unknown_paths(release.inputs["values"], chart_keys(chart)) == [], chart.key


@pytest.mark.parametrize(
    ("chart", "values", "unknown"),
    [
        ("nvidia-device-plugin", {"gfd": {"enabled": True}}, []),
        ("nvidia-device-plugin", {"gfd": {"enable": True}}, ["gfd.enable"]),  # a typo is caught
        ("nvidia-device-plugin", {"config": {"map": {"anything": "x"}}}, []),  # free-form below config.map
        ("nvidia-device-plugin", {"tolerations": [{"key": "a"}]}, []),  # a list of Tolerations, passed through
        (
            "nvidia-device-plugin",
            {"nfd": {"master": {"config": {"extraLabelNs": ["a"]}, "replicas": 2}}},
            ["nfd.master.replicas"],
        ),  # caught
        ("tigera-operator", {"goldmane": {"enable": False}}, ["goldmane.enable"]),  # a chart-key typo is caught
        ("tigera-operator", {"installaton": {"cni": {"type": "Calico"}}}, ["installaton.cni.type"]),
        # NOT caught: below `installation` is the Installation spec, which the chart passes through unchecked.
        ("tigera-operator", {"installation": {"calicoNetwork": {"mtuu": 1380}}}, []),
    ],
)
def test_the_key_check_catches_unknown_keys(chart, values, unknown):
    keys = chart_keys(next(c for c in CHARTS if c.name == chart))
    assert unknown_paths(values, keys) == unknown


def test_calico_installation_fields_are_declared_unchecked_not_pretended():
    """The tigera-operator key list holds chart keys only: `installation.*` (passed through to the Installation
    resource, whose fields herd does not check offline) and `installation.enabled`, no Installation field."""
    keys = chart_keys(CALICO)
    assert {k for k in keys if k.startswith("installation")} == {"installation.*", "installation.enabled"}


def chart_facts(chart: Chart) -> dict[str, Any]:
    """Name, version, appVersion (and for some charts a ClusterRole rule) read from the pinned Chart.yaml."""
    return yaml.safe_load((KEYS / f"{chart.key}.chart.yaml").read_text())


def minor(version: str) -> str:
    """``1.36`` for ``v1.36.1`` or ``1.36.1``."""
    return ".".join(version.removeprefix("v").split(".")[:2])


def test_the_autoscaler_facts_belong_to_the_pinned_chart():
    facts = chart_facts(CLUSTER_AUTOSCALER)
    assert (facts["name"], facts["version"]) == (CLUSTER_AUTOSCALER.name, CLUSTER_AUTOSCALER.version)


@pytest.mark.parametrize("cluster_minor", SUPPORTED_MINORS)
def test_the_autoscaler_image_matches_the_cluster_and_the_chart(cluster_minor):
    """The image's minor is the cluster's (it simulates that scheduler). It is the pinned chart's appVersion
    minor, or, only for a minor listed in IMAGE_NEWER_THAN_CHART (no chart packages it yet), newer than it; never
    older, since an older chart's RBAC lacks what newer autoscalers read (9.38.0, appVersion 1.31.0, under 1.33
    images)."""
    image = AUTOSCALER_IMAGE_TAGS[cluster_minor]
    app = chart_facts(CLUSTER_AUTOSCALER)["appVersion"]
    assert minor(image) == cluster_minor
    as_tuple = tuple(int(part) for part in minor(image).split("."))
    app_tuple = tuple(int(part) for part in minor(app).split("."))
    if cluster_minor in IMAGE_NEWER_THAN_CHART:
        assert as_tuple > app_tuple
    else:
        assert as_tuple == app_tuple


def test_every_supported_minor_has_an_autoscaler_image_and_no_other():
    assert set(AUTOSCALER_IMAGE_TAGS) == set(SUPPORTED_MINORS)
    assert set(SUPPORTED_MINORS) >= IMAGE_NEWER_THAN_CHART


def test_the_autoscaler_image_tag_is_the_one_released(example_plan):
    release = example_plan.one("kubernetes:helm.sh/v3:Release", "cluster-autoscaler")
    assert release.inputs["version"] == CLUSTER_AUTOSCALER.version
    assert release.inputs["values"]["image"]["tag"] == AUTOSCALER_IMAGE_TAGS["1.36"] == "v1.36.1"


def test_the_autoscaler_chart_may_read_volume_attachments():
    """Autoscalers from 1.33 on list storage.k8s.io objects, volumeattachments among them; older charts'
    ClusterRole lacked it and scaling stopped on the denied watch."""
    rule = chart_facts(CLUSTER_AUTOSCALER)["clusterRoleStorageRule"]
    assert rule["apiGroups"] == ["storage.k8s.io"]
    assert {"volumeattachments", "csinodes", "csidrivers", "storageclasses"} <= set(rule["resources"])
    assert {"watch", "list", "get"} <= set(rule["verbs"])


def test_the_device_plugin_chart_is_the_release_built_for_the_gpu_checks():
    """GFD and the device plugin that scripts/gpu-facts.sh runs on a real GPU are the chart's release."""
    go_mod = (KEYS.parents[2] / "scripts/components/nvidia/go.mod").read_text()
    module = "github.com/NVIDIA/k8s-device-plugin"
    (pinned,) = [line.split()[1] for line in go_mod.splitlines() if line.split()[:1] == [module]]
    assert pinned == f"v{NVIDIA_DEVICE_PLUGIN.version}"
