"""A fault-injecting proxy in front of the real API server: the one thing here that is not the real cluster.

A real API server does not fail on request, so the failures ml-jobs must survive are made here: an HTTP error (403,
409, 422, 429 with Retry-After, 5xx) or a timeout, either *before* the server sees the request or *after* it has
committed it (the answer is lost: the case that makes a naive retry create duplicates). Everything else is
forwarded unchanged to the real API server, authenticated as the proxy's user (a client certificate), and every
request is logged (method, path, query, JSON body) so a test can assert exactly what ml-jobs sent and count it.

The client talks plain HTTP to 127.0.0.1; the proxy talks TLS to the API server. Answers stream through chunk by
chunk (a followed log or a watch stays open).
"""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import threading
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import aiohttp.web

_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "content-encoding", "host"}


@dataclass
class Logged:
    """One request the proxy received."""

    method: str
    path: str
    query: dict[str, str]
    body: Any
    status: int = 0
    sent: int = 0  # bytes of the request body
    read: int = 0  # bytes of the answer's body, as it came from the API server

    def __repr__(self) -> str:
        q = "&".join(f"{k}={v}" for k, v in self.query.items())
        return f"{self.method} {self.path}{'?' + q if q else ''} -> {self.status}"


@dataclass
class Fault:
    """An injected failure for requests matching ``method`` and the ``path`` regex, ``times`` times."""

    method: str
    path: str
    status: int | None = None  # None: time out (answer nothing for longer than the client waits)
    times: int = 1
    after_commit: bool = False  # forward the request first: the server acts, the answer is lost
    message: str = ""
    retry_after: int | None = None  # a Retry-After header, as API priority and fairness sends with 429
    hits: int = 0

    def matches(self, method: str, path: str) -> bool:
        return self.hits < self.times and self.method == method and re.search(self.path, path) is not None


def _status_body(code: int, message: str) -> dict[str, Any]:
    """The API server's ``Status`` shape for an error, with the reason it gives for ``code``."""
    reasons = {
        400: "BadRequest",
        403: "Forbidden",
        404: "NotFound",
        409: "Conflict",
        422: "Invalid",
        429: "TooManyRequests",
        500: "InternalError",
        503: "ServiceUnavailable",
        504: "Timeout",
    }
    defaults = {
        403: "forbidden: injected by the test proxy",
        409: "Operation cannot be fulfilled: the object has been modified",
        422: "is invalid",
        429: "Too many requests, please try again later.",
    }
    body: dict[str, Any] = {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message or defaults.get(code, "Internal error occurred: etcdserver: request timed out"),
        "reason": reasons.get(code, "InternalError"),
        "code": code,
    }
    if code == 422:
        body["details"] = {"causes": [{"reason": "FieldValueInvalid", "message": message, "field": "spec"}]}
    return body


@dataclass
class FaultProxy:
    """Forwards to ``upstream`` (https) as the client certificate ``cert``/``key``; see the module docstring."""

    upstream: str
    ca: str
    cert: str
    key: str
    timeout_sleep: float = 2.0
    log: list[Logged] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    url: str = ""

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> FaultProxy:
        ready = threading.Event()

        async def main() -> None:
            ctx = ssl.create_default_context(cafile=self.ca)
            ctx.load_cert_chain(self.cert, self.key)
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=ctx, limit=64),
                timeout=aiohttp.ClientTimeout(total=None, sock_read=None),
                auto_decompress=False,
            )
            app = aiohttp.web.Application(client_max_size=64 * 1024 * 1024)
            app.router.add_route("*", "/{tail:.*}", self._handle)
            runner = aiohttp.web.AppRunner(app, access_log=None, handler_cancellation=True)
            await runner.setup()
            site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            self.url = f"http://127.0.0.1:{port}"
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            ready.set()
            await self._stop.wait()
            await runner.cleanup()
            await self._session.close()

        self._thread = threading.Thread(target=asyncio.run, args=(main(),), daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("the fault proxy did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(10)

    # ------------------------------------------------------------------ faults and the log
    def inject(self, method: str, path: str, status: int | None, **kw: Any) -> Fault:
        """Fail the next request(s) matching ``method`` and the ``path`` regex (see :class:`Fault`)."""
        fault = Fault(method, path, status, **kw)
        self.faults.append(fault)
        return fault

    def requests(self, method: str | None = None, path: str = "") -> list[Logged]:
        """The logged requests with this method whose path contains ``path``."""
        return [r for r in self.log if (method is None or r.method == method) and path in r.path]

    def reset_log(self) -> None:
        self.log.clear()

    # ------------------------------------------------------------------ the handler
    async def _handle(self, request: aiohttp.web.Request) -> aiohttp.web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode("utf-8", "replace")
        entry = Logged(request.method, request.path, dict(request.query), body, sent=len(raw))
        self.log.append(entry)
        fault = next((f for f in self.faults if f.matches(request.method, request.path)), None)
        if fault is not None:
            fault.hits += 1
        if fault is not None and not fault.after_commit:
            return await self._fail(fault, entry)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_HEADERS}
        async with self._session.request(
            request.method,
            self.upstream + request.path_qs,
            data=raw or None,
            headers=headers,
            skip_auto_headers=["Content-Type"],  # forward what the client sent, no more
        ) as answer:
            if fault is not None:  # committed by the server; the answer is lost
                await answer.read()
                return await self._fail(fault, entry)
            entry.status = answer.status
            out = aiohttp.web.StreamResponse(
                status=answer.status,
                headers={k: v for k, v in answer.headers.items() if k.lower() not in _HOP_HEADERS},
            )
            await out.prepare(request)
            async for chunk in answer.content.iter_any():
                entry.read += len(chunk)
                await out.write(chunk)
            await out.write_eof()
            return out

    async def _fail(self, fault: Fault, entry: Logged) -> aiohttp.web.StreamResponse:
        if fault.status is None:
            entry.status = -1
            await asyncio.sleep(self.timeout_sleep)
            return aiohttp.web.Response(status=504)
        entry.status = fault.status
        headers = {"Retry-After": str(fault.retry_after)} if fault.retry_after is not None else None
        body = _status_body(fault.status, fault.message)
        return aiohttp.web.json_response(body, status=fault.status, headers=headers)
