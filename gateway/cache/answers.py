"""Stored answers and how they are replayed: a whole JSON answer or the chunks of a completed stream,
served back to a streaming or non-streaming request alike, with a fresh `id` and `created`."""

from __future__ import annotations

import secrets
import time
from typing import Any

import msgspec

from gateway.upstream.stream_folding import StreamFolder

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
    """A stored stream's chunks folded into the whole answer."""
    folder = StreamFolder(answer.endpoint)
    for raw in answer.chunks or ():
        folder.add(_json_decode(raw))
    return folder.answer()


def _split(answer: CachedAnswer) -> list[dict[str, Any]]:
    """A whole answer cut into stream chunks: everything in one delta (logprobs too), then the finish,
    then usage; folding them gives the answer back."""
    assert answer.body is not None
    body = _json_decode(answer.body)
    chat = answer.endpoint == "chat/completions"
    base = {"object": "chat.completion.chunk" if chat else "text_completion", "model": body.get("model", "")}
    if body.get("system_fingerprint") is not None:
        base["system_fingerprint"] = body["system_fingerprint"]
    first, last = [], []
    for choice in body.get("choices") or ():
        index = choice.get("index", 0)
        logprobs = choice.get("logprobs")
        if chat:
            first.append({"index": index, "delta": _delta(choice.get("message") or {}), "logprobs": logprobs,
                          "finish_reason": None})
            last.append({"index": index, "delta": {}, "logprobs": None, "finish_reason": choice.get("finish_reason")})
        else:
            first.append({"index": index, "text": choice.get("text") or "", "logprobs": logprobs,
                          "finish_reason": None})
            last.append({"index": index, "text": "", "logprobs": None, "finish_reason": choice.get("finish_reason")})
    chunks = [{**base, "choices": first}, {**base, "choices": last}]
    if body.get("usage"):
        chunks.append({**base, "choices": [], "usage": body["usage"]})
    return chunks


def _delta(message: dict[str, Any]) -> dict[str, Any]:
    """A whole message as one delta: role, content, and reasoning, refusal and tool calls if it has them."""
    delta: dict[str, Any] = {"role": "assistant", "content": message.get("content") or ""}
    for name in ("reasoning_content", "refusal"):
        if message.get(name):
            delta[name] = message[name]
    if message.get("tool_calls"):
        delta["tool_calls"] = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
    return delta
