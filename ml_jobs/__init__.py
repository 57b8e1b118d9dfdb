"""ml_jobs: describe an ML experiment once, run its sweep locally or on the herd cluster, read ranked results."""

from __future__ import annotations

from ml_jobs.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    HerdError,
    InvalidError,
    NotFoundError,
    SpecError,
)

__all__ = [
    "ApiError",
    "ConflictError",
    "ForbiddenError",
    "HerdError",
    "InvalidError",
    "NotFoundError",
    "SpecError",
]
