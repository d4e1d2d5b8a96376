"""What happened to one relayed stream, as every relay reports it (for logs, metrics and usage accounting)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError


@dataclass(slots=True)
class StreamOutcome:
    """What happened to one relayed stream (for logs, metrics and usage accounting)."""

    completed: bool = False
    """The stream ended with `[DONE]`, every choice with its `finish_reason`: a whole answer."""
    error: GatewayError | None = None
    client_disconnected: bool = False
    chunks: int = 0
    content_chunks: int = 0
    usage: dict[str, Any] | None = None
    usage_counted_by_gateway: bool = False
    first_content_at: float | None = None
    """`time.perf_counter()` when the first content chunk was handed on."""
    last: dict[str, Any] = field(default_factory=dict)
    """The last chunk with choices."""
    native: bool = False
    """The stream was the worker's own for a surface the gateway translates (Anthropic's, Responses'),
    relayed as it is: nothing in it for the cache, which keeps OpenAI chunks."""
