"""An in-process Kubernetes API for the backend's tests: kmock's emulator, with its gaps filled here.

kmock (``KubernetesEmulator``) stores objects and serves create / get / list / merge-patch / delete / watch over
real HTTP on 127.0.0.1, so the official ``kubernetes`` client talks to it unchanged. Here its object store and
HTTP server are used, and Kubernetes requests are answered straight from the store: kmock's reaction matching
scans every earlier request for every new one, which makes 10,000 creates take hours. What it does not do, and
this harness adds (every addition is marked "GAP" below):

- it does not assign ``uid``, ``resourceVersion``, ``creationTimestamp``, ``metadata.namespace`` on create;
- it ignores ``labelSelector`` and ``fieldSelector`` on lists (a list returns everything);
- it does not honour a ``resourceVersion`` precondition in a patch (no optimistic concurrency);
- it answers errors with its own reasons ("Object Not Found"), not the API server's (``NotFound`` with
  ``jobs.batch "x" not found``); here 404 / 409 / 403 / 422 / 500 carry the real ``Status`` shapes;
- it has no ``pods/log`` subresource;
- it runs no controllers: no garbage collector (``ownerReferences`` do nothing) — the
  :class:`GarbageCollectorDouble` logic here deletes dependents when an owner is deleted, synchronously (the real
  one is asynchronous). Job controller, scheduler, kubelet and autoscaler doubles live in ``doubles.py``.

Every request is logged (method, path, query, body) for assertions, and faults can be injected per request
pattern: an HTTP status (403, 409, 422, 500, ...) or a timeout, either before the server acts or *after* it has
committed the change (the answer is lost: the case that makes a naive retry create duplicates).
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import itertools
import json
import re
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp.web
import kmock

PODS = kmock.resource(group="", version="v1", plural="pods")
CONFIGMAPS = kmock.resource(group="", version="v1", plural="configmaps")
EVENTS = kmock.resource(group="", version="v1", plural="events")
NODES = kmock.resource(group="", version="v1", plural="nodes")
JOBS = kmock.resource(group="batch", version="v1", plural="jobs")
SELF_SUBJECT_REVIEWS = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
KINDS = {"pods": "Pod", "configmaps": "ConfigMap", "events": "Event", "nodes": "Node", "jobs": "Job"}


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Logged:
    """One request the emulator received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any

    def __repr__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''}"


@dataclass
class Fault:
    """An injected failure for requests matching ``method`` and the ``path`` regex."""

    method: str
    path: str
    status: int | None = None  # None: time out (sleep longer than the client waits)
    times: int = 1
    after_commit: bool = False
    message: str = ""
    retry_after: int | None = None  # a Retry-After header (429 / 503 from API priority and fairness)
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and self.method == method and re.search(self.path, path) is not None


