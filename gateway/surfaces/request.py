"""Decoding and checking the body of an inference request.

The body stays a plain dict so that every field the gateway does not use (tools, response_format,
logprobs, seed, vendor extras) reaches the worker untouched; only the fields the gateway relies on
are checked, each failure naming its `param` as OpenAI does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from gateway.errors import InvalidRequest

Endpoint = Literal["chat/completions", "completions", "embeddings"]

_decode = msgspec.json.Decoder().decode


@dataclass(slots=True)
class InferenceRequest:
    endpoint: Endpoint
    body: dict[str, Any]
    stream: bool
    session: str | None = None
    """A conversation the gateway keeps (coaching sessions): routed with affinity to one worker."""

    @property
    def requested_model(self) -> str | None:
        model = self.body.get("model")
        return model if model else None

    @property
    def wants_usage(self) -> bool:
        options = self.body.get("stream_options")
        return isinstance(options, dict) and options.get("include_usage") is True

    def routing_text(self, match_on: str = "last_user_message") -> str:
        """The text routing rules look at: the last user message (or, with `conversation`, every
        message) of a chat, else the prompt or input."""
        if self.endpoint == "chat/completions":
            if match_on == "conversation":
                return "\n".join(_text_of(m.get("content")) for m in self.body["messages"])
            for message in reversed(self.body["messages"]):
                if message.get("role") == "user":
                    return _text_of(message.get("content"))
            return ""
        return _text_of(self.body.get("prompt" if self.endpoint == "completions" else "input"))

    def conversation(self) -> str:
        """The whole prompt in order (role and content of every message), for prefix affinity."""
        if self.endpoint == "chat/completions":
            return "".join(f"<{m.get('role')}>{_text_of(m.get('content'))}" for m in self.body["messages"])
        return self.routing_text()

    def session_key(self) -> str | None:
        """A session or user id for session affinity: a kept conversation, `session_id`, else OpenAI's `user`."""
        if self.session:
            return self.session
        for name in ("session_id", "user"):
            value = self.body.get(name)
            if isinstance(value, str) and value:
                return value
        return None

    def prompt_tokens_estimate(self) -> int:
        """About four characters a token, plus a few tokens a message for the chat template."""
        if self.endpoint == "chat/completions":
            messages = self.body["messages"]
            chars = sum(len(_text_of(m.get("content"))) for m in messages)
            return chars // 4 + 4 * len(messages) + 1
        return len(self.routing_text()) // 4 + 1


def _text_of(content: object) -> str:
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


def decode_inference_request(endpoint: Endpoint, raw: bytes) -> InferenceRequest:
    try:
        body = _decode(raw)
    except (msgspec.DecodeError, UnicodeDecodeError):  # msgspec raises the latter for invalid UTF-8
        raise InvalidRequest("We could not parse the JSON body of your request. The body must be a "
                             "JSON object.", code="invalid_json") from None
    if not isinstance(body, dict):
        raise InvalidRequest("The request body must be a JSON object.", code="invalid_json")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise InvalidRequest("`model` must be a string.", param="model", code="invalid_type")
    stream = body.get("stream", False)
    if stream is None:
        stream = False
    if not isinstance(stream, bool):
        raise InvalidRequest("`stream` must be a boolean.", param="stream", code="invalid_type")
    if endpoint == "chat/completions":
        _check_messages(body.get("messages"))
    elif endpoint == "completions":
        _check_present(body, "prompt", (str, list))
    else:
        _check_present(body, "input", (str, list))
        if stream:
            raise InvalidRequest("Embeddings cannot be streamed.", param="stream", code="invalid_value")
    return InferenceRequest(endpoint=endpoint, body=body, stream=stream)


def _check_present(body: dict[str, Any], name: str, types: tuple[type, ...]) -> None:
    value = body.get(name)
    if value is None:
        raise InvalidRequest(f"Missing required parameter: '{name}'.", param=name, code="missing_required_parameter")
    if not isinstance(value, types) or (isinstance(value, list) and not value):
        raise InvalidRequest(f"Invalid value for '{name}'.", param=name, code="invalid_value")


def _check_messages(messages: object) -> None:
    if messages is None:
        raise InvalidRequest("Missing required parameter: 'messages'.", param="messages",
                             code="missing_required_parameter")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages", code="invalid_value")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]",
                                 code="invalid_type")
        if not isinstance(message.get("role"), str):
            raise InvalidRequest(f"Missing required parameter: 'messages[{i}].role'.",
                                 param=f"messages[{i}].role", code="missing_required_parameter")
