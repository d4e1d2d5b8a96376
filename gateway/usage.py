"""Token usage as workers report it (`usage` of an OpenAI answer)."""

from __future__ import annotations

from typing import Any

import msgspec


class Usage(msgspec.Struct):
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Usage | None:
        if not data:
            return None
        try:
            return msgspec.convert(data, cls, strict=False)
        except msgspec.ValidationError:
            return None


class _WithUsage(msgspec.Struct):
    usage: Usage | None = None


_decoder = msgspec.json.Decoder(_WithUsage)


def usage_in_body(body: bytes) -> Usage | None:
    """The `usage` of a non-streaming answer, None when it has none (or is not JSON)."""
    try:
        return _decoder.decode(body).usage
    except (msgspec.DecodeError, UnicodeDecodeError):  # (ValidationError is a DecodeError; invalid UTF-8)
        return None