# ------------------------------------------------------------------------------------------------- selectors
def _split_selector(text: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch == "("
        depth -= ch == ")"
        if ch == "," and depth == 0:
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    if cur.strip():
        parts.append(cur.strip())
    return parts


def label_selector_matches(selector: str, labels: dict[str, str]) -> bool:
    """Equality- and set-based label selectors, as the API server evaluates them (GAP: kmock ignores them)."""
    for term in _split_selector(selector):
        if m := re.fullmatch(r"(\S+)\s+(in|notin)\s+\((.*)\)", term):
            key, op, values = m.group(1), m.group(2), {v.strip() for v in m.group(3).split(",")}
            ok = labels.get(key) in values if op == "in" else labels.get(key) not in values
        elif "!=" in term:
            key, value = term.split("!=", 1)
            ok = labels.get(key.strip()) != value.strip()
        elif "=" in term:
            key, value = re.split(r"==?", term, maxsplit=1)
            ok = labels.get(key.strip()) == value.strip()
        elif term.startswith("!"):
            ok = term[1:].strip() not in labels
        else:
            ok = term in labels
        if not ok:
            return False
    return True


def _field(obj: dict[str, Any], path: str) -> str:
    cur: Any = obj
    for part in path.split("."):
        cur = cur.get(part) if isinstance(cur, dict) else None
    return "" if cur is None else str(cur)


def field_selector_matches(selector: str, obj: dict[str, Any]) -> bool:
    """``a.b=v`` / ``a.b!=v`` field selectors (GAP: kmock ignores them)."""
    for term in _split_selector(selector):
        if "!=" in term:
            path, value = term.split("!=", 1)
            if _field(obj, path.strip()) == value.strip():
                return False
        else:
            path, value = re.split(r"==?", term, maxsplit=1)
            if _field(obj, path.strip()) != value.strip():
                return False
    return True


def status_body(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    """A ``v1.Status`` as the API server writes it."""
    body = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": message}
    body.update({"reason": reason, "details": details or {}, "code": code})
    return body


def _group_kind(resource: Any) -> str:
    return f"{resource.plural}.{resource.group}" if resource.group else str(resource.plural)


# ----------------------------------------------------------------------------------------------- the server
class _Server(kmock.KubernetesEmulator):
    """kmock's emulator with the gaps above filled. ``harness`` is set right after construction."""

    harness: EmulatedCluster

    async def _handle(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        h = self.harness
        method = str(request.method.value if hasattr(request.method, "value") else request.method)
        # A copy: the body as sent, before the server fills in metadata.
        h.log.append(Logged(method, request.url.path, dict(request.params), copy.deepcopy(request.data)))
        fault = next((f for f in h.faults if f.matches(method, request.url.path)), None)
        if fault is not None:
            fault.hits += 1
            if not fault.after_commit:
                return await self._fault(fault, request)
        if method == "POST" and request.url.path == SELF_SUBJECT_REVIEWS:
            response = self._self_subject_review()
        elif request.resource is None:
            return await super()._handle(request)
        else:
            response = await self._k8s(request)
        if fault is not None:
            return await self._fault(fault, request)
        return response

    async def _fault(self, fault: Fault, request: kmock.Request) -> aiohttp.web.StreamResponse:
        if fault.status is None:
            await asyncio.sleep(self.harness.timeout_sleep)
            return aiohttp.web.json_response({}, status=504)
        kind = _group_kind(request.resource) if request.resource else "unknown"
        verb = {"POST": "create", "GET": "get", "PATCH": "patch", "DELETE": "delete", "PUT": "update"}.get(
            str(request.method.value), "get"
        )
        ns = request.namespace or ""
        if fault.status == 403:
            user = self.harness.user
            group = request.resource.group if request.resource else ""
            message = fault.message or (
                f'{kind} is forbidden: User "{user}" cannot {verb} resource "{request.resource.plural}" '
                f'in API group "{group}" in the namespace "{ns}"'
            )
            body = status_body(403, "Forbidden", message, {"group": group, "kind": request.resource.plural})
        elif fault.status == 422:
            body = status_body(
                422,
                "Invalid",
                fault.message or f'{kind} "{request.name or ""}" is invalid',
                {
                    "name": (request.data or {}).get("metadata", {}).get("name", ""),
                    "kind": KINDS.get(str(request.resource.plural), ""),
                    "causes": [{"reason": "FieldValueInvalid", "message": fault.message, "field": "spec"}],
                },
            )
        elif fault.status == 409:
            body = status_body(409, "Conflict", fault.message or f"Operation cannot be fulfilled on {kind}")
        elif fault.status >= 500:
            body = status_body(
                fault.status,
                "InternalError",
                fault.message or "Internal error occurred: etcdserver: request timed out",
                {"causes": [{"message": "etcdserver: request timed out"}]},
            )
        elif fault.status == 429:
            body = status_body(
                429, "TooManyRequests", fault.message or "Too many requests, please try again later."
            )
        else:
            body = status_body(fault.status, "BadRequest", fault.message or "bad request")
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        return aiohttp.web.json_response(body, status=fault.status, headers=headers)

    def _self_subject_review(self) -> aiohttp.web.StreamResponse:
        """The authenticated user, as the API server answers a SelfSubjectReview (GAP: kmock has no authentication;
        every request is the harness's ``user``). Nothing is stored: the review exists only in the answer."""
        body = {
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "SelfSubjectReview",
            "metadata": {"creationTimestamp": now_iso()},
            "status": {"userInfo": {"username": self.harness.user, "groups": ["system:authenticated"]}},
        }
        return aiohttp.web.json_response(body, status=201)

    def _not_found(self, request: kmock.Request, name: str | None) -> aiohttp.web.StreamResponse:
        kind = _group_kind(request.resource)
        body = status_body(
            404,
            "NotFound",
            f'{kind} "{name}" not found',
            {"name": name, "group": request.resource.group, "kind": request.resource.plural},
        )
        return aiohttp.web.json_response(body, status=404)

    def _live(self, key: tuple[Any, str | None, str]) -> dict[str, Any] | None:
        if key in self.objects and not self.objects[key].deleted:
            return self.objects[key].raw
        return None

    async def _k8s(self, request: kmock.Request) -> aiohttp.web.StreamResponse:
        h = self.harness
        action = request.action
        res = request.resource
        ns = request.namespace
        if action == kmock.action.CREATE:
            meta = request.data.setdefault("metadata", {})
            key = (res, ns or meta.get("namespace"), meta.get("name"))
            if self._live(key) is not None:
                kind = _group_kind(res)
                body = status_body(
                    409,
                    "AlreadyExists",
                    f'{kind} "{meta.get("name")}" already exists',
                    {"name": meta.get("name"), "group": res.group, "kind": res.plural},
                )
                return aiohttp.web.json_response(body, status=409)
            # GAP: the server's own metadata.
            meta.update(
                uid=str(uuid.uuid4()),
                resourceVersion=h.next_rv(),
                creationTimestamp=now_iso(),
                namespace=key[1],
                generation=1,
            )
            if key in self.objects:
                self.objects[key].create(request.data)  # re-created after a deletion
            else:
                self.objects[key] = request.data
            h.index.clear()
            h.on_created(str(res.plural), key[1], meta["name"])
            return aiohttp.web.json_response(self.objects[key].raw, status=201)
        if action == kmock.action.LIST:
            items = h.list(
                str(res.plural), ns, request.params.get("labelSelector"), request.params.get("fieldSelector")
            )
            kind = KINDS.get(str(res.plural), "")
            return aiohttp.web.json_response(
                {
                    "kind": f"{kind}List",
                    "apiVersion": "v1" if not res.group else f"{res.group}/{res.version}",
                    "metadata": {"resourceVersion": str(h.rv)},
                    "items": items,
                }
            )
        key = (res, ns, request.name)
        current = self._live(key)
        if current is None:
            return self._not_found(request, request.name)
        if action == kmock.action.FETCH and request.subresource == "log":
            return h.serve_log(ns, request.name, current, request.params)
        if action == kmock.action.UPDATE:
            want = ((request.data or {}).get("metadata") or {}).get("resourceVersion")
            if want is not None and want != current["metadata"].get("resourceVersion"):
                body = status_body(
                    409,
                    "Conflict",
                    f'Operation cannot be fulfilled on {_group_kind(res)} "{request.name}": the object has been '
                    "modified; please apply your changes to the latest version and try again",
                    {"name": request.name, "group": res.group, "kind": res.plural},
                )
                return aiohttp.web.json_response(body, status=409)
            request.data.setdefault("metadata", {})["resourceVersion"] = h.next_rv()
            self.objects[key].patch(request.data)  # RFC 7386 merge: None deletes a key
            h.index.clear()
            return aiohttp.web.json_response(self.objects[key].raw)
        if action == kmock.action.DELETE:
            propagation = (request.data or {}).get("propagationPolicy") or request.params.get("propagationPolicy")
            # GAP: deleted outright, finalizers or not (the controllers that would remove them are doubles).
            self.objects[key].delete()
            h.index.clear()
            h.collect_garbage(current["metadata"].get("uid"), propagation or "Background")
            return aiohttp.web.json_response(current)
        if action == kmock.action.FETCH and request.subresource is None:
            return aiohttp.web.json_response(current)
        return await super()._handle(request)


# ------------------------------------------------------------------------------------------------ the harness
@dataclass
class EmulatedCluster:
    """The emulator running in a background thread, plus direct (uncounted) access to its objects."""

    namespace: str = "team-a"
    user: str = "alice"
    timeout_sleep: float = 2.0
    log: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    logs: dict[tuple[str, str], str] = field(default_factory=dict)  # (namespace, pod) -> log text
    rv: int = 1000
    _server: _Server | None = None
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    url: str = ""
    _created_hooks: list[Callable[[str, str, str], None]] = field(default_factory=list)
    # (plural, namespace, label key) -> label value -> objects; cleared on every write. Lets a run of
    # single-label lists (the naive per-run status loop in the bench) cost what a server's list costs, instead
    # of a Python scan of every object per request. Selection semantics are unchanged.
    index: dict[tuple[str, str | None, str], dict[str, list[Any]]] = field(default_factory=dict)
    _seq: itertools.count = field(default_factory=itertools.count)

    # ---- lifecycle
    def start(self) -> EmulatedCluster:
        ready = threading.Event()
        self._stop: asyncio.Event | None = None

        async def main() -> None:
            async with _Server() as server, kmock.Server(server) as srv:
                server.harness = self
                self._server = server
                self._loop = asyncio.get_running_loop()
                self._stop = asyncio.Event()
                self.url = str(srv.url).rstrip("/")
                ready.set()
                await self._stop.wait()

        self._thread = threading.Thread(target=lambda: asyncio.run(main()), name="kmock", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the emulator did not start")
        return self

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def configuration(self) -> Any:
        from kubernetes import client

        cfg = client.Configuration()
        cfg.host = self.url
        cfg.retries = False
        return cfg

    def api(self, *, timeout: float = 5.0, attempts: int = 3) -> Any:
        from ml_jobs.kube import Api

        return Api(self.configuration(), self.namespace, timeout=timeout, attempts=attempts, sleep=lambda s: None)

    # ---- request log
    def requests(self, method: str | None = None, path: str = "") -> list[Logged]:
        return [r for r in self.log if (method is None or r.method == method) and path in r.path]

    def reset_log(self) -> None:
        self.log.clear()

    def inject(self, method: str, path: str, status: int | None, **kw: Any) -> Fault:
        fault = Fault(method, path, status, **kw)
        self.faults.append(fault)
        return fault

    # ---- objects (direct access, never counted as requests)
    def next_rv(self) -> str:
        self.rv += 1
        return str(self.rv)

    def _res(self, plural: str) -> Any:
        return {"pods": PODS, "configmaps": CONFIGMAPS, "events": EVENTS, "nodes": NODES, "jobs": JOBS}[plural]

    def _on_loop(self, fn: Callable[[], Any]) -> Any:
        """Run ``fn`` on the server's loop (objects are only touched there)."""
        assert self._loop is not None

        async def wrapper() -> Any:
            return fn()

        return asyncio.run_coroutine_threadsafe(wrapper(), self._loop).result(30)

    def get(self, plural: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
        key = (self._res(plural), namespace or self.namespace, name)
        return self._on_loop(lambda: self._server._live(key))  # type: ignore[union-attr]

    def put(self, plural: str, obj: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
        """Create or replace an object as a controller would (assigns uid / resourceVersion if missing)."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("namespace", namespace or self.namespace)
        meta.setdefault("uid", str(uuid.uuid4()))
        meta.setdefault("creationTimestamp", now_iso())
        meta["resourceVersion"] = self.next_rv()
        key = (self._res(plural), meta["namespace"], meta["name"])

        def write() -> None:
            objs = self._server.objects  # type: ignore[union-attr]
            if key in objs and not objs[key].deleted:
                objs[key].patch({k: None for k in objs[key].raw})
                objs[key].patch(json.loads(json.dumps(obj)))
            elif key in objs:
                objs[key].create(obj)
            else:
                objs[key] = obj
            self.index.clear()

        self._on_loop(write)
        return obj

    def put_many(self, plural: str, objs: list[dict[str, Any]]) -> None:
        """Bulk insert (bench and large tests): one hop to the loop for all objects."""
        res = self._res(plural)
        for obj in objs:
            meta = obj["metadata"]
            meta.setdefault("namespace", self.namespace)
            meta.setdefault("uid", str(uuid.uuid4()))
            meta.setdefault("creationTimestamp", now_iso())
            meta["resourceVersion"] = self.next_rv()

        def write() -> None:
            store = self._server.objects  # type: ignore[union-attr]
            for obj in objs:
                store[(res, obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj
            self.index.clear()

        self._on_loop(write)

    def patch(self, plural: str, name: str, changes: dict[str, Any], namespace: str | None = None) -> None:
        key = (self._res(plural), namespace or self.namespace, name)
        changes = json.loads(json.dumps(changes))
        changes.setdefault("metadata", {})["resourceVersion"] = self.next_rv()

        def write() -> None:
            self._server.objects[key].patch(changes)  # type: ignore[union-attr]
            self.index.clear()

        self._on_loop(write)

    def all(self, plural: str, namespace: str | None = None) -> list[dict[str, Any]]:
        return self.list(plural, namespace or self.namespace, None, None, in_loop=False)

    def list(
        self,
        plural: str,
        namespace: str | None,
        label_selector: str | None,
        field_selector: str | None,
        *,
        in_loop: bool = True,
    ) -> list[dict[str, Any]]:
        res = self._res(plural)
        single = (
            label_selector and not field_selector and re.fullmatch(r"([^=!,\s()]+)=([^=,\s()]*)", label_selector)
        )

        def indexed(key: str, value: str) -> list[dict[str, Any]]:
            slot = (plural, namespace, key)
            if slot not in self.index:
                table: dict[str, list[Any]] = {}
                for (r, ns, _name), obj in self._server.objects.items():  # type: ignore[union-attr]
                    if r == res and not obj.deleted and (namespace is None or ns == namespace):
                        labels = (obj.last.get("metadata") or {}).get("labels") or {}
                        if key in labels:
                            table.setdefault(labels[key], []).append(obj)
                self.index[slot] = table
            return [obj.raw for obj in self.index[slot].get(value, []) if not obj.deleted]

        def collect() -> list[dict[str, Any]]:
            if single:
                return indexed(single.group(1), single.group(2))
            out = []
            for (r, ns, _name), obj in self._server.objects.items():  # type: ignore[union-attr]
                if r != res or obj.deleted or (namespace is not None and ns != namespace):
                    continue
                raw = obj.raw
                labels = (raw.get("metadata") or {}).get("labels") or {}
                if label_selector and not label_selector_matches(label_selector, labels):
                    continue
                if field_selector and not field_selector_matches(field_selector, raw):
                    continue
                out.append(raw)
            return out

        return collect() if in_loop else self._on_loop(collect)

    # ---- behaviour the server needs
    def on_created(self, plural: str, namespace: str, name: str) -> None:
        for hook in self._created_hooks:
            hook(plural, namespace, name)

    def collect_garbage(self, owner_uid: str | None, propagation: str) -> None:
        """GarbageCollectorDouble: delete (or orphan) every object owned by ``owner_uid``, recursively."""
        if not owner_uid:
            return
        store = self._server.objects  # type: ignore[union-attr]
        for _key, obj in list(store.items()):
            if obj.deleted:
                continue
            raw = obj.raw
            refs = (raw.get("metadata") or {}).get("ownerReferences") or []
            if not any(ref.get("uid") == owner_uid for ref in refs):
                continue
            if propagation == "Orphan":
                rest = [ref for ref in refs if ref.get("uid") != owner_uid]
                obj.patch({"metadata": {"ownerReferences": rest or None}})
                continue
            obj.delete()
            self.index.clear()
            self.collect_garbage((raw.get("metadata") or {}).get("uid"), propagation)

    def serve_log(
        self, namespace: str, pod: str, obj: dict[str, Any], params: dict[str, str]
    ) -> aiohttp.web.StreamResponse:
        """``pods/log`` (GAP: kmock has no log subresource). 400 while the container has not started, as the
        API server answers."""
        statuses = (obj.get("status") or {}).get("containerStatuses") or []
        started = any(
            "running" in (s.get("state") or {}) or "terminated" in (s.get("state") or {}) for s in statuses
        )
        if not started:
            container = obj["spec"]["containers"][0]["name"]
            reason = ((statuses[0].get("state") or {}).get("waiting") or {}).get("reason") if statuses else None
            message = (
                f'container "{container}" in pod "{pod}" is waiting to start: {reason or "ContainerCreating"}'
            )
            return aiohttp.web.json_response(status_body(400, "BadRequest", message), status=400)
        text = self.logs.get((namespace, pod), "")
        tail = params.get("tailLines")
        if tail is not None:
            text = "".join(text.splitlines(keepends=True)[-int(tail) :])
        return aiohttp.web.Response(text=text, content_type="text/plain")
