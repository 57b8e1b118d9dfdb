"""ml_jobs: describe an ML experiment once, run its sweep locally or on the herd cluster, read ranked results.

The public names below are imported lazily (PEP 562), so ``import ml_jobs`` — and ``ml-jobs --help`` — does
not pay for pydantic or YAML until a spec is actually read.

The shared contract: the Pulumi program (``infra``), the operator's tools (``herd_ops``) and the local real cluster
(``herd_local``) import from ml_jobs only its public modules — ``taxonomy`` (node labels and taints), ``queueing``
(Kueue's names), ``priority``, ``rbac``, ``quantity`` (Kubernetes quantities), ``layout``, ``command_line`` (the
one shape of every herd command line), ``errors`` (the one error base, ``HerdError``), ``user_yaml``, ``spec``,
``render`` and ``kube``; never a module whose name starts with ``_``.
tests/test_layering.py holds every package to that, and to its layer.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from ml_jobs.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    HerdError,
    InvalidError,
    ManifestError,
    NotFoundError,
    SpecError,
)

if TYPE_CHECKING:
    from ml_jobs.render import Rendered, render, validate_schema
    from ml_jobs.results import RunResult, read_results
    from ml_jobs.spec import Experiment, load_spec

_LAZY = {
    "Experiment": "ml_jobs.spec",
    "load_spec": "ml_jobs.spec",
    "Rendered": "ml_jobs.render",
    "render": "ml_jobs.render",
    "validate_schema": "ml_jobs.render",
    "RunResult": "ml_jobs.results",
    "read_results": "ml_jobs.results",
}

__all__ = [
    "ApiError",
    "ConflictError",
    "Experiment",
    "ForbiddenError",
    "HerdError",
    "InvalidError",
    "ManifestError",
    "NotFoundError",
    "Rendered",
    "RunResult",
    "SpecError",
    "load_spec",
    "read_results",
    "render",
    "validate_schema",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'ml_jobs' has no attribute {name!r}")
