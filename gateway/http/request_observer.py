"""The outermost ASGI layer: gives every request its id (`x-request-id`, taken from the client when
sane, else generated, and returned on every response, errors included) and its `RequestRecord`, and
when the request is over records its metrics and writes its one canonical log line.

Pure ASGI (no per-request framework objects), so it costs next to nothing.
"""

from __future__ import annotations

import itertools
import re
import secrets
import time
from typing import TYPE_CHECKING

from litestar.enums import ScopeType
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from gateway.http.header_limit import header_bytes, refuse_oversize_headers
from gateway.observability.logs import log_line
from gateway.observability.metrics import GatewayMetrics, LabelledChildren, status_class
from gateway.observability.request_record import RequestRecord

if TYPE_CHECKING:
    from gateway.auth import UsageStore
    from gateway.observability.tracing import GatewayTracer

HEADER = b"x-request-id"
_SANE = re.compile(rb"[A-Za-z0-9._:\-]{1,128}")
_LOGGER = "gateway.request"
UNTRACED_PATHS = frozenset({"/", "/livez", "/readyz", "/health", "/metrics", "/api/metrics"})
"""Probes and scrapes: no span (they come every few seconds and say nothing about callers)."""


_PROCESS_PREFIX = "req_" + secrets.token_hex(5)
_sequence = itertools.count(1)


def new_request_id() -> str:
    """`req_` + 10 hex digits random to this process + a 14-digit sequence: unique across replicas
    without a random draw (a system call) per request."""
    return f"{_PROCESS_PREFIX}{next(_sequence):014x}"


def transport_send_of(scope: Scope) -> Send | None:
    """The server's own ASGI send for this request (what `gateway.http.transport_sink` writes through)."""
    state = scope.get("state") or {}
    send = state.get("transport_send")
    return send if callable(send) else None


def record_of(scope: Scope) -> RequestRecord:
    state = scope.get("state") or {}
    record = state.get("record")
    if isinstance(record, RequestRecord):
        return record
    return RequestRecord(new_request_id(), str(scope.get("method", "")), scope["path"], time.perf_counter())


class RequestObserver:
    def __init__(self, app: ASGIApp, metrics: GatewayMetrics, *, log_level: str = "info",
                 max_header_bytes: int = 0, tracer: GatewayTracer | None = None,
                 usage: UsageStore | None = None) -> None:
        """`max_header_bytes`: larger request headers get 431 (0: no limit). `tracer`: each request's
        SERVER span starts and ends here (None: tracing is off). `usage`: each request made with a key
        (but the console's own) is counted there, in memory (None: not counted)."""
        self.app = app
        self._tracer = tracer
        self._usage = usage
        self.metrics = metrics
        self._max_header_bytes = max_header_bytes
        self._requests = LabelledChildren(metrics.requests)
        self._duration = LabelledChildren(metrics.duration)
        self._ttft = LabelledChildren(metrics.ttft)
        self._overhead = LabelledChildren(metrics.overhead)
        self._tokens = LabelledChildren(metrics.tokens)
        # The request line is built only when it will be written (it is the hot path's largest cost).
        self._log_requests = log_level in ("debug", "info")
        self._log_probes = log_level == "debug"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != ScopeType.HTTP:
            await self.app(scope, receive, send)
            return
        request_id = None
        for name, value in scope["headers"]:
            if name == HEADER:
                if _SANE.fullmatch(value):
                    request_id = value.decode("ascii")
                break
        record = RequestRecord(request_id or new_request_id(), scope["method"], scope["path"], time.perf_counter())
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state["record"] = record
        state["transport_send"] = send  # the server's own: a pushed stream writes to its connection
        tracer = self._tracer
        if tracer is not None and scope["path"] not in UNTRACED_PATHS:
            record.trace = tracer.start_request(scope["method"], scope["path"], scope["headers"], record)
        encoded = record.request_id.encode("ascii")

        async def send_observed(message: Message) -> None:
            if message["type"] == "http.response.start":
                record.status = message["status"]
                record.first_byte = time.perf_counter()
                headers = [h for h in message.get("headers", ()) if h[0].lower() != HEADER]
                headers.append((HEADER, encoded))
                message["headers"] = headers
            await send(message)

        metrics = self.metrics
        metrics.in_flight.inc()
        metrics.seed.active_connections += 1
        try:
            if self._max_header_bytes and header_bytes(scope["headers"]) > self._max_header_bytes:
                record.error = (await refuse_oversize_headers(send_observed, self._max_header_bytes)).error_code
            else:
                await self.app(scope, receive, send_observed)
        finally:
            metrics.in_flight.dec()
            metrics.seed.active_connections -= 1
            self._finish(record, time.perf_counter())
            if record.trace is not None:
                record.trace.finish(record, scope.get("path_template"))

    def _finish(self, record: RequestRecord, finished: float) -> None:
        metrics = self.metrics
        status = record.final_status()
        model = record.model or ""
        self._requests(record.endpoint, model, record.route or "", record.worker or "", status_class(status)).inc()
        if not record.quiet:
            metrics.seed.requests_total += 1
            if status >= 500:
                metrics.seed.errors_total += 1
            self._duration(record.endpoint, model).observe(finished - record.started)
        if record.first_token is not None:
            self._ttft(model).observe(record.first_token - record.started)
        if record.model is not None and record.first_byte is not None:
            overhead = (record.first_byte - record.started) - record.upstream_s
            self._overhead(record.endpoint).observe(max(0.0, overhead))
        key = record.key_id or ""
        if record.prompt_tokens:
            self._tokens(model, key, "prompt").inc(record.prompt_tokens)
        if record.completion_tokens:
            self._tokens(model, key, "completion").inc(record.completion_tokens)
        if self._usage is not None and record.key_id is not None and record.endpoint != "console":
            self._usage.count(record.key_id, model, record.prompt_tokens or 0, record.completion_tokens or 0,
                              status >= 400)
        if record.quiet:
            if self._log_probes:
                log_line(_LOGGER, "debug", "request", record.log_fields(finished))
        elif self._log_requests:
            log_line(_LOGGER, "info", "request", record.log_fields(finished))
