"""What one request did, filled in as it goes (handler, pipeline, relay), read once at its end for the
metrics and the canonical log line."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


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

    def log_fields(self, finished: float) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "request_id": self.request_id, "method": self.method, "path": self.path,
            "status": self.final_status(), "duration_ms": round((finished - self.started) * 1000, 3),
        }
        optional = {
            "key_id": self.key_id, "model": self.model, "route": self.route, "worker": self.worker,
            "attempts": self.attempts or None, "fallback_from": self.fallback_from,
            "stream": self.stream or None, "ttft_ms": None if self.first_token is None
            else round((self.first_token - self.started) * 1000, 3),
            "upstream_ms": round(self.upstream_s * 1000, 3) if self.upstream_s else None,
            "tokens_in": self.prompt_tokens, "tokens_out": self.completion_tokens,
            "tokens_counted": self.tokens_counted or None, "cache": self.cache, "error": self.error,
        }
        fields.update({k: v for k, v in optional.items() if v is not None})
        return fields

    def final_status(self) -> int:
        return 499 if self.client_disconnected else (self.status or 500)
