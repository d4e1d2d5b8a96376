"""An OTLP/HTTP trace receiver on loopback, what a collector is to the gateway: `POST /v1/traces` with an
`ExportTraceServiceRequest` (protobuf, gzip or not), answered 200 with an empty export response.

Tests keep and decode the spans (`keep=True`, which needs opentelemetry-proto: the `otel` extra);
the overhead benchmark only needs the gateway to have somewhere to send them, so by default each batch
is read and dropped. A threaded `http.server` of the standard library: it runs beside the code under
test, never in its event loop.
"""

from __future__ import annotations

import gzip
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

from testkit.loopback import LOOPBACK


@dataclass(frozen=True, slots=True)
class ReceivedSpan:
    """One span as exported, its ids in hex (as a `traceparent` writes them), its attributes as values."""

    name: str
    kind: int
    """OTLP's: 2 server, 3 client, 1 internal."""
    trace_id: str
    span_id: str
    parent_span_id: str
    attributes: dict[str, Any]
    events: tuple[str, ...]
    status_code: int
    """OTLP's: 0 unset, 1 ok, 2 error."""
    resource: dict[str, Any] = field(default_factory=dict)


class OtlpReceiver:
    """Serves on 127.0.0.1 on a free port (`endpoint` is the base URL, for `OTEL_EXPORTER_OTLP_ENDPOINT`)."""

    def __init__(self, *, keep: bool = False) -> None:
        self._keep = keep
        self._lock = threading.Lock()
        self._spans: list[ReceivedSpan] = []
        self.batches = 0
        """Export requests received."""
        self.bytes_received = 0
        """Their bodies' bytes, as sent (compressed or not)."""
        self._server = ThreadingHTTPServer((LOOPBACK, 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True, name="otlp-receiver")

    @property
    def endpoint(self) -> str:
        return f"http://{LOOPBACK}:{self._server.server_address[1]}"

    @property
    def spans(self) -> list[ReceivedSpan]:
        with self._lock:
            return list(self._spans)

    def __enter__(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def _received(self, body: bytes, *, gzipped: bool) -> None:
        spans = _decoded(gzip.decompress(body) if gzipped else body) if self._keep else []
        with self._lock:
            self.batches += 1
            self.bytes_received += len(body)
            self._spans.extend(spans)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.path != "/v1/traces":
                    self.send_error(404)
                    return
                receiver._received(body, gzipped=self.headers.get("Content-Encoding") == "gzip")
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass  # quiet: the tests' output is theirs

        return Handler


def _decoded(body: bytes) -> list[ReceivedSpan]:
    from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

    request = ExportTraceServiceRequest()
    request.ParseFromString(body)
    spans = []
    for resource_spans in request.resource_spans:
        resource = {a.key: _value(a.value) for a in resource_spans.resource.attributes}
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                spans.append(ReceivedSpan(
                    name=span.name, kind=span.kind, trace_id=span.trace_id.hex(), span_id=span.span_id.hex(),
                    parent_span_id=span.parent_span_id.hex(),
                    attributes={a.key: _value(a.value) for a in span.attributes},
                    events=tuple(e.name for e in span.events), status_code=span.status.code, resource=resource))
    return spans


def _value(value: Any) -> Any:
    """An OTLP `AnyValue` as Python: str, bool, int, float, or a list of them."""
    which = value.WhichOneof("value")
    if which == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, which) if which is not None else None
