"""One way to install a pinned chart: a ``helm.v3.Release``, whose values stay inspectable (and testable)."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from infra.addons.charts import Chart

# herd's on-prem controllers may run on the control plane: in a small site every other on-prem node is a GPU
# server, tainted for GPU work only.
CONTROL_PLANE_TOLERATION = {
    "key": "node-role.kubernetes.io/control-plane",
    "operator": "Exists",
    "effect": "NoSchedule",
}


def child_opts(parent: pulumi.Resource, opts: pulumi.ResourceOptions | None, **extra) -> pulumi.ResourceOptions:
    """Options of a component's child: parented, and waiting for whatever the component was told to wait for
    (a component's ``depends_on`` does not reach its children by itself)."""
    depends = list(opts.depends_on or []) if opts and isinstance(opts.depends_on, list) else []
    depends += list(extra.pop("depends_on", []))
    return pulumi.ResourceOptions(parent=parent, depends_on=depends, **extra)


def release(
    name: str,
    chart: Chart,
    namespace: str,
    values: dict[str, Any],
    opts: pulumi.ResourceOptions,
    *,
    create_namespace: bool = False,
) -> k8s.helm.v3.Release:
    """Install ``chart`` at its pinned version as release ``name`` in ``namespace``."""
    return k8s.helm.v3.Release(
        name,
        k8s.helm.v3.ReleaseArgs(
            name=name,
            chart=chart.reference,
            version=chart.version,
            repository_opts=None if chart.oci else k8s.helm.v3.RepositoryOptsArgs(repo=chart.repo),
            namespace=namespace,
            create_namespace=create_namespace,
            values=values,
            atomic=True,
            cleanup_on_fail=True,
            timeout=600,
        ),
        opts=opts,
    )
