"""What relaying one OpenAI SSE stream keeps track of, fed the worker's bytes as they arrive: the client's
bytes come out, the stream's outcome is noted. Pure code (no I/O): the relay that reads in a task
(`sse_relay`) and the one the worker's connection pushes to (`sse_push`) share it.

The checks (`sse_relay` says which): a worker's error event or a malformed chunk raises; `[DONE]` before
every choice finished, or no `[DONE]` at all, fails the stream at its end. The usage chunk goes to the
client only if it asked; the gateway counts one when the worker sent none.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import msgspec

from gateway.errors import GatewayError, UpstreamError, worker_error
from gateway.upstream.sse_events import DONE_DATA, SseSplitter, StreamFormatError, decode_chunk
from gateway.upstream.stream_choices import ChoiceTracker, cut_message
from gateway.upstream.stream_outcome import StreamOutcome

DONE = b"data: [DONE]\n\n"
_encode = msgspec.json.Encoder().encode


def error_event(error: GatewayError) -> bytes:
    return b"data: " + _encode(error.body()) + b"\n\n"


class SseStreamState:
    """One relayed stream: its parser, choices and outcome."""

    __slots__ = ("_choices", "_events", "capture", "client_wants_usage", "done", "on_first",
                 "outcome", "pending", "prompt_tokens_estimate", "worker_name")

    def __init__(self, worker_name: str, *, client_wants_usage: bool, prompt_tokens_estimate: int,
                 on_first: Callable[[], None] | None, capture: list[bytes] | None) -> None:
        self.worker_name = worker_name
        self.client_wants_usage = client_wants_usage
        self.prompt_tokens_estimate = prompt_tokens_estimate
        self.on_first = on_first
        self.capture = capture
        """Every data payload is appended to it (the usage chunk included), for the cache."""
        self.outcome = StreamOutcome()
        self.done = False
        """`[DONE]` came: nothing after it is read."""
        self.pending = b""
        """Events `events` made but did not hand back (a later chunk of the same piece failed)."""
        self._choices = ChoiceTracker()
        self._events = SseSplitter()

    def feed(self, data: bytes) -> bytes:
        """The client's bytes for one piece of the worker's stream: the events it completed, in one piece
        (b"" for none). Raises `GatewayError`; the events before the fault are left in `pending`, for the
        caller to send before the error event."""
        return self.events(self.payloads(data))

    def events(self, payloads: list[bytes]) -> bytes:
        """The client's bytes for `payloads` (up to `[DONE]`), in one piece (see `feed`)."""
        for payload in payloads:
            if payload == DONE_DATA:
                self.done = True
                break
            if event := self.take(payload)[0]:
                self.pending = self.pending + event if self.pending else event
        out, self.pending = self.pending, b""
        return out

    def payloads(self, data: bytes) -> list[bytes]:
        """The data payloads `data` completes."""
        try:
            return self._events.feed(data)
        except StreamFormatError as exc:
            raise UpstreamError(f"worker {self.worker_name!r} sent {exc}") from None

    def end_payloads(self) -> list[bytes]:
        """The payload of an event the worker's stream ended without its blank line."""
        return self._events.end()

    def take(self, payload: bytes) -> tuple[bytes | None, dict[str, Any]]:
        """The client's event for one worker chunk (None: a usage chunk the client did not ask for) and the
        chunk decoded."""
        chunk, has_content = self._checked(payload)
        outcome = self.outcome
        outcome.chunks += 1
        if self.capture is not None:
            self.capture.append(payload)
        usage = chunk.get("usage")
        if usage:
            outcome.usage = usage
            if not chunk.get("choices"):  # the usage-only chunk
                return (b"data: " + payload + b"\n\n" if self.client_wants_usage else None), chunk
        if has_content:
            self._content()
        outcome.last = chunk
        return b"data: " + payload + b"\n\n", chunk

    def end(self) -> bytes:
        """The stream's last bytes once the worker's ended (`[DONE]` read, or the body over): the counted
        usage chunk if one is due, and `[DONE]`. Raises `UpstreamError` for a stream that did not end whole."""
        if not self.done:
            raise UpstreamError(f"worker {self.worker_name!r} ended the stream without [DONE]")
        if unfinished := self._choices.unfinished():
            raise UpstreamError(cut_message(self.worker_name, unfinished))
        outcome = self.outcome
        outcome.completed = True
        if self.client_wants_usage and outcome.usage is None:
            estimate = self.prompt_tokens_estimate
            # Workers stream one token per chunk; the prompt is estimated when the worker does not say.
            outcome.usage = {"prompt_tokens": estimate, "completion_tokens": outcome.content_chunks,
                             "total_tokens": estimate + outcome.content_chunks}
            outcome.usage_counted_by_gateway = True
            return b"data: " + _encode(_usage_chunk(outcome.last, outcome.usage)) + b"\n\n" + DONE
        return DONE

    def _content(self) -> None:
        outcome = self.outcome
        outcome.content_chunks += 1
        if outcome.first_content_at is None:
            outcome.first_content_at = time.perf_counter()
            if self.on_first is not None:
                self.on_first()

    def _checked(self, payload: bytes) -> tuple[dict[str, Any], bool]:
        """A worker's chunk, and whether it carries content (its choices noted); its error event or a
        malformed chunk raises."""
        try:
            chunk = decode_chunk(payload)
            if "error" in chunk:
                raise worker_error(500, payload)
            return chunk, self._choices.read(chunk)
        except StreamFormatError as exc:
            raise UpstreamError(f"worker {self.worker_name!r} sent {exc}") from None
        except (AttributeError, TypeError):  # `choices` or a `delta` that is not what OpenAI sends
            raise UpstreamError(f"worker {self.worker_name!r} sent a malformed stream chunk") from None


def _usage_chunk(last: dict[str, Any], usage: dict[str, int]) -> dict[str, Any]:
    return {"id": last.get("id", ""), "object": last.get("object", "chat.completion.chunk"),
            "created": last.get("created", 0), "model": last.get("model", ""), "choices": [],
            "usage": usage}
