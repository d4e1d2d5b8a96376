"""A relayed SSE stream, as the client saw it, folded into one answer in the shape of a non-streaming
one (`chat.completion` / `text_completion`): content, reasoning, tool calls and finish reason per
choice, the usage chunk if one was sent, and the error event if the stream ended with one.

The capture only keeps the raw events while the stream flows (one list append per event); folding
happens later, in the writer's thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import msgspec

DONE = b"[DONE]"
_decode = msgspec.json.Decoder().decode


def sse_payloads(events: Iterable[bytes]) -> list[bytes]:
    """The `data:` payloads of SSE events, in order (an item may hold one event or several)."""
    payloads = []
    for item in events:
        for event in item.split(b"\n\n"):
            data = [line[5:].removeprefix(b" ") for line in event.splitlines() if line.startswith(b"data:")]
            if data:
                payloads.append(b"\n".join(data))
    return payloads


def ends_with_done(item: bytes) -> bool:
    """Whether an item the relay yields is (or ends with) the `[DONE]` event."""
    return item.rstrip().endswith(b"data: [DONE]") or item.rstrip().endswith(b"data:[DONE]")


@dataclass
class _Choice:
    index: int
    role: str = "assistant"
    content: list[str] = field(default_factory=list)
    reasoning: list[str] = field(default_factory=list)
    text: list[str] = field(default_factory=list)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    finish_reason: str | None = None


@dataclass
class AssembledStream:
    response: dict[str, Any]
    """The answer in the non-streaming shape."""
    error: dict[str, Any] | None
    """The `error` object of the stream's error event, if it ended with one."""
    completed: bool
    """The stream ended with `[DONE]`."""


def assemble(endpoint: str, events: Iterable[bytes]) -> AssembledStream:
    chat = endpoint == "chat/completions"
    choices: dict[int, _Choice] = {}
    head: dict[str, Any] = {}
    usage: Any = None
    error: dict[str, Any] | None = None
    completed = False
    for payload in sse_payloads(events):
        if payload.strip() == DONE:
            completed = True
            continue
        try:
            chunk = _decode(payload)
        except msgspec.DecodeError:
            continue
        if not isinstance(chunk, dict):
            continue
        if "error" in chunk:
            raw = chunk["error"]
            error = raw if isinstance(raw, dict) else {"message": str(raw)}
            continue
        if not head:
            head = chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            if isinstance(part, dict):
                _fold(choices, part, chat)
    return AssembledStream(_answer(chat, head, choices, usage), error, completed)


def _fold(choices: dict[int, _Choice], part: dict[str, Any], chat: bool) -> None:
    index = part.get("index", 0) if isinstance(part.get("index", 0), int) else 0
    choice = choices.setdefault(index, _Choice(index))
    if part.get("finish_reason"):
        choice.finish_reason = str(part["finish_reason"])
    if not chat:
        if isinstance(part.get("text"), str):
            choice.text.append(part["text"])
        return
    delta = part.get("delta") or {}
    if not isinstance(delta, dict):
        return
    if isinstance(delta.get("role"), str):
        choice.role = delta["role"]
    if isinstance(delta.get("content"), str):
        choice.content.append(delta["content"])
    if isinstance(delta.get("reasoning_content"), str):
        choice.reasoning.append(delta["reasoning_content"])
    for call in delta.get("tool_calls") or ():
        if not isinstance(call, dict):
            continue
        slot = call.get("index", len(choice.tool_calls))
        merged = choice.tool_calls.setdefault(slot if isinstance(slot, int) else 0, {
            "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
        if call.get("id"):
            merged["id"] = call["id"]
        if call.get("type"):
            merged["type"] = call["type"]
        function = call.get("function") or {}
        if isinstance(function, dict):
            merged["function"]["name"] += function.get("name") or ""
            merged["function"]["arguments"] += function.get("arguments") or ""


def _answer(chat: bool, head: dict[str, Any], choices: dict[int, _Choice], usage: Any) -> dict[str, Any]:
    out: list[dict[str, Any]] = []
    for index in sorted(choices):
        c = choices[index]
        if chat:
            message: dict[str, Any] = {"role": c.role, "content": "".join(c.content) if c.content else None}
            if c.reasoning:
                message["reasoning_content"] = "".join(c.reasoning)
            if c.tool_calls:
                message["tool_calls"] = [c.tool_calls[i] for i in sorted(c.tool_calls)]
            out.append({"index": index, "message": message, "finish_reason": c.finish_reason})
        else:
            out.append({"index": index, "text": "".join(c.text), "finish_reason": c.finish_reason})
    body: dict[str, Any] = {"id": head.get("id", ""), "object": "chat.completion" if chat else "text_completion",
                            "created": head.get("created", 0), "model": head.get("model", ""), "choices": out}
    if usage is not None:
        body["usage"] = usage
    return body
