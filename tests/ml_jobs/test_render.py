# ruff: noqa: E501 - expected messages are whole lines
"""Rendering: one sweep is one ConfigMap + one Indexed Job, valid for Kubernetes 1.33-1.37, whatever its size."""

from __future__ import annotations

import copy
import json

import pytest
import yaml

from ml_jobs import _labels as L
from ml_jobs import layout, priority, taxonomy
from ml_jobs.errors import ManifestError
from ml_jobs.render import DEFAULT_PARALLELISM, KUBERNETES_VERSIONS, check_objects, render, validate_schema
from ml_jobs.spec import Experiment

GPU_SPEC = {
    "name": "bert-finetune",
    "image": "registry.example.com/nlp/bert:2.1",
    "command": ["python", "-m", "train"],
    "args": ["--lr", "{{ lr }}", "--warmup", "{{ warmup }}"],
    "env": {"HF_HOME": "/cache/hf"},
    "workdir": "/app",
    "resources": {
        "cpu": "8",
        "memory": "64Gi",
        "gpus": 2,
        "gpu_product": "NVIDIA-H100-80GB-HBM3",
        "limits": {"cpu": "16", "memory": "96Gi"},
    },
    "nodes": {"location": ["onprem", "cloud"], "tier": "gpu", "prefer": {"location": "onprem"}},
    "retries": 3,
    "final_exit_codes": [3, 42],
    "deadline": "12h",
    "parallelism": 4,
    "ttl": "2d",
    "results": {"claim": "team-results", "mount_path": "/mnt/results"},
    "objective": {"metric": "eval_loss", "goal": "min"},
    "sweep": {
        "product": [
            {"grid": {"lr": [1e-5, 3e-5, 5e-5]}},
            {"random": {"seed": 11, "count": 4, "params": {"warmup": {"randint": [0, 1000]}}}},
        ]
    },
}
CPU_SPEC = {
    "name": "xgb",
    "image": "python:3.11-slim",
    "command": ["python", "fit.py"],
    "nodes": {"tier": "high-cpu", "pool": "batch"},
    "sweep": {"list": [{"depth": 3}, {"depth": 6}]},
}
ONE_RUN = {"name": "once", "image": "python:3.11", "command": ["python", "-c", "print(1)"]}


def pod_spec(job: dict) -> dict:
    return job["spec"]["template"]["spec"]


