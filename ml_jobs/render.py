"""Render an experiment into Kubernetes objects: one sweep ConfigMap and one Indexed Job, whatever the run count.

The ConfigMap holds the sweep *definition* (``sweep.json``), the entry shim (``entry.py``) and ``layout.py``;
it is mounted at ``/etc/ml-jobs`` in every pod. The Job has one completion per run; each pod starts the shim,
which derives the run's parameters from ``JOB_COMPLETION_INDEX``. So 10 runs and 10,000 runs render to the same
two objects of nearly the same size.

``render()`` returns plain dicts and checks what the API server would refuse but a schema cannot express (name
lengths, label values, annotation and ConfigMap sizes); ``validate_schema()`` adds the OpenAPI schema check of
every supported Kubernetes minor (kubernetes-validate, strict: unknown fields are errors).
"""

from __future__ import annotations

import getpass
import json
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any

import yaml

from ml_jobs import _labels as L
from ml_jobs import layout, priority, queueing, taxonomy
from ml_jobs.errors import ManifestError
from ml_jobs.spec import Experiment

__all__ = [
    "CONTAINER_NAME",
    "DEFAULT_PARALLELISM",
    "KUBERNETES_VERSIONS",
    "Rendered",
    "check_objects",
    "config_map_name",
    "default_owner",
    "login_name",
    "render",
    "sweep_definition",
    "validate_schema",
]

KUBERNETES_VERSIONS = ("1.33", "1.34", "1.35", "1.36", "1.37")
CONTAINER_NAME = "run"
CONFIG_VOLUME = "ml-jobs"
RESULTS_VOLUME = "results"
MAX_NAME = 63
MAX_ANNOTATIONS_BYTES = 256 * 1024  # the API server's limit on one object's annotations (keys + values)
MAX_CONFIG_MAP_BYTES = 1024 * 1024  # the API server's limit on a ConfigMap's data
# Runs at once in the cluster when the spec sets no parallelism. The Job controller creates this many pods at once;
# beyond the team's ResourceQuota (pods: 200 by default in the Pulumi stack's teamDefaults) every create is refused
# and the controller backs off, over and over. 50 is a quarter of that quota, so a few sweeps of one team run side
# by side, and still more runs than a lab-sized cluster (a few servers plus the burst pools) runs at once.
DEFAULT_PARALLELISM = 50
_SHIM_FILES = {layout.ENTRY_FILE: "_shim.py", layout.LAYOUT_FILE: "layout.py"}


@dataclass(frozen=True)
class Rendered:
    """The objects of one experiment revision, as plain dicts ready for the API or ``kubectl apply``."""

    config_map: dict[str, Any]
    job: dict[str, Any]
    experiment: Experiment = field(repr=False)
    revision: int = 1

    @property
    def objects(self) -> list[dict[str, Any]]:
        """Every object in creation order: the ConfigMap first (the Job's pods mount it)."""
        return [self.config_map, self.job]

    @property
    def job_name(self) -> str:
        """The Job's name (``<experiment>`` or ``<experiment>-r<N>``)."""
        return str(self.job["metadata"]["name"])

    def to_yaml(self) -> str:
        """The objects as one multi-document YAML stream, like ``kubectl --dry-run=client -o yaml``."""
        return yaml.dump_all(self.objects, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=120)


class _Dumper(yaml.SafeDumper):
    """Writes multi-line strings (the shim's source) as literal blocks, so the YAML stays readable."""


def _str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    if "\n" in value and not any(line != line.rstrip() for line in value.splitlines()):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|")
    return dumper.represent_scalar("tag:yaml.org,2002:str", value)


_Dumper.add_representer(str, _str)


@cache
def _shim_sources() -> dict[str, str]:
    package = resources.files("ml_jobs")
    return {key: package.joinpath(module).read_text(encoding="utf-8") for key, module in _SHIM_FILES.items()}


def login_name() -> str:
    """The local login name, or ``unknown`` where there is none (no passwd entry and no $USER, as in some
    containers): who submits when the API server cannot say."""
    try:
        return getpass.getuser() or "unknown"
    except (KeyError, OSError):
        return "unknown"


def default_owner() -> str:
    """Who is submitting: the login name, as a label value."""
    return L.label_value(login_name()) or "unknown"


def config_map_name(job_name: str) -> str:
    """The sweep ConfigMap's name for a Job: ``<job>-sweep``."""
    return f"{job_name}-sweep"


