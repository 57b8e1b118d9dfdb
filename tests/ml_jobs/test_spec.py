# ruff: noqa: E501 - the table holds whole one-line messages
"""Experiment specs: every bad input is refused with one line naming the field and the problem.

Table-driven: each case patches one field of a valid spec and states the exact message expected.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path

import pytest
from kubernetes.utils import parse_quantity as client_parse_quantity

from ml_jobs import SpecError
from ml_jobs.quantity import format_duration, parse_duration, parse_quantity
from ml_jobs.spec import Experiment, load_spec, parse_spec

DELETE = object()
VALID = {
    "name": "exp",
    "image": "registry.example.com/team/train:1.0",
    "command": ["python", "train.py"],
    "args": ["--lr", "{{ lr }}"],
    "sweep": {"grid": {"lr": [0.1, 0.01]}},
}


def patched(path: str, value: object) -> dict:
    spec = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node = spec
    for key in parents:
        node = node.setdefault(key, {})
    if value is DELETE:
        del node[last]
    else:
        node[last] = value
    return spec


# (case, field patched, value, the one-line message after "spec.yaml: ")
BAD = [
    ("name-missing", "name", DELETE, "name: required"),
    ("name-too-long", "name", "x" * 64, "name: must be at most 63 characters, got 64"),
    (
        "name-uppercase",
        "name",
        "My-Exp",
        "name: 'My-Exp' is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
    (
        "name-underscore",
        "name",
        "my_exp",
        "name: 'my_exp' is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
    (
        "name-trailing-dash",
        "name",
        "exp-",
        "name: 'exp-' is not a DNS-1123 label: use lower-case letters, digits and '-', starting and ending with a letter or digit",
    ),
    ("name-number", "name", 12, "name: must be a string, got 12"),
    ("priority-unknown", "priority", "urgent", "priority: must be 'high', 'normal' or 'low', got 'urgent'"),
    ("priority-number", "priority", 1, "priority: must be 'high', 'normal' or 'low', got 1"),
    (
        "name-revision-suffix",
        "name",
        "digits-sweep-r2",
        "name: 'digits-sweep-r2' ends like a revision suffix (-r<N>): its Job, ConfigMap and results directory would be those of revision N of another experiment; rename it",
    ),
    ("image-missing", "image", DELETE, "image: required"),
    (
        "image-spaces",
        "image",
        "my image",
        "image: 'my image' is not a container image reference (e.g. registry.example.com/team/train:1.2)",
    ),
    (
        "image-uppercase-repo",
        "image",
        "Team/Train:1",
        "image: 'Team/Train:1' is not a container image reference (e.g. registry.example.com/team/train:1.2)",
    ),
    (
        "command-string",
        "command",
        "python train.py",
        "command: must be a list of strings, e.g. ['python', 'train.py']",
    ),
    ("command-empty", "command", [], "command: must not be empty"),
    ("command-empty-program", "command", ["", "x"], "command[0]: must name a program, got an empty string"),
    ("command-item-number", "command", ["python", 3], "command[1]: must be a string, got 3"),
    (
        "args-template-unknown",
        "args",
        ["--lr", "{{ lrr }}"],
        "args[1]: {{ lrr }} is not a parameter of the sweep; did you mean 'lr'?",
    ),
    ("env-number", "env", {"SEED": 1}, "env.SEED: must be a string (quote it in YAML), got 1"),
    (
        "env-reserved",
        "env",
        {"RESULTS_DIR": "/x"},
        "env.RESULTS_DIR: reserved: ml-jobs sets it for every run (see the environment contract)",
    ),
    (
        "env-param-prefix",
        "env",
        {"PARAM_LR": "1"},
        "env.PARAM_LR: reserved: ml-jobs sets it for every run (see the environment contract)",
    ),
    ("env-bad-name", "env", {"1X": "a"}, "env.1X: not a valid environment variable name"),
    ("workdir-relative", "workdir", "app", "workdir: must be an absolute path in the image, got 'app'"),
    ("unknown-top-key", "resource", {}, "resource: unknown key; did you mean 'resources'?"),
    (
        "unknown-top-key-far",
        "zzzz",
        1,
        "zzzz: unknown key; expected one of 'args', 'command', 'deadline', 'env', 'final_exit_codes', 'image', 'name', 'nodes', 'objective', 'parallelism', 'priority', 'python', 'queue', 'resources', 'results', 'retries', 'sweep', 'ttl', 'workdir'",
    ),
    ("resources-not-mapping", "resources", 4, "resources: must be a mapping, got 4"),
    (
        "memory-gb",
        "resources.memory",
        "16gb",
        "resources.memory: '16gb' is not a Kubernetes quantity (did you mean '16Gi'?)",
    ),
    (
        "memory-GB",
        "resources.memory",
        "16GB",
        "resources.memory: '16GB' is not a Kubernetes quantity (did you mean '16Gi'?)",
    ),
    ("memory-fraction-bytes", "resources.memory", "0.5", "resources.memory: '0.5' is not a whole number of bytes"),
    ("memory-negative", "resources.memory", "-1Gi", "resources.memory: must be more than 0, got '-1Gi'"),
    (
        "memory-bytes",
        "resources.memory",
        512,
        "resources.memory: '512' is 512 bytes, less than any run needs (at least 1Mi; did you mean '512Mi'?)",
    ),
    (
        "memory-kilobytes",
        "resources.memory",
        "900Ki",
        "resources.memory: '900Ki' is 921,600 bytes, less than any run needs (at least 1Mi; did you mean '900Mi'?)",
    ),
    (
        "memory-limit-bytes",
        "resources.limits.memory",
        "2048",
        "resources.limits.memory: '2048' is 2,048 bytes, less than any run needs (at least 1Mi; did you mean '2048Mi'?)",
    ),
    (
        "cpu-cores",
        "resources.cpu",
        "2 cores",
        "resources.cpu: '2 cores' is not a Kubernetes quantity (did you mean '2'?)",
    ),
    ("cpu-zero", "resources.cpu", 0, "resources.cpu: must be more than 0, got '0'"),
    (
        "cpu-tiny",
        "resources.cpu",
        "0.0001",
        "resources.cpu: '0.0001' is below the smallest CPU amount Kubernetes schedules (1m)",
    ),
    (
        "cpu-bool",
        "resources.cpu",
        True,
        "resources.cpu: must be a Kubernetes quantity such as 500m or 2, got true",
    ),
    (
        "cpu-over-limit",
        "resources",
        {"cpu": "4", "limits": {"cpu": "2"}},
        "resources.cpu: request 4 is above its limit 2 (limits.cpu)",
    ),
    (
        "memory-over-limit",
        "resources",
        {"memory": "8Gi", "limits": {"memory": "4Gi"}},
        "resources.memory: request 8Gi is above its limit 4Gi (limits.memory)",
    ),
    (
        "gpus-fraction",
        "resources.gpus",
        0.5,
        "resources.gpus: must be a whole number of GPUs (GPUs are not shared by requests), got 0.5",
    ),
    ("gpus-negative", "resources.gpus", -1, "resources.gpus: must be ≥ 0, got -1"),
    ("gpus-string", "resources.gpus", "1", "resources.gpus: must be an integer, got '1'"),
    (
        "gpu-product-space",
        "resources",
        {"gpus": 1, "gpu_product": "NVIDIA H100 80GB HBM3"},
        "resources.gpu_product: 'NVIDIA H100 80GB HBM3' is not a valid label value (did you mean 'NVIDIA-H100-80GB-HBM3'?)",
    ),
    (
        "gpu-product-no-gpus",
        "resources",
        {"gpu_product": "NVIDIA-L4"},
        "resources.gpu_product: needs at least one GPU in resources.gpus, got 0",
    ),
    ("limits-unknown", "resources.limits", {"gpu": 1}, "resources.limits.gpu: unknown key; did you mean 'cpu'?"),
    (
        "location-typo",
        "nodes.location",
        "onprme",
        "nodes.location: 'onprme' is not a value of herd.dev/location; did you mean 'onprem'?",
    ),
    (
        "tier-unknown",
        "nodes.tier",
        "huge",
        "nodes.tier: 'huge' is not a value of herd.dev/tier; expected one of 'general', 'gpu', 'high-cpu', 'high-mem'",
    ),
    (
        "tier-gpu-without-gpus",
        "nodes.tier",
        "gpu",
        "nodes.tier: GPU nodes are tainted nvidia.com/gpu=present:NoSchedule; request resources.gpus to run there",
    ),
    ("pool-bad-value", "nodes.pool", "a b", "nodes.pool: 'a b' is not a valid label value"),
    ("pool-empty-list", "nodes.pool", [], "nodes.pool: must not be an empty list"),
    (
        "prefer-typo",
        "nodes.prefer",
        {"locaton": "onprem"},
        "nodes.prefer.locaton: unknown key; did you mean 'location'?",
    ),
    ("retries-negative", "retries", -1, "retries: must be ≥ 0, got -1"),
    ("retries-float", "retries", 2.5, "retries: must be an integer, got 2.5"),
    ("retries-huge", "retries", 1000, "retries: must be ≤ 100, got 1000"),
    (
        "exit-zero",
        "final_exit_codes",
        [0],
        "final_exit_codes[0]: 0 means success; it cannot be a final failure code",
    ),
    ("exit-256", "final_exit_codes", [256], "final_exit_codes[0]: exit codes are 1..255, got 256"),
    ("exit-dup", "final_exit_codes", [3, 3], "final_exit_codes: lists an exit code twice"),
    (
        "deadline-bad",
        "deadline",
        "2 hours",
        "deadline: '2 hours' is not a duration (use e.g. 90s, 45m, 1h30m, 7d)",
    ),
    ("deadline-zero", "deadline", 0, "deadline: must be at least 1s, got 0s"),
    ("ttl-list", "ttl", [1], "ttl: must be a duration such as 90s, 45m, 2h or 7d, got a list"),
    (
        "ttl-zero",
        "ttl",
        "0",
        "ttl: 0s would delete the finished Job and its pods before an ml-jobs command can record each run's state, node and exit code (the registry would say 'gone'); use at least 1m",
    ),
    (
        "ttl-seconds",
        "ttl",
        30,
        "ttl: 30s would delete the finished Job and its pods before an ml-jobs command can record each run's state, node and exit code (the registry would say 'gone'); use at least 1m",
    ),
    ("parallelism-zero", "parallelism", 0, "parallelism: must be ≥ 1, got 0"),
    (
        "results-claim-bad",
        "results.claim",
        "My_Claim",
        "results.claim: 'My_Claim' is not a valid PersistentVolumeClaim name (DNS-1123 subdomain)",
    ),
    (
        "results-relative",
        "results.mount_path",
        "results",
        "results.mount_path: must be an absolute path, got 'results'",
    ),
    ("results-root", "results.mount_path", "/", "results.mount_path: cannot be '/'"),
    (
        "results-etc",
        "results.mount_path",
        "/etc/ml-jobs/x",
        "results.mount_path: /etc/ml-jobs is where ml-jobs mounts the sweep definition",
    ),
    (
        "objective-goal",
        "objective",
        {"metric": "acc", "goal": "maximize"},
        "objective.goal: must be 'max' or 'min', got 'maximize'",
    ),
    ("objective-no-metric", "objective", {"goal": "max"}, "objective.metric: required"),
    ("sweep-typo", "sweep", {"grdi": {"lr": [1]}}, "sweep.grdi: unknown key; did you mean 'grid'?"),
    (
        "sweep-two-kinds",
        "sweep",
        {"grid": {"lr": [1]}, "list": [{"a": 1}]},
        "sweep: give exactly one of grid, random, list, product",
    ),
    ("sweep-empty", "sweep", {}, "sweep: give exactly one of grid, random, list, product"),
    ("grid-not-list", "sweep", {"grid": {"lr": 0.1}}, "sweep.grid.lr: must be a list, got 0.1"),
    ("grid-empty-values", "sweep", {"grid": {"lr": []}}, "sweep.grid.lr: must not be empty"),
    (
        "grid-nested-value",
        "sweep",
        {"grid": {"lr": [0.1, [0.2]]}},
        "sweep.grid.lr[1]: must be a string, number or true/false, got a list",
    ),
    ("grid-nan", "sweep", {"grid": {"lr": [float("nan")]}}, "sweep.grid.lr[0]: must be a finite number, got nan"),
    (
        "grid-bad-name",
        "sweep",
        {"grid": {"learning-rate": [1]}},
        "sweep.grid.learning-rate: parameter names start with a letter or '_' and hold only letters, digits and '_' (each becomes an environment variable)",
    ),
    (
        "grid-env-clash",
        "sweep",
        {"grid": {"lr": [1], "LR": [2]}},
        "sweep: parameters 'lr' and 'LR' both become PARAM_LR",
    ),
    (
        "random-no-count",
        "sweep",
        {"random": {"params": {"lr": {"uniform": [0, 1]}}}},
        "sweep.random.count: required",
    ),
    (
        "random-zero-count",
        "sweep",
        {"random": {"count": 0, "params": {"lr": {"uniform": [0, 1]}}}},
        "sweep.random.count: must be ≥ 1, got 0",
    ),
    (
        "random-bad-dist",
        "sweep",
        {"random": {"count": 2, "params": {"lr": {"normal": [0, 1]}}}},
        "sweep.random.params.lr.normal: unknown key; did you mean 'uniform'?",
    ),
    (
        "random-two-dists",
        "sweep",
        {"random": {"count": 2, "params": {"lr": {"uniform": [0, 1], "loguniform": [1, 2]}}}},
        "sweep.random.params.lr: give exactly one of uniform, loguniform, randint, choice",
    ),
    (
        "random-reversed",
        "sweep",
        {"random": {"count": 2, "params": {"lr": {"uniform": [1, 0]}}}},
        "sweep.random.params.lr: uniform needs [low, high] with low < high, got [1.0, 0.0]",
    ),
    (
        "random-log-zero",
        "sweep",
        {"random": {"count": 2, "params": {"lr": {"loguniform": [0, 1]}}}},
        "sweep.random.params.lr: loguniform needs a positive lower bound, got 0.0",
    ),
    (
        "random-one-bound",
        "sweep",
        {"random": {"count": 2, "params": {"lr": {"uniform": [1]}}}},
        "sweep.random.params.lr.uniform: needs 2 items, got 1",
    ),
    (
        "random-randint-float",
        "sweep",
        {"random": {"count": 2, "params": {"n": {"randint": [1, 2.5]}}}},
        "sweep.random.params.n.randint[1]: must be an integer, got 2.5",
    ),
    (
        "random-choice-empty",
        "sweep",
        {"random": {"count": 2, "params": {"k": {"choice": []}}}},
        "sweep.random.params.k.choice: must not be empty",
    ),
    (
        "list-mismatch",
        "sweep",
        {"list": [{"a": 1}, {"b": 2}]},
        "sweep.list[1]: has parameters ['b'] but list[0] has ['a']; every run of a list needs the same parameters",
    ),
    ("list-not-mapping", "sweep", {"list": [1]}, "sweep.list[0]: must be a mapping, got 1"),
    ("product-one", "sweep", {"product": [{"grid": {"a": [1]}}]}, "sweep.product: needs 2 items, got 1"),
    (
        "product-dup",
        "sweep",
        {"product": [{"grid": {"a": [1]}}, {"list": [{"a": 2}]}]},
        "sweep.product[1]: parameter 'a' is already in product[0]",
    ),
    (
        "product-inner-typo",
        "sweep",
        {"product": [{"grid": {"a": [1]}}, {"rnadom": {}}]},
        "sweep.product[1].rnadom: unknown key; did you mean 'random'?",
    ),
    (
        "too-many-runs",
        "sweep",
        {"grid": {"a": list(range(1000)), "b": list(range(1000))}},
        "sweep: 1,000,000 runs; one sweep holds at most 100,000",
    ),
]


@pytest.mark.parametrize(("case", "path", "value", "message"), BAD, ids=[c[0] for c in BAD])
def test_bad_spec_is_refused_with_one_line_naming_field_and_problem(case, path, value, message):
    # GIVEN a valid spec with one field made bad WHEN it is parsed THEN the error names field and problem
    with pytest.raises(SpecError) as raised:
        parse_spec(patched(path, value), "spec.yaml")
    assert str(raised.value) == f"spec.yaml: {message}"
    assert "\n" not in str(raised.value)
    assert raised.value.source == "spec.yaml"
    assert f"{raised.value.field}: {raised.value.problem}" == message


def test_the_valid_base_spec_is_valid():
    exp = parse_spec(copy.deepcopy(VALID), "spec.yaml")
    assert exp.runs == 2
    assert exp.sweep.expand() == [{"lr": 0.1}, {"lr": 0.01}]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "name: [unclosed\n",
            "spec.yaml: not valid YAML: line 1, column 7: while parsing a flow sequence, expected ',' or ']', but "
            "got '<stream end>' at line 2, column 1",
        ),
        (
            "name: a\nname: b\n",
            "spec.yaml: not valid YAML: line 2, column 1: key 'name' is given twice (first on line 1)",
        ),
        (
            "sweep:\n  grid:\n    lr: [0.1, 0.01]\n    lr: [0.2]\n",
            "spec.yaml: not valid YAML: line 4, column 5: key 'lr' is given twice (first on line 3)",
        ),
        # An unclosed quote is reported where it opens, not where the parser gave up (the end of the file).
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nenv:\n  A: ok\n  B: 'unclosed\n" + "  C: x\n" * 20,
            "spec.yaml: not valid YAML: line 6, column 6: while scanning a quoted scalar, found unexpected end of "
            "stream at line 27, column 1",
        ),
        (
            "name: a\n---\nname: b\n",
            "spec.yaml: not valid YAML: line 1, column 1: expected a single document in the stream, but found "
            "another document at line 2, column 1",
        ),
        (
            "name: exp\n\tcommand: [python]\n",
            "spec.yaml: not valid YAML: line 2, column 1: while scanning for the next token, found character '\\t' that cannot start any token",
        ),
        ("- name: a\n", "spec.yaml: an experiment spec is a mapping of fields, got a list"),
        ("", "spec.yaml: an experiment spec is a mapping of fields, got nothing"),
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nsweep:\n  grid:\n    lr: [0.1, fast]\n  grid2: {}\n",
            "spec.yaml: sweep.grid2: unknown key; did you mean 'grid'?",
        ),
        (
            "name: exp\nimage: python:3.11\ncommand: [python]\nobjective: {metric: acc, goal: no}\n",
            "spec.yaml: objective.goal: must be 'max' or 'min', got 'no'",  # YAML 1.2: no is a word
        ),
    ],
)
def test_yaml_level_errors(tmp_path, monkeypatch, text, message):
    monkeypatch.chdir(tmp_path)
    Path("spec.yaml").write_text(text)
    with pytest.raises(SpecError) as raised:
        load_spec("spec.yaml")
    assert str(raised.value) == message


def test_missing_file(tmp_path):
    with pytest.raises(SpecError, match=r"nope\.yaml: no such file$"):
        load_spec(tmp_path / "nope.yaml")


def test_python_construction_checks_itself_and_names_the_field():
    with pytest.raises(SpecError) as raised:
        Experiment(name="exp", image="python:3.11", command=["python"], resources={"memory": "16gb"})
    assert (
        str(raised.value)
        == "<python>: resources.memory: '16gb' is not a Kubernetes quantity (did you mean '16Gi'?)"
    )


def test_python_and_yaml_give_the_same_experiment(tmp_path):
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: exp\nimage: registry.example.com/team/train:1.0\ncommand: [python, train.py]\n"
        "args: ['--lr', '{{ lr }}']\nsweep:\n  grid:\n    lr: [0.1, 0.01]\n"
    )
    from_yaml = load_spec(path)
    from_python = Experiment(**copy.deepcopy(VALID))
    assert from_yaml == from_python
    assert from_yaml.spec_hash() == from_python.spec_hash()


def test_spec_hash_is_short_stable_and_a_label_value():
    exp = parse_spec(copy.deepcopy(VALID))
    digest = exp.spec_hash()
    assert len(digest) == 12 and digest.isalnum() and digest == digest.lower()
    # Writing a default explicitly does not change the hash; changing anything that matters does.
    assert parse_spec({**copy.deepcopy(VALID), "retries": 2}).spec_hash() == digest
    assert parse_spec({**copy.deepcopy(VALID), "retries": 3}).spec_hash() != digest
    assert parse_spec({**copy.deepcopy(VALID), "image": "python:3.12"}).spec_hash() != digest
    # Grid axes enumerate in the order written, so that order is part of the spec.
    a = parse_spec({**copy.deepcopy(VALID), "args": [], "sweep": {"grid": {"x": [1, 2], "y": [3, 4]}}})
    b = parse_spec({**copy.deepcopy(VALID), "args": [], "sweep": {"grid": {"y": [3, 4], "x": [1, 2]}}})
    assert a.sweep.params(1) != b.sweep.params(1)
    assert a.spec_hash() != b.spec_hash()


def test_defaults_and_helpers():
    exp = parse_spec(
        {
            **copy.deepcopy(VALID),
            "resources": {"cpu": "500m", "memory": "2Gi", "limits": {"cpu": 2}},
            "deadline": "1h30m",
            "ttl": 3600,
            "final_exit_codes": [4, 3],
        }
    )
    assert exp.resources.cpu_cores == 0.5
    assert exp.resources.cpu_limit == "2"
    assert exp.resources.memory_limit == "2Gi"
    assert exp.resources.memory_bytes == 2 * 1024**3
    assert exp.deadline == 5400 and exp.ttl == 3600
    assert exp.final_exit_codes == [3, 4]
    assert exp.results.claim == "herd-results" and exp.results.mount_path == "/results"
    assert exp.retries == 2


def test_a_spec_without_sweep_is_one_run_without_parameters():
    exp = Experiment(name="once", image="python:3.11", command=["python", "-c", "pass"])
    assert exp.runs == 1
    assert exp.sweep.params(0) == {}
    assert exp.sweep.expand() == [{}]


@pytest.mark.parametrize(
    "text",
    [
        "1",
        "0.5",
        "500m",
        "2",
        "100n",
        "3u",
        "1k",
        "16Gi",
        "512Mi",
        "1.5G",
        "1e3",
        "2E6",
        "1Ki",
        "7Ti",
        ".5",
        "1.",
        "+2",
    ],
)
def test_quantity_parser_agrees_with_the_kubernetes_client(text):
    assert parse_quantity(text) == Decimal(client_parse_quantity(text))


@pytest.mark.parametrize("text", ["16gb", "2 cores", "", "Gi", "1.2.3", "0x10", "1Gib", "--1"])
def test_quantity_parser_refuses_what_the_kubernetes_client_refuses(text):
    with pytest.raises(ValueError):
        parse_quantity(text)
    with pytest.raises(ValueError):
        client_parse_quantity(text)


@pytest.mark.parametrize(
    ("value", "seconds"), [(90, 90), ("90", 90), ("90s", 90), ("45m", 2700), ("1h30m", 5400), ("7d", 604800)]
)
def test_durations(value, seconds):
    assert parse_duration(value) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("value", ["1.5h", "h", "2 hours", "-5s", "1m1h", ""])
def test_bad_durations(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("name", ["exp-r2d2", "mirror", "r2", "exp-rev2", "exp-r"])
def test_names_only_look_like_revisions_when_they_end_in_dash_r_digits(name):
    # GIVEN a name with an r and digits that is not a revision suffix THEN it is accepted
    assert parse_spec(patched("name", name), "spec.yaml").name == name


def test_numbers_in_exponent_form_are_numbers(tmp_path):
    # GIVEN a spec that writes learning rates the usual way (YAML 1.2; YAML 1.1 reads 1e-5 as a string)
    path = tmp_path / "spec.yaml"
    path.write_text(
        "name: exp\nimage: python:3.11\ncommand: [python]\nenv: {DEBUG: yes}\nsweep:\n  product:\n"
        "    - grid: {wd: [1e-4, 1E-2]}\n    - random: {seed: 1, count: 2, params: {lr: {loguniform: [1e-5, 1e-1]}}}\n"
    )
    # WHEN it is loaded THEN the bounds and grid values are numbers, and `yes` is the string it looks like
    exp = load_spec(path)
    assert exp.sweep_ is not None and exp.sweep_.product is not None
    assert exp.sweep.definition()["product"][1]["random"]["params"]["lr"] == {"loguniform": [1e-5, 0.1]}
    assert [p["wd"] for p in exp.sweep.expand()] == [1e-4, 1e-4, 1e-2, 1e-2]
    assert exp.env == {"DEBUG": "yes"}


def test_the_smallest_memory_and_ttl_are_accepted():
    exp = parse_spec({**copy.deepcopy(VALID), "resources": {"memory": "1Mi"}, "ttl": "1m"}, "spec.yaml")
    assert (exp.resources.memory_bytes, exp.ttl) == (2**20, 60)


def test_the_objective_makes_each_of_its_forms():
    from ml_jobs.spec import Objective

    objective = Objective(metric="val_loss", goal="min")
    assert objective.annotation() == "val_loss:min"
    assert objective.to_record() == {"metric": "val_loss", "goal": "min"}
    assert Objective.from_record(objective.to_record()) == objective
    assert Objective.from_record({"metric": "acc"}) == Objective(metric="acc", goal="max")
    assert Objective.from_record({}) is None
