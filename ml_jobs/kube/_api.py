"""The one place the Kubernetes backend talks to the API server.

Every call goes through :meth:`Api._call`, which

- answers in plain dicts, exactly as the server sent them (camelCase JSON): the status and "why pending" logic
  reads API objects, not client models, and skipping model deserialisation keeps a 10,000-pod list fast;
- retries what is safe to retry — a 5xx, 429 or a timeout — a bounded number of times with backoff. A create is
  retried too: names are deterministic, so a create whose first answer was lost meets 409 and the caller
  reconciles (see ``submit``), never a duplicate;
- turns ``ApiException`` and transport errors into the ``ml_jobs.errors`` family with ``raise ... from e``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

from ml_jobs import queueing
from ml_jobs.errors import (
    ApiError,
    ConflictError,
    ForbiddenError,
    InvalidError,
    NotFoundError,
    ServerError,
    UnreachableError,
)

MERGE_PATCH = "application/merge-patch+json"

# resource -> (API attribute, method suffix, group for messages)
_RESOURCES: dict[str, tuple[str, str, str]] = {
    "configmaps": ("core", "config_map", ""),
    "pods": ("core", "pod", ""),
    "events": ("core", "event", ""),
    "jobs": ("batch", "job", "batch"),
    # Cluster-scoped, list only: which cordoned node would take a pending run (where the caller may list nodes).
    "nodes": ("core", "node", ""),
    # Cluster-scoped, create only: who the API server authenticates this client as (Kubernetes >= 1.28).
    "selfsubjectreviews": ("authentication", "self_subject_review", "authentication.k8s.io"),
}
_CLUSTER_SCOPED = {"selfsubjectreviews", "nodes"}
# Custom resources (Kueue's), read through the CustomObjectsApi: (group, version), the plural is the resource.
_CUSTOM: dict[str, tuple[str, str]] = {
    "localqueues": (queueing.GROUP, queueing.VERSION),
    "workloads": (queueing.GROUP, queueing.VERSION),
}
# Subresources of custom resources, read with a plain GET: resource -> (group, version, the parent's plural).
_SUBRESOURCES: dict[str, tuple[str, str, str]] = {
    # Kueue's visibility API: a LocalQueue's pending Workloads, in the order Kueue will try them.
    "pendingworkloads": (queueing.VISIBILITY_GROUP, queueing.VISIBILITY_VERSION, "localqueues"),
}
_TRANSIENT_STATUS = {429, 500, 502, 503, 504}
_FOLLOW_TIMEOUT = 24 * 3600.0  # a followed log may stay quiet for a long time


def _server_message(body: str | bytes | None) -> tuple[str, str, list[dict[str, Any]]]:
    """(reason, message, causes) of a ``Status`` body, or the raw text when it is not one."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if not body:
        return "", "", []
    try:
        doc = json.loads(body)
    except ValueError:
        return "", body.strip()[:500], []
    if not isinstance(doc, dict):
        return "", str(doc)[:500], []
    causes = (doc.get("details") or {}).get("causes") or []
    return str(doc.get("reason") or ""), str(doc.get("message") or ""), causes


def _retry_after(e: Any) -> float:
    """Seconds the server asked us to wait (``Retry-After`` on 429 / 503), capped; 0 if it did not say."""
    try:
        return min(float((e.headers or {}).get("Retry-After", 0)), 30.0)
    except (TypeError, ValueError):
        return 0.0


def _where(resource: str, name: str | None, namespace: str) -> str:
    what = f"{resource.rstrip('s')} {name!r}" if name else resource
    if resource in _CLUSTER_SCOPED:
        return what  # not namespaced: naming the client's namespace would mislead
    return f"{what} in namespace {namespace!r}"


def map_api_exception(e: Any, *, verb: str, resource: str, namespace: str, name: str | None = None) -> ApiError:
    """Turn a ``kubernetes.client.ApiException`` into the matching ``ApiError`` subclass, one line long."""
    status = int(e.status) if e.status else None
    reason, message, causes = _server_message(e.body)

    scoped: str | None = None if resource in _CLUSTER_SCOPED else namespace

    def make(cls: type[ApiError], text: str) -> ApiError:
        return cls(text, status=status, verb=verb, resource=resource, namespace=scoped, reason=message or reason)

    where = _where(resource, name, namespace)
    if status == 403:
        return make(
            ForbiddenError,
            f"forbidden: you may not {verb} {_where(resource, None, namespace)}"
            + (f" ({message})" if message else ""),
        )
    if status == 404:
        return make(NotFoundError, f"not found: {where}")
    if status == 409:
        return make(
            ConflictError, f"conflict: {where}: {message or reason or 'already exists or changed meanwhile'}"
        )
    if status == 422:
        detail = "; ".join(f"{c.get('field', '')}: {c.get('message', '')}".strip(": ") for c in causes)
        return make(InvalidError, f"invalid: the server refused to {verb} {where}: {message or detail}")
    if status is not None and status >= 500:
        return make(ServerError, f"the API server failed to {verb} {where}: {status} {message or reason}".rstrip())
    return make(ApiError, f"cannot {verb} {where}: {status} {message or reason}".rstrip())


