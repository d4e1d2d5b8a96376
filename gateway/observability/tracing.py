"""The spans of one request, when tracing is on (`gateway.observability.tracing_setup` builds the
`GatewayTracer` once at startup; off, there is none and the request path only checks for None):

    SERVER  POST /v1/chat/completions         the request (joins the client's `traceparent`)
      ├─ auth                                 who calls
      ├─ cache lookup                         the response cache (when on)
      ├─ admission                            the caller's limits (when it has any)
      ├─ CLIENT chat <model>  (attempt 1)     one try on one worker: its `traceparent` goes to the worker
      ├─ CLIENT chat <model>  (attempt 2)     a retry or a fallback, each its own span
      └─ stream                               the relay of the answering worker's stream, to its end

Parents are given explicitly (never OpenTelemetry's current context), so the spans hang together
whatever task runs a stage. This module imports OpenTelemetry's API: it is only imported when tracing
is on (the `otel` extra).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from typing import Any, TypeVar

from opentelemetry import propagate
from opentelemetry.propagators.textmap import Getter
from opentelemetry.trace import Span, SpanKind, StatusCode, Tracer, set_span_in_context

from gateway.observability.request_record import RequestRecord
from gateway.observability.trace_attributes import (
    Attributes,
    answer_attributes,
    chunk_attributes,
    error_type,
    request_attributes,
    usage_attributes,
    worker_attributes,
)

T = TypeVar("T")

_HEADERS_TRACED = (b"traceparent", b"tracestate", b"baggage")


class _AsgiHeaders(Getter[Mapping[str, str]]):
    """Reads the propagation headers from the few an ASGI request carried (picked out once)."""

    def get(self, carrier: Mapping[str, str], key: str) -> list[str] | None:
        value = carrier.get(key)
        return None if value is None else [value]

    def keys(self, carrier: Mapping[str, str]) -> list[str]:
        return list(carrier)


_GETTER = _AsgiHeaders()


class GatewayTracer:
    """The app's tracer, built once at startup (its own provider, never the process's global one, so
    that several apps in one process keep apart), and whether prompts and answers go in spans."""

    def __init__(self, tracer: Tracer, *, content: bool, shutdown: Callable[[], Coroutine[Any, Any, None]]) -> None:
        self._tracer = tracer
        self.content = content
        self.shutdown = shutdown
        """Flush the spans still queued and stop exporting (the app's shutdown)."""

    def start_request(self, method: str, path: str, headers: Iterable[tuple[bytes, bytes]],
                      record: RequestRecord) -> RequestTrace:
        """The SERVER span of a request that just arrived, a child of the client's span when it sent a
        `traceparent`."""
        carrier = {name.decode("latin-1"): value.decode("latin-1") for name, value in headers
                   if name in _HEADERS_TRACED}
        parent = propagate.extract(carrier, getter=_GETTER) if carrier else None
        span = self._tracer.start_span(method, context=parent, kind=SpanKind.SERVER, attributes={
            "http.request.method": method, "url.path": path, "url.scheme": "http",
            "gateway.request_id": record.request_id})
        return RequestTrace(self._tracer, span, self.content)


class RequestTrace:
    """One request's spans: the SERVER span, and the children each stage starts."""

    __slots__ = ("_context", "_tracer", "content", "server")

    def __init__(self, tracer: Tracer, server: Span, content: bool) -> None:
        self._tracer = tracer
        self.server = server
        self._context = set_span_in_context(server)
        self.content = content

    def child(self, name: str) -> Span:
        """A span `name` under the request's, started now."""
        return self._tracer.start_span(name, context=self._context)

    async def traced(self, name: str, work: Awaitable[T], after: Callable[[], Attributes] | None = None) -> T:
        """`work`'s result, timed as a child span `name` (a failure recorded in it; `after`: attributes
        to add once it is done)."""
        span = self.child(name)
        try:
            result = await work
        except BaseException as exc:
            _failed(span, exc)
            raise
        finally:
            if after is not None:
                span.set_attributes(after())
            span.end()
        return result

    def decoded(self, endpoint: str, body: Mapping[str, Any]) -> None:
        """The request was decoded: its GenAI request attributes go on the SERVER span."""
        self.server.set_attributes(request_attributes(endpoint, body, content=self.content))

    def start_attempt(self, *, number: int, model: str, chosen: str, worker: str, url: str, kind: str,
                      upstream_model: str, endpoint: str, body: Mapping[str, Any]) -> AttemptTrace:
        """The CLIENT span of one try on one worker (`number`: 1 for the first, then each retry or
        fallback); `chosen`: the model first chosen (the try is a fallback when `model` differs)."""
        attributes = request_attributes(endpoint, body, content=self.content)
        attributes.update(worker_attributes(worker=worker, url=url, kind=kind, upstream_model=upstream_model))
        attributes["gateway.attempt"] = number
        attributes["gateway.model"] = model
        if model != chosen:
            attributes["gateway.fallback_from"] = chosen
        name = f"{attributes['gen_ai.operation.name']} {upstream_model}"
        span = self._tracer.start_span(name, context=self._context, kind=SpanKind.CLIENT, attributes=attributes)
        return AttemptTrace(self, span)

    def finish(self, record: RequestRecord, route: str | None) -> None:
        """End the SERVER span with what the request did (`route`: the path template that served it,
        None for an unknown path)."""
        server = self.server
        status = record.final_status()
        if route is None and record.endpoint != "other":
            route = record.path
        if route is not None:
            server.update_name(f"{record.method} {route}")
            server.set_attribute("http.route", route)
        server.set_attribute("http.response.status_code", status)
        server.set_attributes(_record_attributes(record))
        if status >= 500:
            server.set_attribute("error.type", record.error or str(status))
            server.set_status(StatusCode.ERROR)
        server.end()


class AttemptTrace:
    """The span of one try, and what the worker's answer or stream adds to it (and to the request's)."""

    __slots__ = ("request", "span")

    def __init__(self, request: RequestTrace, span: Span) -> None:
        self.request = request
        self.span = span

    def worker_headers(self, headers: Mapping[str, str] | None) -> dict[str, str]:
        """`headers` and this try's `traceparent` (and `tracestate`): the worker's spans join the trace as
        children of this one."""
        carrier = dict(headers) if headers else {}
        propagate.inject(carrier, context=set_span_in_context(self.span))
        return carrier

    def failed(self, error: BaseException) -> None:
        _failed(self.span, error)
        self.span.end()

    def answered(self, body: bytes) -> None:
        """A whole answer: its GenAI response attributes, on this span and the request's."""
        attributes = answer_attributes(body, content=self.request.content)
        self.span.set_attributes(attributes)
        self.request.server.set_attributes(attributes)
        self.span.end()

    def stream(self) -> StreamTrace:
        """The span of the stream this try answered with, a child of the request's span."""
        return StreamTrace(self, self.request.child("stream"), time.perf_counter())


class StreamTrace:
    """A relayed stream: its first token (an event) and how it ended; the try's span ends with it."""

    __slots__ = ("_attempt", "_started", "span")

    def __init__(self, attempt: AttemptTrace, span: Span, started: float) -> None:
        self._attempt = attempt
        self.span = span
        self._started = started

    def first_token(self) -> None:
        ttft = time.perf_counter() - self._started
        self.span.add_event("first_token", {"gateway.time_to_first_token_ms": round(ttft * 1000, 3)})

    def ended(self, *, completed: bool, error: BaseException | None, client_disconnected: bool, chunks: int,
              last: Mapping[str, Any], input_tokens: int | None = None, output_tokens: int | None = None) -> None:
        """The stream is over: its outcome on this span, its GenAI response attributes on the try's span and
        the request's; both this span and the try's end."""
        attempt_span, stream_span = self._attempt.span, self.span
        outcome: Attributes = {"gateway.stream.completed": completed, "gateway.stream.chunks": chunks}
        if client_disconnected:
            outcome["gateway.client_disconnected"] = True
        stream_span.set_attributes(outcome)
        response = chunk_attributes(last)
        response.update(usage_attributes(input_tokens, output_tokens))
        attempt_span.set_attributes(response)
        self._attempt.request.server.set_attributes(response)
        if error is not None:
            _failed(stream_span, error)
            _failed(attempt_span, error)
        stream_span.end()
        attempt_span.end()


def _failed(span: Span, error: BaseException) -> None:
    span.set_attribute("error.type", error_type(error))
    span.set_status(StatusCode.ERROR, str(error) or None)


def _record_attributes(record: RequestRecord) -> Attributes:
    """What the request record says that a trace reader looks for on the request's span."""
    attributes: Attributes = usage_attributes(record.prompt_tokens, record.completion_tokens)
    for name, value in (("gateway.model", record.model), ("gateway.route", record.route),
                        ("gateway.worker", record.worker), ("gateway.key_id", record.key_id),
                        ("gateway.cache", record.cache), ("gateway.fallback_from", record.fallback_from),
                        ("gateway.error", record.error)):
        if value is not None:
            attributes[name] = value
    if record.attempts:
        attributes["gateway.attempts"] = record.attempts
    if record.client_disconnected:
        attributes["gateway.client_disconnected"] = True
    return attributes
