"""`POST /v1/messages/count_tokens`: the tokens of an Anthropic Messages request's prompt, as Claude Code
asks a gateway before sending one.

Authenticated like inference (`x-api-key` or `Authorization: Bearer`), the model chosen as a Messages
request's would be (it must exist and be allowed to the key), the body checked like Messages' (without
`max_tokens`). The translated prompt is counted by a worker of the model that can count (vLLM, llama.cpp:
exact), else estimated as admission estimates it (`gateway.inference.token_counting`); the header
`x-gateway-token-count` says which. Errors are in Anthropic's shape.
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, post
from litestar.handlers import HTTPRouteHandler

from gateway.auth.authenticator import Authenticator
from gateway.errors import PermissionDenied
from gateway.http.callers import caller_of
from gateway.http.error_rendering import error_for, error_response
from gateway.http.openapi_bodies import json_body, with_body
from gateway.http.request_observer import record_of
from gateway.inference.model_selection import choose_model
from gateway.inference.token_counting import TokenCounter
from gateway.surfaces import ANTHROPIC_MESSAGES
from gateway.workers.active_catalog import CatalogHolder

COUNT_TOKENS = "/v1/messages/count_tokens"
_encode = msgspec.json.Encoder().encode
_BODY = json_body({**ANTHROPIC_MESSAGES.doc.schema, "required": ["model", "messages"]},
                  {"model": "chat", "messages": [{"role": "user", "content": "Say hello"}]},
                  description="A Messages request without `max_tokens`, checked like one.")


def anthropic_routes(runtimes: CatalogHolder, authenticator: Authenticator,
                     counter: TokenCounter) -> list[HTTPRouteHandler]:
    @post(COUNT_TOKENS, status_code=200, summary="Count the tokens of a message",
          operation_class=with_body(_BODY))
    async def count_tokens(request: Request[Any, Any, Any]) -> Response[bytes]:
        record = record_of(request.scope)
        record.endpoint = "messages/count_tokens"
        try:
            caller = await caller_of(request, authenticator)
            counted = ANTHROPIC_MESSAGES.decode_count(await request.body())
            runtime = runtimes.current
            choice = choose_model(runtime, counted)
            record.model, record.route = choice.model, choice.route
            if not caller.may_use(choice.model):
                raise PermissionDenied(f"This API key may not use the model `{choice.model}`.", param="model",
                                       code="model_not_allowed")
            count = await counter.count(runtime, counted, choice.model, record)
        except Exception as exc:
            error = error_for(exc, request.scope)
            return error_response(error, ANTHROPIC_MESSAGES.error_body(error))
        return Response(_encode({"input_tokens": count.tokens}), media_type="application/json",
                        headers=count.headers)

    return [count_tokens]
