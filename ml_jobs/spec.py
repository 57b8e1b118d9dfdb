"""The experiment spec: one typed object, written in YAML or built in Python, that checks itself.

An experiment is a container image, a command, the resources one run needs, where runs may be placed (through
herd's label taxonomy), how runs are retried, where results go, and a sweep of parameters. What Kubernetes would
refuse is refused here, with the field path and the reason on one line::

    examples/bad.yaml: resources.memory: '16gb' is not a Kubernetes quantity (did you mean '16Gi'?)

``load_spec(path)`` reads a YAML file (as YAML 1.2: ``1e-5`` is a number); ``Experiment(...)`` builds the same
object in Python. Both raise ``SpecError`` on bad input.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import math
import posixpath
import re
from collections.abc import Iterator
from contextvars import ContextVar
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from ml_jobs import _shim, layout, taxonomy
from ml_jobs import priority as priority_classes
from ml_jobs.errors import SpecError, YamlError
from ml_jobs.priority import Priority
from ml_jobs.quantity import format_duration, parse_duration, parse_quantity
from ml_jobs.user_yaml import load_yaml

__all__ = [
    "Distribution",
    "Experiment",
    "Limits",
    "NodePreference",
    "Nodes",
    "Objective",
    "RandomSweep",
    "Resources",
    "Results",
    "Sweep",
    "load_spec",
    "parse_spec",
]

PYTHON_SOURCE = "<python>"
_SOURCE: ContextVar[str] = ContextVar("spec_source", default=PYTHON_SOURCE)
MAX_NAME = 63
MIN_MEMORY_BYTES = 2**20  # 1Mi: below it no process starts; "memory: 512" meant 512Mi, not 512 bytes
# The shortest ttl: `status --watch` polls every few seconds, so a watched sweep's end is recorded well within it.
MIN_TTL_SECONDS = 60
# layout.job_name names revision N of an experiment <name>-r<N>: an experiment may not be named like one.
_REVISION_SUFFIX = re.compile(r"-r[0-9]+$")
_PARAM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")
# A container image reference: [registry[:port]/]path[:tag][@digest] (the distribution reference grammar).
_IMAGE = re.compile(
    r"^(?:(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*"
    r"(?::[0-9]+)?|\[[0-9a-fA-F:]+\](?::[0-9]+)?)/)?"
    r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,})?$"
)
_RESERVED_ENV = {
    layout.ENV_INDEX,
    layout.ENV_RUN_NAME,
    layout.ENV_EXPERIMENT,
    layout.ENV_ATTEMPT,
    layout.ENV_PARAMS_FILE,
    layout.ENV_RESULTS_DIR,
    layout.ENV_CHECKPOINT_DIR,
    layout.ENV_METRICS_FILE,
    layout.ENV_JOB_COMPLETION_INDEX,
    layout.ENV_SWEEP_FILE,
    layout.ENV_RESULTS_ROOT,
    layout.ENV_FAILURE_COUNT,
    layout.ENV_TERMINATION_LOG,
}


def _show(value: Any) -> str:
    """A user's value as it appears in an error message."""
    if value is None:
        return "nothing"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "...'"


def _err(kind: str, message: str, at: str = "") -> PydanticCustomError:
    """A validation error of ours; ``at`` extends the field path (a key of a mapping, a field of a model)."""
    return PydanticCustomError(f"herd.{kind}", "{problem}", {"problem": message, "at": at})


def _did_you_mean(word: str, choices: Iterator[str] | list[str] | set[str]) -> str:
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.6)
    if close:
        return f"did you mean {close[0]!r}?"
    return "expected one of " + ", ".join(repr(o) for o in options)


