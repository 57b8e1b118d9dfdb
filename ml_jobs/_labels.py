"""Labels and annotations ml_jobs puts on the objects it creates (not node labels: those are in taxonomy).

The renderer writes them, the Kubernetes backend selects and reads by them, so both take them from here.
"""

from __future__ import annotations

import re

from ml_jobs import layout
from ml_jobs.taxonomy import PREFIX

# Labels (values must be valid label values: ≤ 63 characters, alphanumeric ends).
EXPERIMENT = f"{PREFIX}/experiment"  # experiment name; selects every object and pod of a sweep
REVISION = f"{PREFIX}/revision"  # "1", "2", ... when a changed spec is submitted under the same name
OWNER = f"{PREFIX}/owner"  # who submitted, sanitised to a label value
SPEC_HASH = f"{PREFIX}/spec-hash"  # short hash of the normalised spec: same spec => same hash
COMPONENT = f"{PREFIX}/component"  # "sweep" (ConfigMap), "run" (Job/pods), "registry", "reader"
MANAGED_BY = "app.kubernetes.io/managed-by"  # always "ml-jobs"

# Annotations (free text, total size per object ≤ 256 KiB).
IMAGE = f"{PREFIX}/image"
SPEC = f"{PREFIX}/spec"  # the normalised spec as JSON, on the sweep ConfigMap
RUNS = f"{PREFIX}/runs"  # number of runs in the sweep
OBJECTIVE = f"{PREFIX}/objective"  # "metric:max" or "metric:min"

# Set by the Job controller on every pod of an Indexed Job.
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"

MANAGER = "ml-jobs"

# Added by the Kubernetes backend (ml_jobs.kube).
SUBMISSION = f"{PREFIX}/submission"  # id of the submit call that created an object: a retried create knows its own
STATE = f"{PREFIX}/state"  # on the registry ConfigMap: the latest revision's state (submitting, submitted, ...)
JOB_NAME = "batch.kubernetes.io/job-name"  # set by the Job controller on every pod of a Job
CONTROLLER_UID = "batch.kubernetes.io/controller-uid"  # likewise: the Job's uid, so pods of a recreated Job differ
# Per-index failures (backoffLimitPerIndex): the entry shim reads it too, so layout (in every pod) owns it.
INDEX_FAILURE_COUNT = layout.INDEX_FAILURE_COUNT_ANNOTATION


def label_value(text: str) -> str:
    """``text`` made into a valid label value: invalid characters become ``-``, at most 63, alphanumeric ends.

    >>> label_value("Jane Doe <jane@example.com>")
    'Jane-Doe-jane-example.com'
    """
    value = re.sub(r"[^-A-Za-z0-9_.]+", "-", text)[:63]
    return value.strip("-_.")
