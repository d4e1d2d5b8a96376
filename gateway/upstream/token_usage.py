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


class _NativeUsage(msgspec.Struct):
    """Usage as Anthropic's Messages and OpenAI's Responses name it."""

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0


class _WithNativeUsage(msgspec.Struct):
    usage: _NativeUsage | None = None


_native_decoder = msgspec.json.Decoder(_WithNativeUsage)


def checked_usage(body: bytes) -> Usage | None:
    """The `usage` of a worker's whole answer, which must be a JSON object (the one parse of it on the
    way through); raises `ValueError` when it is not, so garbage is never passed on or cached as a 200."""
    try:
        return _decoder.decode(body).usage
    except msgspec.ValidationError:  # a JSON object whose `usage` is odd: usage unknown
        if body.lstrip()[:1] == b"{":
            return None
        raise ValueError("not a JSON object") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None


def checked_native_usage(body: bytes) -> Usage | None:
    """`checked_usage` for a Messages or Responses answer: the prompt's tokens are Anthropic's new, cached
    and cache-written input tokens together (Responses' `input_tokens` counts them all already)."""
    try:
        usage = _native_decoder.decode(body).usage
    except msgspec.ValidationError:
        if body.lstrip()[:1] == b"{":
            return None
        raise ValueError("not a JSON object") from None
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise ValueError(str(exc)) from None
    if usage is None:
        return None
    prompt = usage.input_tokens + usage.cache_read_input_tokens + usage.cache_creation_input_tokens
    return Usage(prompt, usage.output_tokens, prompt + usage.output_tokens)
