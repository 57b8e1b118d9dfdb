"""The one exception family of ml_jobs.

Library code raises these; only the CLI prints them, as one line without a traceback (set ``HERD_DEBUG=1`` to
see the traceback). Every error a user can fix says what is wrong and where.
"""

from __future__ import annotations

__all__ = [
    "ApiError",
    "ClusterConfigError",
    "ConflictError",
    "ExperimentExistsError",
    "ForbiddenError",
    "HerdError",
    "InvalidError",
    "ManifestError",
    "NotFoundError",
    "ResultsError",
    "ServerError",
    "SpecError",
    "UnknownExperimentError",
    "UnreachableError",
    "YamlError",
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


class YamlError(HerdError):
    """A file is not valid YAML (or not one document, or gives a key twice); callers add which file.

    Attributes:
        line: the 1-based line where the trouble starts, if the parser knows it.
        column: the 1-based column there.
        problem: what is wrong, in one line (it may name a second position, where the parser gave up).
    """

    def __init__(self, line: int | None, column: int | None, problem: str) -> None:
        self.line = line
        self.column = column
        self.problem = problem
        super().__init__(f"{self.position}: {problem}" if self.position else problem)

    @property
    def position(self) -> str:
        """``line 6, column 4``; empty when the parser does not say."""
        if self.line is None:
            return ""
        return f"line {self.line}" + (f", column {self.column}" if self.column is not None else "")


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


class ServerError(ApiError):
    """5xx: the API server failed the request (after retries)."""


class UnreachableError(ApiError):
    """No answer: the API server could not be reached, or did not answer in time (after retries)."""


class ClusterConfigError(HerdError):
    """No usable cluster configuration: kubeconfig missing or broken, unknown context, not in a cluster."""


class ExperimentExistsError(HerdError):
    """An experiment of that name exists with a different spec; submitting it again needs a new revision.

    Attributes:
        experiment: the experiment's name.
        namespace: where it lives.
        revision: its latest revision.
    """

    def __init__(self, message: str, *, experiment: str, namespace: str, revision: int) -> None:
        self.experiment = experiment
        self.namespace = namespace
        self.revision = revision
        super().__init__(message)


class UnknownExperimentError(HerdError):
    """No experiment (or run) of that name in the namespace."""


class ResultsError(HerdError):
    """The results of an experiment could not be read."""


class ManifestError(HerdError):
    """A rendered Kubernetes object would be refused by the API server.

    Attributes:
        obj: the object, as ``Kind/name``.
        field: the field path inside the object, e.g. ``metadata.labels.herd.dev/owner``.
        problem: what is wrong with it.
    """

    def __init__(self, obj: str, field: str, problem: str) -> None:
        self.obj = obj
        self.field = field
        self.problem = problem
        where = f"{obj}: {field}" if field else obj
        super().__init__(f"{where}: {problem}")