class Api:
    """A namespaced handle on the API server, speaking plain dicts.

    Args:
        configuration: a ``kubernetes.client.Configuration`` (see :func:`ml_jobs.kube.connect`).
        namespace: the namespace every call works in.
        timeout: seconds to wait for any one answer.
        attempts: tries per call for transient failures (5xx, 429, timeouts, refused connections).
        backoff: seconds before the first retry; doubles each time.
        sleep: how to wait between tries (tests pass a no-op).
    """

    def __init__(
        self,
        configuration: Any,
        namespace: str,
        *,
        timeout: float = 30.0,
        attempts: int = 4,
        backoff: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.host = str(configuration.host)
        self.timeout = timeout
        self.attempts = max(1, attempts)
        self.backoff = backoff
        self._sleep = sleep
        self._client = client.ApiClient(configuration)
        self._apis = {
            "core": client.CoreV1Api(self._client),
            "batch": client.BatchV1Api(self._client),
            "authentication": client.AuthenticationV1Api(self._client),
        }

    def close(self) -> None:
        """Release the connection pool."""
        self._client.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------------------------------ plumbing
    def _method(self, verb: str, resource: str) -> Callable[..., Any]:
        if resource in _SUBRESOURCES and verb == "get":
            return self._subresource_get(resource)
        if resource in _CUSTOM:
            return self._custom_method(verb, resource)
        api, suffix, _ = _RESOURCES[resource]
        prefix = {"get": "read", "log": "read"}.get(verb, verb)
        scope = "" if resource in _CLUSTER_SCOPED else "namespaced_"
        name = f"{prefix}_{scope}{suffix}" + ("_log" if verb == "log" else "")
        return getattr(self._apis[api], name)

    def _custom_method(self, verb: str, resource: str) -> Callable[..., Any]:
        """A CustomObjectsApi method called as the typed ones are: ``(namespace)`` to list, ``(name, namespace)``
        to get."""
        from kubernetes import client

        group, version = _CUSTOM[resource]
        custom = client.CustomObjectsApi(self._client)
        if verb == "list":
            return lambda namespace, **kw: custom.list_namespaced_custom_object(
                group, version, namespace, resource, **kw
            )
        if verb == "get":
            return lambda name, namespace, **kw: custom.get_namespaced_custom_object(
                group, version, namespace, resource, name, **kw
            )
        raise ValueError(f"ml_jobs only reads {resource}")

    def _subresource_get(self, resource: str) -> Callable[..., Any]:
        """A GET of ``<parent>/<name>/<resource>`` (the client has no method for it), called as the typed gets
        are: ``(name, namespace)``; non-2xx answers raise ``ApiException`` as the typed methods do."""
        from kubernetes.client.exceptions import ApiException

        group, version, parent = _SUBRESOURCES[resource]

        def get(name: str, namespace: str, _preload_content: bool = False, _request_timeout: Any = None) -> Any:
            request = self._client.param_serialize(
                method="GET",
                resource_path=f"/apis/{group}/{version}/namespaces/{{namespace}}/{parent}/{{name}}/{resource}",
                path_params={"namespace": namespace, "name": name},
                header_params={"Accept": "application/json"},
                auth_settings=["BearerToken"],
            )
            answer = self._client.call_api(*request, _request_timeout=_request_timeout)
            if not 200 <= answer.status <= 299:
                answer.read()
                raise ApiException.from_response(http_resp=answer, body=None, data=None)
            return answer.response

        return get

    def _call(
        self,
        verb: str,
        resource: str,
        *args: Any,
        name: str | None = None,
        stream: bool = False,
        timeout: float | None = None,
        attempts: int | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call the API with retries on transient failures (``attempts`` tries, default the handle's); return the
        decoded JSON (or the raw response)."""
        import urllib3
        from kubernetes.client.exceptions import ApiException

        method = self._method(verb, resource)
        delay = self.backoff
        attempts = attempts or self.attempts
        for attempt in range(1, attempts + 1):
            try:
                response = method(
                    *args,
                    _preload_content=False,
                    _request_timeout=timeout if timeout is not None else self.timeout,
                    **kwargs,
                )
                if stream:
                    return response
                data = response.data
                return json.loads(data) if data else {}
            except ApiException as e:
                if e.status in _TRANSIENT_STATUS and attempt < attempts:
                    self._sleep(max(delay, _retry_after(e)))
                    delay *= 2
                    continue
                error = map_api_exception(e, verb=verb, resource=resource, namespace=self.namespace, name=name)
                if attempt > 1:
                    error.args = (f"{error} (after {attempt} attempts)",)
                raise error from e
            except (urllib3.exceptions.HTTPError, OSError) as e:
                if attempt < attempts:
                    self._sleep(delay)
                    delay *= 2
                    continue
                # NewConnectionError subclasses ConnectTimeoutError in urllib3 2: a refusal is not a timeout.
                timed_out = isinstance(e, (urllib3.exceptions.TimeoutError, TimeoutError)) and not isinstance(
                    e, urllib3.exceptions.NewConnectionError
                )
                what = (
                    f"no answer within {timeout or self.timeout:g}s"
                    if timed_out
                    else f"cannot connect ({type(e).__name__})"
                )
                raise UnreachableError(
                    f"API server {self.host}: {what} to {verb} {_where(resource, name, self.namespace)} "
                    f"(after {attempt} attempts)",
                    verb=verb,
                    resource=resource,
                    namespace=None if resource in _CLUSTER_SCOPED else self.namespace,
                    reason=str(e),
                ) from e
        raise AssertionError("unreachable")  # pragma: no cover

    # ---------------------------------------------------------------------------------------- operations
    def get(
        self, resource: str, name: str, *, attempts: int | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Read one object (``attempts`` tries at most, each waiting ``timeout`` s at most). Raises
        ``NotFoundError`` when it does not exist."""
        return self._call("get", resource, name, self.namespace, name=name, attempts=attempts, timeout=timeout)

    def get_or_none(self, resource: str, name: str) -> dict[str, Any] | None:
        """Read one object, or ``None`` when it does not exist."""
        try:
            return self.get(resource, name)
        except NotFoundError:
            return None

    def list(
        self, resource: str, *, label_selector: str | None = None, field_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """List objects in one request (no chunking, so the request count never depends on how many match)."""
        kwargs: dict[str, Any] = {
            k: v for k, v in (("label_selector", label_selector), ("field_selector", field_selector)) if v
        }
        scope = () if resource in _CLUSTER_SCOPED else (self.namespace,)
        return list(self._call("list", resource, *scope, **kwargs).get("items") or [])

    def create(self, resource: str, body: dict[str, Any]) -> dict[str, Any]:
        """Create an object; ``ConflictError`` if one of that name exists."""
        name = body.get("metadata", {}).get("name")
        return self._call("create", resource, self.namespace, body, name=name)

    def patch(self, resource: str, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        """JSON merge patch (RFC 7386): ``None`` deletes a key; ``metadata.resourceVersion`` is a precondition."""
        return self._call("patch", resource, name, self.namespace, patch, name=name, _content_type=MERGE_PATCH)

    def delete(self, resource: str, name: str, *, propagation: str = "Background") -> bool:
        """Delete an object and (by default) let the garbage collector remove its dependents.

        Returns ``False`` when it was already gone: deleting is idempotent.
        """
        from kubernetes import client

        try:
            self._call(
                "delete",
                resource,
                name,
                self.namespace,
                name=name,
                body=client.V1DeleteOptions(propagation_policy=propagation),
            )
        except NotFoundError:
            return False
        return True

    def user_name(self) -> str | None:
        """The user name the API server authenticates this client as, from a SelfSubjectReview.

        Every authenticated user may create one (the default ``system:basic-user`` ClusterRole; Kubernetes
        >= 1.28).
        ``None`` when the server cannot say: it predates the API (404) or a policy forbids it (403).
        """
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
        try:
            review = self._call("create", "selfsubjectreviews", body)
        except (NotFoundError, ForbiddenError):
            return None
        name = ((review.get("status") or {}).get("userInfo") or {}).get("username")
        return str(name) if name else None

    def log(self, pod: str, *, follow: bool = False, tail_lines: int | None = None) -> Iterator[str]:
        """Lines of a pod's log; with ``follow`` the stream stays open until the container ends."""
        kwargs: dict[str, Any] = {"follow": follow}
        if tail_lines is not None:
            kwargs["tail_lines"] = tail_lines
        response = self._call(
            "log",
            "pods",
            pod,
            self.namespace,
            name=pod,
            stream=True,
            timeout=_FOLLOW_TIMEOUT if follow else None,
            **kwargs,
        )
        try:
            pending = b""
            for chunk in response.stream(4096, decode_content=True):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line.decode("utf-8", "replace")
            if pending:
                yield pending.decode("utf-8", "replace")
        finally:
            response.release_conn()