def test_one_sweep_is_a_config_map_then_an_indexed_job():
    r = render(Experiment(**copy.deepcopy(GPU_SPEC)), owner="jane", namespace="team-nlp")
    assert [o["kind"] for o in r.objects] == ["ConfigMap", "Job"]
    assert r.job["metadata"]["name"] == "bert-finetune"
    assert r.config_map["metadata"]["name"] == "bert-finetune-sweep"
    assert {o["metadata"]["namespace"] for o in r.objects} == {"team-nlp"}
    spec = r.job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == 12 and spec["parallelism"] == 4
    assert spec["backoffLimitPerIndex"] == 3
    assert spec["activeDeadlineSeconds"] == 12 * 3600
    assert spec["ttlSecondsAfterFinished"] == 2 * 86400
    assert spec["podFailurePolicy"]["rules"] == [
        {"action": "Ignore", "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}]},
        {"action": "FailIndex", "onExitCodes": {"containerName": "run", "operator": "In", "values": [3, 42]}},
    ]
    assert pod_spec(r.job)["restartPolicy"] == "Never"


def test_revisions_get_their_own_job_config_map_and_results_directory():
    exp = Experiment(**copy.deepcopy(GPU_SPEC))
    r3 = render(exp, owner="jane", revision=3)
    assert r3.job["metadata"]["name"] == "bert-finetune-r3"
    assert r3.config_map["metadata"]["name"] == "bert-finetune-r3-sweep"
    assert pod_spec(r3.job)["volumes"][0]["configMap"]["name"] == "bert-finetune-r3-sweep"
    assert json.loads(r3.config_map["data"]["sweep.json"])["experiment"] == "bert-finetune-r3"
    assert r3.job["metadata"]["labels"][L.REVISION] == "3"
    assert r3.job["metadata"]["labels"][L.EXPERIMENT] == "bert-finetune"


def test_every_object_and_the_pod_template_carry_the_labels():
    exp = Experiment(**copy.deepcopy(GPU_SPEC))
    r = render(exp, owner="Jane Doe <jane@example.com>", revision=2)
    expected = {
        L.EXPERIMENT: "bert-finetune",
        L.REVISION: "2",
        L.OWNER: "Jane-Doe-jane-example.com",
        L.SPEC_HASH: exp.spec_hash(),
        L.MANAGED_BY: "ml-jobs",
    }
    assert r.config_map["metadata"]["labels"] == {**expected, L.COMPONENT: "sweep"}
    assert r.job["metadata"]["labels"] == {**expected, L.COMPONENT: "run"}
    assert r.job["spec"]["template"]["metadata"]["labels"] == {**expected, L.COMPONENT: "run"}
    for obj in r.objects:
        annotations = obj["metadata"]["annotations"]
        assert annotations[L.IMAGE] == "registry.example.com/nlp/bert:2.1"
        assert annotations[L.RUNS] == "12"
        assert annotations[L.OBJECTIVE] == "eval_loss:min"
    assert json.loads(r.config_map["metadata"]["annotations"][L.SPEC]) == exp.to_dict()


def test_container_resources_gpus_and_placement_come_from_the_spec_and_taxonomy():
    pod = pod_spec(render(Experiment(**copy.deepcopy(GPU_SPEC)), owner="jane").job)
    (container,) = pod["containers"]
    resources = container["resources"]
    assert resources["requests"] == {"cpu": "8", "memory": "64Gi", "nvidia.com/gpu": "2"}
    assert resources["limits"] == {"cpu": "16", "memory": "96Gi", "nvidia.com/gpu": "2"}
    assert resources["requests"][taxonomy.GPU_RESOURCE] == resources["limits"][taxonomy.GPU_RESOURCE]
    assert pod["nodeSelector"] == {"herd.dev/tier": "gpu"}
    affinity = pod["affinity"]["nodeAffinity"]
    # The GPU product matches whole GPUs and time-sliced ones (GFD labels those <product>-SHARED).
    assert affinity["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"] == [
        {
            "matchExpressions": [
                {"key": "herd.dev/location", "operator": "In", "values": ["onprem", "cloud"]},
                {
                    "key": "nvidia.com/gpu.product",
                    "operator": "In",
                    "values": ["NVIDIA-H100-80GB-HBM3", "NVIDIA-H100-80GB-HBM3-SHARED"],
                },
            ]
        }
    ]
    assert affinity["preferredDuringSchedulingIgnoredDuringExecution"] == [
        {
            "weight": 100,
            "preference": {
                "matchExpressions": [{"key": "herd.dev/location", "operator": "In", "values": ["onprem"]}]
            },
        }
    ]
    assert pod["tolerations"] == [taxonomy.GPU_TAINT.as_toleration()]
    assert container["command"] == ["python3", "/etc/ml-jobs/entry.py"]
    assert container["args"] == ["--", "python", "-m", "train", "--lr", "{{ lr }}", "--warmup", "{{ warmup }}"]
    assert container["workingDir"] == "/app"
    assert {"name": "HF_HOME", "value": "/cache/hf"} in container["env"]
    assert container["volumeMounts"] == [
        {"name": "ml-jobs", "mountPath": "/etc/ml-jobs", "readOnly": True},
        {"name": "results", "mountPath": "/mnt/results"},
    ]
    assert pod["volumes"][1] == {"name": "results", "persistentVolumeClaim": {"claimName": "team-results"}}
    assert pod["automountServiceAccountToken"] is False


def test_cpu_runs_get_limits_and_no_gpu_toleration():
    r = render(Experiment(**copy.deepcopy(CPU_SPEC)), owner="x")
    pod = pod_spec(r.job)
    for container in pod["containers"]:
        assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert "tolerations" not in pod and "affinity" not in pod
    assert pod["nodeSelector"] == {"herd.dev/pool": "batch", "herd.dev/tier": "high-cpu"}
    assert "namespace" not in r.job["metadata"]
    assert [rule["action"] for rule in r.job["spec"]["podFailurePolicy"]["rules"]] == ["Ignore"]


@pytest.mark.parametrize("spec", [GPU_SPEC, CPU_SPEC, ONE_RUN], ids=["gpu", "cpu", "one-run"])
def test_rendered_objects_pass_strict_schema_validation_for_every_supported_minor(spec):
    assert KUBERNETES_VERSIONS == ("1.33", "1.34", "1.35", "1.36", "1.37")
    validate_schema(render(Experiment(**copy.deepcopy(spec)), owner="x", namespace="ns").objects)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (
            lambda job: job["spec"].update(backoffLimitPerIndx=1),
            "Job/once: spec: Additional properties are not allowed ('backoffLimitPerIndx' was unexpected) (Kubernetes 1.33 schema)",
        ),
        (
            lambda job: job["spec"].update(completions="ten"),
            "Job/once: spec.completions: 'ten' is not of type 'integer', 'null' (Kubernetes 1.33 schema)",
        ),
    ],
)
def test_schema_validation_names_object_field_and_version(mutate, message):
    job = render(Experiment(**copy.deepcopy(ONE_RUN)), owner="x").job
    mutate(job)
    with pytest.raises(ManifestError) as raised:
        validate_schema([job])
    assert str(raised.value) == message


