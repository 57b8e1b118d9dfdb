"""Team queues (Kueue): the names herd's queueing objects and ml-jobs agree on, defined once.

infra creates, per team, a ClusterQueue and a LocalQueue of the same name as the team (both :func:`queue_name`);
ml-jobs puts a sweep's Job into a LocalQueue with :data:`QUEUE_LABEL` and creates it suspended, which is how Kueue
expects a Job it manages (it unsuspends the Job once the Workload is admitted).
"""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "COHORT",
    "GROUP",
    "MIN_PARALLELISM_ANNOTATION",
    "ONPREM_FLAVOR",
    "ONPREM_FLAVORS",
    "ONPREM_GPU_FLAVOR",
    "QUEUE_LABEL",
    "VERSION",
    "VISIBILITY_GROUP",
    "VISIBILITY_VERSION",
    "queue_name",
]

GROUP = "kueue.x-k8s.io"
VERSION = "v1beta2"
API_VERSION = f"{GROUP}/{VERSION}"
# Kueue's visibility API (an aggregated API its manager serves): a LocalQueue's pending Workloads and their
# positions, ``localqueues/<name>/pendingworkloads``.
VISIBILITY_GROUP = f"visibility.{GROUP}"
VISIBILITY_VERSION = "v1beta2"
# The label that puts a Job into a LocalQueue of its namespace.
QUEUE_LABEL = f"{GROUP}/queue-name"
# Kueue may admit an Indexed Job with fewer pods at once than its parallelism, down to this many.
MIN_PARALLELISM_ANNOTATION = f"{GROUP}/job-min-parallelism"
# Every team's ClusterQueue is in this cohort, so a team's idle on-prem quota can be borrowed by the others.
COHORT = "herd"
# The on-prem ResourceFlavors; every other flavor is a cloud burst pool's, named after the pool.
ONPREM_FLAVOR = "onprem"
ONPREM_GPU_FLAVOR = "onprem-gpu"
ONPREM_FLAVORS = (ONPREM_FLAVOR, ONPREM_GPU_FLAVOR)


def queue_name(team: str) -> str:
    """The team's ClusterQueue, and the LocalQueue in its namespace that points to it."""
    return team