def sweep_definition(exp: Experiment, revision: int = 1) -> dict[str, Any]:
    """What the entry shim reads from ``sweep.json``: the experiment directory, results root, sweep and the
    objective's metric."""
    from ml_jobs._shim import FORMAT_VERSION

    definition: dict[str, Any] = {
        "version": FORMAT_VERSION,
        "experiment": layout.experiment_dir_name(exp.name, revision),
        "results_root": exp.results.mount_path,
        "sweep": exp.sweep.definition(),
    }
    if exp.objective is not None:
        definition["objective"] = exp.objective.metric  # kept first when metrics are cut to fit the pod status
    return definition


def render(
    exp: Experiment,
    *,
    namespace: str | None = None,
    owner: str | None = None,
    revision: int = 1,
    queue: str | None = None,
) -> Rendered:
    """Render ``exp`` into its sweep ConfigMap and Indexed Job.

    Args:
        exp: the experiment.
        namespace: set on both objects; ``None`` leaves it to the client (the current context's namespace).
        owner: who submits, recorded as a label (sanitised to a label value); default: the login name.
        revision: 1 for the first submission of this experiment name, N for the N-th changed spec.
        queue: the team queue (Kueue LocalQueue) when the spec names none; with either, the Job carries Kueue's
            queue label and is created suspended (Kueue starts it once admitted); with neither, it is scheduled
            directly, as without Kueue.

    Raises:
        ManifestError: an object would be refused by the API server (e.g. a name too long for revision N).
    """
    job_name = layout.job_name(exp.name, revision)
    cm_name = config_map_name(job_name)
    runs = exp.runs
    labels = {
        L.EXPERIMENT: exp.name,
        L.REVISION: str(revision),
        L.OWNER: L.label_value(owner) if owner is not None else default_owner(),
        L.SPEC_HASH: exp.spec_hash(),
        L.MANAGED_BY: L.MANAGER,
    }
    annotations = {L.IMAGE: exp.image, L.RUNS: str(runs)}
    if exp.objective is not None:
        annotations[L.OBJECTIVE] = exp.objective.annotation()

    definition = sweep_definition(exp, revision)
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": _metadata(
            cm_name,
            namespace,
            {**labels, L.COMPONENT: "sweep"},
            {**annotations, L.SPEC: json.dumps(exp.to_dict(), separators=(",", ":"))},
        ),
        "data": {
            layout.SWEEP_FILE: json.dumps(definition) + "\n",
            **_shim_sources(),
        },
    }
    pod_labels = {**labels, L.COMPONENT: "run"}
    job_labels = dict(pod_labels)
    queue = exp.queue or queue
    if queue:
        job_labels[queueing.QUEUE_LABEL] = queue
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": _metadata(job_name, namespace, job_labels, annotations),
        "spec": _job_spec(exp, runs, cm_name, pod_labels),
    }
    if queue:
        job["spec"]["suspend"] = True
        # A sweep may start with fewer runs at once than its parallelism: Kueue admits what fits (partial
        # admission) instead of holding the whole sweep back until all of it fits at once (Kueue wants the
        # minimum below the parallelism).
        if job["spec"]["parallelism"] > 1:
            job["metadata"]["annotations"][queueing.MIN_PARALLELISM_ANNOTATION] = "1"
    # Plain data with no shared sub-objects (labels appear twice in the Job; lists come from the frozen spec):
    # callers may mutate what they get, and YAML output must not grow anchors.
    config_map, job = json.loads(json.dumps([config_map, job]))
    rendered = Rendered(config_map=config_map, job=job, experiment=exp, revision=revision)
    check_objects(rendered.objects, runs=runs)
    return rendered


def _metadata(
    name: str, namespace: str | None, labels: dict[str, str], annotations: dict[str, str]
) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name}
    if namespace is not None:
        meta["namespace"] = namespace
    meta["labels"] = labels
    meta["annotations"] = annotations
    return meta


def _job_spec(exp: Experiment, runs: int, cm_name: str, pod_labels: dict[str, str]) -> dict[str, Any]:
    rules: list[dict[str, Any]] = [
        # A run whose node went away (drain, spot reclaim, preemption) did nothing wrong: retry it for free.
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
    ]
    if exp.final_exit_codes:
        rules.append(
            {
                "action": "FailIndex",
                "onExitCodes": {
                    "containerName": CONTAINER_NAME,
                    "operator": "In",
                    "values": list(exp.final_exit_codes),
                },
            }
        )
    spec: dict[str, Any] = {
        "completionMode": "Indexed",
        "completions": runs,
        "parallelism": min(exp.parallelism or DEFAULT_PARALLELISM, runs),
        "backoffLimitPerIndex": exp.retries,
        "podFailurePolicy": {"rules": rules},
    }
    if exp.deadline is not None:
        spec["activeDeadlineSeconds"] = exp.deadline
    spec["ttlSecondsAfterFinished"] = exp.ttl
    spec["template"] = {
        "metadata": {"labels": pod_labels},
        "spec": _pod_spec(exp, cm_name),
    }
    return spec


