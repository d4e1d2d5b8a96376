"""What one request did, filled in as it goes (handler, pipeline, relay), read once at its end for the
metrics and the canonical log line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.observability.tracing import RequestTrace


@dataclass(slots=True)
class RequestRecord:
    request_id: str
    method: str
    path: str
    started: float
    """`time.perf_counter()` when the request arrived."""
    endpoint: str = "other"
    """A bounded name (`chat/completions`, `models`, `health`, ...), never the raw path."""
    key_id: str | None = None
    model: str | None = None
    route: str | None = None
    worker: str | None = None
    attempts: int = 0
    fallback_from: str | None = None
    stream: bool = False
    pushed: bool = False
    """The stream went straight from the worker's connection to the client's (`gateway.upstream.sse_push`)."""
    status: int = 0
    first_byte: float | None = None
    """`perf_counter()` when the response started."""
    first_token: float | None = None
    """Streams: `perf_counter()` when the first content chunk went out."""
    upstream_s: float = 0.0
    """Time spent waiting on workers (connect, headers, whole bodies)."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    tokens_counted: bool = False
    """The gateway counted the tokens (the worker reported none, or the client left)."""
    cache: str | None = None
    error: str | None = None
    client_disconnected: bool = False
    quiet: bool = False
    """Probes: logged at debug level only."""
    trace: RequestTrace | None = None
    """The request's spans, when tracing is on (`gateway.observability.tracing`); each stage checks."""

    def log_fields(self, finished: float) -> dict[str, Any]:
        """The canonical line's fields: the five always there, then the others that have a value (`endpoint`:
        the API surface or route, as metrics label it), in this
        order (built field by field: it runs once per request)."""
        started = self.started
        fields: dict[str, Any] = {
            "request_id": self.request_id, "method": self.method, "path": self.path,
            "status": self.final_status(), "duration_ms": round((finished - started) * 1000, 3),
        }
        if self.endpoint != "other":
            fields["endpoint"] = self.endpoint
        if self.key_id is not None:
            fields["key_id"] = self.key_id
        if self.model is not None:
            fields["model"] = self.model
        if self.route is not None:
            fields["route"] = self.route
        if self.worker is not None:
            fields["worker"] = self.worker
        if self.attempts:
            fields["attempts"] = self.attempts
        if self.fallback_from is not None:
            fields["fallback_from"] = self.fallback_from
        if self.stream:
            fields["stream"] = True
            if self.pushed:
                fields["pushed"] = True
        if self.first_token is not None:
            fields["ttft_ms"] = round((self.first_token - started) * 1000, 3)
        if self.upstream_s:
            fields["upstream_ms"] = round(self.upstream_s * 1000, 3)
        if self.prompt_tokens is not None:
            fields["tokens_in"] = self.prompt_tokens
        if self.completion_tokens is not None:
            fields["tokens_out"] = self.completion_tokens
        if self.tokens_counted:
            fields["tokens_counted"] = True
        if self.cache is not None:
            fields["cache"] = self.cache
        if self.error is not None:
            fields["error"] = self.error
        return fields

    def final_status(self) -> int:
        return 499 if self.client_disconnected else (self.status or 500)
