"""The streaming client's side of a chat completion: an OpenAI stream (server-sent events) read as it
arrives, for the suites that stream through the gateway (streaming, routing, soak).

`payloads` gives each `data:` line's payload, `[DONE]` included (a stream that ends without it was cut);
`read_stream` reads a whole stream and keeps what the suites measure: when each content chunk arrived
(time to first token, the gaps between chunks), the usage chunk, an error event, and whether `[DONE]`
came. Chunks are decoded with msgspec (cheaper per chunk than json, which matters on 2 cores).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import msgspec

DONE = b"[DONE]"
_decode = msgspec.json.Decoder().decode


async def payloads(lines: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """The payload of each `data:` line of an SSE body (stripped), `[DONE]` included; other lines skipped."""
    async for raw in lines:
        line = raw.strip()
        if line.startswith(b"data:"):
            yield line[5:].strip()


def decode(payload: bytes) -> Any:
    """A chunk's JSON (raises ValueError when it is not JSON)."""
    return _decode(payload)


def content_of(chunk: object) -> str:
    """The text the chunk's first choice adds (`choices[0].delta.content`), or ""."""
    choices = chunk.get("choices") if isinstance(chunk, dict) else None
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        return ""
    delta = choices[0].get("delta")
    content = delta.get("content") if isinstance(delta, dict) else None
    return content if isinstance(content, str) else ""


def has_content(payload: bytes) -> bool:
    """Whether a payload is a chunk that carries content."""
    try:
        return bool(content_of(decode(payload)))
    except ValueError:
        return False


@dataclass(slots=True)
class StreamSeen:
    """What a client saw of one stream."""

    content_times: list[float] = field(default_factory=list)
    """`time.perf_counter()` when each chunk with content arrived."""
    usage: dict[str, Any] | None = None
    """The usage chunk's `usage` (with `stream_options.include_usage`)."""
    error: object = None
    """The error event's `error`, when the stream ended with one."""
    done: bool = False
    """`[DONE]` arrived."""


async def read_stream(lines: AsyncIterable[bytes]) -> StreamSeen:
    """Read a stream to its `[DONE]` (or its end, or an error event, which ends it)."""
    seen = StreamSeen()
    async for payload in payloads(lines):
        if payload == DONE:
            seen.done = True
            break
        chunk = decode(payload)
        if isinstance(chunk, dict) and "error" in chunk:
            seen.error = chunk["error"]
            break
        if content_of(chunk):
            seen.content_times.append(time.perf_counter())
        usage = chunk.get("usage") if isinstance(chunk, dict) else None
        if isinstance(usage, dict):
            seen.usage = usage
    return seen