def _pod_spec(exp: Experiment, cm_name: str) -> dict[str, Any]:
    res = exp.resources
    requests: dict[str, Any] = {"cpu": res.cpu, "memory": res.memory}
    limits: dict[str, Any] = {"cpu": res.cpu_limit, "memory": res.memory_limit}
    if res.gpus:
        # Extended resources cannot be overcommitted: the request must equal the limit.
        requests[taxonomy.GPU_RESOURCE] = str(res.gpus)
        limits[taxonomy.GPU_RESOURCE] = str(res.gpus)

    env: list[dict[str, Any]] = [{"name": key, "value": value} for key, value in exp.env.items()]
    # In a pod the shim copies metrics.json into the termination message: `ml-jobs status` reads it there.
    env.append({"name": layout.ENV_TERMINATION_LOG, "value": layout.TERMINATION_LOG_PATH})
    env.append(
        {
            # Failed attempts of this index so far; the shim turns it into RUN_ATTEMPT.
            "name": layout.ENV_FAILURE_COUNT,
            "valueFrom": {
                "fieldRef": {"fieldPath": f"metadata.annotations['{layout.INDEX_FAILURE_COUNT_ANNOTATION}']"}
            },
        }
    )
    container: dict[str, Any] = {
        "name": CONTAINER_NAME,
        "image": exp.image,
        "command": [exp.python, f"{layout.CONFIG_MOUNT_PATH}/{layout.ENTRY_FILE}"],
        "args": ["--", *exp.command, *exp.args],
    }
    if exp.workdir is not None:
        container["workingDir"] = exp.workdir
    container |= {
        "env": env,
        "resources": {"requests": requests, "limits": limits},
        "volumeMounts": [
            {"name": CONFIG_VOLUME, "mountPath": layout.CONFIG_MOUNT_PATH, "readOnly": True},
            {"name": RESULTS_VOLUME, "mountPath": exp.results.mount_path},
        ],
        # The message is read by machine (the run's metrics as JSON): only the file, never a log tail that might
        # look like JSON (FallbackToLogsOnError would put a failed run's last log lines there).
        "terminationMessagePath": layout.TERMINATION_LOG_PATH,
        "terminationMessagePolicy": "File",
    }

    pod: dict[str, Any] = {
        "restartPolicy": "Never",
        # herd's PriorityClasses (ml_jobs.priority): none is the global default, so without one a run gets 0.
        "priorityClassName": priority.class_name(exp.priority),
        # Runs do not talk to the API server; keep its credentials out of user code.
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "containers": [container],
        "volumes": [
            {"name": CONFIG_VOLUME, "configMap": {"name": cm_name, "defaultMode": 0o444}},
            {"name": RESULTS_VOLUME, "persistentVolumeClaim": {"claimName": exp.results.claim}},
        ],
    }
    required = exp.nodes.required()
    if res.gpu_product is not None:
        # GFD labels time-sliced GPUs <product>-SHARED: a run asking for the product takes either kind.
        required[taxonomy.LABELS["gpu_product"].key] = taxonomy.gpu_product_matches(res.gpu_product)
    selector = {key: values[0] for key, values in required.items() if len(values) == 1}
    if selector:
        pod["nodeSelector"] = selector
    affinity = _node_affinity(
        {key: values for key, values in required.items() if len(values) > 1}, exp.nodes.preferred()
    )
    if affinity:
        pod["affinity"] = {"nodeAffinity": affinity}
    if res.gpus:
        pod["tolerations"] = [taxonomy.GPU_TAINT.as_toleration()]
    return pod


def _node_affinity(required: dict[str, list[str]], preferred: dict[str, list[str]]) -> dict[str, Any]:
    affinity: dict[str, Any] = {}
    if required:
        affinity["requiredDuringSchedulingIgnoredDuringExecution"] = {
            "nodeSelectorTerms": [
                {"matchExpressions": [{"key": k, "operator": "In", "values": v} for k, v in required.items()]}
            ]
        }
    if preferred:
        affinity["preferredDuringSchedulingIgnoredDuringExecution"] = [
            {"weight": 100, "preference": {"matchExpressions": [{"key": k, "operator": "In", "values": v}]}}
            for k, v in preferred.items()
        ]
    return affinity


