"""A chat completions stream (the worker's, or the cache's replay) as the Responses API's events.

    response.created, response.in_progress                     at once
    response.output_item.added (message), content_part.added  at the first text
    response.output_text.delta                                 per text delta
    response.output_item.added (function_call)                 at each tool call's first fragment
    response.function_call_arguments.delta                     per arguments fragment
    ….done events closing each item                            when the next item starts, or at the end
    response.completed                                        at `[DONE]` (`status: incomplete` when cut at its limit)
    response.failed                                            at an error event (the relay's, when the
                                                               worker broke), or a stream that stopped
                                                               without `[DONE]`: never a silent end

Each event carries `type` and `sequence_number` and is named by an `event:` line; no `[DONE]` follows.
One JSON decode per worker chunk, and each worker chunk gives one piece (its events together), so the
client sees the answer as the worker sends it. Before `response.completed`, the answer is handed to
`keep` (a stored response is readable once the client is told it is complete); its failure is the
stream's `response.failed`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import msgspec

from gateway.errors import GatewayError
from gateway.surfaces.responses_answer import finished, function_call_item, message_item, new_id, output_text
from gateway.upstream.chunk_tap import ChunkTap
from gateway.upstream.sse_events import DONE_DATA, SseSplitter, StreamFormatError, decode_chunk, error_of

Body = dict[str, Any]
Keep = Callable[[Body], Awaitable[None]]
_encode = msgspec.json.Encoder().encode
_DELTA_HEAD = b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta","sequence_number":'
_DELTA_TAIL = b',"logprobs":[]}\n\n'
_DONE, _FAILED = object(), object()
"""How a piece of the stream ends it (`_decoded`)."""


class ResponseEvents:
    """The Responses events of one stream, made chunk by chunk (`chunk`), then closed by `completed` or
    `failed`."""

    def __init__(self, head: Body) -> None:
        self._head = head
        self._sequence = 0
        self._output: list[Body] = []
        self._text: list[str] | None = None
        """The text of the message item under way (None: no message item is open)."""
        self._call: tuple[int, list[str]] | None = None
        """The chat index and arguments of the function call under way."""
        self._finish_reason: object = None
        self._usage: object = None
        self._model: object = None
        self._delta_middle = b""
        """The fixed middle of the open message item's `response.output_text.delta` events."""

    def started(self) -> bytes:
        head = _encode(self._head)  # once for both events
        return self._head_event("response.created", head) + self._head_event("response.in_progress", head)

    def chunk(self, chunk: Body) -> bytes:
        """The events of one chat chunk (often one delta; empty for a role-only or usage-only chunk)."""
        usage = chunk.get("usage")
        if usage:
            self._usage = usage
        if self._model is None:
            self._model = chunk.get("model")
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            return b""
        events = b""
        for choice in choices:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue  # one answer a response (`n` is refused)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                content = delta.get("content")
                if content and isinstance(content, str):
                    text = self._text
                    if text is None:
                        events += self._open_message()
                        text = self._text = []
                    text.append(content)
                    # The event `_event` would make, from pieces fixed for the message item: the one per-chunk
                    # event of a stream, so made here.
                    sequence = self._sequence
                    self._sequence = sequence + 1
                    events += b"".join((_DELTA_HEAD, str(sequence).encode(), self._delta_middle, _encode(content),
                                        _DELTA_TAIL))
                calls = delta.get("tool_calls")
                if calls and isinstance(calls, list):
                    for position, call in enumerate(calls):
                        if isinstance(call, dict):
                            events += self._call_fragment(call, position)
            finish_reason = choice.get("finish_reason")
            if finish_reason:
                self._finish_reason = finish_reason
        return events

    def completed(self) -> tuple[Body, bytes]:
        """The whole Response, and the events that close its open item."""
        events = self._close_items()
        return finished(self._head, self._output, self._finish_reason, self._usage, self._model), events

    def outcome(self, response: Body) -> bytes:
        # Also when cut at its limit (`status: incomplete`): the openai SDK's stream helpers
        # (`get_final_response`) know only `response.completed`, and vLLM sends that too.
        return self._event("response.completed", response=response)

    def failed(self, error: Body) -> bytes:
        """`response.failed` carrying the error (`code`, `message`) and the output made so far."""
        code = error.get("code") or error.get("type") or "server_error"
        message = error.get("message") or "The worker's stream failed."
        response = {**self._head, "status": "failed", "output": self._output,
                    "error": {"code": str(code), "message": str(message)}}
        return self._event("response.failed", response=response)

    # ---- items ------------------------------------------------------------------------------------

    def _open_message(self) -> bytes:
        """The events that close the item under way and open a message item (its text is up to the caller)."""
        events = self._close_items()
        item = message_item(new_id("msg"), "", status="in_progress")
        self._output.append(item)
        events += self._event("response.output_item.added", output_index=len(self._output) - 1, item=item)
        events += self._event("response.content_part.added", item_id=item["id"],
                              output_index=len(self._output) - 1, content_index=0, part=output_text(""))
        self._delta_middle = (b',"item_id":' + _encode(item["id"]) + b',"output_index":'
                              + str(len(self._output) - 1).encode() + b',"content_index":0,"delta":')
        return events

    def _call_fragment(self, fragment: Body, position: int) -> bytes:
        index = fragment.get("index", position)
        function = fragment.get("function") if isinstance(fragment.get("function"), dict) else {}
        assert isinstance(function, dict)
        events = b""
        if self._call is None or self._call[0] != index:
            events = self._close_items()
            name = function.get("name")
            call_id = fragment.get("id")
            item = function_call_item(new_id("fc"), call_id if isinstance(call_id, str) and call_id else new_id("call"),
                                      name if isinstance(name, str) else "", "",
                                      status="in_progress")
            self._output.append(item)
            self._call = (index, [])
            events += self._event("response.output_item.added", output_index=len(self._output) - 1, item=item)
        elif isinstance(function.get("name"), str):
            self._output[-1]["name"] += function["name"]
        arguments = function.get("arguments")
        if isinstance(arguments, str) and arguments:
            self._call[1].append(arguments)
            events += self._event("response.function_call_arguments.delta", item_id=self._output[-1]["id"],
                                  output_index=len(self._output) - 1, delta=arguments)
        return events

    def _close_items(self) -> bytes:
        """The events that finish the item under way (a message or a function call), if any."""
        index = len(self._output) - 1
        if self._text is not None:
            item = self._output[index] = message_item(self._output[index]["id"], "".join(self._text))
            self._text = None
            part = item["content"][0]
            return (self._event("response.output_text.done", item_id=item["id"], output_index=index,
                                content_index=0, text=part["text"], logprobs=[])
                    + self._event("response.content_part.done", item_id=item["id"], output_index=index,
                                  content_index=0, part=part)
                    + self._event("response.output_item.done", output_index=index, item=item))
        if self._call is not None:
            item = {**self._output[index], "arguments": "".join(self._call[1]), "status": "completed"}
            self._output[index] = item
            self._call = None
            return (self._event("response.function_call_arguments.done", item_id=item["id"], output_index=index,
                                name=item["name"], arguments=item["arguments"])
                    + self._event("response.output_item.done", output_index=index, item=item))
        return b""

    def _head_event(self, kind: str, head: bytes) -> bytes:
        """The event `_event(kind, response=...)` makes, of a response already encoded (`head`)."""
        sequence = self._sequence
        self._sequence = sequence + 1
        return b"".join((b"event: ", kind.encode(), b'\ndata: {"type":', _encode(kind), b',"sequence_number":',
                         str(sequence).encode(), b',"response":', head, b"}\n\n"))

    def _event(self, kind: str, **fields: Any) -> bytes:
        data = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encode(data) + b"\n\n"


