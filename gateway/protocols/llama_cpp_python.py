"""llama-cpp-python's OpenAI-compatible server (the embedded `local` worker): OpenAI's protocol, with
what that server does not understand of today's requests absorbed here rather than relayed as its 500:

- `messages[].content` as a list of parts (what current SDKs and LangChain send): text parts are joined
  into the string the server expects; a part it cannot read (an image, audio) is the client's 400, named
  at its field;
- `max_completion_tokens` (OpenAI's name for the limit today) becomes `max_tokens` when that is unset.

The client's body is left as it was (capture records what the client sent): a changed copy is sent.
"""

from __future__ import annotations

from typing import Any

import msgspec

from gateway.errors import InvalidRequest
from gateway.protocols.openai_compatible import OpenAICompatible
from gateway.surfaces.request import InferenceRequest
from gateway.workers.pool import Placement

_encode = msgspec.json.Encoder().encode


class LlamaCppPython(OpenAICompatible):
    """The `local` worker started by `llm-gateway serve`."""

    def request(self, request: InferenceRequest, placement: Placement) -> tuple[str, bytes]:
        body = {**request.body, "model": placement.upstream_model}
        if request.endpoint == "chat/completions":
            messages = body.get("messages")
            if isinstance(messages, list) and any(isinstance(m, dict) and isinstance(m.get("content"), list)
                                                  for m in messages):
                body["messages"] = [_flattened(m, i) for i, m in enumerate(messages)]
        if "max_completion_tokens" in body:
            limit = body.pop("max_completion_tokens")
            body.setdefault("max_tokens", limit)
        return "/" + request.endpoint, _encode(body)


def _flattened(message: Any, index: int) -> Any:
    """The message with its content parts joined into one string."""
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return message
    texts = []
    for j, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str):
            texts.append(part["text"])
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            raise InvalidRequest(f"The local worker reads text only; `messages[{index}].content[{j}]` is of type "
                                 f"{kind!r}.", param=f"messages[{index}].content[{j}]", code="unsupported_content")
    return {**message, "content": "\n".join(texts)}
