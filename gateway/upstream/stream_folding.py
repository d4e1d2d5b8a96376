"""The one stream folder: the chunks of a chat or completions stream folded into the answer a
non-streaming request would have got, and a client-side reader of the gateway's SSE streams built on it.

Per choice (by `index`): the content, `reasoning_content` and refusal texts, tool calls merged by their
`index` (id and type as given, name and arguments concatenated), logprobs (their lists concatenated)
and the last `finish_reason`; over the stream: `usage` (the usage-only last chunk included) and the
first `id`, `created`, `model` and `system_fingerprint`. Optional message fields appear only when the
stream carried them, so a plain answer folds to the plain `{"role", "content"}` message.

Pure code (no I/O): the cache replays a stored stream as JSON with it, the capture records streams
with it, coaching gathers a turn's answer with it and the operator CLI reads the gateway with it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from gateway.upstream.sse_events import DONE_DATA, SseSplitter, StreamFormatError, decode_chunk, error_of


class _Choice:
    __slots__ = ("content", "finish_reason", "index", "logprobs", "reasoning", "refusal", "role", "tool_calls")

    def __init__(self, index: int) -> None:
        self.index = index
        self.role = "assistant"
        self.content: list[str] = []
        """The content (chat) or text (completions) pieces."""
        self.reasoning: list[str] = []
        self.refusal: list[str] = []
        self.tool_calls: dict[int, dict[str, Any]] = {}
        self.logprobs: dict[str, Any] | None = None
        self.finish_reason: Any = None


class StreamFolder:
    """Folds the decoded chunks of one stream (`add`, in order) into the whole answer (`answer`)."""

    __slots__ = ("_chat", "_choices", "_head", "usage")

    def __init__(self, endpoint: str) -> None:
        self._chat = endpoint == "chat/completions"
        self._choices: dict[int, _Choice] = {}
        self._head: dict[str, Any] = {}
        self.usage: Any = None
        """The stream's `usage`, once a chunk carried one."""

    def add(self, chunk: dict[str, Any]) -> str:
        """Fold one chunk in; the text it adds (content or completion text, over its choices), for
        whoever shows the answer as it comes."""
        for name in ("id", "created", "model", "system_fingerprint"):
            if name not in self._head and chunk.get(name) is not None:
                self._head[name] = chunk[name]
        if chunk.get("usage"):
            self.usage = chunk["usage"]
        choices = chunk.get("choices")
        added = ""
        for part in choices if isinstance(choices, list) else ():
            if isinstance(part, dict):
                added += self._fold(part)
        return added

    def answer(self) -> dict[str, Any]:
        """The answer in the non-streaming shape (`chat.completion` or `text_completion`)."""
        head = self._head
        body: dict[str, Any] = {"id": head.get("id", ""),
                                "object": "chat.completion" if self._chat else "text_completion",
                                "created": head.get("created", 0), "model": head.get("model", "")}
        if "system_fingerprint" in head:
            body["system_fingerprint"] = head["system_fingerprint"]
        body["choices"] = [self._choice(self._choices[index]) for index in sorted(self._choices)]
        if self.usage is not None:
            body["usage"] = self.usage
        return body

    def _fold(self, part: dict[str, Any]) -> str:
        index = part.get("index", 0)
        if not isinstance(index, int):
            index = 0
        choice = self._choices.get(index)
        if choice is None:
            choice = self._choices[index] = _Choice(index)
        if part.get("finish_reason"):
            choice.finish_reason = part["finish_reason"]
        if part.get("logprobs"):
            choice.logprobs = _merged_logprobs(choice.logprobs, part["logprobs"])
        if not self._chat:
            return _added(choice.content, part.get("text"))
        delta = part.get("delta")
        if not isinstance(delta, dict):
            return ""
        if isinstance(delta.get("role"), str):
            choice.role = delta["role"]
        _added(choice.reasoning, delta.get("reasoning_content"))
        _added(choice.refusal, delta.get("refusal"))
        calls = delta.get("tool_calls")
        for position, call in enumerate(calls if isinstance(calls, list) else ()):
            if isinstance(call, dict):
                _merge_call(choice.tool_calls, call, position)
        return _added(choice.content, delta.get("content"))

    def _choice(self, c: _Choice) -> dict[str, Any]:
        content = "".join(c.content) if c.content else None
        if not self._chat:
            return {"index": c.index, "text": content or "", "logprobs": c.logprobs, "finish_reason": c.finish_reason}
        if not content and (c.tool_calls or c.refusal):
            content = None
        message: dict[str, Any] = {"role": c.role, "content": content}
        if c.reasoning:
            message["reasoning_content"] = "".join(c.reasoning)
        if c.refusal:
            message["refusal"] = "".join(c.refusal)
        if c.tool_calls:
            message["tool_calls"] = [c.tool_calls[i] for i in sorted(c.tool_calls)]
        return {"index": c.index, "message": message, "logprobs": c.logprobs, "finish_reason": c.finish_reason}