# ----------------------------------------------------------------------------------------------- checks


def _ref(obj: dict[str, Any]) -> str:
    return f"{obj.get('kind', '?')}/{obj.get('metadata', {}).get('name', '?')}"


def check_objects(objects: list[dict[str, Any]], *, runs: int | None = None) -> None:
    """Check what the API server refuses but an OpenAPI schema does not say.

    Names (DNS-1123, at most 63 characters for a Job and for its pods' host names), label keys and values,
    the total size of annotations, and the size of a ConfigMap's data.

    Raises:
        ManifestError: naming the object, the field and the problem.
    """
    for obj in objects:
        ref = _ref(obj)
        meta = obj.get("metadata", {})
        name = meta.get("name", "")
        if obj.get("kind") == "Job":
            if len(name) > MAX_NAME:
                raise ManifestError(
                    ref, "metadata.name", f"a Job name has at most {MAX_NAME} characters, got {len(name)}"
                )
            if runs is not None:
                # Pods of an Indexed Job get the host name <job>-<index>, itself limited to 63 characters.
                host = f"{name}-{runs - 1}"
                if len(host) > MAX_NAME:
                    raise ManifestError(
                        ref,
                        "metadata.name",
                        f"pod host names <job>-<index> reach {len(host)} characters ({host}); at most {MAX_NAME}: "
                        "shorten the experiment name",
                    )
        elif len(name) > 253:
            raise ManifestError(ref, "metadata.name", f"at most 253 characters, got {len(name)}")
        _check_labels(ref, "metadata.labels", meta.get("labels", {}))
        _check_annotations(ref, meta.get("annotations", {}))
        template = obj.get("spec", {}).get("template")
        if template is not None:
            _check_labels(ref, "spec.template.metadata.labels", template.get("metadata", {}).get("labels", {}))
            _check_annotations(ref, template.get("metadata", {}).get("annotations", {}))
        if obj.get("kind") == "ConfigMap":
            size = sum(len(k.encode()) + len(v.encode()) for k, v in obj.get("data", {}).items())
            if size > MAX_CONFIG_MAP_BYTES:
                raise ManifestError(
                    ref, "data", f"{size:,} bytes; a ConfigMap holds at most {MAX_CONFIG_MAP_BYTES:,} (1 MiB)"
                )


def _check_labels(ref: str, where: str, labels: dict[str, str]) -> None:
    for key, value in labels.items():
        if not taxonomy.is_valid_qualified_name(key):
            raise ManifestError(ref, f"{where}.{key}", "not a valid label key")
        if not isinstance(value, str) or not taxonomy.is_valid_label_value(value):
            raise ManifestError(
                ref,
                f"{where}.{key}",
                f"{value!r} is not a valid label value (at most 63 characters: letters, digits, '-', '_', '.', "
                "alphanumeric at both ends)",
            )


def _check_annotations(ref: str, annotations: dict[str, str]) -> None:
    size = 0
    for key, value in annotations.items():
        if not taxonomy.is_valid_qualified_name(key):
            raise ManifestError(ref, f"metadata.annotations.{key}", "not a valid annotation key")
        size += len(key.encode()) + len(value.encode())
    if size > MAX_ANNOTATIONS_BYTES:
        raise ManifestError(
            ref,
            "metadata.annotations",
            f"{size:,} bytes; the API server allows {MAX_ANNOTATIONS_BYTES:,} (256 KiB)",
        )


def validate_schema(objects: list[dict[str, Any]], versions: tuple[str, ...] = KUBERNETES_VERSIONS) -> None:
    """Validate every object against the OpenAPI schema of each Kubernetes minor, strictly (unknown fields fail).

    Raises:
        ManifestError: naming the object, the field, the problem and the Kubernetes version.
    """
    import kubernetes_validate  # slow to import; only when asked

    for obj in objects:
        for version in versions:
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.ValidationError as e:
                path = ".".join(str(p) for p in e.absolute_path)
                raise ManifestError(_ref(obj), path, f"{e.message} (Kubernetes {version} schema)") from e
            except kubernetes_validate.SchemaNotFoundError as e:
                raise ManifestError(_ref(obj), "", e.message) from e
