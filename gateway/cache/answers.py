"""Stored answers and how they are replayed: a whole JSON answer or the chunks of a completed stream,
served back to a streaming or non-streaming request alike, with a fresh `id` and `created`."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

_json_decode = msgspec.json.decode
_json_encode = msgspec.json.Encoder().encode
_ID_PREFIX = {"chat/completions": "chatcmpl-", "completions": "cmpl-"}


class CachedAnswer(msgspec.Struct, frozen=True):
    endpoint: str
    body: bytes | None = None
    """A whole JSON answer."""
    chunks: list[bytes] | None = None
    """The `data:` payloads of a completed stream (its usage chunk included), without `[DONE]`."""


_pack = msgspec.msgpack.Encoder().encode
_unpack = msgspec.msgpack.Decoder(CachedAnswer).decode


def pack(answer: CachedAnswer) -> bytes:
    return _pack(answer)


def unpack(raw: bytes) -> CachedAnswer | None:
    try:
        return _unpack(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None


class _Choice(msgspec.Struct):
    finish_reason: Any = None


class _Choices(msgspec.Struct):
    choices: list[_Choice] | None = None


_choices_decode = msgspec.json.Decoder(_Choices).decode


def _choices(raw: bytes) -> list[Any]:
    """The `finish_reason` of each choice of a JSON answer or chunk: read without decoding the rest
    (the message contents are skipped), or from the whole document when its shape is unusual."""
    try:
        return [choice.finish_reason for choice in _choices_decode(raw).choices or ()]
    except msgspec.ValidationError:
        return [choice.get("finish_reason") for choice in _json_decode(raw).get("choices") or ()]


def finish_reasons(answer: CachedAnswer) -> set[str]:
    reasons: set[str] = set()
    if answer.body is not None:
        reasons.update(str(reason) for reason in _choices(answer.body))
    for raw in answer.chunks or ():
        reasons.update(str(reason) for reason in _choices(raw) if reason)
    return reasons


def _fresh(endpoint: str) -> tuple[str, int]:
    return _ID_PREFIX.get(endpoint, "cmpl-") + secrets.token_hex(12), int(time.time())


def as_json(answer: CachedAnswer) -> bytes:
    """The answer as a whole JSON body, for a non-streaming request."""
    data = _json_decode(answer.body) if answer.body is not None else _assemble(answer)
    if answer.endpoint != "embeddings":
        data["id"], data["created"] = _fresh(answer.endpoint)
    return _json_encode(data)


def as_sse(answer: CachedAnswer, *, include_usage: bool) -> list[bytes]:
    """The answer as SSE events (`[DONE]` included), for a streaming request."""
    chunks = [_json_decode(c) for c in answer.chunks] if answer.chunks is not None else _split(answer)
    fresh_id, created = _fresh(answer.endpoint)
    events = []
    for chunk in chunks:
        if not chunk.get("choices") and chunk.get("usage") and not include_usage:
            continue
        chunk["id"], chunk["created"] = fresh_id, created
        events.append(b"data: " + _json_encode(chunk) + b"\n\n")
    events.append(b"data: [DONE]\n\n")
    return events


def _assemble(answer: CachedAnswer) -> dict[str, Any]:
    """A stream's chunks folded into the whole answer (content, tool calls, finish reason, usage)."""
    chat = answer.endpoint == "chat/completions"
    choices: dict[int, dict[str, Any]] = {}
    head: dict[str, Any] = {}
    usage = None
    for raw in answer.chunks or ():
        chunk = _json_decode(raw)
        head = head or chunk
        if chunk.get("usage"):
            usage = chunk["usage"]
        for part in chunk.get("choices") or ():
            index = part.get("index", 0)
            choice = choices.setdefault(index, {"index": index, "finish_reason": None, "text": "",
                                                "content": "", "tool_calls": {}})
            if part.get("finish_reason"):
                choice["finish_reason"] = part["finish_reason"]
            if chat:
                delta = part.get("delta") or {}
                choice["content"] += delta.get("content") or ""
                for call in delta.get("tool_calls") or ():
                    merged = choice["tool_calls"].setdefault(call.get("index", 0), {
                        "id": None, "type": "function", "function": {"name": "", "arguments": ""}})
                    merged["id"] = call.get("id") or merged["id"]
                    function = call.get("function") or {}
                    merged["function"]["name"] += function.get("name") or ""
                    merged["function"]["arguments"] += function.get("arguments") or ""
            else:
                choice["text"] += part.get("text") or ""
    out = []
    for index in sorted(choices):
        c = choices[index]
        if chat:
            message: dict[str, Any] = {"role": "assistant", "content": c["content"] or None}
            if c["tool_calls"]:
                message["tool_calls"] = [c["tool_calls"][i] for i in sorted(c["tool_calls"])]
            out.append({"index": index, "message": message, "logprobs": None, "finish_reason": c["finish_reason"]})
        else:
            out.append({"index": index, "text": c["text"], "logprobs": None, "finish_reason": c["finish_reason"]})
    body: dict[str, Any] = {"id": head.get("id", ""), "object": "chat.completion" if chat else "text_completion",
                            "created": head.get("created", 0), "model": head.get("model", ""), "choices": out}
    if usage is not None:
        body["usage"] = usage
    return body


def _split(answer: CachedAnswer) -> list[dict[str, Any]]:
    """A whole answer cut into stream chunks: everything in one delta, then the finish, then usage."""
    assert answer.body is not None
    body = _json_decode(answer.body)
    chat = answer.endpoint == "chat/completions"
    base = {"object": "chat.completion.chunk" if chat else "text_completion", "model": body.get("model", "")}
    first, last = [], []
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        if chat:
            message = choice.get("message") or {}
            delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
            if message.get("tool_calls"):
                delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
            first.append({"index": index, "delta": delta, "logprobs": None, "finish_reason": None})
            last.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
        else:
            first.append({"index": index, "text": choice.get("text") or "", "logprobs": None, "finish_reason": None})
            last.append({"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")})
    chunks = [{**base, "choices": first}, {**base, "choices": last}]
    if body.get("usage"):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks
