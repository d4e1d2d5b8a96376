"""OpenAI's chat completions (`POST /v1/chat/completions`): a list of messages in, the assistant's
message (or its stream of deltas) out."""

from __future__ import annotations

import msgspec

from gateway.errors import InvalidRequest
from gateway.surfaces.base import Body, RequestDoc
from gateway.surfaces.openai_common import VENDOR_FIELDS, OpenAISurface, check_generation, text_of
from gateway.surfaces.openai_schema import GENERATION, MESSAGE

_DOC = RequestDoc(
    summary="Create a chat completion",
    schema={"type": "object", "required": ["messages"], "additionalProperties": True, "properties": {
        **GENERATION,
        "messages": {"type": "array", "minItems": 1, "items": MESSAGE},
        "max_completion_tokens": {"type": ["integer", "null"], "minimum": 1},
        "tools": {"type": "array", "items": {"type": "object"}},
        "tool_choice": {"anyOf": [{"type": "string"}, {"type": "object"}]},
        "response_format": {"type": "object"}}},
    example={"model": "chat", "messages": [{"role": "user", "content": "Say hello"}], "max_tokens": 32},
    description=VENDOR_FIELDS)


_encode = msgspec.json.Encoder().encode
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool", "function"})


class ChatCompletions(OpenAISurface):
    name = "chat/completions"
    paths = ("/v1/chat/completions",)
    title = "Chat completions"
    doc = _DOC

    def check(self, body: Body) -> None:
        """`messages`: a non-empty list of objects, each with one of OpenAI's roles (content is not checked:
        strings, content parts, null for tool calls are all the worker's to judge); the generation fields
        of the right types."""
        messages = body.get("messages")
        if messages is None:
            raise InvalidRequest("Missing required parameter: 'messages'.", param="messages",
                                 code="missing_required_parameter")
        if not isinstance(messages, list) or not messages:
            raise InvalidRequest("'messages' must be a non-empty array.", param="messages", code="invalid_value")
        for i, message in enumerate(messages):
            if not isinstance(message, dict):
                raise InvalidRequest(f"'messages[{i}]' must be an object.", param=f"messages[{i}]",
                                     code="invalid_type")
            role = message.get("role")
            if not isinstance(role, str):
                raise InvalidRequest(f"Missing required parameter: 'messages[{i}].role'.",
                                     param=f"messages[{i}].role", code="missing_required_parameter")
            if role not in _ROLES:  # a worker would render an unknown role into the prompt as it is
                raise InvalidRequest(f"Invalid value: '{role}'. 'messages[{i}].role' must be one of "
                                     f"{', '.join(sorted(_ROLES))}.", param=f"messages[{i}].role", code="invalid_value")
        check_generation(body)

    def routing_text(self, body: Body, match_on: str = "last_user_message") -> str:
        """The last user message, or with `conversation` every message's text, one per line."""
        if match_on == "conversation":
            return "\n".join(text_of(m.get("content")) for m in body["messages"])
        for message in reversed(body["messages"]):
            if message.get("role") == "user":
                return text_of(message.get("content"))
        return ""

    def conversation(self, body: Body) -> str:
        """Role and text of every message in order, so that prefixes match turn by turn."""
        return "".join(f"<{m.get('role')}>{text_of(m.get('content'))}" for m in body["messages"])

    def prompt_tokens_estimate(self, body: Body) -> int:
        """About four characters a token, plus a few tokens a message for the chat template; tool
        definitions count by their JSON (chat templates render them into the prompt: Claude Code's are
        some 20k tokens). Encoding them costs ~30 µs for 80 kB, and nothing without tools."""
        messages = body["messages"]
        chars = sum(len(text_of(m.get("content"))) for m in messages)
        tools = body.get("tools")
        if tools:
            chars += len(_encode(tools))
        return chars // 4 + 4 * len(messages) + 1


CHAT_COMPLETIONS = ChatCompletions()