def test_object_count_and_size_do_not_grow_with_the_number_of_runs():
    def sized(count: int) -> tuple[int, int]:
        spec = {
            **copy.deepcopy(ONE_RUN),
            "sweep": {"random": {"count": count, "params": {"lr": {"uniform": [0, 1]}}}},
        }
        r = render(Experiment(**spec), owner="x")
        return len(r.objects), len(r.to_yaml())

    (n10, b10), (n10k, b10k) = sized(10), sized(10_000)
    assert n10 == n10k == 2
    assert b10k - b10 < 20  # the run count's digits, in two annotations and completions/parallelism


def test_to_yaml_round_trips_to_the_objects():
    r = render(Experiment(**copy.deepcopy(GPU_SPEC)), owner="x")
    assert list(yaml.safe_load_all(r.to_yaml())) == r.objects
    assert "&id" not in r.to_yaml()  # no YAML anchors: labels are not shared objects
    assert "entry.py: |" in r.to_yaml()  # the shim stays readable in `ml-jobs render` output


def test_the_config_map_carries_the_shim_layout_and_definition_not_the_expanded_runs():
    exp = Experiment(**copy.deepcopy(GPU_SPEC))
    data = render(exp, owner="x").config_map["data"]
    assert set(data) == {layout.SWEEP_FILE, layout.ENTRY_FILE, layout.LAYOUT_FILE}
    assert json.loads(data[layout.SWEEP_FILE]) == {
        "version": 1,
        "experiment": "bert-finetune",
        "results_root": "/mnt/results",
        "sweep": exp.sweep.definition(),
        "objective": "eval_loss",  # the shim keeps it first when metrics are cut to fit the pod status
    }
    once = render(Experiment(**copy.deepcopy(ONE_RUN)), owner="x")  # no objective
    assert "objective" not in json.loads(once.config_map["data"][layout.SWEEP_FILE])


