"""The one parser of streamed answers: Server-Sent Events (OpenAI-compatible workers, the gateway's own
streams) and NDJSON (Ollama), split into payloads incrementally, whatever the chunk boundaries.

Pure code (no I/O), so the relay reading a worker, the cache, the capture, the coaching sessions and
the operator CLI reading the gateway all split streams the same way. Per the SSE format: lines end
with LF, CRLF or CR; a blank line ends an event; `data:` lines (one optional space after the colon)
are joined with LF; comments (`: keep-alive`) and other fields (`event:`, `id:`, `retry:`) are
ignored. One leniency, kept from the relay: an event the stream ends without its blank line is still
dispatched (`end`), so a worker that omits the last newline is not taken for one that broke off.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

DONE_DATA = b"[DONE]"
"""The payload of the event that ends an OpenAI stream."""

MAX_EVENT_BYTES = 8 * 1024 * 1024
"""A longer SSE event or NDJSON line is no worker's: the stream is taken as malformed."""

_decode = msgspec.json.Decoder().decode


class StreamFormatError(ValueError):
    """The bytes are not a stream of the expected format (the message completes "the worker sent ...")."""


class _PartialLine:
    """The start of a line whose end has not arrived, kept as pieces: a long line costs one join, not a
    copy per chunk."""

    __slots__ = ("_limit", "_pieces", "_size")

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._pieces: list[bytes] = []
        self._size = 0

    def keep(self, piece: bytes) -> None:
        self._pieces.append(piece)
        self._size += len(piece)
        if self._size > self._limit:
            raise StreamFormatError(f"a stream line longer than {self._limit} bytes")

    def completed_by(self, rest: bytes) -> bytes:
        """`rest` (which ends the line) after the kept start; nothing is kept afterwards."""
        if not self._pieces:
            return rest
        self._pieces.append(rest)
        line = b"".join(self._pieces)
        self._pieces, self._size = [], 0
        return line


class SseSplitter:
    """Splits an SSE byte stream, fed chunk by chunk, into the data payloads of its events."""

    __slots__ = ("_after_cr", "_data", "_data_bytes", "_limit", "_partial")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._limit = max_event_bytes
        self._partial = _PartialLine(max_event_bytes)
        self._data: list[bytes] = []
        """The data lines of the event under way."""
        self._data_bytes = 0
        self._after_cr = False
        """The last chunk ended with CR: an LF starting the next one ends no other line."""

    def feed(self, chunk: bytes) -> list[bytes]:
        """The payloads of the events `chunk` completes, in order (often none, or one)."""
        if self._after_cr and chunk:
            self._after_cr = False
            if chunk.startswith(b"\n"):
                chunk = chunk[1:]
        last = chunk[-1:]
        if last == b"\n" or last == b"\r":  # the usual chunk: whole lines, often one whole event
            self._after_cr = last == b"\r"
            return self._events(self._partial.completed_by(chunk).splitlines())
        cut = max(chunk.rfind(b"\n"), chunk.rfind(b"\r")) + 1
        if cut == 0:
            self._partial.keep(chunk)
            return []
        lines = self._partial.completed_by(chunk[:cut]).splitlines()
        self._partial.keep(chunk[cut:])
        return self._events(lines)

    def end(self) -> list[bytes]:
        """The payload of the event under way when the stream ends (if it has data)."""
        return self.feed(b"\n\n")

    def _events(self, lines: list[bytes]) -> list[bytes]:
        events = []
        data = self._data
        size = self._data_bytes
        for line in lines:
            if not line:
                if data:
                    events.append(data[0] if len(data) == 1 else b"\n".join(data))
                    data.clear()
                    size = 0
            elif line.startswith(b"data:"):
                value = line[6:] if line.startswith(b"data: ") else line[5:]
                data.append(value)
                size += len(value)
            elif line == b"data":
                data.append(b"")
        self._data_bytes = size
        if size > self._limit:
            raise StreamFormatError(f"a stream event longer than {self._limit} bytes")
        return events


class NdjsonSplitter:
    """Splits an NDJSON byte stream, fed chunk by chunk, into its non-blank lines (stripped)."""

    __slots__ = ("_partial",)

    def __init__(self, max_line_bytes: int = MAX_EVENT_BYTES) -> None:
        self._partial = _PartialLine(max_line_bytes)

    def feed(self, chunk: bytes) -> list[bytes]:
        cut = chunk.rfind(b"\n") + 1
        if cut == 0:
            self._partial.keep(chunk)
            return []
        lines = self._partial.completed_by(chunk[:cut]).split(b"\n")
        self._partial.keep(chunk[cut:])
        return [stripped for line in lines if (stripped := line.strip())]

    def end(self) -> list[bytes]:
        """The last line, when the stream ends without its newline."""
        return self.feed(b"\n")


def sse_payloads(items: Iterable[bytes]) -> list[bytes]:
    """The data payloads of a whole SSE stream, however its bytes were cut into `items`."""
    splitter = SseSplitter()
    payloads = [payload for item in items for payload in splitter.feed(item)]
    return payloads + splitter.end()


def ends_with_done(item: bytes) -> bool:
    """Whether a piece of a stream ends with the `[DONE]` event (as the relay yields it: whole events)."""
    tail = item.rstrip()
    return tail.endswith(b"data: [DONE]") or tail.endswith(b"data:[DONE]")


def decode_chunk(payload: bytes) -> dict[str, Any]:
    """A stream chunk's JSON object; raises `StreamFormatError` when the payload is not one."""
    try:
        chunk = _decode(payload)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        raise StreamFormatError("a malformed stream chunk") from None
    if not isinstance(chunk, dict):
        raise StreamFormatError("a malformed stream chunk")
    return chunk


def error_of(chunk: dict[str, Any]) -> dict[str, Any] | None:
    """The error object of an error event (`{"error": {...}}`; a bare string becomes its message), or
    None for any other chunk."""
    if "error" not in chunk:
        return None
    error = chunk["error"]
    return error if isinstance(error, dict) else {"message": str(error)}
