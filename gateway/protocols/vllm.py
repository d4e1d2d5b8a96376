"""vLLM's OpenAI-compatible server: the OpenAI protocol (`OpenAICompatible`), plus what only vLLM serves
and the gateway uses: OpenAI Responses (`/v1/responses`) and Anthropic Messages (`/v1/messages`), which
go to it as the client sent them (not translated to chat completions), and counting a chat request's
prompt tokens with the model's own tokenizer and chat template (`POST /tokenize` with `messages`, `tools`
and `add_generation_prompt`, answered with its `count`), as `/v1/messages/count_tokens` and
`/v1/responses/input_tokens` ask. OpenAI itself (kind `openai`) has neither, so it keeps the plain
`OpenAICompatible`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, ClassVar

import msgspec

from gateway.protocols.base import Capabilities, TokenCountCalls, counting_answer
from gateway.protocols.openai_compatible import OpenAICompatible
from gateway.workers.pool import Placement

_encode = msgspec.json.Encoder().encode
_TOKENIZE = "/../tokenize"
"""vLLM serves `/tokenize` at its root, beside (not under) the `/v1` its catalog URL ends with."""


class VllmServer(OpenAICompatible):
    """Workers of kind `vllm`."""

    capabilities: ClassVar[Capabilities] = dataclasses.replace(
        OpenAICompatible.capabilities, surfaces=OpenAICompatible.capabilities.surfaces | {"messages", "responses"},
        counts_tokens=True)

    def token_count(self, chat: Mapping[str, Any], placement: Placement) -> TokenCountCalls:
        request: dict[str, Any] = {"model": placement.upstream_model, "messages": chat["messages"],
                                   "add_generation_prompt": True}
        if chat.get("tools"):
            request["tools"] = chat["tools"]
        answer = yield _TOKENIZE, _encode(request)
        return counting_answer(answer, "count", int)