class _Model(BaseModel):
    """Strict, frozen, and unknown keys are an error with a suggestion."""

    model_config = ConfigDict(strict=True, frozen=True, extra="forbid", populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            known = {field.alias or name for name, field in cls.model_fields.items()}
            for key in data:
                if key not in known:
                    raise _err("unknown_key", f"unknown key; {_did_you_mean(str(key), known)}", at=str(key))
        return data


# -------------------------------------------------------------------------------------------------- values


def _quantity(kind: str, example: str) -> Any:
    def check(value: Any) -> str:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise _err("quantity", f"must be a Kubernetes quantity such as {example}, got {_show(value)}")
        text = str(value) if not isinstance(value, float) else format(value, "f").rstrip("0").rstrip(".")
        try:
            amount = parse_quantity(text)
        except ValueError:
            hint = _quantity_hint(text, kind) or f"use e.g. {example}"
            raise _err("quantity", f"{text!r} is not a Kubernetes quantity ({hint})") from None
        if amount <= 0:
            raise _err("quantity", f"must be more than 0, got {text!r}")
        if kind == "cpu" and amount < Decimal("0.001"):
            raise _err("quantity", f"{text!r} is below the smallest CPU amount Kubernetes schedules (1m)")
        if kind == "memory" and amount != amount.to_integral_value():
            raise _err("quantity", f"{text!r} is not a whole number of bytes")
        if kind == "memory" and amount < MIN_MEMORY_BYTES:
            plain = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*[A-Za-z]*\s*", text)
            guess = f"{plain.group(1)}Mi" if plain else "1Mi"
            raise _err(
                "quantity",
                f"{text!r} is {int(amount):,} bytes, less than any run needs "
                f"(at least 1Mi; did you mean {guess!r}?)",
            )
        return text

    return BeforeValidator(check)


def _quantity_hint(text: str, kind: str) -> str | None:
    match = re.match(r"^\s*([0-9.]+)\s*([A-Za-z]+)\s*$", text)
    if not match:
        return None
    number, unit = match.groups()
    unit_fix = {"kb": "Ki", "kib": "Ki", "mb": "Mi", "mib": "Mi", "gb": "Gi", "gib": "Gi", "tb": "Ti", "tib": "Ti"}
    if kind == "memory" and unit.lower() in unit_fix:
        return f"did you mean '{number}{unit_fix[unit.lower()]}'?"
    if kind == "cpu" and unit.lower() in {"core", "cores", "cpu", "cpus"}:
        return f"did you mean '{number}'?"
    return None


def _duration(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _err("duration", f"must be a duration such as 90s, 45m, 2h or 7d, got {_show(value)}")
    try:
        seconds = parse_duration(value)
    except ValueError:
        raise _err("duration", f"{value!r} is not a duration (use e.g. 90s, 45m, 1h30m, 7d)") from None
    return seconds


Duration = Annotated[int, BeforeValidator(_duration)]


def _scalar(value: Any) -> Any:
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise _err("scalar", f"must be a finite number, got {value}")
        return value
    raise _err("scalar", f"must be a string, number or true/false, got {_show(value)}")


Scalar = Annotated[Any, BeforeValidator(_scalar)]


def _param_name(name: str) -> str:
    if not _PARAM_NAME.match(name):
        raise _err(
            "param_name",
            "parameter names start with a letter or '_' and hold only letters, digits and '_' "
            "(each becomes an environment variable)",
        )
    return name


ParamName = Annotated[str, BeforeValidator(_param_name)]


# -------------------------------------------------------------------------------------------------- models


class Objective(_Model):
    """The metric that ranks runs: a key of every run's ``metrics.json``."""

    metric: str = Field(min_length=1)
    goal: Literal["max", "min"] = "max"

    @field_validator("metric")
    @classmethod
    def _metric(cls, value: str) -> str:
        if value != value.strip() or not value.strip():
            raise _err("metric", f"metric names have no surrounding spaces, got {value!r}")
        return value

    # Its other forms, each made here: the objects' annotation, the registry's record (sweep.json: the metric).
    def annotation(self) -> str:
        """``val_accuracy:max``: the ``herd.dev/objective`` annotation of the objects."""
        return f"{self.metric}:{self.goal}"

    def to_record(self) -> dict[str, str]:
        """``{"metric": ..., "goal": ...}``: how the registry records it."""
        return {"metric": self.metric, "goal": self.goal}

    @classmethod
    def from_record(cls, doc: dict[str, str] | None) -> Objective | None:
        """The objective the registry recorded (``None`` for an experiment without one)."""
        if not doc or not doc.get("metric"):
            return None
        return cls.model_validate({"metric": doc["metric"], "goal": doc.get("goal", "max")})


class Results(_Model):
    """Where runs write: a PersistentVolumeClaim (the shared NFS volume) mounted at ``mount_path`` in every pod."""

    claim: str = "herd-results"
    mount_path: str = "/results"

    @field_validator("claim")
    @classmethod
    def _claim(cls, value: str) -> str:
        if not taxonomy.is_dns1123_subdomain(value):
            raise _err("claim", f"{value!r} is not a valid PersistentVolumeClaim name (DNS-1123 subdomain)")
        return value

    @field_validator("mount_path")
    @classmethod
    def _mount_path(cls, value: str) -> str:
        if not value.startswith("/"):
            raise _err("mount_path", f"must be an absolute path, got {value!r}")
        normal = posixpath.normpath(value)
        if normal == "/":
            raise _err("mount_path", "cannot be '/'")
        if normal == layout.CONFIG_MOUNT_PATH or normal.startswith(layout.CONFIG_MOUNT_PATH + "/"):
            raise _err("mount_path", f"{layout.CONFIG_MOUNT_PATH} is where ml-jobs mounts the sweep definition")
        return normal


class Limits(_Model):
    """Limits above the requests (default: limits equal requests)."""

    cpu: Annotated[str | None, _quantity("cpu", "500m or 2")] = None
    memory: Annotated[str | None, _quantity("memory", "512Mi or 16Gi")] = None


class Resources(_Model):
    """What one run needs. The scheduler places runs by these; the container may not exceed its limits."""

    cpu: Annotated[str, _quantity("cpu", "500m or 2")] = "1"
    memory: Annotated[str, _quantity("memory", "512Mi or 16Gi")] = "1Gi"
    gpus: int = Field(default=0, ge=0, le=64)
    gpu_product: str | None = None
    limits: Limits = Limits()

    @field_validator("gpus", mode="before")
    @classmethod
    def _whole_gpus(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise _err("gpus", f"must be a whole number of GPUs (GPUs are not shared by requests), got {value}")
        return value

    @field_validator("gpu_product")
    @classmethod
    def _gpu_product(cls, value: str | None) -> str | None:
        if value is not None and (not value or not taxonomy.is_valid_label_value(value)):
            suggestion = taxonomy.gpu_product_label_value(value)
            hint = f" (did you mean {suggestion!r}?)" if suggestion and suggestion != value else ""
            raise _err("gpu_product", f"{value!r} is not a valid label value{hint}")
        return value

    @model_validator(mode="after")
    def _requests_within_limits(self) -> Resources:
        for name in ("cpu", "memory"):
            limit = getattr(self.limits, name)
            request = getattr(self, name)
            if limit is not None and parse_quantity(request) > parse_quantity(limit):
                raise _err("limit", f"request {request} is above its limit {limit} (limits.{name})", at=name)
        if self.gpu_product is not None and self.gpus == 0:
            raise _err("gpu_product", "needs at least one GPU in resources.gpus, got 0", at="gpu_product")
        return self

    @property
    def cpu_limit(self) -> str:
        """The CPU limit (the request when no separate limit is set)."""
        return self.limits.cpu or self.cpu

    @property
    def memory_limit(self) -> str:
        """The memory limit (the request when no separate limit is set)."""
        return self.limits.memory or self.memory

    @property
    def cpu_cores(self) -> float:
        """The CPU request in cores."""
        return float(parse_quantity(self.cpu))

    @property
    def memory_bytes(self) -> int:
        """The memory request in bytes."""
        return int(parse_quantity(self.memory))


def _label_values(key: str, allowed: tuple[str, ...] | None) -> Any:
    def check(value: Any) -> Any:
        values = value if isinstance(value, list) else [value]
        for v in values:
            if not isinstance(v, str):
                raise _err("node_label", f"must be a string or a list of strings, got {_show(v)}")
            if allowed is not None and v not in allowed:
                raise _err("node_label", f"{v!r} is not a value of {key}; {_did_you_mean(v, set(allowed))}")
            if not taxonomy.is_valid_label_value(v):
                raise _err("node_label", f"{v!r} is not a valid label value")
        if isinstance(value, list) and not value:
            raise _err("node_label", "must not be an empty list")
        return value

    return BeforeValidator(check)


_LOCATION = taxonomy.LABELS["location"]
_POOL = taxonomy.LABELS["pool"]
_TIER = taxonomy.LABELS["tier"]
NodeValue = str | list[str]


class NodePreference(_Model):
    """Node labels the scheduler should prefer, but may ignore when no such node is free."""

    location: Annotated[NodeValue | None, _label_values(_LOCATION.key, _LOCATION.values)] = None
    pool: Annotated[NodeValue | None, _label_values(_POOL.key, _POOL.values)] = None
    tier: Annotated[NodeValue | None, _label_values(_TIER.key, _TIER.values)] = None


class Nodes(NodePreference):
    """Which nodes runs may use, by herd's label taxonomy; a list means any of these values."""

    prefer: NodePreference = NodePreference()

    def required(self) -> dict[str, list[str]]:
        """Label key -> allowed values, for the labels the spec requires."""
        return _selected(self)

    def preferred(self) -> dict[str, list[str]]:
        """Label key -> preferred values."""
        return _selected(self.prefer)


def _selected(nodes: NodePreference) -> dict[str, list[str]]:
    out = {}
    for name, label in (("location", _LOCATION), ("pool", _POOL), ("tier", _TIER)):
        value = getattr(nodes, name)
        if value is not None:
            out[label.key] = value if isinstance(value, list) else [value]
    return out


class Distribution(_Model):
    """How a random sweep draws one parameter: exactly one of the four."""

    uniform: list[float] | None = Field(default=None, min_length=2, max_length=2)
    loguniform: list[float] | None = Field(default=None, min_length=2, max_length=2)
    randint: list[int] | None = Field(default=None, min_length=2, max_length=2)
    choice: list[Scalar] | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _one(self) -> Distribution:
        given = [name for name in Distribution.model_fields if getattr(self, name) is not None]
        if len(given) != 1:
            raise _err("distribution", "give exactly one of uniform, loguniform, randint, choice")
        kind = given[0]
        if kind != "choice":
            low, high = getattr(self, kind)
            if not all(math.isfinite(b) for b in (low, high)):
                raise _err("distribution", f"{kind} bounds must be finite numbers")
            if low >= high:
                raise _err("distribution", f"{kind} needs [low, high] with low < high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise _err("distribution", f"loguniform needs a positive lower bound, got {low}")
        return self

    def definition(self) -> dict[str, Any]:
        """The JSON form the entry shim reads: ``{"loguniform": [0.0001, 0.1]}``."""
        return self.model_dump(exclude_none=True)


class RandomSweep(_Model):
    """``count`` runs, each drawing its parameters from ``params`` with ``seed``."""

    seed: int = 0
    count: int = Field(ge=1, le=layout.MAX_RUNS)
    params: dict[ParamName, Distribution] = Field(min_length=1)


class Sweep(_Model):
    """A parameter sweep: exactly one of ``grid``, ``random``, ``list``, ``product`` (a product of sweeps).

    Run ``i`` of the sweep gets ``sweep.params(i)``; the entry shim in every pod computes the same thing from
    ``JOB_COMPLETION_INDEX``.
    """

    grid: dict[ParamName, Annotated[list[Scalar], Field(min_length=1)]] | None = Field(default=None, min_length=1)
    random: RandomSweep | None = None
    list_: list[dict[ParamName, Scalar]] | None = Field(default=None, alias="list", min_length=1)
    product: list[Sweep] | None = Field(default=None, min_length=2)

    @model_validator(mode="after")
    def _one_kind(self) -> Sweep:
        given = [name for name in ("grid", "random", "list_", "product") if getattr(self, name) is not None]
        if len(given) != 1:
            raise _err("sweep", "give exactly one of grid, random, list, product")
        if self.list_ is not None:
            names = set(self.list_[0])
            for i, entry in enumerate(self.list_):
                if set(entry) != names:
                    raise _err(
                        "sweep",
                        f"has parameters {sorted(entry)} but list[0] has {sorted(names)}; "
                        "every run of a list needs the same parameters",
                        at=f"list[{i}]",
                    )
        if self.product is not None:
            seen: dict[str, int] = {}
            for i, factor in enumerate(self.product):
                for name in factor.names():
                    if name in seen:
                        raise _err(
                            "sweep", f"parameter {name!r} is already in product[{seen[name]}]", at=f"product[{i}]"
                        )
                    seen[name] = i
        env_names: dict[str, str] = {}
        for name in self.names():
            env = layout.param_env_name(name)
            if env in env_names:
                raise _err("sweep", f"parameters {env_names[env]!r} and {name!r} both become {env}")
            env_names[env] = name
        if self.size() > layout.MAX_RUNS:
            raise _err("sweep", f"{self.size():,} runs; one sweep holds at most {layout.MAX_RUNS:,}")
        return self

    def names(self) -> list[str]:
        """The sweep's parameter names, in order."""
        if self.grid is not None:
            return list(self.grid)
        if self.random is not None:
            return list(self.random.params)
        if self.list_ is not None:
            return list(self.list_[0])
        return [name for factor in self.product or () for name in factor.names()]

    def definition(self) -> dict[str, Any]:
        """The sweep *definition* as the entry shim reads it (JSON-ready; not the expanded runs)."""
        if self.grid is not None:
            return {"grid": {name: list(values) for name, values in self.grid.items()}}
        if self.random is not None:
            r = self.random
            return {
                "random": {
                    "seed": r.seed,
                    "count": r.count,
                    "params": {name: dist.definition() for name, dist in r.params.items()},
                }
            }
        if self.list_ is not None:
            return {"list": [dict(entry) for entry in self.list_]}
        return {"product": [factor.definition() for factor in self.product or ()]}

    def size(self) -> int:
        """Number of runs."""
        return _shim.size(self.definition())

    def params(self, index: int) -> dict[str, Any]:
        """The parameters of run ``index`` — the very function the in-pod entry shim uses."""
        return _shim.params(self.definition(), index)

    def expand(self) -> list[dict[str, Any]]:
        """The parameters of every run, in index order."""
        definition = self.definition()
        return [_shim.params(definition, i) for i in range(_shim.size(definition))]


class _SingleRun:
    """The sweep of an experiment without one: a single run without parameters."""

    def names(self) -> list[str]:
        return []

    def definition(self) -> None:
        return None

    def size(self) -> int:
        return 1

    def params(self, index: int) -> dict[str, Any]:
        return _shim.params(None, index)

    def expand(self) -> list[dict[str, Any]]:
        return [{}]


class Experiment(_Model):
    """One experiment: an image, a command, per-run resources, placement, retries, results and a sweep.

    Build it in Python (``Experiment(name="x", image="...", command=[...], sweep={"grid": {...}})``) or load it
    from YAML with ``load_spec``. Invalid input raises ``SpecError`` naming the field and the problem.
    """

    name: str
    image: str
    command: list[str] = Field(min_length=1)
    args: list[str] = []
    env: dict[str, str] = {}
    workdir: str | None = None
    python: str = Field(default="python3", min_length=1)
    resources: Resources = Resources()
    nodes: Nodes = Nodes()
    priority: Priority = priority_classes.DEFAULT
    # The team queue (a Kueue LocalQueue of the namespace); default: the namespace's own, where Kueue runs.
    queue: str | None = None
    retries: int = Field(default=2, ge=0, le=100)
    final_exit_codes: list[int] = Field(default=[], max_length=255)
    deadline: Duration | None = None
    parallelism: int | None = Field(default=None, ge=1, le=layout.MAX_RUNS)
    ttl: Duration = 7 * 86400
    results: Results = Results()
    objective: Objective | None = None
    sweep_: Sweep | None = Field(default=None, alias="sweep")

    def __init__(self, **data: Any) -> None:
        try:
            super().__init__(**data)
        except ValidationError as e:
            raise _spec_error(e, _SOURCE.get()) from None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if len(value) > MAX_NAME:
            raise _err("name", f"must be at most {MAX_NAME} characters, got {len(value)}")
        if not taxonomy.is_dns1123_label(value):
            raise _err(
                "name",
                f"{value!r} is not a DNS-1123 label: use lower-case letters, digits and '-', "
                "starting and ending with a letter or digit",
            )
        if _REVISION_SUFFIX.search(value):
            raise _err(
                "name",
                f"{value!r} ends like a revision suffix (-r<N>): its Job, ConfigMap and results directory would "
                "be those of revision N of another experiment; rename it",
            )
        return value

    @field_validator("queue")
    @classmethod
    def _queue(cls, value: str | None) -> str | None:
        if value is not None and not taxonomy.is_dns1123_subdomain(value):
            raise _err("queue", f"{value!r} is not a queue name (lower-case letters, digits, '-' and '.')")
        return value

    @field_validator("image")
    @classmethod
    def _image(cls, value: str) -> str:
        if not _IMAGE.match(value):
            example = "registry.example.com/team/train:1.2"
            raise _err("image", f"{value!r} is not a container image reference (e.g. {example})")
        return value

    @field_validator("command", "args", mode="before")
    @classmethod
    def _argv(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise _err("argv", f"must be a list of strings, e.g. {value.split()!r}")
        return value

    @field_validator("command")
    @classmethod
    def _program(cls, value: list[str]) -> list[str]:
        if not value[0].strip():
            raise _err("argv", "must name a program, got an empty string", at="[0]")
        return value

    @field_validator("env")
    @classmethod
    def _env(cls, value: dict[str, str]) -> dict[str, str]:
        for key in value:
            if not _ENV_NAME.match(key):
                raise _err("env", "not a valid environment variable name", at=key)
            if key in _RESERVED_ENV or key.startswith(layout.ENV_PARAM_PREFIX):
                raise _err("env", "reserved: ml-jobs sets it for every run (see the environment contract)", at=key)
        return value

    @field_validator("env", mode="before")
    @classmethod
    def _env_strings(cls, value: Any) -> Any:
        if isinstance(value, dict):
            for key, item in value.items():
                if not isinstance(item, str):
                    raise _err("env", f"must be a string (quote it in YAML), got {_show(item)}", at=str(key))
        return value

    @field_validator("workdir")
    @classmethod
    def _workdir(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith("/"):
            raise _err("workdir", f"must be an absolute path in the image, got {value!r}")
        return value

    @field_validator("final_exit_codes")
    @classmethod
    def _exit_codes(cls, value: list[int]) -> list[int]:
        for i, code in enumerate(value):
            if code == 0:
                raise _err("exit_code", "0 means success; it cannot be a final failure code", at=f"[{i}]")
            if not 1 <= code <= 255:
                raise _err("exit_code", f"exit codes are 1..255, got {code}", at=f"[{i}]")
        if len(set(value)) != len(value):
            raise _err("exit_code", "lists an exit code twice")
        return sorted(value)

    @field_validator("deadline")
    @classmethod
    def _deadline(cls, value: int | None) -> int | None:
        if value is not None and value < 1:
            raise _err("duration", f"must be at least 1s, got {value}s")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: int) -> int:
        if value < 0:
            raise _err("duration", f"must not be negative, got {value}s")
        if value < MIN_TTL_SECONDS:
            raise _err(
                "duration",
                f"{value}s would delete the finished Job and its pods before an ml-jobs command can record each "
                f"run's state, node and exit code (the registry would say 'gone'); use at least "
                f"{format_duration(MIN_TTL_SECONDS)}",
            )
        return value

    @model_validator(mode="after")
    def _whole(self) -> Experiment:
        names = set(self.sweep.names())
        for field in ("command", "args"):
            for i, arg in enumerate(getattr(self, field)):
                for match in _shim.TEMPLATE.finditer(arg):
                    if match.group(1) not in names:
                        problem = f"{{{{ {match.group(1)} }}}} is not a parameter of the sweep"
                        if names:
                            problem += "; " + _did_you_mean(match.group(1), names)
                        raise _err("template", problem, at=f"{field}[{i}]")
        if self.nodes.tier in ("gpu", ["gpu"]) and self.resources.gpus == 0:
            raise _err(
                "gpu_tier",
                f"GPU nodes are tainted {taxonomy.GPU_TAINT}; request resources.gpus to run there",
                at="nodes.tier",
            )
        return self

    @property
    def sweep(self) -> Sweep | _SingleRun:
        """The sweep (a single run without parameters when the spec has none)."""
        return self.sweep_ if self.sweep_ is not None else _SingleRun()

    @property
    def runs(self) -> int:
        """Number of runs."""
        return self.sweep.size()

    def to_dict(self) -> dict[str, Any]:
        """The normalised spec as plain JSON-ready data (defaults filled in, YAML field names)."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)

    def spec_hash(self) -> str:
        """A short hash of the normalised spec: same spec, same hash (a valid label value, 12 hex digits).

        Fields left at their defaults do not count, so a spec written with or without them hashes the same.
        Mapping order does count where it means something: a grid's axes enumerate in the order written.
        """
        doc = self.model_dump(mode="json", by_alias=True, exclude_defaults=True)
        canonical = json.dumps(doc, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


# ------------------------------------------------------------------------------------------------- loading


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


_KIND_WORDS = {
    "string_type": "a string",
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "model_type": "a mapping",
    "model_attributes_type": "a mapping",
}


def _problem(error: Any) -> tuple[str, str]:
    """(extra path, one-line problem) for one pydantic error."""
    kind = error["type"]
    ctx = error.get("ctx") or {}
    value = error.get("input")
    if kind.startswith("herd."):
        return ctx["at"], ctx["problem"]
    if kind == "missing":
        return "", "required"
    if kind in _KIND_WORDS:
        return "", f"must be {_KIND_WORDS[kind]}, got {_show(value)}"
    if kind == "literal_error":
        return "", f"must be {ctx['expected']}, got {_show(value)}"
    if kind in {"greater_than_equal", "greater_than", "less_than_equal", "less_than"}:
        sign = {"greater_than_equal": "≥", "greater_than": ">", "less_than_equal": "≤", "less_than": "<"}[kind]
        bound = next(iter(ctx.values()))
        return "", f"must be {sign} {bound}, got {_show(value)}"
    if kind == "too_short":
        if ctx.get("min_length") == 1:
            return "", "must not be empty"
        return "", f"needs {ctx['min_length']} items, got {ctx['actual_length']}"
    if kind == "too_long":
        return "", f"takes at most {ctx['max_length']} items, got {ctx['actual_length']}"
    if kind == "value_error":
        return "", str(ctx.get("error", error["msg"]))
    message = error["msg"]
    return "", message[:1].lower() + message[1:]


def _spec_error(e: ValidationError, source: str) -> SpecError:
    error = e.errors(include_url=False)[0]
    # pydantic adds "[key]" to the path of an invalid mapping key, and "function-..." for wrapped validators.
    loc = tuple(
        part
        for part in error["loc"]
        if not (isinstance(part, str) and (part.startswith("function-") or part == "[key]"))
    )
    loc = tuple("sweep" if part == "sweep_" else "list" if part == "list_" else part for part in loc)
    extra, problem = _problem(error)
    field = _path(loc)
    if extra:
        field = f"{field}{extra}" if extra.startswith("[") else f"{field}.{extra}" if field else extra
    return SpecError(source, field, problem)


def parse_spec(data: Any, source: str = PYTHON_SOURCE) -> Experiment:
    """Validate already-parsed spec data (a mapping) into an ``Experiment``; ``SpecError`` on bad input."""
    if not isinstance(data, dict):
        raise SpecError(source, "", f"an experiment spec is a mapping of fields, got {_show(data)}")
    token = _SOURCE.set(source)
    try:
        # model_validate goes through Experiment.__init__, which turns ValidationError into SpecError.
        return Experiment.model_validate(data)
    finally:
        _SOURCE.reset(token)


def load_spec(path: str | Path) -> Experiment:
    """Read and validate an experiment spec from a YAML file.

    Raises:
        SpecError: the file cannot be read, is not YAML, or is not a valid spec; the message names the field.
    """
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(source, "", "no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(source, "", f"cannot read: {e}") from None
    try:
        data = load_yaml(text)  # YAML 1.2: loguniform: [1e-5, 1e-1] holds numbers
    except YamlError as e:
        raise SpecError(source, "", f"not valid YAML: {e}") from None
    return parse_spec(data, source)
