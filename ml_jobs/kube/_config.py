"""Where the Kubernetes backend sends its requests, decided the way kubectl decides it.

Order: an explicit ``--kubeconfig`` file, else ``$KUBECONFIG`` (colon-separated list), else ``~/.kube/config``;
if none of those exists and the process runs in a pod, the pod's service account (in-cluster config). The
namespace is ``--namespace``, else the context's namespace, else the service account's namespace in a pod,
else ``default``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ml_jobs.errors import ClusterConfigError

# Where a pod finds its service account (the paths the kubelet mounts).
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
DEFAULT_NAMESPACE = "default"


@dataclass(frozen=True)
class Target:
    """A configured connection: the client configuration, the namespace and where they came from."""

    configuration: Any  # kubernetes.client.Configuration
    namespace: str
    source: str  # "kubeconfig <path> (context <name>)" or "in-cluster service account"

    @property
    def host(self) -> str:
        """The API server's URL."""
        return str(self.configuration.host)


def _kubeconfig_paths(kubeconfig: str | None) -> list[Path]:
    if kubeconfig:
        return [Path(kubeconfig).expanduser()]
    env = os.environ.get("KUBECONFIG")
    if env:
        return [Path(p).expanduser() for p in env.split(os.pathsep) if p]
    return [Path("~/.kube/config").expanduser()]


def _in_cluster() -> bool:
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and bool(os.environ.get("KUBERNETES_SERVICE_PORT"))


def load(
    *,
    kubeconfig: str | None = None,
    context: str | None = None,
    namespace: str | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> Target:
    """Build the client configuration and pick the namespace like kubectl.

    Args:
        kubeconfig: a kubeconfig file; default ``$KUBECONFIG`` or ``~/.kube/config``.
        context: a context of that file; default its current context.
        namespace: overrides the context's namespace.
        service_account_dir: where the in-cluster token, CA and namespace are (tests point it elsewhere).

    Raises:
        ClusterConfigError: no kubeconfig and not in a pod, an unknown context, or a broken file.
    """
    from kubernetes import client, config
    from kubernetes.config.config_exception import ConfigException

    configuration = client.Configuration()
    # The backend retries by itself (and only where a retry cannot duplicate anything); urllib3 must not.
    configuration.retries = False
    paths = [p for p in _kubeconfig_paths(kubeconfig) if p.is_file()]

    if kubeconfig and not paths:
        raise ClusterConfigError(f"kubeconfig {kubeconfig}: no such file")
    if not paths and _in_cluster():
        if context:
            raise ClusterConfigError(
                f"--context {context}: no kubeconfig found, and in a pod only the service account is available"
            )
        try:
            config.incluster_config.InClusterConfigLoader(
                token_filename=str(service_account_dir / "token"),
                cert_filename=str(service_account_dir / "ca.crt"),
            ).load_and_set(configuration)
        except ConfigException as e:
            raise ClusterConfigError(f"in-cluster config ({service_account_dir}): {e}") from e
        configuration.retries = False
        ns_file = service_account_dir / "namespace"
        pod_ns = ns_file.read_text(encoding="utf-8").strip() if ns_file.is_file() else ""
        return Target(configuration, namespace or pod_ns or DEFAULT_NAMESPACE, "in-cluster service account")
    if not paths:
        tried = ", ".join(str(p) for p in _kubeconfig_paths(kubeconfig))
        raise ClusterConfigError(
            f"no kubeconfig found (tried {tried}) and not running in a pod; "
            "pass --kubeconfig or set KUBECONFIG to reach a cluster"
        )

    config_file = os.pathsep.join(str(p) for p in paths)
    where = f"kubeconfig {config_file}"
    try:
        contexts, current = config.list_kube_config_contexts(config_file=config_file)
    except (ConfigException, OSError, ValueError) as e:
        raise ClusterConfigError(f"{where}: {e}") from e
    by_name = {c["name"]: c for c in contexts or []}
    chosen = context or (current or {}).get("name")
    if not chosen:
        raise ClusterConfigError(f"{where}: no current-context set; pass --context")
    if chosen not in by_name:
        known = ", ".join(sorted(by_name)) or "none"
        raise ClusterConfigError(f"{where}: context {chosen!r} not found (contexts: {known})")
    try:
        config.load_kube_config(
            config_file=config_file, context=chosen, client_configuration=configuration, persist_config=False
        )
    except (ConfigException, OSError, ValueError) as e:
        raise ClusterConfigError(f"{where}, context {chosen!r}: {e}") from e
    configuration.retries = False
    ctx_ns = (by_name[chosen].get("context") or {}).get("namespace")
    return Target(configuration, namespace or ctx_ns or DEFAULT_NAMESPACE, f"{where} (context {chosen})")
