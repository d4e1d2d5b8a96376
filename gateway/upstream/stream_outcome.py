"""What happened to one relayed stream, as every relay reports it (for logs, metrics and usage accounting)."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

from gateway.errors import GatewayError
from gateway.upstream.sse_events import StreamFormatError, decode_chunk


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
    """The last chunk with choices (decoded: `settled_last`)."""
    last_payload: bytes | None = None
    """The last chunk with choices, when the relay passed it on without decoding it (a plain content
    chunk: `sse_stream_state`): `last` is older then, until `settled_last`."""
    native: bool = False
    """The stream was the worker's own for a surface the gateway translates (Anthropic's, Responses'),
    relayed as it is: nothing in it for the cache, which keeps OpenAI chunks."""

    def settled_last(self) -> dict[str, Any]:
        """`last`, decoded from `last_payload` if the relay left it undecoded (once a stream)."""
        if self.last_payload is not None:
            with contextlib.suppress(StreamFormatError):  # checked by its bytes only: the older chunk stays
                self.last = decode_chunk(self.last_payload)
            self.last_payload = None
        return self.last