def _added(pieces: list[str], value: object) -> str:
    if isinstance(value, str):
        pieces.append(value)
        return value
    return ""


def _merge_call(calls: dict[int, dict[str, Any]], fragment: dict[str, Any], position: int) -> None:
    """One tool-call fragment into the call of its `index` (its place in the delta when it has none)."""
    index = fragment.get("index", position)
    merged = calls.setdefault(index if isinstance(index, int) else position,
                              {"id": None, "type": "function", "function": {"name": "", "arguments": ""}})
    if fragment.get("id"):
        merged["id"] = fragment["id"]
    if fragment.get("type"):
        merged["type"] = fragment["type"]
    function = fragment.get("function")
    if isinstance(function, dict):
        for name in ("name", "arguments"):
            if isinstance(function.get(name), str):
                merged["function"][name] += function[name]


def _merged_logprobs(into: dict[str, Any] | None, part: object) -> dict[str, Any] | None:
    """Chat logprobs (`content`, `refusal`) and completions logprobs (`tokens`, `token_logprobs`,
    `top_logprobs`, `text_offset`) alike: every list is concatenated."""
    if not isinstance(part, dict):
        return into
    if into is None:
        return {name: list(value) if isinstance(value, list) else value for name, value in part.items()}
    for name, value in part.items():
        if isinstance(value, list) and isinstance(into.get(name), list):
            into[name].extend(value)
        elif into.get(name) is None:
            into[name] = list(value) if isinstance(value, list) else value
    return into


class StreamGatherer:
    """An SSE stream of the OpenAI shape read as a client reads it: split into events (`feed` the bytes
    as they come, `end` when they stop), each chunk folded, up to `[DONE]`. An error event, or a chunk
    that is not a JSON object, is kept as `error`; what follows `[DONE]` is ignored."""

    __slots__ = ("_events", "completed", "error", "folder")

    def __init__(self, endpoint: str) -> None:
        self._events = SseSplitter()
        self.folder = StreamFolder(endpoint)
        self.completed = False
        """The stream's `[DONE]` came."""
        self.error: dict[str, Any] | None = None
        """The error object of the (last) error event, if the stream carried one."""

    def feed(self, data: bytes) -> str:
        """Read the next bytes of the stream; the answer text they add."""
        return self._read(self._events.feed(data))

    def end(self) -> str:
        return self._read(self._events.end())

    def answer(self) -> dict[str, Any]:
        return self.folder.answer()

    def _read(self, payloads: list[bytes]) -> str:
        added = ""
        for payload in payloads:
            if self.completed:
                break
            if payload.strip() == DONE_DATA:
                self.completed = True
                continue
            try:
                chunk = decode_chunk(payload)
            except StreamFormatError as exc:
                self.error = {"message": f"the stream carried {exc}"}
                continue
            error = error_of(chunk)
            if error is not None:
                self.error = error
            else:
                added += self.folder.add(chunk)
        return added


def gather_sse(endpoint: str, items: Iterable[bytes]) -> StreamGatherer:
    """A whole SSE stream (however its bytes were cut into `items`) read and folded."""
    gatherer = StreamGatherer(endpoint)
    for item in items:
        gatherer.feed(item)
    gatherer.end()
    return gatherer
