"""The one exception family of ml_jobs.

Library code raises these; only the CLI prints them, as one line without a traceback (set ``HERD_DEBUG=1`` to
see the traceback). Every error a user can fix says what is wrong and where.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ConflictError",
    "ForbiddenError",
    "HerdError",
    "InvalidError",
    "NotFoundError",
    "SpecError",
]


class HerdError(Exception):
    """Base of every error ml_jobs raises on purpose."""


class SpecError(HerdError):
    """An experiment spec is invalid.

    Attributes:
        source: where the spec came from (a file path, or ``<python>``).
        field: the dotted field path, e.g. ``sweep.grid.lr[2]``; empty for the spec as a whole.
        problem: what is wrong with it.
    """

    def __init__(self, source: str, field: str, problem: str) -> None:
        self.source = source
        self.field = field
        self.problem = problem
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}")


class ApiError(HerdError):
    """The Kubernetes API refused or failed a request.

    Attributes:
        status: the HTTP status, or ``None`` for a transport failure or timeout.
        verb: the verb attempted (``create``, ``list``, ...).
        resource: the resource kind, e.g. ``jobs``.
        namespace: the namespace, if any.
        reason: the server's message.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        verb: str = "",
        resource: str = "",
        namespace: str | None = None,
        reason: str = "",
    ) -> None:
        self.status = status
        self.verb = verb
        self.resource = resource
        self.namespace = namespace
        self.reason = reason
        super().__init__(message)


class NotFoundError(ApiError):
    """404: the object does not exist."""


class ConflictError(ApiError):
    """409: the object exists already, or changed under us."""


class ForbiddenError(ApiError):
    """403: RBAC denies the verb on the resource in the namespace."""


class InvalidError(ApiError):
    """422: the server refused the object; ``reason`` carries its message."""