async def responses_stream(events: AsyncIterator[bytes], head: Body, keep: Keep | None,
                           tap: ChunkTap | None = None) -> AsyncIterator[bytes]:
    """The Responses stream of the chat stream `events` (closed when this stream is). `tap`: where the
    relay left the chunks it decoded (`chunk_tap`); any other piece is split and decoded here."""
    encoder = ResponseEvents(head)
    splitter = SseSplitter()
    try:
        yield encoder.started()
        async for piece in events:
            if tap is not None and piece is tap.event:  # a worker's chunk the relay decoded (no error)
                if out := encoder.chunk(tap.chunk):
                    yield out
                continue
            out, end = _decoded(encoder, splitter.feed(piece))
            if end is _DONE:
                yield out + await _ending(encoder, keep)
                return
            if out:
                yield out
            if end is _FAILED:
                return
        yield encoder.failed({"code": "upstream_error", "message": "The worker's stream ended before it completed."})
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()  # the relay releases the worker now (the client may have left)


def _decoded(encoder: ResponseEvents, payloads: list[bytes]) -> tuple[bytes, object]:
    """The events of `payloads` (decoded here), and whether they end the stream: `_DONE` (`[DONE]` came:
    the closing events are still to make), `_FAILED` (the events end with `response.failed`) or None."""
    out = b""
    for payload in payloads:
        if payload.strip() == DONE_DATA:
            return out, _DONE
        try:
            chunk = decode_chunk(payload)
        except StreamFormatError as exc:
            return out + encoder.failed({"code": "upstream_error", "message": f"The worker sent {exc}."}), _FAILED
        error = error_of(chunk)
        if error is not None:
            return out + encoder.failed(error), _FAILED
        out += encoder.chunk(chunk)
    return out, None


async def _ending(encoder: ResponseEvents, keep: Keep | None) -> bytes:
    response, closing = encoder.completed()
    if keep is not None:
        try:
            await keep(response)
        except GatewayError as exc:
            return closing + encoder.failed(exc.body()["error"])
    return closing + encoder.outcome(response)