def test_the_container_reports_metrics_in_its_termination_message_file_only():
    container = render(Experiment(**copy.deepcopy(GPU_SPEC)), owner="x").job["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert {"name": layout.ENV_TERMINATION_LOG, "value": "/dev/termination-log"} in container["env"]
    assert container["terminationMessagePath"] == "/dev/termination-log"
    # File, not FallbackToLogsOnError: a failed run's log tail must never be read as its metrics.
    assert container["terminationMessagePolicy"] == "File"


def test_names_too_long_for_a_revision_or_for_pod_host_names_are_refused():
    name = "n" * 60
    exp = Experiment(**{**copy.deepcopy(ONE_RUN), "name": name})
    render(exp, owner="x")
    with pytest.raises(ManifestError) as raised:
        render(exp, owner="x", revision=12)
    assert str(raised.value) == f"Job/{name}-r12: metadata.name: a Job name has at most 63 characters, got 64"
    many = Experiment(**{**copy.deepcopy(ONE_RUN), "name": name, "sweep": {"grid": {"a": list(range(1000))}}})
    with pytest.raises(ManifestError, match=r"pod host names <job>-<index> reach 64 characters"):
        render(many, owner="x")


def test_oversized_annotations_and_config_maps_are_refused():
    big = [{"text": "x" * 1000, "i": i} for i in range(300)]
    exp = Experiment(**{**copy.deepcopy(ONE_RUN), "sweep": {"list": big}})
    with pytest.raises(
        ManifestError, match=r"^ConfigMap/once-sweep: metadata.annotations: 3\d\d,\d{3} bytes; the API"
    ):
        render(exp, owner="x")
    config_map = {"kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "x" * (1024 * 1024)}}
    with pytest.raises(ManifestError, match=r"^ConfigMap/c: data: 1,048,577 bytes; a ConfigMap holds at most"):
        check_objects([config_map])


def test_invalid_label_values_are_refused():
    job = render(Experiment(**copy.deepcopy(ONE_RUN)), owner="x").job
    job["spec"]["template"]["metadata"]["labels"][L.OWNER] = "-bad-"
    with pytest.raises(
        ManifestError, match=r"^Job/once: spec.template.metadata.labels.herd.dev/owner: '-bad-' is not"
    ):
        check_objects([job])


@pytest.mark.parametrize(("given", "expected"), [({}, "herd-normal"), ({"priority": "high"}, "herd-high")])
def test_runs_get_the_priority_class_of_the_spec(given, expected):
    # GIVEN a spec with or without priority WHEN rendered THEN every pod names one of herd's PriorityClasses
    # (none is the global default: without a class a run would get priority 0, below every herd class)
    rendered = render(Experiment(**copy.deepcopy(ONE_RUN), **given), owner="x", namespace="ns")
    assert pod_spec(rendered.job)["priorityClassName"] == expected
    assert expected in {c.name for c in priority.PRIORITY_CLASSES}
    validate_schema(rendered.objects)


def test_priority_classes_are_ordered_and_only_low_never_preempts():
    classes = {c.priority: c for c in priority.PRIORITY_CLASSES}
    assert set(classes) == {"high", "normal", "low"} and priority.DEFAULT == "normal"
    assert classes["high"].value > classes["normal"].value > classes["low"].value > 0
    assert [c.priority for c in priority.PRIORITY_CLASSES if not c.preempts] == ["low"]


@pytest.mark.parametrize(
    ("product", "values"),
    [
        ("NVIDIA-A10G", ["NVIDIA-A10G", "NVIDIA-A10G-SHARED"]),
        ("NVIDIA-A10G-SHARED", ["NVIDIA-A10G-SHARED"]),  # asks for sliced GPUs only
        ("N" * 60, ["N" * 60]),  # the suffix would make an invalid label value
    ],
)
def test_a_gpu_product_selects_whole_and_time_sliced_gpus(product, values):
    # GIVEN a spec naming a GPU product and nothing else about nodes WHEN rendered THEN one required term selects
    # the product's whole and time-sliced nodes, and the objects still pass schema validation
    spec = {**copy.deepcopy(ONE_RUN), "resources": {"gpus": 1, "gpu_product": product}}
    rendered = render(Experiment(**spec), owner="x", namespace="ns")
    pod = pod_spec(rendered.job)
    if len(values) == 1:
        assert pod["nodeSelector"] == {"nvidia.com/gpu.product": values[0]} and "affinity" not in pod
    else:
        assert "nodeSelector" not in pod
        required = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert required["nodeSelectorTerms"] == [
            {"matchExpressions": [{"key": "nvidia.com/gpu.product", "operator": "In", "values": values}]}
        ]
    validate_schema(rendered.objects)


@pytest.mark.parametrize(
    ("runs", "parallelism", "expected"),
    [(10_000, None, DEFAULT_PARALLELISM), (12, None, 12), (10_000, 500, 500), (3, 8, 3)],
)
def test_cluster_parallelism_defaults_to_a_cap_and_the_spec_overrides_it(runs, parallelism, expected):
    # GIVEN a sweep of `runs` runs WHEN rendered THEN the Job runs at most DEFAULT_PARALLELISM at once unless the
    # spec says otherwise, and never more than its runs
    spec = {**copy.deepcopy(ONE_RUN), "sweep": {"grid": {"i": list(range(runs))}}}
    if parallelism is not None:
        spec["parallelism"] = parallelism
    job = render(Experiment(**spec), owner="x").job
    assert job["spec"]["completions"] == runs
    assert job["spec"]["parallelism"] == expected
