"""What OpenAI's surfaces (chat completions, completions, embeddings) have in common: the cache rules,
the answer reservation, their text inputs, and the OpenAI shapes passed through unchanged.

Cacheable by default when deterministic (temperature 0, or a `seed`), with one choice (`n` 1); the cache
key leaves out the fields that only change the delivery (`stream`, `stream_options`, `user`,
`session_id`), so that a stored answer serves streaming and non-streaming requests alike, and `model`
(the cache keys by catalog model).
"""

from __future__ import annotations

from typing import Any, ClassVar

from gateway.errors import InvalidRequest
from gateway.surfaces.base import Body, Surface

_NOT_IN_CACHE_KEY = frozenset({"stream", "stream_options", "user", "session_id", "model"})
_COUNTS = ("max_tokens", "max_completion_tokens", "n")
"""Generation fields that must be whole numbers of at least 1 when given."""
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
"""Generation fields that must be numbers when given (their ranges are the worker's to judge)."""
VENDOR_FIELDS = ("Other fields (tools, response_format, logprobs, vendor extensions) are forwarded to the "
                 "worker unchanged.")


class OpenAISurface(Surface):
    """An OpenAI surface: answers, streams and errors are OpenAI's, which the workers speak already."""

    def completion_reserve(self, body: Body, default: int) -> int:
        limit = body.get("max_completion_tokens") or body.get("max_tokens")
        return limit if isinstance(limit, int) and limit > 0 else default

    def is_deterministic(self, body: Body) -> bool:
        temperature = body.get("temperature")
        return body.get("seed") is not None or (isinstance(temperature, int | float) and temperature == 0)

    def cache_fields(self, body: Body) -> Body | None:
        if body.get("n") not in (None, 1):
            return None  # several choices: not stored
        return {k: v for k, v in body.items() if k not in _NOT_IN_CACHE_KEY}


class OpenAITextInput(OpenAISurface):
    """A surface whose input is one field holding a string or a list (prompts, inputs, token ids)."""

    input_field: ClassVar[str]
    """The body field holding the input (its text is what routing sees)."""

    def check(self, body: Body) -> None:
        check_present(body, self.input_field, (str, list))

    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        return text_of(body.get(self.input_field))

    def prompt_tokens_estimate(self, body: Body) -> int:
        """About four characters a token."""
        return len(self.routing_text(body)) // 4 + 1


def check_generation(body: dict[str, Any]) -> None:
    """The generation fields every worker reads, of the right JSON type: a wrong one is the client's 400
    here, not a worker's validation dump (some answer it with a 500)."""
    for name in _COUNTS:
        value = body.get(name)
        if value is not None and (type(value) is not int or value < 1):
            raise InvalidRequest(f"'{name}' must be an integer of at least 1.", param=name, code="invalid_type")
    for name in _NUMBERS:
        value = body.get(name)
        if value is not None and type(value) not in (int, float):
            raise InvalidRequest(f"'{name}' must be a number.", param=name, code="invalid_type")
    seed = body.get("seed")
    if seed is not None and type(seed) is not int:
        raise InvalidRequest("'seed' must be an integer.", param="seed", code="invalid_type")


def text_of(content: object) -> str:
    """The text in a message's content, a prompt or an input: a string, or the strings and text parts of
    a list (token ids and images have none), one per line."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts, or a list of prompts / inputs
        parts = []
        for part in content:
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict) and isinstance(part.get("text"), str):
                parts.append(part["text"])
        return "\n".join(parts)
    return ""


def check_present(body: dict[str, Any], name: str, types: tuple[type, ...]) -> None:
    """`body[name]` is given, of one of `types`, and not an empty list."""
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, types) or (isinstance(value, list) and not value):
        raise InvalidRequest(f"Invalid value for '{name}'.", param=name, code="invalid_value")
